"""The LAN's split-horizon resolver (issue 25, item 2): the generated unbound.conf passes the
real `unbound-checkconf`, and the real `unbound` (Debian's) run with it on loopback answers
every routed name with the LAN address of the host that serves it, forwards a foreign name
(and an unrouted name under the domain) to the upstream (a stub), answers no one outside
`allow-from`, and the container runs unprivileged on an unprivileged port.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from harness import HOST_KEY, dns_ask, files, free_port, is_stager, run_program, stub_dns
from test_bad_input import assert_rejected

from components.homelab import resolver

CONTAINER = "docker:index/container:Container"
UPSTREAM = "192.0.2.53"
CONFIG: dict[str, Any] = {
    "domain": "lab.example.com",
    "hosts": [
        {"name": "local", "lan-address": "192.168.1.10"},
        # Its LAN address is its SSH address (an IP address).
        {"name": "nas", "address": "deploy@192.168.1.20", "host-key": HOST_KEY},
    ],
    "services": {"mattermost": {"enabled": True, "host": "nas"}},
    "dns": {
        "resolver": {
            "enabled": True,
            "bind-address": "192.168.1.10",
            # Loopback too: the live test asks from 127.0.0.2 (allowed) and 127.0.0.3 (not).
            "allow-from": ["192.168.1.0/24", "127.0.0.2/32"],
            "upstreams": [UPSTREAM],
        }
    },
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return run_program(CONFIG, {}, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def container(lab):
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-resolver" and not is_stager(c)]
    return c


@pytest.fixture(scope="module")
def routed(lab) -> dict[str, str]:
    """Each routed name -> the LAN address of the host whose proxy serves it."""
    lan = {"local": "192.168.1.10", "nas": "192.168.1.20"}
    out = {}
    for proxy in lab.of_type(CONTAINER):
        name = proxy.inputs["name"]
        if name.startswith("homelab-haproxy") and not is_stager(proxy):
            host = next(x["value"] for x in proxy.inputs["labels"] if x["label"] == "homelab.host")
            for alias in proxy.inputs["networksAdvanced"][0]["aliases"][1:]:
                out[alias] = lan[host]
    return out


def conf_of(container) -> str:
    return files(container)[resolver.CONFIG]


def test_the_resolver_runs_unprivileged_and_listens_on_the_lan_address_only(container):
    i = container.inputs
    assert i["user"] == "101:102" and i["readOnly"] is True
    assert i["capabilities"] == {"drops": ["ALL"]}
    assert i["command"] == ["-c", resolver.CONFIG]
    assert sorted((p["protocol"], p["ip"], p["external"], p["internal"]) for p in i["ports"]) == [
        ("tcp", "192.168.1.10", 53, resolver.PORT),
        ("udp", "192.168.1.10", 53, resolver.PORT),
    ]
    assert i["healthcheck"]["tests"][:4] == ["CMD", "drill-hc", "-p", str(resolver.PORT)]


def test_every_routed_name_on_every_host_has_its_record(container, routed):
    conf = conf_of(container)
    assert {"mattermost.lab.example.com", "monitoring.lab.example.com"} <= set(routed)
    assert routed["mattermost.lab.example.com"] == "192.168.1.20"
    for fqdn, address in routed.items():
        assert f'local-data: "{fqdn}. 300 IN A {address}"' in conf
    assert f"forward-addr: {UPSTREAM}" in conf


@pytest.mark.skipif(shutil.which("unbound-checkconf") is None, reason="apt-get install unbound")
def test_unbound_checkconf_accepts_the_generated_file(container, tmp_path):
    path = tmp_path / "unbound.conf"
    path.write_text(conf_of(container))
    run = subprocess.run(["unbound-checkconf", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # And refuses a broken one: the check can fail.
    path.write_text(conf_of(container).replace("transparent", "transparant"))
    assert subprocess.run(["unbound-checkconf", str(path)], capture_output=True).returncode != 0


@pytest.fixture(scope="module")
def live(container, routed, tmp_path_factory):
    """The real unbound with the generated file, on 127.0.0.1, forwarding to a stub."""
    if shutil.which("unbound") is None:
        pytest.skip("unbound is not installed (apt-get install unbound)")
    upstream = stub_dns({"example.org": "203.0.113.7"})
    port = free_port()
    conf = conf_of(container)
    # Only where it listens and where the upstream is differ from the deployed file.
    assert f"interface: 0.0.0.0@{resolver.PORT}" in conf
    conf = conf.replace(f"interface: 0.0.0.0@{resolver.PORT}", f"interface: 127.0.0.1@{port}")
    conf = conf.replace(f"forward-addr: {UPSTREAM}", f"forward-addr: 127.0.0.1@{upstream.server_address[1]}")
    conf = conf.replace("server:\n", "server:\n    do-not-query-localhost: no\n", 1)
    # As the container runs it: uid 101, gid 102, no capability (where setpriv is there), so
    # the file must be readable by that user: a directory of its own outside pytest's 0700 tree.
    folder = Path(tempfile.mkdtemp(prefix="homelab-unbound-"))
    folder.chmod(0o755)
    path = folder / "unbound.conf"
    path.write_text(conf)
    path.chmod(0o644)
    confine = []
    if shutil.which("setpriv") and os.geteuid() == 0:
        confine = ["setpriv", f"--reuid={resolver.UID}", f"--regid={resolver.GID}", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all"]  # fmt: skip
    process = subprocess.Popen(
        [*confine, "unbound", "-d", "-c", str(path)], stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(100):
            try:
                dns_ask("mattermost.lab.example.com", port, source="127.0.0.2", timeout=0.2)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.05)
        if confine:  # setpriv execs unbound: the same process, now uid 101 without capabilities
            status = Path(f"/proc/{process.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{resolver.UID}\s", status, re.M), status
            assert re.search(r"^CapEff:\s+0+$", status, re.M), status
        yield port, upstream
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def test_live_routed_names_answer_with_their_hosts_lan_address(live, routed):
    port, upstream = live
    for fqdn, address in routed.items():
        assert dns_ask(fqdn, port, source="127.0.0.2") == ("NOERROR", [address]), fqdn
        # No AAAA record: an empty answer from the local zone, not a question upstream.
        assert dns_ask(fqdn, port, qtype=28, source="127.0.0.2") == ("NOERROR", []), fqdn
    assert not [name for name in upstream.asked if name in routed]


def test_live_other_names_go_upstream(live):
    port, upstream = live
    assert dns_ask("example.org", port, source="127.0.0.2") == ("NOERROR", ["203.0.113.7"])
    assert "example.org" in upstream.asked
    # A name under the domain that nothing routes is not captured by the local zone.
    dns_ask("printer.lab.example.com", port, source="127.0.0.2")
    assert "printer.lab.example.com" in upstream.asked


def test_live_sources_outside_allow_from_are_refused(live):
    port, upstream = live
    assert dns_ask("mattermost.lab.example.com", port, source="127.0.0.3") == ("REFUSED", [])
    assert dns_ask("example.org", port, source="127.0.0.3")[0] == "REFUSED"
    # The container's own loopback address: its health check asks from there.
    assert dns_ask("mattermost.lab.example.com", port, source="127.0.0.1")[0] == "NOERROR"


def with_resolver(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["dns"]["resolver"].update(changes)
    return config


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        (with_resolver(**{"bind-address": None}), "dns.resolver", "needs bind-address"),
        (with_resolver(upstreams=[]), "dns.resolver", "needs upstreams"),
        (with_resolver(**{"allow-from": []}), "dns.resolver", "needs allow-from"),
        (with_resolver(**{"bind-address": "0.0.0.0"}), "dns.resolver.bind-address", "every interface"),
        (with_resolver(upstreams=["dns.example.com"]), "dns.resolver.upstreams[0]", "not an IP address"),
        (with_resolver(host="router"), "dns.resolver.host", "unknown host 'router'"),
    ],
    ids=["no-bind-address", "no-upstreams", "no-allow-from", "wildcard", "upstream-name", "unknown-host"],
)
def test_bad_resolver_config_is_named(config, path, fragment):
    assert_rejected(config, path, fragment, {})


def test_a_serving_host_without_a_lan_address_is_named():
    config = copy.deepcopy(CONFIG)
    config["hosts"][1]["address"] = "deploy@nas.lab.example.com"  # a name: no LAN address known
    assert_rejected(config, "hosts[1].lan-address", "serves routed names", {})


def test_off_by_default(tmp_path):
    config = copy.deepcopy(CONFIG)
    del config["dns"]
    lab = run_program(config, {}, key_dir=str(tmp_path))
    assert not [c for c in lab.of_type(CONTAINER) if "resolver" in c.inputs["name"]]
