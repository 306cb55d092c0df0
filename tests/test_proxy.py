"""HAProxy: the haproxy.cfg the program uploads, checked by the real `haproxy -c`.

The config and crt-list are taken from the registered haproxy container's uploads; the
crt-list and certificate paths are rewritten into tmp_path, where a real self-signed
certificate is created for every host name the crt-list names.
"""

from __future__ import annotations

import re
import shutil

import pytest
from haproxy_check import CRT_LIST_PATH, assert_haproxy_accepts, crt_list_hosts, haproxy_check
from harness import (
    EXAMPLES,
    HOST_KEY,
    example_run,
    example_secrets,
    file_is_secret,
    files,
    load_stack_file,
    plain_strings,
    run_program,
    stager_of,
)

from components.docker.spec import Exposure, Route
from components.homelab.proxy import CONFIG_DIR, FALLBACK_NAME, crt_list, haproxy_config

CONTAINER = "docker:index/container:Container"
CFG_PATH = f"{CONFIG_DIR}/haproxy.cfg"
HOST_RULE = re.compile(r"use_backend (\S+) if \{ req\.hdr\(host\),field\(1,:\),lower -m str (\S+) \}")

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")

# The single-host example's routes: host name -> container:port.
SINGLE_HOST_HTTP = {
    "alerts.lab.example.com": "alertmanager:9093",
    "auth.lab.example.com": "authelia:9091",
    "home.lab.example.com": "landing:80",
    "infra.lab.example.com": "portainer:9000",
    "intranet.lab.example.com": "drupal:80",
    "lab.example.com": "web:80",
    "mattermost.lab.example.com": "mattermost:8065",
    "metrics.lab.example.com": "prometheus:9090",
    "monitoring.lab.example.com": "grafana:3000",
    "whoami.lab.example.com": "whoami:80",
}
SINGLE_HOST_TCP = {3307: "mysql:3306", 5432: "postgres:5432"}

MULTI_HOST_HTTP = {
    "ops": {
        "alerts.lab.example.com": "alertmanager:9093",
        "home.lab.example.com": "landing:80",
        "infra.lab.example.com": "portainer:9000",
        "metrics.lab.example.com": "prometheus:9090",
        "monitoring.lab.example.com": "grafana:3000",
    },
    "apps": {
        "demo.lab.example.com": "metrics-demo:80",
        "lab.example.com": "web:80",
        "mattermost.lab.example.com": "mattermost:8065",
    },
}
MULTI_HOST_TCP = {"ops": {}, "apps": {3307: "mysql:3306"}}


# ---- helpers: the registered proxy ----------------------------------------------------


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


def proxies(lab) -> dict[str, object]:
    """The haproxy container of each host, by host name."""
    found = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-haproxy"]
    by_host = {labels(c)["homelab.host"]: c for c in found}
    assert len(by_host) == len(found), "two haproxy containers on one host"
    return by_host


def uploads(container) -> dict[str, str]:
    """The files the proxy reads (its stager copies them into the volumes it mounts)."""
    return files(container)


# ---- helpers: reading haproxy.cfg -----------------------------------------------------


def sections(cfg: str) -> dict[str, list[str]]:
    """'frontend http' -> its stripped, non-empty body lines."""
    out: dict[str, list[str]] = {}
    current = None
    for line in cfg.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = line.strip()
            assert current not in out, f"section {current!r} declared twice"
            out[current] = []
        else:
            assert current is not None
            out[current].append(line.strip())
    return out


def server_of(parsed: dict[str, list[str]], backend: str) -> str:
    """The `container:port` the single server of `backend` points at."""
    servers = [line.split() for line in parsed[f"backend {backend}"] if line.startswith("server ")]
    assert len(servers) == 1, servers
    assert "resolvers docker" in " ".join(servers[0])
    return servers[0][2]


def host_routes(cfg: str, frontend: str) -> dict[str, str]:
    """Host name -> container:port, from the Host rules of `frontend`."""
    parsed = sections(cfg)
    rules = [
        HOST_RULE.fullmatch(line) for line in parsed[f"frontend {frontend}"] if line.startswith("use_backend")
    ]
    assert all(rules), "a use_backend line is not a Host rule"
    return {m.group(2): server_of(parsed, m.group(1)) for m in rules}


