"""Property-based tests (hypothesis): generated and mutated stack configs.

For every config the program, run under the mocks, either rejects it cleanly (one
`invalid stack config` message, each line a key path and a problem, nothing registered) or
accepts it, and then: no two resources share a URN, no two containers or volumes share a
Docker name on one host, no config secret shows in a plain input, and the HAProxy and
Prometheus configs it uploads pass `haproxy -c` and `promtool check config` (run once per
distinct file at the end of each test, to keep the run time bounded).

The names, ports and values are drawn from small pools on purpose: collisions (names joined
with '-', one port twice, a host listed twice) are what break a config, and values ending in
a newline, full domain names as host names or out-of-range durations are what slip through.

Profiles (tests/conftest.py): `ci` (the default) runs a fixed number of cases with a fixed
seed; `make fuzz` runs the `long` profile (more cases, a new seed each run). The counts and
outcomes are printed at the end of the run.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import EXAMPLES, ROOT, SECRET_MARK, RecordingMocks, load_stack_file, plain_strings, run_program
from hypothesis import given
from hypothesis import strategies as st

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
CRT_LIST = "/usr/local/etc/haproxy/crt-list.txt"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
# A key path: plain keys joined by '.', list indexes `[0]`, odd keys quoted `["A B"]`.
KEY_PATH = re.compile(r'\(top level\)|(?:[^\s\[\]"]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])+')
PROBLEM_LINE = re.compile(rf"  ({KEY_PATH.pattern}): (\S.*)")

needs_tools = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("promtool") is None,
    reason="haproxy or promtool is not installed (make tools installs them)",
)

# ---- pools: small on purpose, so that names and ports collide ---------------------------------

# (good values, bad values): a value is drawn from the good ones six times as often.
NAMES = (
    ["a", "b", "a-b", "b-c", "c", "x", "x-1", "app", "web-1", "grafana-data"],
    ["mattermost-db", "app\n", "grafana"],
)
HOSTS = ["local", "ops", "apps", "a", "a-b"]
DOMAINS = (["lab.example.com", "localhost", "example.org"], ["lab.example.com\n", "123", "x_y.com"])
HOSTNAMES = (
    ["a", "app", "www", "@", "home", "infra", "metrics", "x.y", "b-1"],
    ["lab.example.com", "app.lab.example.com", "app\n", "-x", "a..b", "UPPER", ""],
)
PORTS = ([80, 443, 8404, 3307, 5432, 8080, 9100, 9113, 9338, 1, 65535, 2000, 3000, 4000], [0, 70000])
DURATIONS = (
    ["15s", "1m30s", "5m", "30d", "1y", "100ms", "2h"],
    ["1s1s", "0s", "300y", "15s\n", "30s5m", "15"],
)
HEALTH_DURATIONS = (["30s", "5s", "1m30s", "100ms", "1h"], ["1d", "0s", "30s\n"])
IMAGES = (
    [
        "traefik/whoami:v1.11.0",
        "nginx:1.28.0-alpine",
        "nginx-alpine:1",
        "registry.lab:5000/x/y:1",
    ],
    # The last has the Pulumi name of nginx-alpine:1 on a host.
    ["nginx", "nginx:latest", "nginx:1\n", "nginx/alpine:1"],
)
ADDRESSES = (["10.0.0.5", "fd00::5", "ops.lan", None], ["bad address", "http://x", "x:9100"])
PATHS = (["/metrics", "/m", "/metrics/x"], ["/metrics\n", "metrics", "/a b"])
SCHEDULES = (["0 0 4 * * *", "0 30 3 * * 1-5"], ["0 4 * * *", "0 0 4 * * *\n"])
ENV_NAMES = (["A", "B", "API_TOKEN", "MODE"], ["1X", "A B"])
ENV_VALUES = (["1", "x y", "line\nbreak", ""], [])
VOLUME_PATHS = (["/data", "/var/lib/x", "/d"], ["data", "/d\n"])
NASTY = [
    "",
    "x\n",
    " padded ",
    None,
    0,
    -1,
    70000,
    True,
    1.5,
    [],
    {},
    "a" * 300,
    "ünïcode",
    "../etc",
    "@",
    "lab.example.com",
    "x" * 64,
    {"secure": "v1:abc"},
]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def pick(pool: list[Any] | tuple[list[Any], list[Any]], bad: bool = False) -> st.SearchStrategy[Any]:
    """A value of a pool. Of a (good, bad) pool: a good one, unless `bad`, then either
    (a good one three times as often)."""
    if isinstance(pool, tuple):
        return st.sampled_from(pool[0] * 3 + pool[1] if bad else pool[0])
    return st.sampled_from(pool)


def without_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


@st.composite
def custom_services(draw: st.DrawFn, host_names: list[str], bad: bool) -> dict[str, Any]:
    route = st.fixed_dictionaries(
        {"hostname": pick(HOSTNAMES, bad), "port": pick(PORTS, bad)},
        optional={"mode": pick(["http", "tcp"]), "exposed-port": pick(PORTS, bad)} if bad else {},
    )
    tcp_route = st.fixed_dictionaries(
        {"hostname": pick(HOSTNAMES, bad), "port": pick(PORTS, bad), "mode": st.just("tcp")},
        optional={"exposed-port": pick(PORTS, bad)} if bad else {},
    ).map(lambda r: r if "exposed-port" in r or bad else {**r, "exposed-port": 6000 + r["port"] % 1000})
    metrics = st.fixed_dictionaries(
        {"port": pick(PORTS, bad)}, optional={"path": pick(PATHS, bad), "host-port": pick(PORTS, bad)}
    )
    volume = st.fixed_dictionaries(
        {"name": pick(NAMES, bad), "path": pick(VOLUME_PATHS, bad)},
        optional={"stateful": st.booleans()},
    )
    secret = st.fixed_dictionaries(
        {"name": pick(NAMES, bad), "env": pick(ENV_NAMES, bad)},
        optional={"length": pick(([16, 32], [8, 200]), bad)},
    )
    health = st.fixed_dictionaries(
        {"test": st.just(["CMD", "true"])},
        optional={
            "interval": pick(HEALTH_DURATIONS, bad),
            "timeout": pick(HEALTH_DURATIONS, bad),
            "retries": pick(([1, 3], [0]), bad),
        },
    )
    service = {
        "name": draw(pick(NAMES, bad)),
        "image": draw(pick(IMAGES, bad)),
        "host": draw(maybe(pick((host_names, ["nowhere"]), bad))),
        "routes": draw(maybe(st.lists(st.one_of(route, tcp_route), max_size=2))),
        "metrics": draw(maybe(st.lists(metrics, max_size=2))),
        "volumes": draw(maybe(st.lists(volume, max_size=2))),
        "secrets": draw(maybe(st.lists(secret, max_size=2))),
        "env": draw(maybe(st.dictionaries(pick(ENV_NAMES, bad), pick(ENV_VALUES, bad), max_size=2))),
        "health-check": draw(maybe(health)),
        "title": draw(maybe(pick((["Demo", "<b>bold</b>", "Ünï"], ["Tab\there"]), bad))),
        "enabled": draw(maybe(st.booleans())),
    }
    return without_none(service)


@st.composite
def stack_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A stack config built from the pools: mostly well-formed, often subtly wrong."""
    bad = draw(st.sampled_from([False, False, False, True]))  # most draw only good values
    count = draw(st.integers(1, 3))
    unique = not bad or draw(st.booleans())  # now and then a host declared twice
    names = draw(st.lists(pick(HOSTS, bad), min_size=count, max_size=count, unique=unique))
    hosts = []
    for i, name in enumerate(names):
        host: dict[str, Any] = {"name": name}
        if i > 0 or draw(st.booleans()):
            host["address"] = f"deploy@{name}.example.com" + draw(pick((["", ":2222"], ["\n"]), bad))
            host["scrape-address"] = draw(pick(ADDRESSES, bad))
        hosts.append(without_none(host))
    config: dict[str, Any] = {
        "domain": draw(pick(DOMAINS, bad)),
        "hosts": hosts,
        "name": draw(maybe(pick((["homelab", "lab", "x-1"], ["Lab"]), bad))),
    }
    services: dict[str, Any] = {}
    for key in ("portainer", "prometheus", "grafana", "landing", "mattermost", "drupal", "web"):
        if draw(st.booleans()):
            services[key] = without_none(
                {
                    "enabled": draw(maybe(st.booleans())),
                    "host": draw(maybe(pick((names, ["nowhere"]), bad))),
                    "hostname": draw(maybe(pick(HOSTNAMES, bad))),
                    "image": draw(maybe(pick(IMAGES, bad))),
                }
            )
    for key in ("postgres", "mysql"):
        if draw(st.booleans()):
            services[key] = without_none(
                {"enabled": draw(maybe(st.booleans())), "exposed-port": draw(maybe(pick(PORTS, bad)))}
            )
    for key in ("cadvisor", "node-exporter"):
        if draw(st.booleans()):
            services[key] = without_none(
                {
                    "enabled": draw(maybe(st.booleans())),
                    "hosts": draw(
                        maybe(st.lists(pick((names, ["nowhere"]), bad), max_size=3, unique=not bad))
                    ),
                }
            )
    if not bad and "host" in services.get("prometheus", {}) and "grafana" in services:
        services["grafana"]["host"] = services["prometheus"]["host"]  # Grafana runs beside it
    config["services"] = services
    unique_name = None if bad else (lambda svc: svc["name"])
    config["custom-services"] = draw(st.lists(custom_services(names, bad), max_size=4, unique_by=unique_name))
    if draw(st.booleans()):
        config["proxy"] = without_none(
            {
                "http-port": draw(maybe(pick(PORTS, bad))),
                "https-port": draw(maybe(pick(PORTS, bad))),
                "stats-port": draw(maybe(pick(PORTS, bad))),
            }
        )
    if draw(st.booleans()):
        fqdn = draw(
            pick((["home.localhost", "app.lab.example.com", "lab.example.com"], ["typo.example.org"]), bad)
        )
        config["tls"] = without_none(
            {
                "enabled": draw(maybe(st.booleans())),
                "self-signed": draw(maybe(st.booleans())) if bad else None,
                "certificates": draw(maybe(st.just({fqdn: "own-cert"}))),
            }
        )
    if draw(st.booleans()):
        config["monitoring"] = {
            "scrape-interval": draw(pick(DURATIONS, bad)),
            "retention": draw(pick(DURATIONS, bad)),
        }
    if draw(st.booleans()):
        protect = draw(st.booleans())
        config["data"] = {
            "protect": protect,
            "delete-on-destroy": draw(st.booleans()) and (bad or not protect),
        }
    if draw(st.booleans()):
        config["backup"] = without_none(
            {
                "enabled": draw(maybe(st.booleans())),
                "schedule": draw(maybe(pick(SCHEDULES, bad))),
                "target": draw(
                    maybe(pick((["/srv/backups"], ["backups", "/srv/b\n", "s3://bucket/x"]), bad))
                ),
            }
        )
    return without_none(config)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested config: dict keys and list indexes, containers included."""
    out = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*path, i))
    return out


def _parent(config: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        config = config[part]
    return config


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped example's homelab config (or the dev stack's) with one to three edits:
    a value replaced by a nasty one, a key dropped or misspelled, a list item doubled."""
    config = copy.deepcopy(draw(pick(EXAMPLE_CONFIGS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(config)
        if not paths:
            break
        path = draw(pick(paths))
        parent, last = _parent(config, path), path[-1]
        action = draw(pick(["replace", "replace", "replace", "drop", "rename", "double"]))
        if action == "replace":
            value = draw(pick(NASTY + DURATIONS[0] + DURATIONS[1] + HOSTNAMES[0] + HOSTNAMES[1] + PORTS[0]))
            parent[last] = copy.deepcopy(value)  # never the pool's own list or dict
        elif action == "drop":
            del parent[last]
        elif action == "rename" and isinstance(last, str):
            parent[draw(pick([last + "s", last.replace("-", "_"), last.upper()]))] = parent.pop(last)
        elif action == "double" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return config


def _homelab_only(path: Path) -> dict[str, Any]:
    config = load_stack_file(path)
    if config.get("layers", {}).get("platform"):
        config = {k: v for k, v in config.items() if k not in ("layers", "platform", "apps", "notifications")}
    return config


EXAMPLE_CONFIGS = [_homelab_only(p) for p in (EXAMPLES / "single-host.yaml", EXAMPLES / "multi-host.yaml")]
EXAMPLE_CONFIGS.append(_homelab_only(ROOT / "Pulumi.dev.yaml"))


# ---- one case: run it, classify it, check it ---------------------------------------------------


def secret_references(value: Any) -> set[str]:
    """The config keys a raw config names as secrets (`*-secret` values, certificate keys)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith("-secret") and isinstance(item, str):
                found.add(item)
            elif key == "certificates" and isinstance(item, dict):
                found |= {v for v in item.values() if isinstance(v, str)}
            else:
                found |= secret_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= secret_references(item)
    return found


@dataclass
class Cases:
    """What the cases of one test did, and the configs left to check with the real tools."""

    outcomes: Counter[str] = field(default_factory=Counter)
    haproxy: dict[str, tuple[str, str | None, dict[str, Any]]] = field(default_factory=dict)
    prometheus: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def run(self, config: dict[str, Any], key_dir: str) -> None:
        secrets = {
            key: f"{SECRET_MARK}-config-{key}"
            for key in secret_references(config)
            if re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_-]*", key)
        }
        mocks = RecordingMocks()
        try:
            run_program(config, secrets, key_dir=key_dir, mocks=mocks)
        except pulumi.RunError as error:
            self.outcomes["rejected"] += 1
            check_rejection(str(error), mocks)
            return
        self.outcomes["accepted"] += 1
        check_accepted(mocks, secrets)
        for c in mocks.of_type(CONTAINER):
            files = {u["file"]: u["content"] for u in c.inputs.get("uploads") or []}
            if HAPROXY_CFG in files:
                cfg = files[HAPROXY_CFG]
                self.haproxy.setdefault(digest(cfg), (cfg, files.get(CRT_LIST), config))
            if PROMETHEUS_YML in files:
                yml = files[PROMETHEUS_YML]
                self.prometheus.setdefault(digest(yml), (yml, config))

    def check_with_tools(self, tmp_path: Path) -> None:
        pem = tmp_path / "any.pem"
        pem.write_bytes(self_signed_pem())
        for i, (cfg, crt_list, config) in enumerate(self.haproxy.values()):
            folder = tmp_path / f"haproxy-{i}"
            folder.mkdir()
            if crt_list is not None:
                # One certificate serves every SNI line: `-c` checks that the files load.
                lines = [f"{pem} {line.split()[1]}\n" for line in crt_list.splitlines() if line.strip()]
                (folder / "crt-list.txt").write_text("".join(lines))
                cfg = cfg.replace(CRT_LIST, str(folder / "crt-list.txt"))
            # `init-addr none`: the check must not wait on this machine's DNS for container
            # names it cannot know (tests/test_proxy.py checks the real `last,libc,none`).
            assert cfg.count("init-addr last,libc,none") == cfg.count("init-addr")
            cfg = cfg.replace("init-addr last,libc,none", "init-addr none")
            (folder / "haproxy.cfg").write_text(cfg)
            result = subprocess.run(
                ["haproxy", "-c", "-f", str(folder / "haproxy.cfg")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            output = result.stdout + result.stderr
            assert result.returncode == 0 and "[ALERT]" not in output, f"{output}\nconfig: {config!r}\n{cfg}"
        files = []
        for i, (yml, _) in enumerate(self.prometheus.values()):
            files.append(tmp_path / f"prometheus-{i}.yml")
            files[-1].write_text(yml)
        if files:  # one promtool run for every file
            result = subprocess.run(
                ["promtool", "check", "config", "--syntax-only", *map(str, files)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if result.returncode != 0:
                bad = [p for p in files if f"FAILED: {p}" in result.stdout + result.stderr]
                configs = [list(self.prometheus.values())[files.index(p)][1] for p in bad]
                pytest.fail(f"promtool rejected {bad}:\n{result.stdout}{result.stderr}\nconfigs: {configs!r}")

    def record(self, name: str, record_property: Any) -> None:
        record_property(
            "hypothesis-cases",
            {
                "test": name,
                **self.outcomes,
                "haproxy-configs": len(self.haproxy),
                "prometheus-configs": len(self.prometheus),
            },
        )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_rejection(message: str, mocks: RecordingMocks) -> None:
    header, *lines = message.splitlines()
    match = re.fullmatch(r"invalid stack config \((\d+) problem\(s\)\):", header)
    assert match, message
    assert lines and int(match.group(1)) == len(lines), message
    for line in lines:
        problem = PROBLEM_LINE.fullmatch(line)
        assert problem, f"not a '  key path: problem' line: {line!r} in\n{message}"
        assert "Traceback" not in line
    assert mocks.resources == [], "a rejected config registered resources"
    assert [t for t, _ in mocks._options if t != "pulumi:pulumi:Stack"] == []


def check_accepted(mocks: RecordingMocks, secrets: dict[str, str]) -> None:
    duplicates = [urn for urn, n in Counter(mocks.urns).items() if n > 1]
    assert duplicates == [], f"duplicate URNs: {duplicates}"
    for type_ in (CONTAINER, VOLUME):
        names = Counter(
            (r.provider.split("::")[-2] if r.provider else "", r.inputs["name"]) for r in mocks.of_type(type_)
        )
        assert [n for n, count in names.items() if count > 1] == [], f"two {type_} with one name on a host"
    values = set(secrets.values())
    for r in mocks.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert not any(v in text for v in values), f"{r.name}.{path} shows a config secret"


def self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "homelab-property-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


# ---- the tests ---------------------------------------------------------------------------------


@needs_tools
def test_generated_stack_configs(tmp_path: Path, record_property: Any) -> None:
    cases = Cases()
    key_dir = str(tmp_path / "keys")

    @given(stack_configs())
    def run(config: dict[str, Any]) -> None:
        cases.run(config, key_dir)

    run()
    cases.check_with_tools(tmp_path)
    cases.record("generated", record_property)
    # A generator that never builds a valid config, or never a wrong one, proves nothing.
    assert cases.outcomes["accepted"] and cases.outcomes["rejected"], cases.outcomes


@needs_tools
def test_mutated_example_configs(tmp_path: Path, record_property: Any) -> None:
    cases = Cases()
    key_dir = str(tmp_path / "keys")

    @given(mutated_examples())
    def run(config: dict[str, Any]) -> None:
        cases.run(config, key_dir)

    run()
    cases.check_with_tools(tmp_path)
    cases.record("mutated", record_property)
    assert cases.outcomes["accepted"] and cases.outcomes["rejected"], cases.outcomes
