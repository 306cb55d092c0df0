"""Bad input never crashes or slips through (issue 12): each class of config that used to give
a traceback, deploy something broken, or be judged differently by `validate` and the program,
is now one message per problem with its key path, before any resource is registered."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import HOST_KEY, RecordingMocks, files, run_invalid, run_program

from automation import validate as offline
from stacks.checks import validate
from stacks.config import ConfigError

WHOAMI = "traefik/whoami:v1.11.0"
SSH = {"name": "server", "address": "deploy@server.example.com", "host-key": HOST_KEY}
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"


@pytest.fixture
def key_dir(tmp_path: Path) -> str:
    return str(tmp_path / "keys")


def problems_of(config: dict[str, Any], secrets: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The program's problems for `config`; it must register nothing."""
    error, mocks = run_invalid(config, secrets)
    header, *lines = str(error).splitlines()
    assert re.fullmatch(r"invalid stack config \(\d+ problem\(s\)\):", header), str(error)
    assert mocks.resources == [] and mocks.started() == []
    out = []
    for line in lines:
        match = re.fullmatch(r"  (\S+): (.+)", line)
        assert match, f"not a 'key path: message' line: {line!r}"
        out.append((match.group(1), match.group(2)))
    return out


def assert_rejected(config: dict[str, Any], path: str, fragment: str, secrets: dict[str, str] | None = None):
    problems = problems_of(config, secrets)
    assert len(problems) == 1, problems
    assert problems[0][0] == path, problems
    assert fragment in problems[0][1], problems


