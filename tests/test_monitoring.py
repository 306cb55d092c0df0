"""Monitoring: the uploaded prometheus.yml (real `promtool check config`), what it scrapes,
and Grafana's provisioned data source and dashboards, for every example stack file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import (
    EXAMPLES,
    example_files,
    example_run,
    example_secrets,
    load_stack_file,
    read_yaml,
    run_program,
)
from harness import files as harness_files

from stacks.checks import validate
from stacks.plan import build_plan

CONTAINER = "docker:index/container:Container"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
DATASOURCE = "/etc/grafana/provisioning/datasources/homelab.yaml"
DASHBOARD_PROVIDER = "/etc/grafana/provisioning/dashboards/homelab.yaml"
DASHBOARDS = {"cadvisor", "node-exporter", "haproxy", "prometheus", "alerts"}
MULTI_HOST = EXAMPLES / "multi-host.yaml"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


# ---- helpers --------------------------------------------------------------------------


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


def env(container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.inputs.get("envs") or [])


def container(lab, alias: str, host: str | None = None):
    """The one container named `homelab-<alias>` (on `host` when given)."""
    found = [
        c
        for c in lab.of_type(CONTAINER)
        if c.inputs["name"] == f"homelab-{alias}" and host in (None, labels(c)["homelab.host"])
    ]
    assert len(found) == 1, f"{len(found)} containers homelab-{alias} on {host}"
    return found[0]


def uploads(c) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(c)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def scraped(prometheus_yml: str) -> set[tuple[str, str, str, str]]:
    """(job, metrics path, target address, host label) of every static target.

    Probe jobs (the blackbox exporter's, tests/test_alerting.py) scrape the exporter, not
    their targets: they are left out here."""
    document = read_yaml(prometheus_yml)
    return {
        (job["job_name"], job["metrics_path"], target, group["labels"]["host"])
        for job in document["scrape_configs"]
        if job["metrics_path"] != "/probe"
        for group in job["static_configs"]
        for target in group["targets"]
    }


def expected_targets(config: dict) -> set[tuple[str, str, str, str]]:
    """Every declared metrics endpoint, as Prometheus on its host must reach it."""
    model = validate(config)
    plan = build_plan(model)
    expected = set()
    for spec in plan.services:
        for m in spec.metrics:
            if spec.name == "prometheus":
                address = f"localhost:{m.port}"  # Prometheus scrapes itself
            elif spec.host == plan.prometheus_host:
                address = f"{m.container}:{m.port}"  # the stack network
            else:
                address = f"{model.host(spec.host).reachable_address}:{m.host_port}"
            expected.add((m.job, m.path, address, spec.host))
    return expected


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run an example file once per module; later calls return the same recording."""
    runs: dict[Path, tuple[dict, object]] = {}

    def run_once(path: Path):
        if path not in runs:
            runs[path] = (load_stack_file(path), example_run(path))
        return runs[path]

    return run_once


@pytest.fixture(scope="module", params=example_files(), ids=lambda p: p.name)
def example(request, run):
    return run(request.param)


# ---- Prometheus -----------------------------------------------------------------------


@needs_promtool
def test_prometheus_config_passes_promtool(example, tmp_path):
    """prometheus.yml with the files it names (the alert rules), laid out as uploaded."""
    _, lab = example
    for file, content in uploads(container(lab, "prometheus")).items():
        local = tmp_path / Path(file).relative_to("/etc/prometheus")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_prometheus_scrapes_every_declared_endpoint(example):
    config, lab = example
    actual = scraped(uploads(container(lab, "prometheus"))[PROMETHEUS_YML])
    assert actual == expected_targets(config)


def test_prometheus_uses_the_configured_interval(example):
    config, lab = example
    document = read_yaml(uploads(container(lab, "prometheus"))[PROMETHEUS_YML])
    interval = validate(config).monitoring.scrape_interval
    assert document["global"]["scrape_interval"] == interval
    jobs = [job["job_name"] for job in document["scrape_configs"]]
    assert len(jobs) == len(set(jobs))


def test_prometheus_uses_its_uploaded_config(example):
    _, lab = example
    command = container(lab, "prometheus").inputs["command"]
    assert f"--config.file={PROMETHEUS_YML}" in command
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in command)


def test_expected_targets_cover_every_exporter(example):
    """The expectation itself is not empty: each host's exporters and the proxy are there."""
    config, _ = example
    jobs = {job for job, *_ in expected_targets(config)}
    assert {"cadvisor", "node-exporter", "haproxy", "prometheus", "grafana"} <= jobs


