"""Property-based tests (hypothesis): generated and mutated stack configs.

For every config the program, run under the mocks, either rejects it cleanly (one
`invalid stack config` message, each line a key path and a problem, nothing registered) or
accepts it, and then: no two resources share a URN, no two containers or volumes share a
Docker name on one host, no config secret shows in a plain input, and the files it uploads
pass their tools: HAProxy's config `haproxy -c`, Prometheus's `promtool check config`, the
alert rules `promtool check rules`, Alertmanager's config `amtool check-config` (each tool
run once over every distinct file at the end of each test, to keep the run time bounded).

The generator covers hosts (host keys, trust on first use, jump hosts), services, custom
services, proxy, TLS, monitoring and alerting, data safety and restore drills, and backups
(schedule, encryption, own recipients, S3/SFTP/WebDAV targets, notifications); a third test
draws the platform's TLS section (ACME or a private CA, nodes) on the platform examples.

The names, ports and values are drawn from small pools on purpose: collisions (names joined
with '-', one port twice, a host listed twice) are what break a config, and values ending in
a newline, full domain names as host names or out-of-range durations are what slip through.

Profiles (tests/conftest.py): `ci` (the default) runs a fixed number of cases with a fixed
seed; `make fuzz` runs the `long` profile (more cases, a new seed each run). The counts and
outcomes are printed at the end of the run.
"""

from __future__ import annotations

import copy
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
from haproxy_check import CRT_LIST_PATH, assert_haproxy_accepts, haproxy_check
from harness import (
    CONFIG_CA_PEM,
    EXAMPLES,
    ROOT,
    SECRET_MARK,
    RecordingMocks,
    load_stack_file,
    plain_strings,
    run_program,
)
from harness import files as container_files
from hypothesis import given, settings
from hypothesis import strategies as st

from components.homelab import alerting

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
RULES_YML = alerting.RULES_FILE
ALERTMANAGER_YML = alerting.ALERTMANAGER_CONFIG
# A key path: plain keys joined by '.', list indexes `[0]`, odd keys quoted `["A B"]`.
KEY_PATH = re.compile(r'\(top level\)|(?:[^\s\[\]"]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])+')
PROBLEM_LINE = re.compile(rf"  ({KEY_PATH.pattern}): (\S.*)")

needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("haproxy", "promtool", "amtool")),
    reason="haproxy, promtool or amtool is not installed (make tools installs them)",
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
# The backup engine's 5-field cron (the old 6-field form is refused with its equivalent).
SCHEDULES = (
    ["0 4 * * *", "30 3 * * 1-5", "@daily", "*/15 * * * *"],
    [
        "0 0 4 * * *",
        "61 * * * *",
        "0 4 * *",
        "*/99999999999999999999 * * * *",
    ],  # a step past the span (issue 23)
)
# Host keys (ssh-ed25519, real wire format) and the bad ones: a line break, a non-key, a DSA key.
HOST_KEYS = (
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpj6Tcv6KAlrYrgS4aiVp0R4PQZz6gbhBdmR60xRixk",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFMHQCzNXpS3hoY6d8NgpSf1KMcQixdmvKBq0XnhXmI comment",
    ],
    ["ssh-ed25519 AAAA\nssh-rsa AAAA", "not a key", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"],
)
SSH_ADDRESSES = (
    ["backup@nas.lan", "b@10.0.0.9:2222"],
    # issue 23: hosts that are no host name or IP address
    ["b@nas.lan\n", "nas.lan", "b@nas.lan:0", "b@...", "b@-x", "b@a..b", "b@999.1.1.1", "b@[:::::]"],
)
ABSOLUTE_PATHS = (["/srv/backups", "/b"], ["backups", "/srv/b\n", "/a,b", "/a b"])
URLS = (
    ["https://dav.example.com", "http://10.0.0.9:8080/dav"],
    ["ftp://x", "https://x\n", "dav.example.com"],
)
AGE_RECIPIENTS = (
    ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", HOST_KEYS[0][0] + " me"],
    # issue 23: a broken Bech32 checksum, a truncated ssh key
    [
        "age1short",
        HOST_KEYS[0][0] + " me\nX=1",
        "ssh-ed25519 AAAA,ssh-rsa",
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8q",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpj6Tcv6KAlrYrgS4aiVp0R4PQZz6gb",
    ],
)
PERCENTS = ([50, 85, 99.5], [0, 100, -1])
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
def host_keys(draw: st.DrawFn, bad: bool) -> dict[str, Any]:
    """host-key or trust-on-first-use (now and then, when bad, both or neither)."""
    choice = draw(st.sampled_from(["key", "key", "tofu"] + (["both", "neither"] if bad else [])))
    keys: dict[str, Any] = {}
    if choice in ("key", "both"):
        keys["host-key"] = draw(pick(HOST_KEYS, bad))
    if choice in ("tofu", "both"):
        keys["trust-on-first-use"] = True
    return keys


