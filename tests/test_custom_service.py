"""A service declared in config alone is routed, certified, scraped, backed up, given its
secrets and listed, like the built-ins; on another host it is scraped through that host."""

from __future__ import annotations

import re

import pytest
from harness import HOST_KEY, RecordingMocks, Resource, plain_strings, read_yaml, run_program
from harness import files as harness_files

CONTAINER = "docker:index/container:Container"
DOMAIN = "lab.example.com"
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
INDEX_HTML = "/usr/share/nginx/html/index.html"

WHOAMI = {
    "name": "whoami",
    "title": "Who am I",
    "image": "traefik/whoami:v1.11.0",
    "routes": [{"hostname": "whoami", "port": 80}],
    "metrics": [{"port": 80, "path": "/metrics"}],
    "volumes": [{"name": "data", "path": "/data"}],
    "secrets": [{"name": "api-token", "env": "API_TOKEN"}],
    "env": {"MODE": "demo"},
}


def container(mocks: RecordingMocks, host: str, alias: str) -> Resource:
    found = [
        r
        for r in mocks.of_type(CONTAINER)
        if {"label": "homelab.host", "value": host} in r.inputs["labels"]
        and {"label": "homelab.container", "value": alias} in r.inputs["labels"]
    ]
    assert len(found) == 1, f"{len(found)} containers {alias} on {host}"
    return found[0]


def uploads(c: Resource) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(c)


def labels(c: Resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in c.inputs.get("labels") or []}


def env(c: Resource) -> dict[str, str]:
    return dict(e.split("=", 1) for e in c.inputs.get("envs") or [])


def scrape_jobs(prometheus: Resource) -> dict[str, dict]:
    document = read_yaml(uploads(prometheus)[PROMETHEUS_YML])
    return {job["job_name"]: job for job in document["scrape_configs"]}


def targets(job: dict) -> dict[str, list[str]]:
    """host label -> targets"""
    return {group["labels"]["host"]: group["targets"] for group in job["static_configs"]}


@pytest.fixture(scope="module")
def one_host(tmp_path_factory) -> RecordingMocks:
    return run_program(
        {"domain": DOMAIN, "hosts": [{"name": "local"}], "custom-services": [WHOAMI]},
        key_dir=str(tmp_path_factory.mktemp("keys")),
    )


def test_it_runs_its_image_on_the_stack_network(one_host):
    c = container(one_host, "local", "whoami")
    assert c.inputs["name"] == "homelab-whoami"
    assert c.inputs["networksAdvanced"] == [{"name": "homelab", "aliases": ["whoami"]}]
    image = one_host.named("local-image-traefik-whoami-v1.11.0", "docker:index/remoteImage:RemoteImage")
    assert image.inputs["name"] == "traefik/whoami:v1.11.0"
    assert env(c)["MODE"] == "demo"


def test_it_is_routed(one_host):
    cfg = uploads(container(one_host, "local", "haproxy"))[HAPROXY_CFG]
    rule = re.search(
        r"use_backend (\S+) if \{ req\.hdr\(host\),field\(1,:\),lower -m str whoami\.lab\.example\.com \}",
        cfg,
    )
    assert rule, cfg
    backend = rule.group(1)
    block = cfg.split(f"backend {backend}\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^\s+server whoami whoami:80 check", block, re.M), block


def test_it_gets_a_certificate(one_host):
    cert = one_host.named(f"tls-whoami.{DOMAIN}-cert", "tls:index/locallySignedCert:LocallySignedCert")
    assert "server_auth" in cert.inputs["allowedUses"]
    csr = one_host.named(f"tls-whoami.{DOMAIN}-csr", "tls:index/certRequest:CertRequest")
    assert csr.inputs["dnsNames"] == [f"whoami.{DOMAIN}"]
    files = uploads(container(one_host, "local", "haproxy"))
    assert f"cert-tls-whoami.{DOMAIN}-cert" in files[f"/usr/local/etc/haproxy/certs/whoami.{DOMAIN}.pem"]
    assert f"whoami.{DOMAIN}.pem whoami.{DOMAIN}" in files["/usr/local/etc/haproxy/crt-list.txt"]


def test_it_is_scraped(one_host):
    jobs = scrape_jobs(container(one_host, "local", "prometheus"))
    assert jobs["whoami"]["metrics_path"] == "/metrics"
    assert targets(jobs["whoami"]) == {"local": ["whoami:80"]}


def test_it_is_backed_up(one_host):
    (volume,) = [
        r for r in one_host.of_type("docker:index/volume:Volume") if r.inputs["name"] == "homelab_whoami_data"
    ]
    assert volume.retain_on_delete is True
    c = container(one_host, "local", "whoami")
    assert {"volumeName": "homelab_whoami_data", "containerPath": "/data", "readOnly": False} in c.inputs[
        "volumes"
    ]
    # Its container is stopped by this host's backup schedule while the archive is made ...
    stop = labels(c).get("docker-volume-backup.stop-during-backup")
    backup = container(one_host, "local", "backup")
    assert stop == env(backup)["BACKUP_STOP_DURING_BACKUP_LABEL"] == "homelab-local"
    # ... which archives the volume, read-only.
    assert {
        "volumeName": "homelab_whoami_data",
        "containerPath": "/backup/homelab_whoami_data",
        "readOnly": True,
    } in backup.inputs["volumes"]