def test_remote_exporters_are_scraped_at_the_host_address(run):
    _, lab = run(MULTI_HOST)
    actual = scraped(uploads(container(lab, "prometheus", "ops"))[PROMETHEUS_YML])
    remote = {(job, address) for job, _, address, host in actual if host == "apps"}
    assert remote == {
        ("cadvisor", "apps.lab.example.com:9338"),
        ("node-exporter", "apps.lab.example.com:9100"),
        ("haproxy", "apps.lab.example.com:8404"),
        ("metrics-demo", "apps.lab.example.com:9113"),
    }
    local = {(job, address) for job, _, address, host in actual if host == "ops"}
    assert ("cadvisor", "cadvisor:8080") in local and ("node-exporter", "node-exporter:9100") in local


@pytest.mark.parametrize(
    "alias, internal, published",
    [
        ("cadvisor", 8080, 9338),
        ("node-exporter", 9100, 9100),
        ("haproxy", 8404, 8404),
        ("metrics-demo", 80, 9113),
    ],
)
def test_remote_exporter_ports_are_published_on_apps(run, alias, internal, published):
    _, lab = run(MULTI_HOST)
    ports = {(p["internal"], p["external"]) for p in container(lab, alias, "apps").inputs.get("ports") or []}
    assert (internal, published) in ports


@pytest.mark.parametrize("alias", ["cadvisor", "node-exporter"])
def test_exporters_beside_prometheus_are_not_published(run, alias):
    _, lab = run(MULTI_HOST)
    assert not container(lab, alias, "ops").inputs.get("ports")


# ---- Grafana --------------------------------------------------------------------------


def test_grafana_datasource_is_prometheus_on_the_stack_network(example):
    _, lab = example
    document = read_yaml(uploads(container(lab, "grafana"))[DATASOURCE])
    [source] = document["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True
    grafana, prometheus = container(lab, "grafana"), container(lab, "prometheus")
    assert labels(grafana)["homelab.host"] == labels(prometheus)["homelab.host"]
    assert "prometheus" in prometheus.inputs["networksAdvanced"][0]["aliases"]


def test_grafana_has_its_dashboards_with_promql_panels(example):
    _, lab = example
    files = uploads(container(lab, "grafana"))
    folder = read_yaml(files[DASHBOARD_PROVIDER])["providers"][0]["options"]["path"]
    dashboards = {Path(p).stem: json.loads(text) for p, text in files.items() if p.startswith(folder + "/")}
    assert set(dashboards) == DASHBOARDS
    datasource_uid = read_yaml(files[DATASOURCE])["datasources"][0]["uid"]
    for name, dashboard in dashboards.items():
        assert dashboard["panels"], name
        for panel in dashboard["panels"]:
            exprs = [t["expr"] for t in panel["targets"]]
            assert exprs and all(expr.strip() for expr in exprs), (name, panel["title"])
            assert all(t["datasource"]["uid"] == datasource_uid for t in panel["targets"])


@needs_promtool
def test_dashboard_expressions_are_valid_promql(run, tmp_path):
    """Each panel's expression, as a recording rule, passes `promtool check rules`."""
    _, lab = run(EXAMPLES / "single-host.yaml")
    files = uploads(container(lab, "grafana"))
    exprs = [
        target["expr"]
        for path, text in files.items()
        if path.endswith(".json")
        for panel in json.loads(text)["panels"]
        for target in panel["targets"]
    ]
    rules = [{"record": f"homelab:panel_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout


def test_grafana_without_anonymous_access(example):
    _, lab = example
    e = env(container(lab, "grafana"))
    assert e["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert e["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_urls_follow_the_tls_setting(tmp_path):
    # Without TLS the example runs without its identity provider (sign-in needs HTTPS).
    config = load_stack_file(EXAMPLES / "single-host.yaml") | {"tls": {"enabled": False}, "identity": {}}
    lab = run_program(config, example_secrets(config), key_dir=str(tmp_path))
    e = env(container(lab, "grafana"))
    assert e["GF_SERVER_ROOT_URL"] == "http://monitoring.lab.example.com/"
    assert e["GF_SECURITY_COOKIE_SECURE"] == "false"
    assert (
        "--web.external-url=http://metrics.lab.example.com/" in container(lab, "prometheus").inputs["command"]
    )
