"""The restore drill alerts, checked and unit-tested with Prometheus's own `promtool`
(`check rules`, and `test rules`: input series, then the alerts that must fire and when)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.homelab import drill as metrics
from components.homelab.drill import DrillWatch, drill_rules

WEEK = 7 * 86400


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (scripts/install-tools.sh)")
    return found


def write_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "drills.yml"
    rules.write_text(drill_rules([DrillWatch("nas", WEEK + 86400), DrillWatch("local", WEEK)]))
    return rules


def test_the_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(write_rules(tmp_path))], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout  # 3 per host, 1 for every host


def test_no_hosts_no_rules() -> None:
    assert yaml.safe_load(drill_rules([])) == {"groups": []}
    assert drill_rules([], standalone=False) == ""


def run_promtool_test(promtool: str, tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    rules = write_rules(tmp_path)
    spec = tmp_path / "drills_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1h", "tests": tests}))
    return subprocess.run(
        [promtool, "test", "rules", str(spec)], capture_output=True, text=True, cwd=tmp_path
    )


def alert(name: str, summary: str, **labels: str) -> dict:
    return {"exp_labels": {"alertname": name, **labels}, "exp_annotations": {"summary": summary}}


def test_a_verified_restore_older_than_the_age_fires_and_a_fresh_one_does_not(
    promtool: str, tmp_path: Path
) -> None:
    # Verified at t=0 on both hosts; local expects one every 7d, nas every 8d.
    series = [
        {"series": f'{metrics.VERIFIED}{{host="local",service="mysql"}}', "values": "0+0x240"},
        {"series": f'{metrics.SUCCESS}{{host="local",service="mysql"}}', "values": "1+0x240"},
        {"series": f'{metrics.VERIFIED}{{host="nas",service="notes"}}', "values": "0+0x240"},
        {"series": f'{metrics.SUCCESS}{{host="nas",service="notes"}}', "values": "1+0x240"},
    ]
    too_old = alert(
        "RestoreNotVerified",
        "No verified restore of mysql on local for 7d 1h 0m 0s (at most 7d expected).",
        host="local",
        service="mysql",
        severity="critical",
        reason="too-old",
    )
    result = run_promtool_test(
        promtool,
        tmp_path,
        [
            {
                "interval": "1h",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "6d", "alertname": "RestoreNotVerified", "exp_alerts": []},
                    {"eval_time": "7d1h", "alertname": "RestoreNotVerified", "exp_alerts": [too_old]},
                    {"eval_time": "7d1h", "alertname": "RestoreDrillFailed", "exp_alerts": []},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failed_drill_warns_at_once_and_never_verified_fires_after_the_age(
    promtool: str, tmp_path: Path
) -> None:
    series = [
        {"series": f'{metrics.SUCCESS}{{host="nas",service="notes"}}', "values": "0+0x240"},
        # local: verified every hour, quiet throughout.
        {"series": f'{metrics.SUCCESS}{{host="local",service="mysql"}}', "values": "1+0x240"},
        {"series": f'{metrics.VERIFIED}{{host="local",service="mysql"}}', "values": "0+3600x240"},
    ]
    failed = alert(
        "RestoreDrillFailed",
        "The last restore drill of notes on nas failed: "
        "python -m automation drill --host nas --service notes says why.",
        host="nas",
        service="notes",
        severity="warning",
    )
    never = alert(
        "RestoreNotVerified",
        "No restore of notes on nas has ever passed a drill.",
        host="nas",
        service="notes",
        severity="critical",
        reason="never",
    )
    result = run_promtool_test(
        promtool,
        tmp_path,
        [
            {
                "interval": "1h",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "1h", "alertname": "RestoreDrillFailed", "exp_alerts": [failed]},
                    {"eval_time": "7d", "alertname": "RestoreNotVerified", "exp_alerts": []},
                    {"eval_time": "8d1h", "alertname": "RestoreNotVerified", "exp_alerts": [never]},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_host_that_never_reports_fires_after_the_age(promtool: str, tmp_path: Path) -> None:
    series = [{"series": f'{metrics.SUCCESS}{{host="nas",service="notes"}}', "values": "1+0x240"}]
    silent = alert(
        "RestoreNotVerified",
        "No restore drill has reported from local for 7d (python -m automation drill --host local).",
        host="local",
        severity="critical",
        reason="no-drill",
    )
    result = run_promtool_test(
        promtool,
        tmp_path,
        [
            {
                "interval": "1h",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "6d", "alertname": "RestoreNotVerified", "exp_alerts": []},
                    {"eval_time": "7d2h", "alertname": "RestoreNotVerified", "exp_alerts": [silent]},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_prints_the_rules_of_the_stack(promtool: str, tmp_path: Path) -> None:
    import io

    from automation import cli

    stack = tmp_path / "Pulumi.rules.yaml"
    config = {
        "homelab:hosts": [
            {"name": "server"},
            {"name": "nas", "address": "ops@nas.lan", "trust-on-first-use": True},
        ],
        "homelab:data": {"restore-drills": {"max-age": "10d"}},
        "homelab:custom-services": [
            {
                "name": "files",
                "image": "nginx:1.29.1",
                "host": "nas",
                "volumes": [{"name": "data", "path": "/d"}],
            }
        ],
    }
    stack.write_text(yaml.safe_dump({"config": config}))
    out = io.StringIO()
    assert cli.main(["drill", "--rules", "--file", str(stack)], out) == 0
    rules = yaml.safe_load(out.getvalue())["groups"][0]["rules"]
    too_old = [r for r in rules if r["labels"].get("reason") == "too-old"]
    assert [r["labels"]["host"] for r in too_old] == ["nas", "server"]
    assert all(r["expr"].endswith("> 864000") for r in too_old)
    path = tmp_path / "restore-drills.yml"
    path.write_text(out.getvalue())
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hosts_without_a_node_exporter_or_backups_are_not_watched() -> None:
    from components.docker.spec import ContainerSpec, ServiceSpec
    from components.homelab.drill import drill_watches

    def spec(kind: str, host: str) -> ServiceSpec:
        return ServiceSpec(f"{kind}-{host}", kind, host, (ContainerSpec("c", "x:1"),))

    specs = [
        spec("NodeExporter", "a"),
        spec("BackupSchedule", "a"),
        spec("BackupSchedule", "b"),
        spec("NodeExporter", "c"),
    ]
    assert [w.host for w in drill_watches(specs, 60)] == ["a"]