@st.composite
def backup_sections(draw: st.DrawFn, bad: bool) -> dict[str, Any]:
    """The backup engine's settings, with now and then a remote target or your own keys."""
    section: dict[str, Any] = {
        "enabled": draw(maybe(st.booleans())),
        "schedule": draw(maybe(pick(SCHEDULES, bad))),
        "retention-days": draw(maybe(pick(([14, 1, None], [0, 40000]), bad))),
        "encryption": draw(maybe(pick((["age"], ["none", "gpg"]), bad))),
        "directory": draw(maybe(pick(ABSOLUTE_PATHS, bad))),
        "local": draw(st.sampled_from([None, None, True, False])),
    }
    if draw(st.integers(0, 3)) == 0:
        section["age-recipients"] = draw(st.lists(pick(AGE_RECIPIENTS, bad), min_size=1, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        section["s3"] = without_none(
            {
                "bucket": draw(pick((["lab-backups"], ["Lab", "x"]), bad)),
                "endpoint": draw(maybe(pick((["minio.lan:9000"], ["minio.lan:99999", "http://m"]), bad))),
                "path": draw(maybe(pick((["lab/"], ["/lab", "lab\r"]), bad))),
                "access-key-id-secret": "s3-id",
                "secret-access-key-secret": draw(pick((["s3-key"], ["name"]), bad)),
            }
        )
    if draw(st.integers(0, 3)) == 0:
        section["ssh"] = {
            "address": draw(pick(SSH_ADDRESSES, bad)),
            "path": draw(pick(ABSOLUTE_PATHS, bad)),
            "private-key-secret": "sftp-key",
        }
    if draw(st.integers(0, 3)) == 0:
        section["webdav"] = {
            "url": draw(pick(URLS, bad)),
            "username": draw(pick((["lab"], ["", "lab\n"]), bad)),
            "password-secret": "dav-password",
        }
    if draw(st.integers(0, 3)) == 0:
        section["notify-url-secret"] = "backup-notify"
    return without_none(section)


@st.composite
def alerting_sections(draw: st.DrawFn, bad: bool) -> dict[str, Any]:
    section: dict[str, Any] = {
        "group-wait": draw(maybe(pick(DURATIONS, bad))),
        "repeat-interval": draw(maybe(pick(DURATIONS, bad))),
    }
    if draw(st.booleans()):
        kind = draw(pick((["slack", "webhook"], ["email"]), bad))
        receiver = {"kind": kind, "url-secret": "alerts-hook"}
        if kind == "slack" or bad:
            receiver["channel"] = draw(maybe(pick((["ops", "#alerts"], ["ops\n", ""]), bad)))
        section["receiver"] = without_none(receiver)
    if draw(st.booleans()):
        section["thresholds"] = without_none(
            {
                "target-down-for": draw(maybe(pick(DURATIONS, bad))),
                "disk-used-percent": draw(maybe(pick(PERCENTS, bad))),
                "container-restarts": draw(maybe(pick(([1, 3], [0, 5000]), bad))),
                "certificate-days": draw(maybe(pick(([1, 14, 365], [0, 366]), bad))),
            }
        )
    return without_none(section)


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
            host.update(draw(host_keys(bad)))
            if draw(st.integers(0, 3)) == 0:  # now and then through a jump host
                proxy = {"address": f"jump@bastion{i}.example.com", **draw(host_keys(bad))}
                if draw(st.booleans()):
                    proxy["private-key-secret"] = draw(pick((["jump-key"], ["domain", "jump key"]), bad))
                host["proxy"] = proxy
        elif bad and draw(st.integers(0, 5)) == 0:
            host.update(draw(host_keys(bad)))  # a host key for `local`: refused
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
    for key in ("alertmanager", "blackbox-exporter"):  # beside Prometheus: no host of their own
        if draw(st.integers(0, 3)) == 0:
            services[key] = without_none(
                {"enabled": draw(st.booleans()), "image": draw(maybe(pick(IMAGES, bad)))}
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
            config["monitoring"]["alerting"] = draw(alerting_sections(bad))
    if draw(st.booleans()):
        protect = draw(st.booleans())
        config["data"] = {
            "protect": protect,
            "delete-on-destroy": draw(st.booleans()) and (bad or not protect),
            "max-backup-age": draw(maybe(pick(DURATIONS, bad))),
            "pre-upgrade-backup": draw(maybe(st.booleans())),
        }
        if draw(st.booleans()):
            drill_hosts = st.dictionaries(pick((names, ["nowhere"]), bad), pick(DURATIONS, bad), max_size=2)
            config["data"]["restore-drills"] = without_none(
                {
                    "every": draw(maybe(pick(DURATIONS, bad))),
                    "max-age": draw(maybe(pick(DURATIONS, bad))),
                    "sample": draw(maybe(pick(([1, 8, 1000], [0, 1001]), bad))),
                    "hosts": draw(maybe(drill_hosts)),
                }
            )
        config["data"] = without_none(config["data"])
    if draw(st.booleans()):
        config["backup"] = draw(backup_sections(bad))
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
    rules: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    alertmanager: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

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
            files = container_files(c)  # its own uploads and those its stager stages for it
            if HAPROXY_CFG in files:
                cfg = files[HAPROXY_CFG]
                self.haproxy.setdefault(digest(cfg), (cfg, files.get(CRT_LIST_PATH), config))
            for path, found in (
                (PROMETHEUS_YML, self.prometheus),
                (RULES_YML, self.rules),
                (ALERTMANAGER_YML, self.alertmanager),
            ):
                if path in files:
                    found.setdefault(digest(files[path]), (files[path], config))

    def check_with_tools(self, tmp_path: Path) -> None:
        # Every accepted config has a proxy and a Prometheus: if none was found, the files
        # moved where this test does not look (as they did once, into the stagers' uploads).
        if self.outcomes["accepted"]:
            assert self.haproxy and self.prometheus and self.rules and self.alertmanager, self.outcomes
        for i, (cfg, crt_list, config) in enumerate(self.haproxy.values()):
            folder = tmp_path / f"haproxy-{i}"
            folder.mkdir()
            result = haproxy_check(folder, cfg, crt_list)
            assert_haproxy_accepts(result, f"\nconfig: {config!r}\n{cfg}")
        # One run of each tool for every distinct file of its kind.
        check_files(tmp_path, "prometheus", self.prometheus, ["promtool", "check", "config", "--syntax-only"])
        check_files(
            tmp_path, "rules", self.rules, ["promtool", "check", "rules", "--lint=all", "--lint-fatal"]
        )
        # Debian's amtool (0.25) predates webhook_configs' url_file (Alertmanager 0.26.0), which
        # the pinned Alertmanager (v0.34.0) reads: those files are checked where amtool is newer.
        alertmanager = self.alertmanager
        if amtool_version() < (0, 26, 0):
            alertmanager = {k: v for k, v in alertmanager.items() if "webhook_configs" not in v[0]}
        check_files(tmp_path, "alertmanager", alertmanager, ["amtool", "check-config"])

    def record(self, name: str, record_property: Any) -> None:
        record_property(
            "hypothesis-cases",
            {
                "test": name,
                **self.outcomes,
                "haproxy-configs": len(self.haproxy),
                "prometheus-configs": len(self.prometheus),
                "rule-files": len(self.rules),
                "alertmanager-configs": len(self.alertmanager),
            },
        )


def check_files(
    tmp_path: Path, kind: str, found: dict[str, tuple[str, dict[str, Any]]], command: list[str]
) -> None:
    """Write the distinct files of one kind and check them all with one run of the tool."""
    files = []
    for i, (text, _) in enumerate(found.values()):
        files.append(tmp_path / f"{kind}-{i}.yml")
        files[-1].write_text(text)
    if not files:
        return
    result = subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        bad = [p for p in files if f"FAILED: {p}" in output or f"Checking '{p}'  FAILED" in output] or files
        configs = [list(found.values())[files.index(p)][1] for p in bad]
        pytest.fail(f"{command[0]} rejected {bad}:\n{output}\nconfigs: {configs!r}")


def amtool_version() -> tuple[int, ...]:
    out = subprocess.run(["amtool", "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    return tuple(int(g) for g in match.groups())


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
    assert mocks.started() == []


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


# ---- the platform's TLS section (issue 11) on the platform examples ----------------------------

ACME_EMAILS = (
    ["ops@lab.example.com", "Admin@Example.ORG"],
    ["ops@lab.example.com\n", "ops", "ops@localhost"],
)
ACME_SERVERS = (
    [
        "https://acme-v02.api.letsencrypt.org/directory",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ],
    ["http://acme.example.com/dir", "https://acme.example.com/dir\n", "letsencrypt"],
)
CA_CERTIFICATES = (
    [CONFIG_CA_PEM, CONFIG_CA_PEM + CONFIG_CA_PEM],
    [
        "not a pem",
        CONFIG_CA_PEM + "junk\n",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    ],
)
NODE_ADDRESSES = (["ubuntu@10.0.0.21", "admin@10.0.0.22:2222"], ["ubuntu@10.0.0.21\n", "10.0.0.21", "u@h:0"])
PLATFORM_EXAMPLES = [load_stack_file(EXAMPLES / "platform.yaml"), load_stack_file(EXAMPLES / "apps.yaml")]


@st.composite
def platform_tls_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A platform example with its `platform.tls` (and cert-manager switch) drawn anew."""
    bad = draw(st.sampled_from([False, False, True]))
    config = copy.deepcopy(draw(pick(PLATFORM_EXAMPLES)))
    mode = draw(pick((["acme", "private-ca"], ["self-signed"]), bad))
    tls: dict[str, Any] = {"mode": mode}
    if mode == "acme" or (bad and draw(st.booleans())):
        solver = draw(pick((["dns01-cloudflare", "http01"], ["dns01"]), bad))
        acme: dict[str, Any] = {"email": draw(pick(ACME_EMAILS, bad)), "solver": solver}
        acme["server"] = draw(maybe(pick(ACME_SERVERS, bad)))
        if solver == "dns01-cloudflare" or (bad and draw(st.booleans())):
            acme["cloudflare-api-token-secret"] = draw(pick((["cloudflare-token"], ["domain"]), bad))
        acme["dns-zones"] = draw(maybe(st.lists(pick((["lab.example.com"], ["lab.example.com\n"]), bad))))
        tls["acme"] = without_none(acme)
    if mode == "private-ca" or (bad and draw(st.booleans())):
        if draw(st.booleans()):
            tls["ca"] = {"source": "homelab"}
        else:
            ca = {"source": "config", "certificate": draw(pick(CA_CERTIFICATES, bad))}
            tls["ca"] = without_none({**ca, "key-secret": draw(maybe(st.just("ca-key")))})
        trust = draw(st.sampled_from(["nodes", "trusted"] + (["both", "neither"] if bad else [])))
        if trust in ("trusted", "both"):
            tls["nodes-trust-ca"] = True
        if trust in ("nodes", "both"):
            node = st.fixed_dictionaries(
                {"address": pick(NODE_ADDRESSES, bad), "trust-on-first-use": st.just(True)},
                optional={
                    "runtime": pick((["containerd", "docker"], ["crio"]), bad),
                    "private-key-secret": pick((["node-key"], ["name"]), bad),
                },
            )
            tls["nodes"] = draw(st.lists(node, min_size=1, max_size=2, unique_by=None if bad else str))
    config["platform"]["tls"] = tls
    if draw(st.booleans()):
        components = config["platform"].setdefault("components", {})
        components["cert-manager"] = {"enabled": draw(st.booleans())}
    return config


@needs_tools
def test_platform_tls_configs(tmp_path: Path, record_property: Any) -> None:
    """Cheaper in number (a platform program registers a few hundred resources): at most 25
    cases in CI, the `long` profile's count with `make fuzz`."""
    cases = Cases()
    key_dir = str(tmp_path / "keys")

    ci = settings.default.derandomize  # the fixed-seed profile: fewer cases; `make fuzz` all of them

    @settings(max_examples=min(settings.default.max_examples, 25) if ci else settings.default.max_examples)
    @given(platform_tls_configs())
    def run(config: dict[str, Any]) -> None:
        cases.run(config, key_dir)

    run()
    cases.check_with_tools(tmp_path)
    cases.record("platform-tls", record_property)
    assert cases.outcomes["accepted"] and cases.outcomes["rejected"], cases.outcomes
