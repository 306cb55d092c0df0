"""The stack config: defaults, kebab-case keys, every invalid config stopped before any
resource exists (one message, each problem by key path), and the user's own certificates."""

from __future__ import annotations

import re
from typing import Any

import harness
import pulumi
import pytest
from harness import HOST_KEY, SECRET_MARK, RecordingMocks, run_program
from harness import files as harness_files

from stacks.checks import check, validate
from stacks.config import ConfigError, StackConfig
from stacks.config_homelab import (
    AgentConfig,
    CustomRoute,
    CustomService,
    ServicesConfig,
    TlsConfig,
)
from stacks.config_hosts import HostConfig
from stacks.plan import build_plan

CERT = "tls:index/locallySignedCert:LocallySignedCert"
CA = "homelab:tls:CertificateAuthority"
HAPROXY_CERTS = "/usr/local/etc/haproxy/certs"

# A TCP frontend on the LAN address only, for the LAN only (issue 26).
LAN_ONLY = {"bind-address": "192.168.1.10", "allow-from": ["192.168.1.0/24"]}
EXPOSED = {"expose": True, **LAN_ONLY}


@pytest.fixture
def key_dir(tmp_path):
    return str(tmp_path / "keys")


def containers_on(mocks: RecordingMocks, host: str) -> dict[str, harness.Resource]:
    """Containers of one host by container alias (`grafana`), from their labels."""
    out = {}
    for r in mocks.of_type("docker:index/container:Container"):
        labels = {lab["label"]: lab["value"] for lab in r.inputs["labels"]}
        if labels["homelab.host"] == host:
            out[labels["homelab.container"]] = r
    return out


# ---- (a) defaults ---------------------------------------------------------------------


def test_empty_config_validates_to_the_documented_defaults():
    config = validate({})
    assert [(h.name, h.address, h.is_local) for h in config.hosts] == [("local", "local", True)]
    assert config.domain == "localhost"
    assert config.name == "homelab"
    assert config.tls.enabled and config.tls.self_signed
    assert config.tls.certificates == {}
    assert config.backup.enabled and config.backup.directory is None and config.backup.local
    assert config.backup.schedule == "0 4 * * *" and config.backup.retention_days == 14
    assert config.backup.encryption == "age" and config.backup.age_recipients == []
    s = config.services
    for key in ("prometheus", "grafana", "cadvisor", "node_exporter", "portainer", "landing"):
        assert getattr(s, key).enabled, key
    for key in ("mattermost", "postgres", "drupal", "web"):
        assert not getattr(s, key).enabled, key
    assert config.custom_services == []
    assert check(config) == []


def test_empty_config_gives_a_working_local_stack(key_dir):
    mocks = run_program({}, key_dir=key_dir)
    providers = mocks.providers()
    assert list(providers) == ["local-docker"]
    assert providers["local-docker"].inputs["host"] == "unix:///var/run/docker.sock"
    assert not mocks.of_type("command:remote:Command"), "a local host needs no SSH bootstrap"
    (network,) = mocks.of_type("docker:index/network:Network")
    assert network.inputs["name"] == "homelab"

    local = containers_on(mocks, "local")
    expected = {
        "portainer",
        "prometheus",
        "grafana",
        "cadvisor",
        "node-exporter",
        "landing",
        "haproxy",
        "backup",
        "backup-docker-api",
        "cadvisor-docker-api",
    }
    assert expected <= set(local)
    for r in local.values():
        assert r.provider and "local-docker" in r.provider, r.name

    # TLS self-signed: one CA and one certificate per routed name under localhost.
    assert len(mocks.of_type(CA)) == 1
    certs = {r.name for r in mocks.of_type(CERT)}
    for name in ("infra", "metrics", "monitoring", "home"):
        assert f"tls-{name}.localhost-cert" in certs
    assert mocks.outputs["urls"]["grafana"] == "https://monitoring.localhost/"
    assert "ca-certificate" in mocks.outputs


