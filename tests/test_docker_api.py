"""The narrowed Docker API (issue 26 item 4): the backup engine and cAdvisor reach Docker only
through their own wollomatic/socket-proxy, which passes exactly the calls each one makes.

The proxy cannot run here (no image pulls, and its Go toolchain is newer than Debian's), so its
decision is checked against its source at the pinned tag: cmd/socket-proxy/handlehttprequest.go
and internal/config/config.go @ 1.13.1 (bc6606ade30b). A request whose method has no `-allow`
flag gets 405; one whose URL path matches none of that method's expressions, each compiled as
"^" + regex + "$" (Go's RE2, the same as Python's `re` for these expressions), gets 403. The
flags are read back from the registered container, and the paths are the Docker client's
(moby client: "/v<version>" + the endpoint; /_ping without a version).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import example_files, example_run, run_program
from test_policies import as_res

from policies.rules import evaluate

CONTAINER = "docker:index/container:Container"
ID = "3f4c2a9e0b1d" * 5 + "abcd"  # a 64-hex container ID, as ContainerList returns them
EXEC = "9" * 64


def by_name(lab) -> dict[str, object]:
    return {c.inputs["name"].removeprefix("homelab-"): c for c in lab.of_type(CONTAINER)}


def allowlist(proxy) -> dict[str, list[re.Pattern[str]]]:
    """The proxy's allowlist as it compiles it from its flags."""
    out: dict[str, list[re.Pattern[str]]] = {}
    for flag in proxy.inputs["command"]:
        match = re.fullmatch(r"-allow(GET|HEAD|POST|PUT|PATCH|DELETE|CONNECT|TRACE|OPTIONS)=(.+)", flag)
        if match:
            out.setdefault(match.group(1), []).append(re.compile("^" + match.group(2) + "$"))
    return out


def decide(proxy, method: str, path: str) -> int:
    allowed = allowlist(proxy).get(method)
    if allowed is None:
        return 405
    return 200 if any(p.match(path) for p in allowed) else 403


@pytest.fixture(scope="module")
def single():
    return by_name(example_run(Path(__file__).resolve().parent.parent / "examples" / "single-host.yaml"))


# What each client calls (offen/docker-volume-backup v2.48.2 cmd/backup/*.go; google/cadvisor
# v0.60.5 container/docker/*.go), with API version 1.41 (Docker 20.10) and 1.47.
BACKUP_CALLS = [
    ("HEAD", "/_ping"),
    ("GET", "/_ping"),
    ("GET", "/v1.41/info"),
    ("GET", "/v1.47/containers/json"),
    ("POST", f"/v1.47/containers/{ID}/stop"),
    ("POST", f"/v1.47/containers/{ID}/start"),
    ("POST", f"/v1.47/containers/{ID}/exec"),
    ("POST", f"/v1.47/exec/{EXEC}/start"),
    ("GET", f"/v1.47/exec/{EXEC}/json"),
]
CADVISOR_CALLS = [
    ("HEAD", "/_ping"),
    ("GET", "/v1.41/info"),
    ("GET", "/v1.41/version"),
    ("GET", f"/v1.41/containers/{ID}/json"),
]
# What a broken-into client would want: a new container (with / mounted), a file out of
# another container, its logs, an image, a volume, deleting one, the whole swarm.
REFUSED = [
    ("POST", "/v1.47/containers/create"),
    ("POST", f"/v1.47/containers/{ID}/kill"),
    ("POST", f"/v1.47/containers/{ID}/update"),
    ("PUT", f"/v1.47/containers/{ID}/archive"),
    ("GET", f"/v1.47/containers/{ID}/archive"),
    ("GET", f"/v1.47/containers/{ID}/logs"),
    ("GET", f"/v1.47/containers/{ID}/export"),
    ("DELETE", f"/v1.47/containers/{ID}"),
    ("POST", "/v1.47/images/create"),
    ("POST", "/v1.47/volumes/create"),
    ("GET", "/v1.47/volumes"),
    ("POST", "/v1.47/swarm/init"),
    ("POST", "/v1.47/containers/../stop"),
    ("GET", "/v1.47/containers/json/../../secrets"),
    ("POST", "/v1.47/build"),
]


