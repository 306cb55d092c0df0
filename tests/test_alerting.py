"""Alerting: the generated rules pass `promtool check rules` and each rule is unit-tested
with `promtool test rules` (it fires on a synthetic series and stays quiet on a healthy
one); the generated Alertmanager config passes `amtool check-config`; the rules follow the
service model (a custom service gets "target down" with no code change) and the config's
thresholds; the webhook URL stays a secret everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    EXAMPLES,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    assert_one_problem,
    example_files,
    example_run,
    example_secrets,
    file_is_secret,
    file_owner_and_mode,
    load_stack_file,
    plain_strings,
    read_yaml,
    run_program,
    stager_of,
)
from harness import files as harness_files

from components.homelab import alerting, drill
from components.homelab.schedule import ScheduleError, longest_gap
from stacks.checks import validate
from stacks.config import ConfigError
from stacks.plan import build_plan

CONTAINER = "docker:index/container:Container"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
RULES = alerting.RULES_FILE
ALERTMANAGER_YML = alerting.ALERTMANAGER_CONFIG
MULTI_HOST = EXAMPLES / "multi-host.yaml"
SINGLE_HOST = EXAMPLES / "single-host.yaml"
WEBHOOK = "https://chat.lab.example.com/hooks/" + SECRET_MARK + "-webhook"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool is not installed (scripts/install-tools.sh)"
)


# ---- helpers --------------------------------------------------------------------------


def labels(resource: Resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


def container(mocks: RecordingMocks, alias: str) -> Resource:
    found = [c for c in mocks.of_type(CONTAINER) if labels(c).get("homelab.container") == alias]
    assert len(found) == 1, f"{len(found)} containers {alias}"
    return found[0]


def uploads(c: Resource) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(c)


def rules_of(mocks: RecordingMocks) -> dict[str, Any]:
    return read_yaml(uploads(container(mocks, "prometheus"))[RULES])


def rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def amtool_version() -> tuple[int, ...]:
    out = tool("amtool", "--version")
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    return tuple(int(g) for g in match.groups())


def with_receiver(config: dict[str, Any], **receiver: Any) -> tuple[dict[str, Any], dict[str, str]]:
    monitoring = dict(config.get("monitoring") or {})
    monitoring["alerting"] = {"receiver": {"url-secret": "chat-webhook", **receiver}}
    config = {**config, "monitoring": monitoring}
    others = {key: value for key, value in example_secrets_of(config).items() if key != "chat-webhook"}
    return config, {**others, "chat-webhook": WEBHOOK}


def example_secrets_of(config: dict[str, Any]) -> dict[str, str]:
    """The stand-in secrets of a valid config; none for one the test expects to be refused."""
    try:
        return example_secrets(config)
    except ConfigError:
        return {}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run a config once per module; later calls return the same recording."""
    runs: dict[str, RecordingMocks] = {}

    examples = {json.dumps(load_stack_file(p), sort_keys=True): p for p in example_files()}

    def run_once(config: dict[str, Any], secrets: dict[str, str] | None = None) -> RecordingMocks:
        key = json.dumps([config, secrets], sort_keys=True)
        unchanged = examples.get(json.dumps(config, sort_keys=True)) if secrets is None else None
        if unchanged is not None:
            return example_run(unchanged)  # once per session, shared with other modules
        if key not in runs:
            key_dir = str(tmp_path_factory.mktemp("keys"))
            runs[key] = run_program(config, secrets or example_secrets(config), key_dir=key_dir)
        return runs[key]

    return run_once


@pytest.fixture(scope="module")
def multi_host(run) -> RecordingMocks:
    return run(load_stack_file(MULTI_HOST))


# ---- the generated files pass the real tools --------------------------------------------