def test_default_stack_follows_the_original_feature_toggles(key_dir):
    """Monitoring (with alerting) and Portainer on; MySQL, Mattermost, PostgreSQL, web and
    Drupal off."""
    mocks = run_program({}, key_dir=key_dir)
    assert set(containers_on(mocks, "local")) == {
        "portainer",
        "prometheus",
        "alertmanager",
        "blackbox-exporter",
        "grafana",
        "cadvisor",
        "node-exporter",
        "landing",
        "haproxy",
        "backup",
        "backup-docker-api",
        "cadvisor-docker-api",
        # The one-shot stagers of the containers that read files (their config, secrets).
        *(f"{c}-files" for c in ("portainer", "prometheus", "alertmanager", "blackbox-exporter")),
        *(f"{c}-files" for c in ("grafana", "landing", "haproxy", "backup")),
    }


def test_keys_are_kebab_case():
    config = validate(
        {
            "admin-user": "ops",
            "tls": {"self-signed": True, "ca-common-name": "My CA", "validity-days": 90},
            "backup": {"directory": "/srv/backups", "retention-days": 30, "notify-url-secret": "hook"},
            "monitoring": {"scrape-interval": "30s"},
            "data": {"delete-on-destroy": True},
            "proxy": {"https-port": 8443},
            "services": {"node-exporter": {"enabled": False}, "mysql": {"exposed-port": 3308}},
            "custom-services": [
                {
                    "name": "app",
                    "image": "traefik/whoami:v1.11.0",
                    "memory-mb": 64,
                    "health-check": {"test": ["true"]},
                    "routes": [
                        {
                            "hostname": "db",
                            "port": 5432,
                            "mode": "tcp",
                            "exposed-port": 6000,
                            "bind-address": "192.168.1.10",
                            "allow-from": ["192.168.1.0/24"],
                        }
                    ],
                    "metrics": [{"port": 80, "host-port": 9999}],
                }
            ],
        }
    )
    assert config.admin_user == "ops"
    assert config.tls.ca_common_name == "My CA" and config.tls.validity_days == 90
    assert config.monitoring.scrape_interval == "30s"
    assert config.data.delete_on_destroy is True
    assert config.proxy.https_port == 8443
    assert config.services.node_exporter.enabled is False
    assert config.services.mysql.exposed_port == 3308
    app = config.custom_services[0]
    assert app.memory_mb == 64 and app.health_check is not None
    assert app.routes[0].exposed_port == 6000 and app.metrics[0].host_port == 9999

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    dumped = keys(config.model_dump(by_alias=True))
    assert "custom-services" in dumped and "node-exporter" in dumped
    assert not [k for k in dumped if "_" in k], "every key is kebab-case when dumped by alias"


def test_snake_case_top_level_key_is_unknown_in_a_stack(key_dir):
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"admin_user": "ops"}, key_dir=key_dir)
    assert "  admin_user: unknown key" in str(raised.value)


def test_python_names_construct_a_config():
    config = StackConfig(
        admin_user="ops",
        hosts=[
            HostConfig(
                name="box", address="deploy@box.example.com:2222", host_key=HOST_KEY, install_docker=False
            )
        ],
        tls=TlsConfig(self_signed=True, ca_common_name="Python CA"),
        services=ServicesConfig(node_exporter=AgentConfig(enabled=False)),
        custom_services=[
            CustomService(
                name="app",
                image="traefik/whoami:v1.11.0",
                memory_mb=64,
                routes=[CustomRoute(hostname="app", port=80)],
            )
        ],
    )
    assert config.admin_user == "ops"
    assert config.host("box").ssh == ("deploy", "box.example.com", 2222)
    assert config.services.node_exporter.enabled is False
    assert check(config) == []
    plan = build_plan(config)
    assert "app" in {s.name for s in plan.services}
    assert not [s for s in plan.services if s.name.startswith("node-exporter")]
    # The same config, round-tripped through its kebab-case form, is equal.
    assert validate(config.model_dump(by_alias=True)) == config


# ---- (b) invalid configs ----------------------------------------------------------------

WHOAMI = "traefik/whoami:v1.11.0"
SSH_HOST = {
    "name": "server",
    "address": "deploy@server.example.com",
    "private-key-secret": "server-key",
    "host-key": HOST_KEY,
}
TWO_HOSTS = [{"name": "a"}, {"name": "b", "address": "deploy@b.example.com", "host-key": HOST_KEY}]


def custom(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "app", "image": WHOAMI, **fields}]