def custom(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": WHOAMI, **fields}


# ---- tracebacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/other"], ids=["same-path-merged", "two-paths-traceback"])
def test_two_metrics_jobs_of_one_name_are_a_key_path_problem(path):
    """`x` with two endpoints makes jobs x-1 and x-2; a service named x-1 makes job x-1 too.
    With two metrics paths for one job the monitoring code raised ValueError; with one path,
    the two services' targets were silently merged into one job."""
    config = {
        "custom-services": [
            custom("x", metrics=[{"port": 80, "path": path}, {"port": 81}]),
            custom("x-1", metrics=[{"port": 80}]),
        ]
    }
    assert_rejected(config, "custom-services[1].metrics[0]", "metrics job 'x-1' is also")


# ---- values ending in a newline (re's `$` matches before a final newline) ------------------

NEWLINE = [
    ("domain", {"domain": "lab.example.com\n"}, "domain"),
    ("name", {"name": "lab\n"}, "name"),
    ("hostname", {"services": {"grafana": {"hostname": "grafana\n"}}}, "services.grafana.hostname"),
    ("image", {"services": {"grafana": {"image": "grafana/grafana:12.3.1\n"}}}, "services.grafana.image"),
    ("duration", {"monitoring": {"scrape-interval": "15s\n"}}, "monitoring.scrape-interval"),
    (
        "ssh-address",
        {"hosts": [{"name": "server", "address": "deploy@server.example.com\n"}]},
        "hosts[0].address",
    ),
    (
        "secret-key",
        {"hosts": [{**SSH, "private-key-secret": "server-key\n"}]},
        "hosts[0].private-key-secret",
    ),
    ("custom-name", {"custom-services": [custom("app\n")]}, "custom-services[0].name"),
    ("root", {"hosts": [{"name": "local", "root": "/opt/homelab\n"}]}, "hosts[0].root"),
    ("admin-user", {"admin-user": "admin\n"}, "admin-user"),
    ("metrics-path", {"custom-services": [custom("app", metrics=[{"port": 80, "path": "/m\n"}])]}, None),
    ("backup-target", {"backup": {"target": "/srv/backups\n"}}, "backup.target"),
]


@pytest.mark.parametrize(("config", "path"), [c[1:] for c in NEWLINE], ids=[c[0] for c in NEWLINE])
def test_a_value_ending_in_a_newline_is_rejected(config, path):
    problems = problems_of(config)
    assert len(problems) == 1, problems
    if path is not None:
        assert problems[0][0] == path, problems
    assert problems[0][0].split(".")[0].split("[")[0] in config


# ---- the same host twice, names that collide ------------------------------------------------


def test_an_agent_host_listed_twice_is_rejected():
    assert_rejected(
        {"services": {"cadvisor": {"hosts": ["local", "local"]}}},
        "services.cadvisor.hosts[1]",
        "'local' is listed twice",
    )


def test_secret_names_joined_with_dashes_do_not_collide():
    """a + b-c and a-b + c both spelled `a-b-c`: one resource name for two passwords."""
    config = {
        "custom-services": [
            custom("a", secrets=[{"name": "b-c", "env": "ONE"}]),
            custom("a-b", secrets=[{"name": "c", "env": "TWO"}]),
        ]
    }
    assert_rejected(config, "custom-services[1].secrets[0].name", "custom-services[0].secrets[0]")


def test_two_services_never_share_one_docker_volume():
    """a + volume b-c and a-b + volume c: both `homelab_a_b_c`, one volume for two services."""
    config = {
        "custom-services": [
            custom("a", volumes=[{"name": "b-c", "path": "/data"}]),
            custom("a-b", volumes=[{"name": "c", "path": "/data"}]),
        ]
    }
    assert_rejected(config, "custom-services[1].volumes[0].name", "Docker volume 'homelab_a_b_c'")


def test_a_custom_volume_never_takes_a_built_in_services_volume():
    config = {"custom-services": [custom("grafana-data", volumes=[{"name": "grafana-data", "path": "/d"}])]}
    assert_rejected(
        config, "custom-services[0].volumes[0].name", "Docker volume 'homelab_grafana_data' on host 'local'"
    )


def test_the_same_volume_names_on_two_hosts_are_fine(key_dir):
    """Docker volumes belong to one engine: one name per host is all that must be unique."""
    config = {
        "hosts": [{"name": "local"}, SSH],
        "custom-services": [
            custom("grafana-data", host="server", volumes=[{"name": "grafana-data", "path": "/d"}])
        ],
    }
    mocks = run_program(config, key_dir=key_dir)
    names = [r.inputs["name"] for r in mocks.of_type(VOLUME)]
    assert names.count("homelab_grafana_data") == 2


def test_unambiguous_volume_names_are_unchanged(key_dir):
    """Renaming a Docker volume would orphan its data: the names people have stay as they were."""
    config = {
        "custom-services": [
            custom("app", volumes=[{"name": "data", "path": "/d"}, {"name": "app-cache", "path": "/c"}])
        ]
    }
    mocks = run_program(config, key_dir=key_dir)
    by_name = {r.name: r.inputs["name"] for r in mocks.of_type(VOLUME)}
    assert by_name["app-data"] == "homelab_app_data"
    assert by_name["app-app-cache"] == "homelab_app_cache"
    assert by_name["grafana-grafana-data"] == "homelab_grafana_data"


def test_a_secret_declared_twice_is_rejected():
    """Found by the property tests: two passwords with one Pulumi name (one URN)."""
    config = {
        "custom-services": [custom("a", secrets=[{"name": "c", "env": "A"}, {"name": "c", "env": "B"}])]
    }
    assert_rejected(config, "custom-services[0].secrets[1].name", "secret 'c' declared twice")


def test_two_values_for_one_environment_variable_are_rejected():
    config = {"custom-services": [custom("a", env={"A": "1"}, secrets=[{"name": "c", "env": "A"}])]}
    assert_rejected(config, "custom-services[0].secrets[0].env", "'A' is also custom-services[0].env.A")


# ---- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("300y", "out of range"),
        ("106752d", "out of range"),
        ("1s1s", "from the largest unit to the smallest"),
        ("30s5m", "from the largest unit to the smallest"),
        ("0s", "longer than 0"),
    ],
)
def test_prometheus_durations_are_ones_prometheus_accepts(value, fragment):
    assert_rejected({"monitoring": {"retention": value}}, "monitoring.retention", fragment)


def test_a_long_valid_duration_is_accepted():
    assert (
        validate({"monitoring": {"retention": "5y", "scrape-interval": "1m30s"}}).monitoring.retention == "5y"
    )


def test_health_check_durations_are_dockers():
    """Docker parses health check durations with Go's time.ParseDuration: no d, w or y."""
    config = {"custom-services": [custom("app", **{"health-check": {"test": ["true"], "interval": "1d"}})]}
    assert_rejected(config, "custom-services[0].health-check.interval", "'1d'")


# ---- scrape-address -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["not an address", "http://ops.lab", "ops.lab:9100", "a..b", "[::1]"])
def test_scrape_address_is_a_host_name_or_ip(value):
    config = {"hosts": [{"name": "local"}, {**SSH, "scrape-address": value}]}
    assert_rejected(config, "hosts[1].scrape-address", "host name or IP address")