@needs_promtool
@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_rules_pass_promtool_check(run, path, tmp_path):
    mocks = run(load_stack_file(path))
    file = tmp_path / "rules.yml"
    file.write_text(uploads(container(mocks, "prometheus"))[RULES])
    result = tool("promtool", "check", "rules", "--lint=all", "--lint-fatal", str(file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout), result.stdout


@needs_amtool
@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_alertmanager_config_passes_amtool(run, path, tmp_path):
    mocks = run(load_stack_file(path))
    file = tmp_path / "alertmanager.yml"
    file.write_text(uploads(container(mocks, "alertmanager"))[ALERTMANAGER_YML])
    result = tool("amtool", "check-config", str(file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_amtool
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_receiver_configs_pass_amtool(run, kind, tmp_path):
    config, secrets = with_receiver(load_stack_file(SINGLE_HOST), kind=kind)
    text = uploads(container(run(config, secrets), "alertmanager"))[ALERTMANAGER_YML]
    receiver = read_yaml(text)["receivers"][0]
    if kind == "slack":
        assert receiver["slack_configs"][0]["api_url_file"] == alerting.WEBHOOK_URL_FILE
    else:
        assert receiver["webhook_configs"][0]["url_file"] == alerting.WEBHOOK_URL_FILE
        if amtool_version() < (0, 26, 0):
            # webhook_configs.url_file exists from Alertmanager 0.26.0 (notify/webhook in the
            # prometheus/alertmanager tags); the pinned image is v0.34.0, Debian 12 ships 0.25.
            pytest.skip(f"amtool {amtool_version()} predates webhook url_file (0.26.0)")
    file = tmp_path / "alertmanager.yml"
    file.write_text(text)
    result = tool("amtool", "check-config", str(file))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_amtool_rejects_a_broken_config(tmp_path):
    """The check above can fail: a receiver that the route does not know is refused."""
    document = read_yaml(alerting.alertmanager_config(alerting.Receiver(), alerting.Routing()))
    document["route"]["receiver"] = "nobody"
    file = tmp_path / "alertmanager.yml"
    file.write_text(yaml.safe_dump(document))
    assert tool("amtool", "check-config", str(file)).returncode != 0


# ---- every rule, unit-tested with promtool test rules -----------------------------------


@dataclass
class Case:
    """One rule: series that make it fire (with the alerts expected), and healthy series."""

    alert: str
    firing: list[tuple[str, str]]
    healthy: list[tuple[str, str]]
    expected: list[dict[str, Any]]
    eval_time: str = "20m"
    interval: str = "1m"
    extra: dict[str, str] = field(default_factory=dict)


APPS = {"host": "apps", "job": "node-exporter", "instance": "apps.lab.example.com:9100"}
OPS = {"host": "ops", "job": "node-exporter", "instance": "node-exporter:9100"}


def series(metric: str, /, **labels_: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels_.items())
    return f"{metric}{{{inner}}}"


def alert(summary: str, **labels_: str) -> dict[str, Any]:
    return {"exp_labels": labels_, "exp_annotations": {"summary": summary}}


CASES = [
    Case(
        "HostDown",
        firing=[
            (series("up", **APPS), "0x30"),
            (series("up", job="cadvisor", host="apps", instance="apps.lab.example.com:9338"), "0x30"),
            # The TLS probes run beside Prometheus: they say nothing about the host being up.
            (series("up", job="tls-certificates", host="apps", instance="demo.lab.example.com"), "1x30"),
        ],
        healthy=[
            (series("up", **APPS), "0x30"),
            (series("up", job="cadvisor", host="apps", instance="apps.lab.example.com:9338"), "1x30"),
        ],
        expected=[
            alert(
                "Host apps is unreachable: none of its scrape targets answers.",
                severity="critical",
                host="apps",
            )
        ],
    ),
    Case(
        "TargetDown",
        # metrics-demo is a custom service of multi-host.yaml: declared in config only.
        firing=[
            (series("up", job="metrics-demo", host="apps", instance="apps.lab.example.com:9113"), "0x30")
        ],
        healthy=[
            (series("up", job="metrics-demo", host="apps", instance="apps.lab.example.com:9113"), "1x30")
        ],
        expected=[
            alert(
                "metrics-demo on apps is down: apps.lab.example.com:9113 does not answer scrapes.",
                severity="critical",
                job="metrics-demo",
                host="apps",
                instance="apps.lab.example.com:9113",
            )
        ],
    ),
    Case(
        "HostDiskFull",
        firing=[
            (series("node_filesystem_avail_bytes", **APPS, mountpoint="/", fstype="ext4"), "10x30"),
            (series("node_filesystem_size_bytes", **APPS, mountpoint="/", fstype="ext4"), "100x30"),
            # Memory-backed filesystems are not disks.
            (series("node_filesystem_avail_bytes", **APPS, mountpoint="/run", fstype="tmpfs"), "0x30"),
            (series("node_filesystem_size_bytes", **APPS, mountpoint="/run", fstype="tmpfs"), "100x30"),
        ],
        healthy=[
            (series("node_filesystem_avail_bytes", **APPS, mountpoint="/", fstype="ext4"), "20x30"),
            (series("node_filesystem_size_bytes", **APPS, mountpoint="/", fstype="ext4"), "100x30"),
        ],
        expected=[
            alert(
                "Disk / on apps is 90% full.",
                severity="warning",
                **APPS,
                mountpoint="/",
                fstype="ext4",
            )
        ],
    ),
    Case(
        "HostMemoryPressure",
        firing=[
            (series("node_memory_MemAvailable_bytes", **APPS), "5x30"),
            (series("node_memory_MemTotal_bytes", **APPS), "100x30"),
        ],
        healthy=[
            (series("node_memory_MemAvailable_bytes", **APPS), "40x30"),
            (series("node_memory_MemTotal_bytes", **APPS), "100x30"),
        ],
        expected=[alert("Memory on apps is 95% used.", severity="warning", **APPS)],
    ),
    Case(
        "HostClockSkew",
        # apps: 2 s behind its time source; ops: 30 s ahead of Prometheus at every scrape.
        firing=[
            (series("node_timex_offset_seconds", **APPS), "-2x30"),
            (series("node_time_seconds", **APPS), "0+60x30"),
            (series("node_timex_offset_seconds", **OPS), "0x30"),
            (series("node_time_seconds", **OPS), "30+60x30"),
        ],
        healthy=[
            (series("node_timex_offset_seconds", **APPS), "-0.001x30"),
            (series("node_time_seconds", **APPS), "0+60x30"),
        ],
        expected=[
            alert("The clock of apps is 2.00s off.", severity="warning", **APPS),
            alert("The clock of ops is 30.00s off.", severity="warning", **OPS),
        ],
    ),
    Case(
        "ContainerRestarting",
        firing=[
            (
                series("container_start_time_seconds", host="apps", name="homelab-web", job="cadvisor"),
                "100x10 160x2 220x2 280x2 340x15",
            )
        ],
        # Steady, or restarted twice (below the threshold of 3).
        healthy=[
            (
                series("container_start_time_seconds", host="apps", name="homelab-web", job="cadvisor"),
                "100x30",
            ),
            (
                series("container_start_time_seconds", host="apps", name="homelab-landing", job="cadvisor"),
                "100x10 160x2 220x17",
            ),
        ],
        eval_time="17m",
        expected=[
            alert(
                "Container homelab-web on apps restarted 3 times in 15m.",
                severity="warning",
                host="apps",
                name="homelab-web",
                job="cadvisor",
            )
        ],
    ),
    Case(
        "ContainerUnhealthy",
        firing=[(series("container_health_state", host="apps", name="homelab-web", job="cadvisor"), "0x30")],
        # Healthy (1) and without a health check (-1) are both quiet.
        healthy=[
            (series("container_health_state", host="apps", name="homelab-web", job="cadvisor"), "1x30"),
            (series("container_health_state", host="apps", name="homelab-landing", job="cadvisor"), "-1x30"),
        ],
        expected=[
            alert(
                "Container homelab-web on apps fails its health check.",
                severity="warning",
                host="apps",
                name="homelab-web",
                job="cadvisor",
            )
        ],
    ),
    Case(
        "ProxyBackendDown",
        firing=[
            (series("haproxy_backend_active_servers", host="apps", proxy="be_web_80", job="haproxy"), "0x30"),
            (series("haproxy_backend_backup_servers", host="apps", proxy="be_web_80", job="haproxy"), "0x30"),
        ],
        # A backend whose backup server is up still serves.
        healthy=[
            (series("haproxy_backend_active_servers", host="apps", proxy="be_web_80", job="haproxy"), "1x30"),
            (series("haproxy_backend_backup_servers", host="apps", proxy="be_web_80", job="haproxy"), "0x30"),
            (
                series("haproxy_backend_active_servers", host="apps", proxy="be_demo_80", job="haproxy"),
                "0x30",
            ),
            (
                series("haproxy_backend_backup_servers", host="apps", proxy="be_demo_80", job="haproxy"),
                "1x30",
            ),
        ],
        expected=[
            alert(
                "HAProxy on apps has no server up for be_web_80.",
                severity="critical",
                host="apps",
                proxy="be_web_80",
                job="haproxy",
            )
        ],
    ),
    Case(
        "ProxyHttp5xxRate",
        firing=[
            (
                series("haproxy_backend_http_responses_total", host="apps", proxy="be_web_80", code="5xx"),
                "0+6x30",
            ),
            (
                series("haproxy_backend_http_responses_total", host="apps", proxy="be_web_80", code="2xx"),
                "0+54x30",
            ),
        ],
        healthy=[
            (
                series("haproxy_backend_http_responses_total", host="apps", proxy="be_web_80", code="5xx"),
                "0x30",
            ),
            (
                series("haproxy_backend_http_responses_total", host="apps", proxy="be_web_80", code="2xx"),
                "0+60x30",
            ),
        ],
        expected=[
            alert(
                "10.0% of the responses of be_web_80 on apps are 5xx.",
                severity="warning",
                host="apps",
                proxy="be_web_80",
            )
        ],
    ),
    Case(
        "CertificateExpiring",
        # Expires 7 days after the start of the test; healthy: in 90 days.
        firing=[
            (
                series(
                    "probe_ssl_earliest_cert_expiry",
                    job="tls-certificates",
                    host="apps",
                    instance="demo.lab.example.com",
                ),
                "604800x30",
            )
        ],
        healthy=[
            (
                series(
                    "probe_ssl_earliest_cert_expiry",
                    job="tls-certificates",
                    host="apps",
                    instance="demo.lab.example.com",
                ),
                "7776000x30",
            )
        ],
        expected=[
            alert(
                "The certificate of demo.lab.example.com expires in 7 days.",
                severity="warning",
                job="tls-certificates",
                host="apps",
                instance="demo.lab.example.com",
            )
        ],
    ),
    Case(
        "TlsProbeFailed",
        firing=[
            (
                series("probe_success", job="tls-certificates", host="apps", instance="demo.lab.example.com"),
                "0x30",
            )
        ],
        healthy=[
            (
                series("probe_success", job="tls-certificates", host="apps", instance="demo.lab.example.com"),
                "1x30",
            )
        ],
        expected=[
            alert(
                "No TLS handshake with demo.lab.example.com on apps.",
                severity="warning",
                job="tls-certificates",
                host="apps",
                instance="demo.lab.example.com",
            )
        ],
    ),
    Case(
        "RestoreNotVerified",
        # Restore drills (components/homelab/drill.py), 8d by default: apps verified a restore
        # 8d 1h ago; ops never reported a drill.
        firing=[
            (series(drill.VERIFIED, service="mysql", **APPS), "0x193"),
            (series(drill.SUCCESS, service="mysql", **APPS), "1x193"),
        ],
        healthy=[
            (series(drill.VERIFIED, service="mysql", **APPS), "0+3600x193"),
            (series(drill.SUCCESS, service="mysql", **APPS), "1x193"),
            (series(drill.VERIFIED, service="grafana", **OPS), "0+3600x193"),
            (series(drill.SUCCESS, service="grafana", **OPS), "1x193"),
        ],
        eval_time="8d1h",
        interval="1h",
        expected=[
            alert(
                "No verified restore of mysql on apps for 8d 1h 0m 0s (at most 8d expected).",
                severity="critical",
                reason="too-old",
                service="mysql",
                **APPS,
            ),
            alert(
                "No restore drill has reported from ops for 8d (python -m automation drill --host ops).",
                severity="critical",
                reason="no-drill",
                host="ops",
            ),
        ],
    ),
    Case(
        "RestoreDrillFailed",
        firing=[(series(drill.SUCCESS, service="mysql", **APPS), "0x20")],
        healthy=[(series(drill.SUCCESS, service="mysql", **APPS), "1x20")],
        expected=[
            alert(
                "The last restore drill of mysql on apps failed: "
                "python -m automation drill --host apps --service mysql says why.",
                severity="warning",
                service="mysql",
                **APPS,
            )
        ],
    ),
    Case(
        "BackupOverdue",
        # Daily backups (multi-host.yaml: 0 4 * * *): the last one 40 h ago, or never.
        firing=[
            (series(alerting.BACKUP_METRIC, **APPS), "0x40"),
            (series("up", **APPS), "1x40"),
        ],
        healthy=[
            (series(alerting.BACKUP_METRIC, **APPS), "0+3600x40"),
            (
                series(
                    alerting.BACKUP_METRIC, host="ops", job="node-exporter", instance="node-exporter:9100"
                ),
                "0+3600x40",
            ),
        ],
        eval_time="40h",
        interval="1h",
        expected=[
            alert(
                "No successful backup on apps for 1d 16h 0m 0s (at most 36h expected).",
                severity="critical",
                reason="too-old",
                **APPS,
            ),
            alert(
                "No successful backup recorded on ops for 36h.",
                severity="critical",
                reason="never",
                host="ops",
            ),
        ],
    ),
    Case(
        "PrometheusConfigReloadFailed",
        firing=[(series("prometheus_config_last_reload_successful", job="prometheus", host="ops"), "0x30")],
        healthy=[(series("prometheus_config_last_reload_successful", job="prometheus", host="ops"), "1x30")],
        expected=[
            alert(
                "Prometheus on ops failed to reload its configuration.",
                severity="critical",
                job="prometheus",
                host="ops",
            )
        ],
    ),
    Case(
        "PrometheusRuleFailures",
        firing=[
            (
                series(
                    "prometheus_rule_evaluation_failures_total",
                    job="prometheus",
                    host="ops",
                    rule_group="hosts",
                ),
                "0+1x30",
            )
        ],
        healthy=[
            (
                series(
                    "prometheus_rule_evaluation_failures_total",
                    job="prometheus",
                    host="ops",
                    rule_group="hosts",
                ),
                "3x30",
            )
        ],
        expected=[
            alert(
                "Prometheus on ops fails to evaluate the rules of hosts.",
                severity="critical",
                job="prometheus",
                host="ops",
                rule_group="hosts",
            )
        ],
    ),
    Case(
        "PrometheusAlertmanagerMissing",
        firing=[
            (
                series("prometheus_notifications_alertmanagers_discovered", job="prometheus", host="ops"),
                "0x30",
            )
        ],
        healthy=[
            (
                series("prometheus_notifications_alertmanagers_discovered", job="prometheus", host="ops"),
                "1x30",
            )
        ],
        expected=[
            alert(
                "Prometheus on ops reaches no Alertmanager: no alert is delivered.",
                severity="critical",
                job="prometheus",
                host="ops",
            )
        ],
    ),
    Case(
        "AlertmanagerNotificationsFailing",
        firing=[
            (
                series(
                    "alertmanager_notifications_failed_total",
                    job="alertmanager",
                    host="ops",
                    integration="slack",
                    reason="clientError",
                ),
                "0+1x30",
            )
        ],
        healthy=[
            (
                series(
                    "alertmanager_notifications_failed_total",
                    job="alertmanager",
                    host="ops",
                    integration="slack",
                    reason="clientError",
                ),
                "2x30",
            )
        ],
        expected=[
            alert(
                "Alertmanager on ops cannot deliver to slack.",
                severity="warning",
                job="alertmanager",
                host="ops",
                integration="slack",
                reason="clientError",
            )
        ],
    ),
]


def only_rule(rules_text: str, alert: str) -> str:
    """The rules file with only the rules of `alert` (and their groups): promtool evaluates
    every rule at every evaluation step, and no rule reads another (no recording rules, no
    ALERTS series), so the others only cost time (8 days of 1-minute steps for the drills)."""
    document = read_yaml(rules_text)
    groups = []
    for group in document["groups"]:
        assert not [r for r in group["rules"] if "record" in r or "ALERTS" in r["expr"]], group["name"]
        kept = [r for r in group["rules"] if r.get("alert") == alert]
        if kept:
            groups.append({**group, "rules": kept})
    assert groups, f"no rule {alert}"
    return yaml.safe_dump({"groups": groups}, sort_keys=False)


def write_unit_test(
    folder: Path, name: str, rules_text: str, case: Case, inputs: list[tuple[str, str]], expected: list
) -> Path:
    """A promtool unit test file (and its rules file) for one case, in `folder`."""
    (folder / f"{name}.rules.yml").write_text(only_rule(rules_text, case.alert))
    test = {
        "rule_files": [f"{name}.rules.yml"],
        # Rules are evaluated at each sample of the input series: every minute, and every hour
        # for the day-long cases (backups, drills), whose series are hourly. Between hourly
        # samples those series are stale (5m lookback), so minute steps there only reset the
        # same `for` clocks 60 times as often: the alerts at eval_time are the same, and
        # promtool does not spend seconds on 11,000 evaluation steps.
        "evaluation_interval": case.interval,
        "tests": [
            {
                "interval": case.interval,
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "alert_rule_test": [
                    {"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": expected}
                ],
            }
        ],
    }
    path = folder / f"{name}.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


def promtool_test(
    tmp_path: Path, rules_text: str, case: Case, inputs: list[tuple[str, str]], expected: list
) -> str:
    write_unit_test(tmp_path, "case", rules_text, case, inputs, expected)
    result = tool("promtool", "test", "rules", "case.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass
class UnitTests:
    folder: Path
    passed: set[str]

    def check(self, name: str) -> None:
        """Assert the test file `name` passed; a failure runs it again alone for promtool's word."""
        if f"{name}.test.yml" not in self.passed:
            result = tool("promtool", "test", "rules", f"{name}.test.yml", cwd=self.folder)
            raise AssertionError(f"{name}: {result.stdout}{result.stderr}")


@pytest.fixture(scope="module")
def unit_tests(multi_host, tmp_path_factory) -> UnitTests:
    """Every case's two unit tests (fires, stays quiet), run by one `promtool test rules`."""
    folder = tmp_path_factory.mktemp("promtool")
    text = uploads(container(multi_host, "prometheus"))[RULES]
    files = []
    for case in CASES:
        files.append(write_unit_test(folder, f"{case.alert}-fires", text, case, case.firing, case.expected))
        files.append(write_unit_test(folder, f"{case.alert}-quiet", text, case, case.healthy, []))
    result = tool("promtool", "test", "rules", *(p.name for p in files), cwd=folder)
    # stdout: "Unit Testing:  NAME" then "  SUCCESS" for each file that passed.
    passed = set(re.findall(r"Unit Testing:\s+(\S+)\n\s+SUCCESS\n", result.stdout))
    if result.returncode == 0:
        assert passed == {p.name for p in files}, result.stdout
    else:
        assert passed < {p.name for p in files}, result.stdout + result.stderr
    return UnitTests(folder, passed)


def test_every_rule_has_a_unit_test(multi_host):
    """multi-host.yaml has every kind of rule; a new rule must get a case here."""
    assert {r["alert"] for r in rules(rules_of(multi_host))} == {c.alert for c in CASES}


@needs_promtool
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.alert)
def test_rule_fires_on_a_synthetic_series(unit_tests, case):
    unit_tests.check(f"{case.alert}-fires")


@needs_promtool
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.alert)
def test_rule_is_quiet_on_a_healthy_series(unit_tests, case):
    unit_tests.check(f"{case.alert}-quiet")


@needs_promtool
def test_promtool_test_can_fail(multi_host, tmp_path):
    """The unit tests above are not vacuous: a wrong expectation fails."""
    case = CASES[1]
    text = uploads(container(multi_host, "prometheus"))[RULES]
    with pytest.raises(AssertionError, match="FAILED"):
        promtool_test(tmp_path, text, case, case.healthy, case.expected)


# ---- the rules follow the service model and the config --------------------------------


def test_every_scrape_job_gets_target_down(run):
    for path in example_files():
        mocks = run(load_stack_file(path))
        prometheus_yml = read_yaml(uploads(container(mocks, "prometheus"))[PROMETHEUS_YML])
        jobs = {job["job_name"] for job in prometheus_yml["scrape_configs"]}
        down = {r["labels"]["job"] for r in rules(rules_of(mocks)) if r["alert"] == "TargetDown"}
        assert down == jobs, path.name
        for r in rules(rules_of(mocks)):
            if r["alert"] == "TargetDown":
                assert r["expr"] == f'up{{job="{r["labels"]["job"]}"}} == 0'


@needs_promtool
def test_a_custom_service_gets_target_down_with_no_code_change(run, tmp_path):
    config = load_stack_file(SINGLE_HOST)
    config["custom-services"] = [
        *config["custom-services"],
        {"name": "gitea", "image": "gitea/gitea:1.24.5", "metrics": [{"port": 3000}]},
    ]
    mocks = run(config)
    down = [r for r in rules(rules_of(mocks)) if r["alert"] == "TargetDown" and r["labels"]["job"] == "gitea"]
    assert len(down) == 1
    case = Case(
        "TargetDown",
        firing=[(series("up", job="gitea", host="server", instance="gitea:3000"), "0x30")],
        healthy=[],
        expected=[
            alert(
                "gitea on server is down: gitea:3000 does not answer scrapes.",
                severity="critical",
                job="gitea",
                host="server",
                instance="gitea:3000",
            )
        ],
    )
    promtool_test(tmp_path, uploads(container(mocks, "prometheus"))[RULES], case, case.firing, case.expected)


@needs_promtool
def test_thresholds_come_from_the_config(run, tmp_path):
    config = load_stack_file(MULTI_HOST)
    config["monitoring"] = {
        **config.get("monitoring", {}),
        "alerting": {
            "thresholds": {"disk-used-percent": 70, "target-down-for": "2m", "certificate-days": 30}
        },
    }
    document = rules_of(run(config))
    by_name = {r["alert"]: r for r in rules(document)}
    assert by_name["HostDiskFull"]["expr"].endswith("> 70")
    assert by_name["TargetDown"]["for"] == "2m" and by_name["HostDown"]["for"] == "2m"
    assert by_name["CertificateExpiring"]["expr"].endswith("< 30")
    # 75 % full: quiet with the default 85, fires with 70.
    case = Case(
        "HostDiskFull",
        firing=[
            (series("node_filesystem_avail_bytes", **APPS, mountpoint="/", fstype="ext4"), "25x30"),
            (series("node_filesystem_size_bytes", **APPS, mountpoint="/", fstype="ext4"), "100x30"),
        ],
        healthy=[],
        expected=[
            alert("Disk / on apps is 75% full.", severity="warning", **APPS, mountpoint="/", fstype="ext4")
        ],
    )
    promtool_test(
        tmp_path, uploads(container(run(config), "prometheus"))[RULES], case, case.firing, case.expected
    )
    default = uploads(container(run(load_stack_file(MULTI_HOST)), "prometheus"))[RULES]
    promtool_test(tmp_path, default, case, case.firing, [])


def test_rule_groups_follow_the_services_in_the_plan(run):
    """No cAdvisor, no node-exporter, no TLS: no container, host or certificate rules."""
    config = {
        "tls": {"enabled": False},
        "services": {"cadvisor": {"enabled": False}, "node-exporter": {"enabled": False}},
    }
    names = {r["alert"] for r in rules(rules_of(run(config)))}
    assert not names & {"ContainerRestarting", "ContainerUnhealthy", "HostDiskFull", "CertificateExpiring"}
    assert not names & {"BackupOverdue"}, "without node-exporter nobody reports the backups"
    assert {"HostDown", "TargetDown", "ProxyBackendDown", "PrometheusConfigReloadFailed"} <= names


def test_backup_age_follows_the_schedule(run):
    config = load_stack_file(SINGLE_HOST)
    config["backup"] = {**config["backup"], "schedule": "0 3 * * 0"}  # weekly, Sundays
    document = rules_of(run(config))
    overdue = [r for r in rules(document) if r["alert"] == "BackupOverdue"]
    assert {r["labels"]["reason"] for r in overdue} == {"too-old", "never"}
    week = 7 * 24 * 3600
    assert any(r["expr"].endswith(f"> {round(week * 1.5)}") for r in overdue)
    assert any(r.get("for") == "252h" for r in overdue)


@pytest.mark.parametrize(
    "schedule, hours",
    [
        ("0 0 4 * * *", 24),
        ("0 4 * * *", 24),
        ("@daily", 24),
        ("@every 6h", 6),
        ("0 4 * * 1-5", 72),  # Friday to Monday
        ("0 3 1,15 * *", 17 * 24),  # the 15th to the 1st of a 31-day month
        ("0 0 29 2 *", 4 * 365 * 24 + 24),  # leap days
        ("0 0 13 * fri", 7 * 24),  # day-of-month or day-of-week: at least every Friday
        ("*/15 * * * *", 0.25),
    ],
)
def test_longest_gap_of_a_schedule(schedule, hours):
    assert longest_gap(schedule) == hours * 3600


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "61 * * * *", "0 4 * *", "@every soon"])
def test_schedules_without_an_interval_are_refused(schedule):
    with pytest.raises(ScheduleError):
        longest_gap(schedule)