def tcp_route(exposed: int) -> dict[str, Any]:
    return {"hostname": "app", "port": 5000, "mode": "tcp", "exposed-port": exposed, **LAN_ONLY}


# (id, config, secrets, [(key path (alternatives with |), fragment of the problem)], problem count)
S3 = {"bucket": "lab-backups", "access-key-id-secret": "s3-id", "secret-access-key-secret": "s3-key"}

INVALID = [
    ("unknown-top-level-key", {"colour": "red"}, {}, [("colour", "unknown key")], 1),
    (
        "unknown-nested-key",
        {"services": {"grafana": {"colour": "red"}}},
        {},
        [("services.grafana.colour", "unknown key")],
        1,
    ),
    (
        "unknown-key-in-list-item",
        {"custom-services": custom(colour="red")},
        {},
        [("custom-services[0].colour", "unknown key")],
        1,
    ),
    (
        "domain-bad-characters",
        {"domain": "bad_domain!"},
        {},
        [("domain", "'bad_domain!' is not a valid DNS domain name")],
        1,
    ),
    (
        "domain-leading-dash",
        {"domain": "-x.com"},
        {},
        [("domain", "'-x.com' is not a valid DNS domain name")],
        1,
    ),
    (
        "host-name-claimed-twice",
        {"services": {"grafana": {"hostname": "infra"}}},
        {},
        [
            (
                "services.grafana.hostname",
                "host name 'infra.localhost' is already claimed by services.portainer",
            )
        ],
        1,
    ),
    (
        "custom-route-claims-builtin-host-name",
        {"custom-services": custom(routes=[{"hostname": "home", "port": 80}])},
        {},
        [
            (
                "custom-services[0].routes[0].hostname|services.landing.hostname",
                "host name 'home.localhost' is already claimed by",
            )
        ],
        1,
    ),
    (
        "two-tcp-routes-one-port",
        {
            "services": {
                "postgres": {"enabled": True, "exposed-port": 3307, **EXPOSED},
                "mysql": {"enabled": True, "exposed-port": 3307, **EXPOSED},
            }
        },
        {},
        [
            (
                "services.mysql.exposed-port|services.postgres.exposed-port",
                "port 3307 on host 'local' is already used by",
            )
        ],
        1,
    ),
    (
        "tcp-route-on-proxy-https-port",
        {"custom-services": custom(routes=[tcp_route(443)])},
        {},
        [("custom-services[0].routes[0].exposed-port", "port 443 is taken by proxy.https-port")],
        1,
    ),
    (
        "tcp-route-on-proxy-http-port",
        {"custom-services": custom(routes=[tcp_route(80)])},
        {},
        [("custom-services[0].routes[0].exposed-port", "port 80 is taken by proxy.http-port")],
        1,
    ),
    (
        "service-on-unknown-host",
        {"services": {"portainer": {"host": "nowhere"}}},
        {},
        [("services.portainer.host", "unknown host 'nowhere'")],
        1,
    ),
    (
        "agent-on-unknown-host",
        {"services": {"cadvisor": {"hosts": ["local", "nowhere"]}}},
        {},
        [("services.cadvisor.hosts[1]", "unknown host 'nowhere'")],
        1,
    ),
    (
        "custom-service-on-unknown-host",
        {"custom-services": custom(host="nowhere")},
        {},
        [("custom-services[0].host", "unknown host 'nowhere'")],
        1,
    ),
    (
        "custom-route-port-out-of-range",
        {"custom-services": custom(routes=[{"hostname": "app", "port": 70000}])},
        {},
        [("custom-services[0].routes[0].port", "less than or equal to 65535")],
        1,
    ),
    (
        "ssh-port-out-of-range",
        {"hosts": [{"name": "server", "address": "u@h:99999"}]},
        {},
        [("hosts[0].address", "'u@h:99999': port 99999 is out of range 1-65535")],
        1,
    ),
    (
        "self-signed-off-without-certificates",
        {"tls": {"self-signed": False}},
        {},
        [
            ("tls.certificates", f"no certificate for '{n}.localhost'")
            for n in ("alerts", "home", "infra", "metrics", "monitoring")
        ],
        5,
    ),
    (
        "image-latest",
        {"services": {"grafana": {"image": "nginx:latest"}}},
        {},
        [("services.grafana.image", "image 'nginx:latest' is not pinned")],
        1,
    ),
    (
        "image-untagged",
        {"custom-services": [{"name": "app", "image": "nginx"}]},
        {},
        [("custom-services[0].image", "image 'nginx' is not pinned")],
        1,
    ),
    (
        "backup-schedule-old-6-fields",
        {"backup": {"schedule": "0 30 3 * * *"}},
        {},
        [("backup.schedule", "is the old 6-field form (seconds first); the backup engine takes 5 fields")],
        1,
    ),
    (
        "backup-schedule-6-fields-with-seconds",
        {"backup": {"schedule": "15 30 3 * * *"}},
        {},
        [("backup.schedule", "write '30 3 * * *' (at second 0: seconds '15' are not kept)")],
        1,
    ),
    (
        "backup-schedule-4-fields",
        {"backup": {"schedule": "0 4 * *"}},
        {},
        [("backup.schedule", "must have 5 fields (minute hour day month weekday)")],
        1,
    ),
    (
        "backup-schedule-hour-out-of-range",
        {"backup": {"schedule": "0 24 * * *"}},
        {},
        [("backup.schedule", "hour '24' is out of range 0-23")],
        1,
    ),
    (
        "backup-schedule-bad-weekday",
        {"backup": {"schedule": "0 4 * * MONDAY"}},
        {},
        [("backup.schedule", "day of week 'MONDAY' is not a cron field")],
        1,
    ),
    (
        "backup-old-target-key",
        {"backup": {"target": "s3://bucket/homelab"}},
        {},
        [("backup.target", "removed: archives go to backup.directory on each host")],
        1,
    ),
    (
        "backup-old-s3-key",
        {"backup": {"s3-access-key-id-secret": "k"}},
        {},
        [("backup.s3-access-key-id-secret", "moved to backup.s3.access-key-id-secret")],
        1,
    ),
    (
        "s3-target-without-credentials",
        {"backup": {"s3": {"bucket": "lab-backups"}}},
        {},
        [
            ("backup.s3.access-key-id-secret", "Field required"),
            ("backup.s3.secret-access-key-secret", "Field required"),
        ],
        2,
    ),
    (
        "s3-path-with-leading-slash",
        {"backup": {"s3": {**S3, "path": "/homelab"}}},
        {},
        [("backup.s3.path", "should match pattern")],
        1,
    ),
    (
        "backup-nowhere",
        {"backup": {"local": False}},
        {},
        [("backup.local", "with local off, configure backup.s3, backup.ssh or backup.webdav")],
        1,
    ),
    (
        "backup-ssh-without-encryption",
        {
            "backup": {
                "encryption": "none",
                "ssh": {"address": "b@nas", "path": "/b", "private-key-secret": "k"},
            }
        },
        {"k": "key"},
        [("backup.ssh", "does not verify the SSH server's host key")],
        1,
    ),
    (
        "backup-bad-age-recipient",
        {"backup": {"age-recipients": ["age1notakey"]}},
        {},
        [("backup.age-recipients[0]", "is not an age public key")],
        1,
    ),
    (
        "backup-notify-secret-not-set",
        {"backup": {"notify-url-secret": "hook"}},
        {},
        [("backup.notify-url-secret", "config key 'hook' is not set")],
        1,
    ),
    (
        "secret-reference-not-set",
        {"hosts": [SSH_HOST]},
        {},
        [("hosts[0].private-key-secret", "config key 'server-key' is not set")],
        1,
    ),
    (
        "secret-reference-set-in-plain-text",
        {"hosts": [SSH_HOST], "server-key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
        {},
        [("hosts[0].private-key-secret", "config key 'server-key' must be set with --secret")],
        1,
    ),
    (
        "certificate-reference-not-set",
        {"tls": {"certificates": {"monitoring.localhost": "my-cert"}}},
        {},
        [("tls.certificates.monitoring.localhost", "config key 'my-cert' is not set")],
        1,
    ),
    ("model-key-set-as-secret", {}, {"domain": "lab.example.com"}, [("domain", "holds a secret")], 1),
    (
        "grafana-away-from-prometheus",
        {"hosts": TWO_HOSTS, "services": {"grafana": {"host": "b"}}},
        {},
        [("services.grafana.host", "Grafana must run beside Prometheus (host 'a')")],
        1,
    ),
    (
        "duplicate-host-names",
        {"hosts": [{"name": "a"}, {"name": "a", "address": "u@b.example.com", "host-key": HOST_KEY}]},
        {},
        [("hosts[1].name", "host 'a' is declared twice")],
        1,
    ),
    (
        "two-local-hosts",
        {"hosts": [{"name": "a"}, {"name": "b"}]},
        {},
        [("hosts[1].address", "only one host can be 'local'")],
        1,
    ),
    (
        "custom-named-like-builtin",
        {"custom-services": [{"name": "grafana", "image": WHOAMI}]},
        {},
        [("custom-services[0].name", "'grafana' is the name of a built-in service")],
        1,
    ),
    (
        "custom-named-like-derived-service",
        {"custom-services": [{"name": "backup", "image": WHOAMI}]},
        {},
        [("custom-services[0].name", "'backup' is the name of a built-in service")],
        1,
    ),
]

# Several problems at once, found by different stages: still one exception, every path in it.
COMBINED = [
    pytest.param(
        {"domain": "bad_domain!", "services": {"grafana": {"colour": "red"}}},
        {},
        [("domain", "not a valid DNS domain name"), ("services.grafana.colour", "unknown key")],
        2,
        id="two-pydantic-problems",
    ),
    pytest.param(
        {
            "services": {
                "grafana": {"hostname": "infra"},
                "postgres": {"enabled": True, "exposed-port": 3307, **EXPOSED},
                "mysql": {"enabled": True, **EXPOSED},
            }
        },
        {},
        [
            ("services.grafana.hostname", "already claimed by services.portainer"),
            ("services.mysql.exposed-port|services.postgres.exposed-port", "port 3307"),
        ],
        2,
        id="two-cross-check-problems",
    ),
    pytest.param(
        {"services": {"grafana": {"colour": "red"}}},
        {"domain": "lab.example.com"},
        [("domain", "holds a secret"), ("services.grafana.colour", "unknown key")],
        2,
        id="secret-in-model-key-and-pydantic",
    ),
    pytest.param(
        # Field errors come first: the cross-checks need a config whose fields are valid.
        {
            "services": {"grafana": {"hostname": "infra"}},
            "custom-services": custom(routes=[{"hostname": "app", "port": 70000}]),
        },
        {},
        [("custom-services[0].routes[0].port", "less than or equal to 65535")],
        1,
        id="pydantic-before-cross-check",
    ),
    pytest.param(
        {"hosts": [SSH_HOST], "services": {"grafana": {"hostname": "infra"}}},
        {},
        [
            ("services.grafana.hostname", "already claimed by services.portainer"),
            ("hosts[0].private-key-secret", "config key 'server-key' is not set"),
        ],
        2,
        id="secret-reference-and-cross-check",
    ),
]


def problem_lines(message: str) -> list[str]:
    header, *lines = message.splitlines()
    match = re.fullmatch(r"invalid stack config \((\d+) problem\(s\)\):", header)
    assert match, f"unexpected message header: {header!r}"
    assert int(match.group(1)) == len(lines), message
    return lines


def assert_invalid(key_dir, config, secrets, expected, count) -> None:
    error, mocks = harness.run_invalid(config, secrets, key_dir)
    # One exception, raised without a chained traceback.
    assert error.__cause__ is None and error.__suppress_context__
    message = str(error)
    lines = problem_lines(message)
    for paths, fragment in expected:
        assert any(
            line.startswith(f"  {path}: ") and fragment in line for line in lines for path in paths.split("|")
        ), f"no problem {paths!r} with {fragment!r} in:\n{message}"
    assert len(lines) == count, message
    assert mocks.resources == [], "an invalid config must not register any resource"
    assert mocks.started() == [], "an invalid config must not even start a registration"


@pytest.mark.parametrize(
    ("config", "secrets", "expected", "count"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_config_stops_before_any_resource(key_dir, config, secrets, expected, count):
    assert_invalid(key_dir, config, secrets, expected, count)


@pytest.mark.parametrize(("config", "secrets", "expected", "count"), COMBINED)
def test_all_problems_in_one_message(key_dir, config, secrets, expected, count):
    assert_invalid(key_dir, config, secrets, expected, count)


def test_config_error_lists_problems_with_paths():
    with pytest.raises(ConfigError) as raised:
        validate({"domain": "-x.com", "services": {"grafana": {"colour": "red"}}})
    assert sorted(raised.value.problems) == [
        ("domain", "'-x.com' is not a valid DNS domain name"),
        ("services.grafana.colour", "unknown key"),
    ]


def test_a_valid_config_is_not_rejected_by_the_same_checks(key_dir):
    """The counterpart of the cases above: each problem fixed, the program runs."""
    config = {
        "domain": "lab.example.com",
        "hosts": [{"name": "a"}, {"name": "b", "address": "deploy@b.example.com:2222", "host-key": HOST_KEY}],
        "services": {
            "grafana": {"hostname": "grafana", "host": "a", "image": "grafana/grafana:12.3.1"},
            "postgres": {"enabled": True, "exposed-port": 5432, **EXPOSED},
        },
        "backup": {"schedule": "0 3 * * MON-FRI", "s3": S3},
        "custom-services": custom(host="b", routes=[tcp_route(6000)]),
    }
    mocks = run_program(config, {"s3-id": "id", "s3-key": "key"}, key_dir=key_dir)
    assert "app" in containers_on(mocks, "b")


# ---- (c) the user's own certificate wins -------------------------------------------------


def uploads(container: harness.Resource) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(container)


def test_own_certificate_replaces_the_generated_one(key_dir):
    mine = f"{SECRET_MARK}-config-my-cert"
    mocks = run_program(
        {"tls": {"certificates": {"monitoring.localhost": "my-cert"}}}, {"my-cert": mine}, key_dir=key_dir
    )
    certs = {r.name for r in mocks.of_type(CERT)}
    assert certs == {f"tls-{n}.localhost-cert" for n in ("alerts", "home", "infra", "metrics")}
    assert not [r for r in mocks.resources if r.type.startswith("tls:") and "monitoring.localhost" in r.name]
    assert len(mocks.of_type(CA)) == 1

    haproxy = containers_on(mocks, "local")["haproxy"]
    files = uploads(haproxy)
    assert files[f"{HAPROXY_CERTS}/monitoring.localhost.pem"] == mine
    assert (
        f"{HAPROXY_CERTS}/monitoring.localhost.pem monitoring.localhost"
        in files["/usr/local/etc/haproxy/crt-list.txt"]
    )
    assert "cert-tls-home.localhost-cert" in files[f"{HAPROXY_CERTS}/home.localhost.pem"]
    assert harness.holds_secret_files(haproxy)


def test_own_certificates_for_every_host_need_no_ca(key_dir):
    hosts = [f"{n}.localhost" for n in ("alerts", "home", "infra", "metrics", "monitoring")]
    keys = {h: f"cert-{h.split('.')[0]}" for h in hosts}
    secrets = {k: f"{SECRET_MARK}-config-{k}" for k in keys.values()}
    mocks = run_program({"tls": {"self-signed": False, "certificates": keys}}, secrets, key_dir=key_dir)
    assert not mocks.of_type(CA)
    # The keys left: the backup encryption key (an ssh-ed25519 key pair, not TLS) and the
    # self-signed fallback certificate HAProxy serves to a host name no service has.
    assert sorted(r.name for r in mocks.resources if r.type.startswith("tls:")) == [
        "backup-key",
        "tls-fallback-cert",
        "tls-fallback-key",
    ]
    assert "ca-certificate" not in mocks.outputs
    files = uploads(containers_on(mocks, "local")["haproxy"])
    for host, key in keys.items():
        assert files[f"{HAPROXY_CERTS}/{host}.pem"] == secrets[key]


def test_nested_snake_case_keys_are_rejected():
    """Files use kebab-case at every depth; Python names are for code only."""
    with pytest.raises(ConfigError) as error:
        validate({"services": {"node_exporter": {"enabled": False}}})
    assert error.value.problems == [("services.node_exporter", "unknown key")]