def test_an_ipv6_scrape_address_is_bracketed_in_the_target(key_dir):
    config = {"hosts": [{"name": "local"}, {**SSH, "scrape-address": "fd00::5"}]}
    mocks = run_program(config, key_dir=key_dir)
    (prometheus,) = [c for c in mocks.of_type(CONTAINER) if c.inputs["name"] == "homelab-prometheus"]
    yml = files(prometheus)["/etc/prometheus/prometheus.yml"]
    assert "[fd00::5]:9100" in yml


@pytest.mark.parametrize(
    ("scrape", "published_on"),
    [("192.168.1.21", "192.168.1.21"), ("fd00::5", "fd00::5"), ("server.lan", None)],
    ids=["ipv4", "ipv6", "a-name"],
)
def test_remote_metrics_ports_are_published_on_the_address_prometheus_scrapes(key_dir, scrape, published_on):
    """Not on every interface when the scrape address is an IP address: HAProxy's /stats and
    the exporters have no login. A name may resolve to any address: every interface then."""
    config = {"hosts": [{"name": "local"}, {**SSH, "scrape-address": scrape}]}
    mocks = run_program(config, key_dir=key_dir)
    remote = [
        c
        for c in mocks.of_type(CONTAINER)
        if c.inputs["name"] == "homelab-node-exporter" and "local" not in c.provider
    ]
    [node_exporter] = remote
    [port] = [p for p in node_exporter.inputs["ports"] if p["external"] == 9100]
    assert port.get("ip") == published_on


# ---- a full domain name as hostname ---------------------------------------------------------


def test_a_full_domain_name_as_hostname_gets_a_hint():
    config = {"domain": "lab.example.com", "services": {"grafana": {"hostname": "grafana.lab.example.com"}}}
    assert_rejected(config, "services.grafana.hostname", "give the name under it: 'grafana'")


def test_the_domain_itself_as_hostname_says_at():
    config = {
        "domain": "lab.example.com",
        "custom-services": [custom("app", routes=[{"hostname": "lab.example.com", "port": 80}])],
    }
    assert_rejected(config, "custom-services[0].routes[0].hostname", "'@'")


# ---- proxy ports, certificates, data safety, ACME -------------------------------------------


def test_stats_port_cannot_be_the_https_port():
    assert_rejected({"proxy": {"stats-port": 443}}, "proxy.stats-port", "proxy.https-port")


def test_http_and_https_ports_differ():
    assert_rejected({"proxy": {"https-port": 80}}, "proxy.https-port", "proxy.http-port")


def test_a_certificate_for_a_host_nothing_routes_is_rejected():
    config = {"tls": {"certificates": {"typo.localhost": "my-cert"}}}
    assert_rejected(config, "tls.certificates.typo.localhost", "no service routes", {"my-cert": "PEM"})


def test_protect_and_delete_on_destroy_contradict():
    config = {"data": {"protect": True, "delete-on-destroy": True}}
    assert_rejected(config, "data.delete-on-destroy", "data.protect")


PLATFORM = {
    "kubeconfig-secret": "kubeconfig",
    "github-owner": "acme",
    "github-token-secret": "github-token",
    "gitops": {"repository": "acme/gitops"},
}
PLATFORM_SECRETS = {"kubeconfig": "k", "github-token": "t"}


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"email": "not-an-email"}, "email", "e-mail address"),
        ({"email": "ops@example.com\n"}, "email", "e-mail address"),
        ({"email": "ops@example.com", "server": "http://acme.example.com/dir"}, "server", "https"),
        ({"email": "ops@example.com", "server": "letsencrypt"}, "server", "https"),
        ({"email": "ops@example.com", "server": "https://acme.example.com/dir\n"}, "server", "https"),
    ],
)
def test_acme_email_and_server_are_checked(fields, path, fragment):
    """ACME moved to platform.tls.acme (issue 11): the same checks on its fields."""
    config = {
        "layers": {"platform": True},
        "platform": {
            **PLATFORM,
            "components": {"cert-manager": {"enabled": True}},
            "tls": {"mode": "acme", "acme": {"solver": "http01", **fields}},
        },
    }
    assert_rejected(config, f"platform.tls.acme.{path}", fragment, PLATFORM_SECRETS)


# ---- validate and the program agree -----------------------------------------------------------


def offline_problems(tmp_path: Path, text: str) -> list[tuple[str, str]] | str:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(text)
    try:
        offline.load(tmp_path, "t", path)
    except ConfigError as error:
        return error.problems
    return "accepted"


def program_problems(config: dict[str, Any], secrets: dict[str, str] | None = None):
    mocks = RecordingMocks()
    try:
        run_program(config, secrets, mocks=mocks)
    except Exception as error:  # noqa: BLE001 - the message is what is compared
        return [tuple(line.strip().split(": ", 1)) for line in str(error).splitlines()[1:]]
    return "accepted"