def test_node_exporter_reads_the_textfile_the_backup_run_writes(multi_host):
    """On each host the backup run records a success in the volume node-exporter reads, from
    the engine's `prune-pre` hook (run only after the archive reached every storage), in its
    own container (exec-label = its EXEC_LABEL)."""
    for host in ("ops", "apps"):
        c = [x for x in multi_host.of_type(CONTAINER) if labels(x)["homelab.host"] == host]
        exporter = next(x for x in c if labels(x)["homelab.container"] == "node-exporter")
        assert f"--collector.textfile.directory={alerting.TEXTFILE_DIR}" in exporter.inputs["command"]
        read = next(v for v in exporter.inputs["volumes"] if v.get("containerPath") == alerting.TEXTFILE_DIR)
        assert read["readOnly"] is True
        runner = next(x for x in c if labels(x).get("homelab.role") == "backup")
        write = next(v for v in runner.inputs["volumes"] if v.get("containerPath") == alerting.TEXTFILE_DIR)
        assert write["readOnly"] is False
        assert write["volumeName"] == read["volumeName"] == f"homelab_node_exporter_{host}_textfile"
        hook = labels(runner)
        env = dict(e.split("=", 1) for e in runner.inputs["envs"])
        assert hook[alerting.EXEC_LABEL] == env["EXEC_LABEL"]
        assert hook[alerting.SUCCESS_HOOK_LABEL] == f"/bin/sh -c '{alerting.backup_success_command()}'"
        assert "'" not in alerting.backup_success_command()  # it sits inside single quotes


