"""The SSH settings the program registers, against a real OpenSSH server.

Two Debian `sshd`s run on loopback ports (tests/sshd.py): `target`, a Docker host whose root
can run `docker` (the engine of scripts/start-dockerd.sh), and `bastion`, a jump host. Each
has its own generated host key and lets in one generated user key only. The program runs
under mocks with these hosts in its config; the tests take what it registered:

- Docker provider: its `host` URL and `sshOpts` exactly, turned into the command the provider
  runs (`dial_stdio_command`, rebuilt from docker/cli v28.5.2 connhelper), then `GET /_ping`
  over that command's stdin/stdout. Proven: with the right host key it answers 200 OK,
  directly and through the jump host (the bastion's log shows the forwarded connection);
  with a wrong key for the host or for the jump host, ssh refuses before any request; one
  TCP connection serves many calls (multiplexing) and parallel calls beyond the server's
  MaxSessions still all succeed.
- Bootstrap command: pulumi-command itself cannot run here (no plugin), so its registered
  `connection` (host, port, user, privateKey, hostKey, proxy.*) is turned into an OpenSSH
  invocation with the same semantics as pulumi-command v1.2.1 (connection.go: FixedHostKey of
  `hostKey`, host key algorithm limited to that key's type, the proxy dialled first with its
  own `hostKey`). Proven: the values the program sends are the keys the real servers present
  (accepted) and a wrong pinned key is refused, directly and through the proxy. Not proven:
  that golang.org/x/crypto/ssh inside pulumi-command enforces them the same way; that rests
  on reading its source (cited in components/docker/ssh.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sshd
from harness import run_program

from automation.backup import BackupError, DockerCli, host_backup
from components.docker.ssh import dial_stdio_command
from stacks.checks import validate
from stacks.config_homelab import ServicesConfig

REASON = sshd.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

REFUSED = "Host key verification failed"
# What sshd logs when a client hangs up before logging in (written a moment after it exits).
PREAUTH_CLOSE = r"Connection closed by 127\.0\.0\.1 port \d+ \[preauth\]"


@dataclass
class Servers:
    folder: Path
    target: sshd.Sshd
    bastion: sshd.Sshd
    user_key: Path  # lets root into target
    jump_key: Path  # lets root into bastion
    wrong_key: str  # a host key neither server has
    control_paths: list[str] = field(default_factory=list)  # shared connections to end


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    # A short directory: control sockets live under the key directory.
    folder = tmp_path_factory.mktemp("sshd")
    user_key, user_pub = sshd.keypair(folder, "user_key")
    jump_key, jump_pub = sshd.keypair(folder, "jump_key")
    _, wrong = sshd.keypair(folder, "wrong_host_key")
    target = sshd.Sshd(folder / "target", [user_pub], extra={"MaxSessions": "2"}).start()
    # DEBUG1 logs each forwarded connection (serverloop.c server_request_direct_tcpip).
    bastion = sshd.Sshd(folder / "bastion", [jump_pub], log_level="DEBUG1").start()
    servers = Servers(folder, target, bastion, user_key, jump_key, wrong)
    yield servers
    for path in servers.control_paths:
        sshd.close_master(path)
    target.stop()
    bastion.stop()


@dataclass
class Registered:
    docker_host: str
    ssh_opts: list[str]
    connection: dict[str, Any]

    @property
    def dial_stdio(self) -> list[str]:
        return dial_stdio_command(self.docker_host, self.ssh_opts)

    @property
    def control_path(self) -> str:
        return next(o.partition("=")[2] for o in self.ssh_opts if o.startswith("ControlPath="))


# The host's Docker provider and bootstrap are all these tests read: the stack runs no
# service (5 resources a run instead of 64; neither depends on the services).
NO_SERVICES = {name.replace("_", "-"): {"enabled": False} for name in ServicesConfig.model_fields}


def register(servers: Servers, name: str, host_key: str, proxy_key: str | None = None) -> Registered:
    """Run the program with one SSH host on `target` (through `bastion` when `proxy_key` is
    given) pinned to `host_key`, and no service; return what it registered for that host."""
    host: dict[str, Any] = {
        "name": name,
        "address": f"root@127.0.0.1:{servers.target.port}",
        "private-key-secret": "user-key",
        "host-key": host_key,
    }
    secrets = {"user-key": servers.user_key.read_text()}
    if proxy_key is not None:
        host["proxy"] = {
            "address": f"root@127.0.0.1:{servers.bastion.port}",
            "private-key-secret": "jump-key",
            "host-key": proxy_key,
        }
        secrets["jump-key"] = servers.jump_key.read_text()
    config = {"hosts": [host], "services": NO_SERVICES, "tls": {"enabled": False}}
    lab = run_program(config, secrets, stack=name, key_dir=str(servers.folder / "keys"))
    provider = lab.providers()[f"{name}-docker"]
    opts = provider.inputs["sshOpts"]
    bootstrap = lab.named(f"{name}-bootstrap", "command:remote:Command")  # not a pre-upgrade backup
    registered = Registered(
        provider.inputs["host"],
        json.loads(opts) if isinstance(opts, str) else list(opts),
        bootstrap.inputs["connection"],
    )
    servers.control_paths.append(registered.control_path)
    return registered


def assert_refused(call: sshd.Call) -> None:
    assert call.returncode == 255, call
    assert REFUSED in call.stderr, call.stderr
    assert call.response == b""


# ---- the Docker provider's transport --------------------------------------------------------


def test_direct_with_the_right_host_key_answers_the_docker_api(servers):
    registered = register(servers, "direct", servers.target.host_key)
    assert registered.docker_host == f"ssh://root@127.0.0.1:{servers.target.port}"
    call = sshd.docker_ping(registered.dial_stdio)
    assert call.ok, call
    assert b"\r\nApi-Version: " in call.response


def test_direct_with_a_wrong_host_key_is_refused(servers):
    before = servers.target.log.count("Accepted publickey")
    call = sshd.docker_ping(register(servers, "direct-wrong", servers.wrong_key).dial_stdio)
    assert_refused(call)
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in call.stderr or "No ED25519 host key" in call.stderr
    assert servers.target.log.count("Accepted publickey") == before  # never logged in


def test_through_the_jump_host_with_the_right_keys(servers):
    registered = register(servers, "jumped", servers.target.host_key, servers.bastion.host_key)
    forwarded = f"target 127.0.0.1 port {servers.target.port}"
    before = servers.bastion.log.count(forwarded)
    call = sshd.docker_ping(registered.dial_stdio)
    assert call.ok, call
    # The connection to the target went through the bastion.
    assert servers.bastion.log.count(forwarded) == before + 1


def test_through_the_jump_host_a_wrong_host_key_is_refused(servers):
    call = sshd.docker_ping(
        register(servers, "jumped-wrong", servers.wrong_key, servers.bastion.host_key).dial_stdio
    )
    assert_refused(call)


def test_a_wrong_jump_host_key_is_refused(servers):
    registered = register(servers, "wrong-jump", servers.target.host_key, servers.wrong_key)
    accepted = servers.bastion.log.count("Accepted publickey")
    closed = len(re.findall(PREAUTH_CLOSE, servers.bastion.log))
    reached = servers.target.connections()
    call = sshd.docker_ping(registered.dial_stdio)
    assert call.returncode == 255 and call.response == b"", call
    # The jump ssh hung up after the key exchange, before logging in; the target saw nothing.
    assert sshd.wait_for(lambda: len(re.findall(PREAUTH_CLOSE, servers.bastion.log)) > closed)
    assert servers.bastion.log.count("Accepted publickey") == accepted
    assert servers.target.connections() == reached
    # With ControlPersist, ssh sends the jump ssh's stderr to /dev/null (openssh-portable
    # V_9_2_P1 sshconnect.c); without the Control* options the reason shows.
    opts = sshd.without_options(registered.ssh_opts, "ControlMaster", "ControlPath", "ControlPersist")
    assert_refused(sshd.docker_ping(dial_stdio_command(registered.docker_host, opts)))


def test_calls_share_one_connection(servers):
    registered = register(servers, "shared", servers.target.host_key)
    before = servers.target.connections()
    for _ in range(5):
        call = sshd.docker_ping(registered.dial_stdio)
        assert call.ok, call
    assert servers.target.connections() == before + 1
    check = subprocess.run(
        ["ssh", "-o", f"ControlPath={registered.control_path}", "-O", "check", "x"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "Master running" in check.stderr


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_parallel_calls_all_succeed(servers, start):
    """cold: 8 calls race to open the shared connection; one wins, the others use their own
    (openssh mux.c muxserver_listen: "already exists, disabling multiplexing"). warm: the
    target allows 2 sessions per connection, and a refused session falls back to a
    connection of its own (mux.c muxclient)."""
    registered = register(servers, f"parallel-{start}", servers.target.host_key)
    if start == "warm":
        assert sshd.docker_ping(registered.dial_stdio).ok
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        calls = list(pool.map(lambda _: sshd.docker_ping(registered.dial_stdio), range(8)))
    assert [c.ok for c in calls] == [True] * 8, [c for c in calls if not c.ok]


def test_without_the_pinned_file_the_host_is_unknown(servers):
    """The pin comes from the options, not from anything this machine already trusts."""
    registered = register(servers, "unpinned", servers.target.host_key)
    opts = sshd.without_options(
        registered.ssh_opts, "UserKnownHostsFile", "ControlMaster", "ControlPath", "ControlPersist"
    )
    assert_refused(sshd.docker_ping(dial_stdio_command(registered.docker_host, opts)))


# ---- the bootstrap command's connection -----------------------------------------------------


def connection_command(connection: dict[str, Any], folder: Path) -> list[str]:
    """An OpenSSH invocation that accepts exactly what pulumi-command v1.2.1 accepts for this
    `connection`: the server must present `hostKey` (FixedHostKey), negotiated as that key's
    type (HostKeyAlgorithms = [key.Type()]), authenticating with `privateKey`; with `proxy`,
    the same for the jump host, dialled first."""
    folder.mkdir(parents=True, exist_ok=True)

    def endpoint(conn: dict[str, Any], name: str) -> list[str]:
        key_type = conn["hostKey"].split()[0]
        port = int(conn["port"])
        known = folder / f"{name}.known_hosts"
        pattern = conn["host"] if port == 22 else f"[{conn['host']}]:{port}"
        known.write_text(f"{pattern} {conn['hostKey']}\n")
        identity = folder / f"{name}.key"
        identity.write_text(conn["privateKey"])
        identity.chmod(0o600)
        return [
            f"HostName {conn['host']}",
            f"Port {port}",
            f"User {conn['user']}",
            "BatchMode yes",
            f"IdentityFile {identity}",
            "IdentitiesOnly yes",
            "StrictHostKeyChecking yes",
            f"UserKnownHostsFile {known}",
            "GlobalKnownHostsFile /dev/null",
            f"HostKeyAlgorithms {key_type}",
        ]

    lines = ["Host bootstrap-target", *(f"  {x}" for x in endpoint(connection, "target"))]
    if "proxy" in connection:
        lines += ["  ProxyJump bootstrap-proxy", "Host bootstrap-proxy"]
        lines += [f"  {x}" for x in endpoint(connection["proxy"], "proxy")]
    config = folder / "ssh_config"
    config.write_text("\n".join(lines) + "\n")
    return ["ssh", "-F", str(config), "bootstrap-target", "docker version --format ok"]


def run_connection(connection: dict[str, Any], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        connection_command(connection, folder),
        capture_output=True,
        text=True,
        timeout=60,
        env=sshd.hermetic_env(),
    )


def test_bootstrap_connection_pins_the_key_the_host_presents(servers, tmp_path):
    connection = register(servers, "boot", servers.target.host_key).connection
    assert connection["hostKey"] == servers.target.host_key
    result = run_connection(connection, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_bootstrap_connection_with_a_wrong_key_is_refused(servers, tmp_path):
    connection = register(servers, "boot-wrong", servers.wrong_key).connection
    assert connection["hostKey"] == servers.wrong_key
    result = run_connection(connection, tmp_path)
    assert result.returncode == 255 and REFUSED in result.stderr, result


def test_bootstrap_connection_through_the_proxy(servers, tmp_path):
    connection = register(servers, "boot-jump", servers.target.host_key, servers.bastion.host_key).connection
    assert connection["proxy"]["hostKey"] == servers.bastion.host_key
    assert int(connection["proxy"]["port"]) == servers.bastion.port
    result = run_connection(connection, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("wrong", ["host", "proxy"])
def test_bootstrap_connection_through_the_proxy_refuses_a_wrong_key(servers, tmp_path, wrong):
    keys = {"host": servers.target.host_key, "proxy": servers.bastion.host_key} | {wrong: servers.wrong_key}
    connection = register(servers, f"boot-jump-{wrong}", keys["host"], keys["proxy"]).connection
    result = run_connection(connection, tmp_path)
    assert result.returncode == 255 and REFUSED in result.stderr, result
    assert re.search(r"^ok$", result.stdout, re.M) is None


# ---- the command-line tool (backup, restore, drill, bundle setup) ---------------------------


def tool_config(servers: Servers, name: str, host_key: str, proxy_key: str | None = None) -> Any:
    host: dict[str, Any] = {
        "name": name,
        "address": f"root@127.0.0.1:{servers.target.port}",
        "private-key-secret": "user-key",
        "host-key": host_key,
    }
    if proxy_key is not None:
        host["proxy"] = {
            "address": f"root@127.0.0.1:{servers.bastion.port}",
            "private-key-secret": "jump-key",
            "host-key": proxy_key,
        }
    return validate({"hosts": [host]})


def tool_docker(servers: Servers, name: str, host_key: str, proxy_key: str | None = None) -> DockerCli:
    hb = host_backup(
        tool_config(servers, name, host_key, proxy_key), name, name, str(servers.folder / "keys")
    )
    return DockerCli.for_host(hb)


def test_the_tool_runs_exactly_the_providers_ssh_command(servers):
    """After `up` wrote the key files, the tool's ssh command is the provider's, option for option."""
    registered = register(servers, "tool", servers.target.host_key, servers.bastion.host_key)
    config = tool_config(servers, "tool", servers.target.host_key, servers.bastion.host_key)
    hb = host_backup(config, "tool", "tool", str(servers.folder / "keys"))
    assert hb.dial is not None and list(hb.dial) == registered.dial_stdio


def test_the_tool_reaches_the_engine_with_the_pinned_key(servers):
    register(servers, "tool-direct", servers.target.host_key)  # writes the key files, as `up` does
    docker = tool_docker(servers, "tool-direct", servers.target.host_key)
    try:
        version = docker.text(["version", "--format", "{{.Server.APIVersion}}"], "docker version")
    finally:
        docker.close()
    assert re.fullmatch(r"\d+\.\d+\n", version)


def test_the_tool_reaches_the_engine_through_the_jump_host(servers):
    register(servers, "tool-jumped", servers.target.host_key, servers.bastion.host_key)
    docker = tool_docker(servers, "tool-jumped", servers.target.host_key, servers.bastion.host_key)
    try:
        assert docker.text(["version", "--format", "{{.Server.APIVersion}}"], "docker version").strip()
    finally:
        docker.close()


@pytest.mark.parametrize("wrong", ["host", "jump host"])
def test_the_tool_refuses_a_wrong_host_key(servers, wrong):
    name = "tool-wrong-" + wrong.replace(" ", "-")
    host_key = servers.wrong_key if wrong == "host" else servers.target.host_key
    proxy_key = servers.wrong_key if wrong == "jump host" else servers.bastion.host_key
    register(servers, name, servers.target.host_key, servers.bastion.host_key)
    logins = servers.target.log.count("Accepted publickey"), servers.bastion.log.count("Accepted publickey")
    docker = tool_docker(servers, name, host_key, proxy_key)
    try:
        # With ControlPersist the jump ssh's own "Host key verification failed" goes to
        # /dev/null (see test_a_wrong_jump_host_key_is_refused): the outer ssh says the
        # jump closed the connection.
        said = REFUSED if wrong == "host" else "Connection closed"
        with pytest.raises(BackupError, match=f"docker version failed: .*\\(ssh: .*{said}"):
            docker.text(["version"], "docker version")
    finally:
        docker.close()
    after = servers.target.log.count("Accepted publickey"), servers.bastion.log.count("Accepted publickey")
    assert after[0] == logins[0]  # the target never let anyone in
    if wrong == "jump host":
        assert after[1] == logins[1]  # nor did the jump host