def tcp_routes(cfg: str) -> dict[int, str]:
    """Exposed port -> container:port, one `frontend tcp_<port>` each."""
    parsed = sections(cfg)
    out = {}
    for name, body in parsed.items():
        if not name.startswith("frontend tcp_"):
            continue
        port = int(name.removeprefix("frontend tcp_"))
        assert "mode tcp" in body and f"bind :{port}" in body, body
        backend = next(line.split()[1] for line in body if line.startswith("default_backend"))
        assert "mode tcp" in parsed[f"backend {backend}"]
        out[port] = server_of(parsed, backend)
    return out


def tcp_sources(cfg: str) -> dict[int, list[str]]:
    """Exposed port -> the source networks its frontend accepts; every other source rejected."""
    out = {}
    for name, body in sections(cfg).items():
        if name.startswith("frontend tcp_"):
            assert "tcp-request connection reject unless allowed_source" in body, body
            acl = next(line.split() for line in body if line.startswith("acl allowed_source src "))
            out[int(name.removeprefix("frontend tcp_"))] = acl[3:]
    return out


# ---- helpers: the real haproxy --------------------------------------------------------


# ---- fixtures -------------------------------------------------------------------------


def run_example(name: str, tmp_path_factory, **overrides):
    config = load_stack_file(EXAMPLES / name) | overrides
    return run_program(config, example_secrets(config), key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def tls_on(tmp_path_factory):
    return proxies(example_run(EXAMPLES / "single-host.yaml"))["server"]


@pytest.fixture(scope="module")
def tls_off(tmp_path_factory):
    # Sign-in needs HTTPS: without TLS the example runs without its identity provider.
    plain = run_example(
        "single-host.yaml", tmp_path_factory, tls={"enabled": False}, identity={"enabled": False}
    )
    return proxies(plain)["server"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return example_run(EXAMPLES / "multi-host.yaml")


# ---- single host, TLS on --------------------------------------------------------------


@needs_haproxy
def test_tls_config_passes_haproxy_check(tls_on, tmp_path):
    files = uploads(tls_on)
    assert_haproxy_accepts(haproxy_check(tmp_path, files[CFG_PATH], files[CRT_LIST_PATH], resolve=True))


def test_tls_routes_by_host_name_on_https(tls_on):
    assert host_routes(uploads(tls_on)[CFG_PATH], "https") == SINGLE_HOST_HTTP


def test_tls_redirects_http_to_https(tls_on):
    parsed = sections(uploads(tls_on)[CFG_PATH])
    # Only a request naming a host is redirected (HTTP/1.0 without Host gets the 404 backend).
    assert (
        "http-request redirect scheme https code 301 if !{ ssl_fc } { req.hdr(host) -m found }"
        in parsed["frontend http"]
    )
    assert "default_backend no_service" in parsed["frontend http"]
    assert "default_backend no_service" in parsed["frontend https"]
    assert host_routes(uploads(tls_on)[CFG_PATH], "http") == {}
    https = parsed["frontend https"]
    assert f"bind :443 ssl crt-list {CRT_LIST_PATH} alpn h2,http/1.1" in https


def test_tls_crt_list_names_every_routed_host_with_an_uploaded_cert(tls_on):
    files = uploads(tls_on)
    listed = crt_list_hosts(files[CRT_LIST_PATH])
    # The fallback first: HAProxy's default for an SNI name no service has.
    assert list(listed)[0] == FALLBACK_NAME
    assert sorted(listed) == sorted([*SINGLE_HOST_HTTP, FALLBACK_NAME])
    assert all(path in files for path in listed.values())


def test_tls_cert_uploads_are_secret(tls_on):
    certs = [path for path in uploads(tls_on) if path.endswith(".pem")]
    assert len(certs) == len(SINGLE_HOST_HTTP) + 1  # and the fallback
    assert all(file_is_secret(tls_on, path) for path in certs)
    for holder in (tls_on, stager_of(tls_on)):
        assert [p for p, text in plain_strings(holder.raw_inputs) if "PRIVATE KEY" in text] == []


@pytest.mark.parametrize("proxy", ["tls_on", "tls_off"])
def test_tcp_frontends_on_exposed_ports(request, proxy):
    assert tcp_routes(uploads(request.getfixturevalue(proxy))[CFG_PATH]) == SINGLE_HOST_TCP


def test_database_frontends_accept_only_the_listed_networks(tls_on):
    assert tcp_sources(uploads(tls_on)[CFG_PATH]) == {
        3307: ["192.168.1.0/24", "10.8.0.0/24"],
        5432: ["192.168.1.0/24"],
    }


def test_database_ports_are_published_on_the_bind_address_only(tls_on):
    by_port = {p["external"]: p.get("ip") for p in tls_on.inputs["ports"]}
    assert by_port == {80: None, 443: None, 3307: "192.168.1.10", 5432: "192.168.1.10"}


def test_a_database_not_exposed_has_no_frontend_and_no_port(tmp_path):
    config = {
        "domain": "lab.example.com",
        "services": {"postgres": {"enabled": True}, "mysql": {"enabled": True}},
    }
    lab = run_program(config, example_secrets(config), key_dir=str(tmp_path / "keys"))
    proxy = proxies(lab)["local"]  # the default host (stacks/config.py)
    assert tcp_routes(uploads(proxy)[CFG_PATH]) == {}
    assert {p["external"] for p in proxy.inputs["ports"]}.isdisjoint({3307, 5432})
    published = [p for c in lab.of_type(CONTAINER) for p in c.inputs.get("ports") or []]
    assert {p["external"] for p in published}.isdisjoint({3306, 3307, 5432})


@pytest.mark.parametrize("proxy", ["tls_on", "tls_off"])
def test_stats_frontend_serves_prometheus_metrics(request, proxy):
    stats = sections(uploads(request.getfixturevalue(proxy))[CFG_PATH])["frontend stats"]
    assert "bind :8404" in stats
    assert "http-request use-service prometheus-exporter if { path /metrics }" in stats
    assert "monitor-uri /healthz" in stats


@pytest.mark.parametrize("proxy", ["tls_on", "tls_off"])
def test_resolves_containers_through_docker_dns(request, proxy):
    resolvers = sections(uploads(request.getfixturevalue(proxy))[CFG_PATH])["resolvers docker"]
    assert "nameserver docker 127.0.0.11:53" in resolvers


# ---- single host, TLS off -------------------------------------------------------------


@needs_haproxy
def test_plain_config_passes_haproxy_check(tls_off, tmp_path):
    assert_haproxy_accepts(haproxy_check(tmp_path, uploads(tls_off)[CFG_PATH], None))


def test_plain_routes_by_host_name_on_http_without_redirect(tls_off):
    cfg = uploads(tls_off)[CFG_PATH]
    parsed = sections(cfg)
    assert "frontend https" not in parsed
    assert not any("redirect" in line for line in parsed["frontend http"])
    assert host_routes(cfg, "http") == {
        k: v for k, v in SINGLE_HOST_HTTP.items() if not k.startswith("auth.")
    }
    assert "ssl" not in cfg


def test_plain_has_no_certificates_and_no_443(tls_off):
    assert list(uploads(tls_off)) == [CFG_PATH]
    assert sorted(p["external"] for p in tls_off.inputs["ports"]) == [80, 3307, 5432]


# ---- haproxy_config on its own --------------------------------------------------------

UNIT_ROUTES = (
    Route("b.example.org", "my-app", 8080),
    Route("a.example.org", "other", 3000),
    Route("db.example.org", "db", 5432, "tcp", 15432, Exposure("192.168.1.10", ("192.168.1.0/24",))),
)


def test_haproxy_config_with_tls():
    cfg = haproxy_config(UNIT_ROUTES, tls=True, stats_port=9101, config_dir="/etc/hx")
    parsed = sections(cfg)
    assert "bind :9101" in parsed["frontend stats"]
    assert "bind :443 ssl crt-list /etc/hx/crt-list.txt alpn h2,http/1.1" in parsed["frontend https"]
    assert host_routes(cfg, "https") == {"a.example.org": "other:3000", "b.example.org": "my-app:8080"}
    assert "backend be_my_app_8080" in parsed
    assert tcp_routes(cfg) == {15432: "db:5432"}
    # Rules are in a stable (sorted) order, so the file does not change between runs.
    rules = [line for line in parsed["frontend https"] if line.startswith("use_backend")]
    assert rules == sorted(rules, key=lambda line: HOST_RULE.fullmatch(line).group(2))
    assert cfg == haproxy_config(
        tuple(reversed(UNIT_ROUTES)), tls=True, stats_port=9101, config_dir="/etc/hx"
    )


def test_haproxy_config_without_tls():
    cfg = haproxy_config(UNIT_ROUTES, tls=False, stats_port=8404)
    parsed = sections(cfg)
    assert "frontend https" not in parsed and "crt-list" not in cfg
    assert host_routes(cfg, "http") == {"a.example.org": "other:3000", "b.example.org": "my-app:8080"}
    assert tcp_routes(cfg) == {15432: "db:5432"}


@needs_haproxy
@pytest.mark.parametrize("tls", [True, False])
def test_haproxy_config_passes_haproxy_check(tmp_path, tls):
    cfg = haproxy_config(UNIT_ROUTES, tls=tls, stats_port=8404)
    hosts = ["a.example.org", "b.example.org"]
    assert_haproxy_accepts(haproxy_check(tmp_path, cfg, crt_list(hosts) if tls else None))


@needs_haproxy
def test_two_host_names_for_one_container(tmp_path):
    routes = (Route("a.example.org", "app", 80), Route("b.example.org", "app", 80))
    cfg = haproxy_config(routes, tls=False, stats_port=8404)
    assert_haproxy_accepts(haproxy_check(tmp_path, cfg, None))
    assert host_routes(cfg, "http") == {"a.example.org": "app:80", "b.example.org": "app:80"}


# ---- two hosts ------------------------------------------------------------------------


def test_each_host_with_routes_has_its_own_proxy(multi):
    by_host = proxies(multi)
    assert sorted(by_host) == ["apps", "ops"]
    provider_urns = {name.removesuffix("-docker"): p.urn for name, p in multi.providers().items()}
    for host, container in by_host.items():
        assert container.provider.startswith(provider_urns[host] + "::"), host


@pytest.mark.parametrize("host", ["ops", "apps"])
def test_each_proxy_routes_only_its_own_host(multi, host):
    files = uploads(proxies(multi)[host])
    cfg = files[CFG_PATH]
    assert host_routes(cfg, "https") == MULTI_HOST_HTTP[host]
    assert tcp_routes(cfg) == MULTI_HOST_TCP[host]
    assert sorted(crt_list_hosts(files[CRT_LIST_PATH])) == sorted([*MULTI_HOST_HTTP[host], FALLBACK_NAME])
    certs = sorted(path for path in files if path.endswith(".pem"))
    assert certs == sorted(crt_list_hosts(files[CRT_LIST_PATH]).values())


@pytest.mark.parametrize("host", ["ops", "apps"])
def test_each_proxys_cert_uploads_are_secret(multi, host):
    proxy = proxies(multi)[host]
    certs = [path for path in uploads(proxy) if path.endswith(".pem")]
    assert certs
    assert all(file_is_secret(proxy, path) for path in certs)
    for holder in (proxy, stager_of(proxy)):
        assert [p for p, text in plain_strings(holder.raw_inputs) if "PRIVATE KEY" in text] == []


@needs_haproxy
@pytest.mark.parametrize("host", ["ops", "apps"])
def test_each_proxy_passes_haproxy_check(multi, host, tmp_path):
    files = uploads(proxies(multi)[host])
    assert_haproxy_accepts(haproxy_check(tmp_path, files[CFG_PATH], files[CRT_LIST_PATH]))


@needs_haproxy
def test_tcp_only_host_with_tls(tmp_path):
    config = {
        "domain": "lab.example.com",
        "hosts": [
            {"name": "main", "address": "local"},
            {"name": "db", "address": "deploy@db.lab.example.com", "host-key": HOST_KEY},
        ],
        "services": {
            "postgres": {
                "enabled": True,
                "host": "db",
                "expose": True,
                "bind-address": "10.0.0.5",
                "allow-from": ["10.0.0.0/24"],
            }
        },
    }
    lab = run_program(config, example_secrets(config), key_dir=str(tmp_path / "keys"))
    files = uploads(proxies(lab)["db"])
    assert tcp_routes(files[CFG_PATH]) == {5432: "postgres:5432"}
    assert_haproxy_accepts(haproxy_check(tmp_path, files[CFG_PATH], files.get(CRT_LIST_PATH)))