def test_no_backup_hook_without_node_exporter(run):
    config = {"services": {"node-exporter": {"enabled": False}}}
    runner = next(c for c in run(config).of_type(CONTAINER) if labels(c).get("homelab.role") == "backup")
    assert alerting.SUCCESS_HOOK_LABEL not in labels(runner)
    assert all(v.get("containerPath") != alerting.TEXTFILE_DIR for v in runner.inputs.get("volumes") or [])


def test_backup_success_command_writes_what_node_exporter_reads(tmp_path):
    """The command runs under sh and leaves a metric line the rule's selector matches."""
    result = subprocess.run(
        ["sh", "-c", alerting.backup_success_command(str(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / alerting.BACKUP_TEXTFILE).read_text()
    assert re.search(rf"^{alerting.BACKUP_METRIC} \d{{10}}$", text, re.M), text
    assert not list(tmp_path.glob("*.tmp"))


# ---- Alertmanager and the blackbox exporter in the plan ---------------------------------


def test_alertmanager_runs_beside_prometheus_unrouted(multi_host):
    am, prometheus = container(multi_host, "alertmanager"), container(multi_host, "prometheus")
    assert labels(am)["homelab.host"] == labels(prometheus)["homelab.host"] == "ops"
    assert not am.inputs.get("ports"), "Alertmanager has no login: it is not published"
    config = read_yaml(uploads(prometheus)[PROMETHEUS_YML])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["rule_files"] == [alerting.RULES_FILE_REF]
    assert "alertmanager" in am.inputs["networksAdvanced"][0]["aliases"]
    assert f"--config.file={ALERTMANAGER_YML}" in am.inputs["command"]
    assert "--cluster.listen-address=" in am.inputs["command"]
    # Silences survive re-creation: the data volume is stateful (and backed up).
    volume = next(v for v in am.inputs["volumes"] if v["containerPath"] == alerting.ALERTMANAGER_DATA)
    assert volume["volumeName"] == "homelab_alertmanager_data"


def test_alertmanager_groups_and_inhibits(multi_host):
    document = read_yaml(uploads(container(multi_host, "alertmanager"))[ALERTMANAGER_YML])
    route = document["route"]
    assert route["group_by"] == ["alertname", "host"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    host_down = document["inhibit_rules"][0]
    assert host_down["source_matchers"] == ['alertname="HostDown"']
    assert host_down["equal"] == ["host"]
    # Without a receiver in the config, alerts are kept but sent nowhere.
    assert route["receiver"] == "none" and document["receivers"] == [{"name": "none"}]


def test_tls_probes_cover_every_routed_host_name(run):
    for path in example_files():
        config = load_stack_file(path)
        model = validate(config)
        mocks = run(config)
        expected = set(build_plan(model).tls_hosts())
        if not expected:
            assert not [
                c for c in mocks.of_type(CONTAINER) if labels(c)["homelab.container"] == "blackbox-exporter"
            ]
            continue
        document = read_yaml(uploads(container(mocks, "prometheus"))[PROMETHEUS_YML])
        [job] = [j for j in document["scrape_configs"] if j["job_name"] == alerting.TLS_JOB]
        probed = {g["labels"]["__param_hostname"] for g in job["static_configs"]}
        assert probed == expected, path.name
        assert job["params"]["module"] == [alerting.TLS_MODULE]
        assert {"target_label": "__address__", "replacement": "blackbox-exporter:9115"} in job[
            "relabel_configs"
        ]
        module = read_yaml(uploads(container(mocks, "blackbox-exporter"))[alerting.BLACKBOX_CONFIG])
        tcp = module["modules"][alerting.TLS_MODULE]
        assert tcp["prober"] == "tcp" and tcp["tcp"]["tls"] is True


def test_remote_proxies_are_probed_at_their_published_port(multi_host):
    document = read_yaml(uploads(container(multi_host, "prometheus"))[PROMETHEUS_YML])
    [job] = [j for j in document["scrape_configs"] if j["job_name"] == alerting.TLS_JOB]
    where = {(g["labels"]["host"], g["targets"][0]) for g in job["static_configs"]}
    assert where == {("ops", "haproxy:443"), ("apps", "apps.lab.example.com:443")}


# ---- config: errors name the key, the webhook URL stays secret ---------------------------


def test_receiver_without_alertmanager_is_refused(tmp_path):
    config, secrets = with_receiver({"services": {"alertmanager": {"enabled": False}}})
    assert_one_problem(
        config, secrets, str(tmp_path), "monitoring.alerting.receiver", "enable services.prometheus"
    )


def test_receiver_url_must_be_a_set_secret(tmp_path):
    config, _ = with_receiver({})
    assert_one_problem(
        config,
        {},
        str(tmp_path),
        "monitoring.alerting.receiver.url-secret",
        "pulumi config set --secret chat-webhook",
    )


def test_channel_is_only_for_slack(tmp_path):
    config, secrets = with_receiver({}, kind="webhook", channel="alerts")
    assert_one_problem(
        config, secrets, str(tmp_path), "monitoring.alerting.receiver", "only for the slack kind"
    )


def test_threshold_out_of_range_names_its_key(tmp_path):
    config = {"monitoring": {"alerting": {"thresholds": {"disk-used-percent": 120}}}}
    assert_one_problem(
        config, {}, str(tmp_path), "monitoring.alerting.thresholds.disk-used-percent", "less than 100"
    )


def test_backup_schedule_without_interval_names_its_key(tmp_path):
    assert_one_problem({"backup": {"schedule": "0 0 31 2 *"}}, {}, str(tmp_path), "backup.schedule", "twice")


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_webhook_url_reaches_alertmanager_only_as_a_secret_file(run, kind):
    config, secrets = with_receiver(load_stack_file(SINGLE_HOST), kind=kind)
    mocks = run(config, secrets)
    am = container(mocks, "alertmanager")
    files = uploads(am)
    assert files[alerting.WEBHOOK_URL_FILE] == WEBHOOK
    assert file_owner_and_mode(am, alerting.WEBHOOK_URL_FILE) == ("65534", "0400")  # nobody, alone
    assert file_is_secret(am, alerting.WEBHOOK_URL_FILE)
    assert WEBHOOK not in files[ALERTMANAGER_YML]
    assert WEBHOOK not in json.dumps(am.inputs.get("envs") or [])
    holders = [r.name for r in mocks.resources if WEBHOOK in json.dumps(r.inputs)]
    assert holders == [stager_of(am).name]  # the one-shot container that stages its files
    for r in mocks.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert WEBHOOK not in text, f"{r.name}: {path} holds the webhook URL in plain text"
    assert WEBHOOK not in json.dumps(mocks.outputs)