def test_its_secret_is_generated_and_secret(one_host):
    password = one_host.named("whoami-api-token", "random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] == 32
    c = container(one_host, "local", "whoami")
    token = env(c)["API_TOKEN"]
    assert token in one_host.generated_secrets
    assert "envs" in c.secret_paths
    assert not [p for r in one_host.resources for p, s in plain_strings(r.raw_inputs) if token in s]


def test_it_is_on_the_landing_page(one_host):
    page = uploads(container(one_host, "local", "landing"))[INDEX_HTML]
    assert f'<a href="https://whoami.{DOMAIN}/">Who am I</a>' in page
    assert one_host.outputs["urls"]["whoami"] == f"https://whoami.{DOMAIN}/"


def test_without_declarations_it_is_nowhere(tmp_path):
    """The counterpart: the same stack without the service has none of it."""
    mocks = run_program({"domain": DOMAIN, "hosts": [{"name": "local"}]}, key_dir=str(tmp_path))
    assert "whoami" not in uploads(container(mocks, "local", "haproxy"))[HAPROXY_CFG]
    assert "whoami" not in scrape_jobs(container(mocks, "local", "prometheus"))
    assert "whoami" not in uploads(container(mocks, "local", "landing"))[INDEX_HTML]
    backup = container(mocks, "local", "backup")
    assert "whoami" not in str(backup.inputs["volumes"])


# ---- on another host ------------------------------------------------------------------------

EXPORTER = {
    "name": "exporter",
    "image": "prom/node-exporter:v1.9.1",
    "host": "edge",
    "metrics": [{"port": 9100, "path": "/metrics", "host-port": 19100}],
}
EDGE_APP = {
    "name": "edge-app",
    "image": "traefik/whoami:v1.11.0",
    "host": "edge",
    "routes": [{"hostname": "edge", "port": 80}],
    "metrics": [{"port": 8080, "path": "/stats"}],  # published on its own port number
}


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory) -> RecordingMocks:
    config = {
        "domain": DOMAIN,
        "hosts": [
            {"name": "main"},
            {"name": "edge", "address": "deploy@edge.example.com:2200", "host-key": HOST_KEY},
        ],
        "services": {"node-exporter": {"hosts": ["main"]}},
        "custom-services": [WHOAMI, EXPORTER, EDGE_APP],
    }
    return run_program(config, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_remote_service_is_scraped_through_its_host(two_hosts):
    jobs = scrape_jobs(container(two_hosts, "main", "prometheus"))
    assert targets(jobs["exporter"]) == {"edge": ["edge.example.com:19100"]}
    assert targets(jobs["edge-app"]) == {"edge": ["edge.example.com:8080"]}
    assert jobs["edge-app"]["metrics_path"] == "/stats"
    assert targets(jobs["whoami"]) == {"main": ["whoami:80"]}


def test_remote_service_publishes_its_metrics_port(two_hosts):
    exporter = container(two_hosts, "edge", "exporter")
    assert {"internal": 9100, "external": 19100, "protocol": "tcp"} in exporter.inputs["ports"]
    assert "edge-docker" in exporter.provider
    app = container(two_hosts, "edge", "edge-app")
    assert {"internal": 8080, "external": 8080, "protocol": "tcp"} in app.inputs["ports"]
    # A service beside Prometheus publishes nothing.
    assert not container(two_hosts, "main", "whoami").inputs.get("ports")


def test_remote_service_is_routed_by_its_hosts_proxy(two_hosts):
    edge_cfg = uploads(container(two_hosts, "edge", "haproxy"))[HAPROXY_CFG]
    main_cfg = uploads(container(two_hosts, "main", "haproxy"))[HAPROXY_CFG]
    assert f"-m str edge.{DOMAIN}" in edge_cfg and "server edge-app edge-app:80" in edge_cfg
    assert f"edge.{DOMAIN}" not in main_cfg
    assert f"whoami.{DOMAIN}" in main_cfg and f"whoami.{DOMAIN}" not in edge_cfg
    page = uploads(container(two_hosts, "main", "landing"))[INDEX_HTML]
    assert f"https://edge.{DOMAIN}/" in page and "on edge" in page


def test_scrape_address_overrides_the_ssh_name(tmp_path):
    config = {
        "domain": DOMAIN,
        "hosts": [
            {"name": "main"},
            {
                "name": "edge",
                "address": "deploy@edge.example.com",
                "scrape-address": "10.0.0.7",
                "host-key": HOST_KEY,
            },
        ],
        "custom-services": [EXPORTER],
    }
    mocks = run_program(config, key_dir=str(tmp_path))
    jobs = scrape_jobs(container(mocks, "main", "prometheus"))
    assert targets(jobs["exporter"]) == {"edge": ["10.0.0.7:19100"]}
    assert "10.0.0.7:9100" in targets(jobs["node-exporter"])["edge"]