@pytest.mark.parametrize(("method", "path"), BACKUP_CALLS)
def test_the_backup_proxy_passes_every_call_the_engine_makes(single, method, path):
    assert decide(single["backup-docker-api"], method, path) == 200


@pytest.mark.parametrize(("method", "path"), CADVISOR_CALLS)
def test_the_cadvisor_proxy_passes_every_call_cadvisor_makes(single, method, path):
    assert decide(single["cadvisor-docker-api"], method, path) == 200


@pytest.mark.parametrize("proxy", ["backup-docker-api", "cadvisor-docker-api"])
@pytest.mark.parametrize(("method", "path"), REFUSED)
def test_the_proxies_refuse_what_a_broken_in_client_would_want(single, proxy, method, path):
    assert decide(single[proxy], method, path) in (403, 405)


def test_cadvisor_only_reads(single):
    assert set(allowlist(single["cadvisor-docker-api"])) == {"GET", "HEAD"}
    assert decide(single["cadvisor-docker-api"], "POST", f"/v1.41/containers/{ID}/stop") == 405
    # Exec belongs to the backup engine's hooks only.
    assert decide(single["cadvisor-docker-api"], "GET", f"/v1.47/exec/{EXEC}/json") == 403


@pytest.mark.parametrize(
    ("client", "proxy"), [("backup", "backup-docker-api"), ("cadvisor", "cadvisor-docker-api")]
)
def test_each_proxy_answers_its_own_client_only_and_is_confined(single, client, proxy):
    p = single[proxy]
    flags = p.inputs["command"]
    assert f"-allowfrom={client}" in flags and "-listenip=0.0.0.0" in flags
    assert [v for v in p.inputs["volumes"] if v.get("hostPath")] == [
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}
    ]
    assert p.inputs["user"] == "0:0"
    assert p.inputs["capabilities"] == {"drops": ["ALL"]}
    assert p.inputs["readOnly"] is True and p.inputs["securityOpts"] == ["no-new-privileges=true"]
    # Its bundled health check asks the loopback /health endpoint -allowhealthcheck opens.
    assert p.inputs["healthcheck"]["tests"] == ["CMD", "/healthcheck"] and "-allowhealthcheck" in flags
    assert not p.inputs.get("ports"), "the proxy is reachable on the stack network only"


def test_the_clients_have_no_socket_and_use_their_proxy(single):
    backup, cadvisor = single["backup"], single["cadvisor"]
    env = dict(e.split("=", 1) for e in backup.inputs["envs"])
    assert env["DOCKER_HOST"] == "tcp://backup-docker-api:2375"
    assert "--docker=tcp://cadvisor-docker-api:2375" in cadvisor.inputs["command"]
    for c in (backup, cadvisor):
        paths = {v.get("hostPath") for v in c.inputs.get("volumes") or []}
        assert not paths & {"/var/run", "/run", "/var/run/docker.sock", "/run/containerd/containerd.sock"}


def test_portainer_keeps_the_raw_socket(single):
    sockets = [
        v for v in single["portainer"].inputs["volumes"] if v.get("hostPath") == "/var/run/docker.sock"
    ]
    assert sockets == [
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": False}
    ]


def test_containerd_socket_only_when_asked(tmp_path):
    config = {"services": {"cadvisor": {"containerd-socket": True}}}
    lab = run_program(config, key_dir=str(tmp_path / "keys"))
    cadvisor = by_name(lab)["cadvisor"]
    mounts = {v["hostPath"]: v["readOnly"] for v in cadvisor.inputs["volumes"] if v.get("hostPath")}
    assert mounts["/run/containerd/containerd.sock"] is True
    assert evaluate([as_res(r) for r in lab.resources])["docker-privileges"] == []


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_backup_run_and_cadvisor_has_its_proxy(path):
    names = [c.inputs["name"].removeprefix("homelab-") for c in example_run(path).of_type(CONTAINER)]
    for client in ("backup", "cadvisor"):
        assert names.count(client) == names.count(f"{client}-docker-api"), names