AGREE = [
    ("platform-null-layer-off", "config:\n  homelab:platform: null\n", {"platform": None}, {}),
    (
        "platform-null-layer-on",
        "config:\n  homelab:layers: {platform: true}\n  homelab:platform: null\n",
        {"layers": {"platform": True}, "platform": None},
        {},
    ),
    ("numeric-domain", "config:\n  homelab:domain: 123\n", {"domain": "123"}, {}),
    (
        "secret-reference-names-a-setting",
        "config:\n  homelab:hosts:\n    - {name: s, address: u@s.example.com, private-key-secret: name,\n"
        f"       host-key: {HOST_KEY}}}\n"
        "  homelab:name: {secure: v1:abc}\n",
        {
            "hosts": [
                {
                    "name": "s",
                    "address": "u@s.example.com",
                    "private-key-secret": "name",
                    "host-key": HOST_KEY,
                }
            ]
        },
        {"name": "-----BEGIN OPENSSH PRIVATE KEY-----"},
    ),
]


@pytest.mark.parametrize(("text", "config", "secrets"), [a[1:] for a in AGREE], ids=[a[0] for a in AGREE])
def test_validate_and_the_program_agree(tmp_path, text, config, secrets):
    assert offline_problems(tmp_path, text) == program_problems(config, secrets)


def test_a_numeric_domain_is_rejected(tmp_path):
    assert offline_problems(tmp_path, "config:\n  homelab:domain: 123\n") == [
        ("domain", "'123' is not a valid DNS domain name (its last label is all digits)")
    ]


def test_a_null_platform_with_the_layer_on_says_the_section_is_missing(tmp_path):
    text = "config:\n  homelab:layers: {platform: true}\n  homelab:platform: null\n"
    assert offline_problems(tmp_path, text) == [
        ("platform", "layers.platform is on but the platform section is missing")
    ]


def test_a_secret_reference_to_a_setting_blames_the_reference():
    problems = program_problems(
        {
            "hosts": [
                {
                    "name": "s",
                    "address": "u@s.example.com",
                    "private-key-secret": "name",
                    "host-key": HOST_KEY,
                }
            ]
        },
        {"name": "-----BEGIN OPENSSH PRIVATE KEY-----"},
    )
    assert problems == [
        (
            "hosts[0].private-key-secret",
            "'name' is a setting of this stack (homelab:name), not a secret: "
            "give the secret a key of its own, e.g. 's-ssh-key'",
        )
    ]


# ---- stack files: syntax, shape, duplicate keys -------------------------------------------------

STACK_FILES = [
    ("syntax-error", "config:\n  homelab:domain: [unclosed\n", "line 2"),
    ("tab", "config:\n\thomelab:domain: lab.example.com\n", "line 2"),
    ("top-level-list", "- config\n", "the top level must be a mapping"),
    ("config-a-list", "config:\n  - homelab:domain\n", "'config' must be a mapping"),
    ("config-a-string", "config: homelab\n", "'config' must be a mapping"),
    (
        "duplicate-top-level-key",
        "config:\n  homelab:domain: a.example.com\n  homelab:domain: b.example.com\n",
        "'homelab:domain' appears twice (lines 2 and 3)",
    ),
    (
        "duplicate-nested-key",
        "config:\n  homelab:services:\n    grafana: {enabled: true}\n    grafana: {enabled: false}\n",
        "'grafana' appears twice (lines 3 and 4)",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), [s[1:] for s in STACK_FILES], ids=[s[0] for s in STACK_FILES])
def test_a_broken_stack_file_is_one_clear_error(tmp_path, text, fragment):
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        offline.load(tmp_path, "t", path)
    message = str(error.value)
    assert "Pulumi.t.yaml" in message and fragment in message, message


def test_a_yaml_1_1_boolean_word_is_a_string_as_pulumi_reads_it(tmp_path):
    """Pulumi reads stack files as YAML 1.2 (gopkg.in/yaml.v3): `yes` is the string 'yes'."""
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  homelab:name: yes\n  homelab:admin-user: no\n")
    config = offline.load(tmp_path, "t", path)
    assert (config.name, config.admin_user) == ("yes", "no")


def test_the_harness_reads_stack_files_the_same_strict_way(tmp_path):
    from harness import load_stack_file

    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  homelab:domain: a.example.com\n  homelab:domain: b.example.com\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_stack_file(path)
    assert yaml.safe_load(path.read_text())  # PyYAML alone would have let the last one win
