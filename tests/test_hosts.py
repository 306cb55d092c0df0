"""Docker hosts: one provider per host (SSH or the local socket), the SSH key file it uses,
the bootstrap command that prepares an SSH host, and every Docker resource landing on the
provider of its own host.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from harness import (
    EXAMPLES,
    ROOT,
    example_secrets,
    is_secret,
    load_stack_file,
    plain_strings,
    provider_schema,
    run_program,
)

import components.docker.host as host_module
from components.docker.host import HostArgs, JumpHost, SshTarget
from components.docker.ssh import dial_stdio_command
from stacks.checks import validate
from stacks.plan import build_plan

COMMAND = "command:remote:Command"
DOCKER_TYPES = {
    "docker:index/container:Container",
    "docker:index/volume:Volume",
    "docker:index/network:Network",
    "docker:index/remoteImage:RemoteImage",
}
MULTI_HOST = EXAMPLES / "multi-host.yaml"
SSH_HOSTS = {
    "ops": ("ssh://deploy@ops.lab.example.com:22", "ops.lab.example.com", 22, "/opt/homelab"),
    "apps": ("ssh://deploy@apps.lab.example.com:2222", "apps.lab.example.com", 2222, "/srv/homelab"),
}

# The ed25519 host keys pinned in examples/multi-host.yaml.
HOST_KEYS = {
    host: next(
        h.get("proxy", {}).get("host-key") if host == "bastion" else h["host-key"]
        for h in load_stack_file(MULTI_HOST)["hosts"]
        if h["name"] == ("apps" if host == "bastion" else host)
    )
    for host in ("ops", "apps", "bastion")
}

needs_shellcheck = pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed"
)


# ---- helpers --------------------------------------------------------------------------


def run(config: dict, key_dir: Path):
    return run_program(config, example_secrets(config), key_dir=str(key_dir))


def multi_config(**overrides) -> dict:
    return load_stack_file(MULTI_HOST) | overrides


def with_host(config: dict, name: str, **changes) -> dict:
    hosts = [h | changes if h["name"] == name else h for h in config["hosts"]]
    return config | {"hosts": hosts}


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


def ssh_opts(provider) -> list[str]:
    """The provider's sshOpts (provider inputs arrive JSON-encoded)."""
    value = provider.inputs.get("sshOpts")
    return json.loads(value) if isinstance(value, str) else list(value or [])


def option(provider, name: str) -> list[str]:
    """The values of `-o name=value` in the provider's sshOpts."""
    opts = ssh_opts(provider)
    return [
        opts[i + 1].partition("=")[2]
        for i, flag in enumerate(opts[:-1])
        if flag == "-o" and opts[i + 1].partition("=")[0] == name
    ]


def key_file(provider) -> Path:
    (path,) = option(provider, "IdentityFile")
    return Path(path)


def bootstraps(lab) -> dict[str, object]:
    # Remote commands ending otherwise are the services' pre-upgrade backups.
    return {
        r.name.removesuffix("-bootstrap"): r for r in lab.of_type(COMMAND) if r.name.endswith("-bootstrap")
    }


def triggers(lab) -> dict[str, list]:
    return {host: r.inputs["triggers"] for host, r in bootstraps(lab).items()}


def host_of(resource) -> str:
    """The homelab host a Docker resource belongs to, from its labels or its name."""
    if resource.type.endswith(":Network"):
        return resource.name.removesuffix("-network")
    if resource.type.endswith(":RemoteImage"):
        return resource.name.split("-image-", 1)[0]
    return labels(resource)["homelab.host"]


def stub_commands(folder: Path, log: Path, groups: str) -> None:
    """Stand-ins for the system commands the bootstrap calls; each logs its arguments."""
    folder.mkdir(exist_ok=True)
    stubs = {
        "id": f'case "$1" in -u) echo 0 ;; -nG) echo {shlex.quote(groups)} ;; esac',
        "getent": "exit 2",  # no docker group yet
        "docker": "exit 0",  # installed and answering
        "systemctl": "exit 0",
        "groupadd": "exit 0",
        "usermod": "exit 0",
        "sleep": "exit 0",
    }
    for name, body in stubs.items():
        path = folder / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(log))}\n{body}\n')
        path.chmod(0o755)


def run_bootstrap(
    script: str, root: Path, tmp_path: Path, groups: str = "deploy"
) -> tuple[subprocess.CompletedProcess, str]:
    """Run the rendered script with its ROOT moved to `root` and the system commands stubbed."""
    script, count = re.subn(r"^ROOT=.*$", f"ROOT={shlex.quote(str(root))}", script, flags=re.M)
    assert count == 1
    daemon_json = shlex.quote(str(tmp_path / "etc-docker" / "daemon.json"))
    script, count = re.subn(r"^DAEMON_JSON=.*$", f"DAEMON_JSON={daemon_json}", script, flags=re.M)
    assert count == 1  # never the machine's own /etc/docker
    log = tmp_path / "calls.log"
    log.touch()
    stubs = tmp_path / "bin"
    stub_commands(stubs, log, groups)
    (tmp_path / "bootstrap.sh").write_text(script)
    result = subprocess.run(
        ["sh", str(tmp_path / "bootstrap.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": str(tmp_path)},
    )
    return result, log.read_text()


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def multi(key_dir):
    return run(multi_config(), key_dir)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    return run(load_stack_file(ROOT / "Pulumi.dev.yaml"), tmp_path_factory.mktemp("dev-keys"))


# ---- providers and keys ---------------------------------------------------------------


def test_one_docker_provider_per_host(multi):
    providers = multi.providers()
    assert {name: p.inputs["host"] for name, p in providers.items()} == {
        f"{host}-docker": url for host, (url, *_) in SSH_HOSTS.items()
    }


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_ssh_opts_use_the_host_key_file(multi, key_dir, host):
    provider = multi.providers()[f"{host}-docker"]
    assert key_file(provider) == key_dir / f"{host}.key"
    assert option(provider, "IdentitiesOnly") == ["yes"]
    assert option(provider, "BatchMode") == ["yes"]
    # The port travels in the host URL, which docker/cli turns into `-p PORT`.
    assert "-p" not in ssh_opts(provider)
    assert provider.inputs["host"].endswith(f":{SSH_HOSTS[host][2]}")


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_ssh_opts_check_the_pinned_host_key_strictly(multi, key_dir, host):
    provider = multi.providers()[f"{host}-docker"]
    assert option(provider, "StrictHostKeyChecking") == ["yes"]
    assert option(provider, "GlobalKnownHostsFile") == ["/dev/null"]
    (known_hosts,) = option(provider, "UserKnownHostsFile")
    assert Path(known_hosts) == key_dir / f"{host}.known_hosts"
    _, hostname, port, _ = SSH_HOSTS[host]
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    assert f"{name} {HOST_KEYS[host]}\n" in Path(known_hosts).read_text()
    assert not any("accept-new" in o for o in ssh_opts(provider))


def test_known_hosts_holds_the_pinned_keys_only(multi, key_dir):
    assert (key_dir / "ops.known_hosts").read_text() == f"ops.lab.example.com {HOST_KEYS['ops']}\n"
    assert (key_dir / "apps.known_hosts").read_text() == (
        f"[apps.lab.example.com]:2222 {HOST_KEYS['apps']}\nbastion.lab.example.com {HOST_KEYS['bastion']}\n"
    )


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_ssh_opts_share_one_connection_per_host(multi, key_dir, host):
    provider = multi.providers()[f"{host}-docker"]
    assert option(provider, "ControlMaster") == ["auto"]
    assert option(provider, "ControlPersist") == ["60s"]
    (path,) = option(provider, "ControlPath")
    assert Path(path).parent == key_dir / "cm"
    assert stat.S_IMODE((key_dir / "cm").stat().st_mode) == 0o700
    # ssh binds "<path>.<16 characters>" first; macOS allows 104 bytes in a socket path.
    assert len(path) + 17 < 104


def control_paths(lab) -> dict[str, str]:
    return {name: option(p, "ControlPath")[0] for name, p in lab.providers().items()}


def test_control_paths_differ_per_host_and_per_stack(multi, key_dir):
    paths = control_paths(multi)
    assert len(set(paths.values())) == len(paths)
    other = run_program(multi_config(), example_secrets(multi_config()), stack="prod", key_dir=str(key_dir))
    assert set(control_paths(other).values()).isdisjoint(paths.values())
    assert control_paths(run(multi_config(), key_dir)) == paths  # stable across runs


def test_a_new_pin_never_reuses_a_connection_made_under_the_old_one(multi, key_dir):
    changed = run(with_host(multi_config(), "ops", **{"host-key": HOST_KEYS["bastion"]}), key_dir)
    assert control_paths(changed)["ops-docker"] != control_paths(multi)["ops-docker"]
    assert control_paths(changed)["apps-docker"] == control_paths(multi)["apps-docker"]


def test_dial_stdio_command_is_the_one_docker_cli_runs():
    """docker/cli v28.5.2 cli/connhelper: `-l`/`-p` from the URL, the provider's options,
    `-o ConnectTimeout=30` and `-T` appended, then `--`, the host and the remote command."""
    assert dial_stdio_command("ssh://deploy@apps.example.com:2222", ["-o", "BatchMode=yes"]) == [
        "ssh",
        "-l",
        "deploy",
        "-p",
        "2222",
        "-o",
        "BatchMode=yes",
        "-o ConnectTimeout=30",
        "-T",
        "--",
        "apps.example.com",
        "docker system dial-stdio",
    ]
    command = dial_stdio_command("ssh://root@[fd00::1]:22", ["-o", "ConnectTimeout=5", "-T"])
    assert command[-6:] == ["-o", "ConnectTimeout=5", "-T", "--", "fd00::1", "docker system dial-stdio"]


def test_component_refuses_an_unpinned_host_without_the_opt_in():
    """Config validation stops this first; the component does not rely on it."""
    target = SshTarget("deploy", "ops.lab.example.com")
    with pytest.raises(ValueError, match="host ops: no host key, and trust on first use is off"):
        HostArgs("ops", target).check_host_keys()
    jump = JumpHost(SshTarget("jump", "bastion.example.com"))
    with pytest.raises(ValueError, match=r"host ops \(jump host\): no host key"):
        HostArgs("ops", target, host_key=HOST_KEYS["ops"], proxy=jump).check_host_keys()
    HostArgs("ops", target, trust_on_first_use=True).check_host_keys()


def test_ipv6_host_url_has_brackets():
    args = HostArgs("v6", SshTarget("deploy", "fd00::1", 2222))
    assert args.docker_host == "ssh://deploy@[fd00::1]:2222"
    assert args.ssh is not None and args.ssh.known_hosts_name == "[fd00::1]:2222"


@pytest.fixture
def short_base(monkeypatch):
    """A stand-in for /tmp as the base of the short socket folder (short, and our own)."""
    base = Path(tempfile.mkdtemp(prefix="hl", dir="/tmp"))
    monkeypatch.setattr(host_module, "SHORT_SOCKET_BASE", base)
    yield base
    shutil.rmtree(base)


def test_sockets_move_to_a_short_private_folder_when_the_key_dir_is_long(tmp_path, short_base):
    deep = tmp_path / ("k" * 80)
    paths = control_paths(run(multi_config(), deep))
    folder = short_base / f"homelab-ssh-{os.getuid()}"
    assert {Path(p).parent for p in paths.values()} == {folder}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # The keys and known_hosts stay in the key directory.
    assert (deep / "ops.known_hosts").is_file()


def test_a_short_socket_folder_others_can_open_is_refused(tmp_path, short_base):
    folder = short_base / f"homelab-ssh-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(ValueError, match="only you can open"):
        run(multi_config(), tmp_path / ("k" * 80))


def test_key_dir_ssh_would_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="HOMELAB_SSH_KEY_DIR"):
        run(multi_config(), tmp_path / "my keys")


def test_host_without_a_jump_host_has_no_ssh_config(multi):
    provider = multi.providers()["ops-docker"]
    assert "-F" not in ssh_opts(provider)
    assert option(provider, "ProxyJump") == []


def test_jump_host_reaches_the_docker_provider_through_its_own_config(multi, key_dir):
    provider = multi.providers()["apps-docker"]
    opts = ssh_opts(provider)
    config = Path(opts[opts.index("-F") + 1])
    assert config == key_dir / "apps.ssh_config"
    assert option(provider, "ProxyJump") == ["homelab-apps-jump"]
    lines = [line.strip() for line in config.read_text().splitlines() if not line.startswith("#")]
    assert lines == [
        "Host homelab-apps-jump",
        "HostName bastion.lab.example.com",
        "Port 22",
        "User jump",
        "BatchMode yes",
        "StrictHostKeyChecking yes",
        f"UserKnownHostsFile {key_dir / 'apps.known_hosts'}",
        "GlobalKnownHostsFile /dev/null",
        "CheckHostIP no",
        f"IdentityFile {key_dir / 'apps.proxy.key'}",
        "IdentitiesOnly yes",
    ]
    proxy_key = key_dir / "apps.proxy.key"
    assert proxy_key.read_text() == "MOCKSECRET-config-bastion-ssh-key\n"
    assert stat.S_IMODE(proxy_key.stat().st_mode) == 0o600


def test_trust_on_first_use_is_explicit(tmp_path):
    config = with_host(multi_config(), "ops", **{"host-key": None, "trust-on-first-use": True})
    config["hosts"] = [{k: v for k, v in h.items() if v is not None} for h in config["hosts"]]
    lab = run(config, tmp_path)
    provider = lab.providers()["ops-docker"]
    assert option(provider, "StrictHostKeyChecking") == ["accept-new"]
    assert option(provider, "UserKnownHostsFile") == []  # OpenSSH's own ~/.ssh/known_hosts
    assert "hostKey" not in bootstraps(lab)["ops"].inputs["connection"]
    # The other host keeps its pin.
    assert option(lab.providers()["apps-docker"], "StrictHostKeyChecking") == ["yes"]


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_key_file_holds_the_secret_with_mode_0600(multi, host):
    path = key_file(multi.providers()[f"{host}-docker"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"MOCKSECRET-config-{host}-ssh-key\n"


def test_key_never_reaches_provider_inputs(multi):
    for provider in multi.providers().values():
        assert [p for p, text in plain_strings(provider.raw_inputs) if "MOCKSECRET-config" in text] == []


def test_existing_key_file_is_made_0600(tmp_path):
    (tmp_path / "ops.key").write_text("old\n")
    (tmp_path / "ops.key").chmod(0o644)
    run(multi_config(), tmp_path)
    assert stat.S_IMODE((tmp_path / "ops.key").stat().st_mode) == 0o600


def test_providers_wait_for_the_bootstrap(multi):
    commands = bootstraps(multi)
    for host in SSH_HOSTS:
        assert commands[host].urn in multi.providers()[f"{host}-docker"].dependencies


# ---- bootstrap ------------------------------------------------------------------------


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_bootstrap_connects_with_a_secret_key(multi, host):
    command = bootstraps(multi)[host]
    _, hostname, port, _ = SSH_HOSTS[host]
    connection = command.inputs["connection"]
    assert (connection["host"], connection["port"], connection["user"]) == (hostname, port, "deploy")
    assert connection["privateKey"] == f"MOCKSECRET-config-{host}-ssh-key"
    assert is_secret(command, "connection.privateKey")
    assert [p for p, text in plain_strings(command.raw_inputs) if "MOCKSECRET" in text] == []


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_bootstrap_pins_the_host_key(multi, host):
    assert bootstraps(multi)[host].inputs["connection"]["hostKey"] == HOST_KEYS[host]


def test_bootstrap_goes_through_the_jump_host(multi):
    assert "proxy" not in bootstraps(multi)["ops"].inputs["connection"]
    command = bootstraps(multi)["apps"]
    proxy = command.inputs["connection"]["proxy"]
    # (The SDK adds its defaults dialErrorLimit and perDialTimeout.)
    assert {k: v for k, v in proxy.items() if k not in ("dialErrorLimit", "perDialTimeout")} == {
        "host": "bastion.lab.example.com",
        "port": 22,
        "user": "jump",
        "hostKey": HOST_KEYS["bastion"],
        "privateKey": "MOCKSECRET-config-bastion-ssh-key",
    }
    assert is_secret(command, "connection.proxy.privateKey")


def test_host_key_given_as_a_known_hosts_line_is_sent_as_the_key(tmp_path):
    line = f"[apps.lab.example.com]:2222 {HOST_KEYS['apps']} comment"
    lab = run(with_host(multi_config(), "apps", **{"host-key": line}), tmp_path)
    assert bootstraps(lab)["apps"].inputs["connection"]["hostKey"] == HOST_KEYS["apps"]
    assert f"[apps.lab.example.com]:2222 {HOST_KEYS['apps']}\n" in (tmp_path / "apps.known_hosts").read_text()


def test_ssh_inputs_are_in_the_provider_schemas(multi):
    """hostKey and proxy are pulumi-command v1.2.1 connection fields; sshOpts a list of strings
    (the reduced provider schemas, derived into tests/data/providers)."""
    command_types = provider_schema("command")["types"]
    connection = set(command_types["command:remote:Connection"]["properties"])
    proxy = set(command_types["command:remote:ProxyConnection"]["properties"])
    for command in bootstraps(multi).values():
        inputs = command.inputs["connection"]
        assert {"hostKey"} <= set(inputs) <= connection
        assert set(inputs.get("proxy", {})) <= proxy
    docker_provider = provider_schema("docker")["provider"]["inputProperties"]
    assert docker_provider["sshOpts"] == {"items": {"type": "string"}, "type": "array"}


def test_one_bootstrap_per_ssh_host(multi):
    assert sorted(bootstraps(multi)) == sorted(SSH_HOSTS)


@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_bootstrap_script_content(multi, host):
    script = bootstraps(multi)[host].inputs["create"]
    root = SSH_HOSTS[host][3]
    assert f"ROOT={root}\n" in script and "DEPLOY_USER=deploy\n" in script
    for installer in ("apt-get install", "dnf install", "yum install"):
        assert installer in script, installer
    assert 'mkdir -p "$ROOT/config" "$ROOT/data/secrets"' in script
    assert 'chmod 0700 "$ROOT/data/secrets"' in script
    assert 'usermod -aG docker "$DEPLOY_USER"' in script
    assert "set -eu" in script


@needs_shellcheck
@pytest.mark.parametrize("host", sorted(SSH_HOSTS))
def test_bootstrap_passes_shellcheck_warnings(multi, host, tmp_path):
    path = tmp_path / "bootstrap.sh"
    path.write_text(bootstraps(multi)[host].inputs["create"])
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-S", "warning", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


@needs_shellcheck
def test_bootstrap_passes_shellcheck(multi, tmp_path):
    path = tmp_path / "bootstrap.sh"
    path.write_text(bootstraps(multi)["ops"].inputs["create"])
    result = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_bootstrap_prepares_the_host(multi, tmp_path):
    root = tmp_path / "lab root"
    result, calls = run_bootstrap(bootstraps(multi)["apps"].inputs["create"], root, tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((root / "data" / "secrets").stat().st_mode) == 0o700
    assert (root / "config").is_dir() and (root / "data").is_dir()
    assert "groupadd docker" in calls.splitlines()
    assert "usermod -aG docker deploy" in calls.splitlines()
    assert "systemctl enable --now docker" in calls.splitlines()
    assert "host ready" in result.stdout


def test_bootstrap_sets_rotated_logs_as_the_daemon_default(multi, tmp_path):
    """Issue 26: where Docker has no daemon.json, the bootstrap writes one whose logs rotate
    as this stack's containers do; Docker was there already, so it is not restarted."""
    root = tmp_path / "root"
    result, calls = run_bootstrap(bootstraps(multi)["ops"].inputs["create"], root, tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "etc-docker" / "daemon.json").read_text())
    assert written == {"log-driver": "local", "log-opts": {"max-file": "5", "max-size": "20m"}}
    assert "systemctl restart docker" not in calls.splitlines()
    assert "logs of new containers rotate (local driver)" in result.stdout


@pytest.mark.parametrize(
    ("existing", "warns"),
    [('{"data-root": "/srv/docker"}\n', True), ('{"log-driver": "journald"}\n', False)],
    ids=["without-log-driver", "with-log-driver"],
)
def test_bootstrap_never_rewrites_a_users_daemon_json(multi, tmp_path, existing, warns):
    path = tmp_path / "etc-docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text(existing)
    result, calls = run_bootstrap(bootstraps(multi)["ops"].inputs["create"], tmp_path / "root", tmp_path)
    assert result.returncode == 0, result.stderr
    assert path.read_text() == existing
    assert ("sets no log-driver" in result.stderr) is warns
    assert not any(line.startswith("systemctl restart") for line in calls.splitlines())


def test_the_daemon_default_follows_the_config(tmp_path):
    config = multi_config()
    config["logs"] = {"driver": "json-file", "max-size": "50m", "max-file": 2}
    script = bootstraps(run(config, tmp_path))["ops"].inputs["create"]
    assert '{"log-driver": "json-file", "log-opts": {"max-file": "2", "max-size": "50m"}}' in script


def test_bootstrap_runs_again_safely(multi, tmp_path):
    script = bootstraps(multi)["ops"].inputs["create"]
    root = tmp_path / "root"
    first, _ = run_bootstrap(script, root, tmp_path, groups="deploy docker")
    second, calls = run_bootstrap(script, root, tmp_path, groups="deploy docker")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert not any(line.startswith("usermod") for line in calls.splitlines())  # already a member
    assert stat.S_IMODE((root / "data" / "secrets").stat().st_mode) == 0o700


# ---- bootstrap triggers ---------------------------------------------------------------


def test_triggers_are_stable_across_runs(multi, tmp_path):
    assert triggers(run(multi_config(), tmp_path)) == triggers(multi)


def test_triggers_change_with_the_host_root(multi, tmp_path):
    changed = triggers(run(with_host(multi_config(), "apps", root="/srv/other"), tmp_path))
    assert changed["apps"] != triggers(multi)["apps"]
    assert changed["ops"] == triggers(multi)["ops"]


def test_triggers_ignore_how_the_host_is_reached(multi, tmp_path):
    """A new host key or jump host changes the connection, not what the bootstrap does."""
    config = with_host(multi_config(), "ops", **{"host-key": HOST_KEYS["bastion"]})
    config = with_host(
        config, "apps", proxy={"address": "other@jump.example.com", "trust-on-first-use": True}
    )
    assert triggers(run(config, tmp_path)) == triggers(multi)


def test_triggers_ignore_unrelated_services(multi, tmp_path):
    config = multi_config()
    config["services"] = config["services"] | {"web": {"enabled": False, "host": "apps"}}
    assert triggers(run(config, tmp_path)) == triggers(multi)


# ---- the local dev stack --------------------------------------------------------------


def test_dev_stack_uses_the_local_socket(dev):
    providers = dev.providers()
    assert list(providers) == ["local-docker"]
    assert providers["local-docker"].inputs["host"] == "unix:///var/run/docker.sock"
    assert not ssh_opts(providers["local-docker"])


def test_dev_stack_runs_no_remote_command(dev):
    assert dev.of_type(COMMAND) == []


# ---- every resource on its own host ---------------------------------------------------


@pytest.mark.parametrize("stack", ["multi", "dev"])
def test_docker_resources_use_their_hosts_provider(request, stack):
    lab = request.getfixturevalue(stack)
    urns = {name.removesuffix("-docker"): p.urn for name, p in lab.providers().items()}
    resources = [r for r in lab.resources if r.type in DOCKER_TYPES]
    assert {r.type for r in resources} == DOCKER_TYPES
    wrong = [
        (r.name, host_of(r)) for r in resources if not (r.provider or "").startswith(urns[host_of(r)] + "::")
    ]
    assert wrong == []


def test_containers_land_on_their_planned_host(multi):
    plan = build_plan(validate(multi_config()))
    planned = {(spec.host, f"homelab-{c.name}") for spec in plan.services for c in spec.containers}
    # and the one-shot stager of each container that reads files
    planned |= {(s.host, f"homelab-{c.name}-files") for s in plan.services for c in s.containers if c.uploads}
    actual = {(host_of(c), c.inputs["name"]) for c in multi.of_type("docker:index/container:Container")}
    assert actual == planned
    assert {host for host, _ in actual} == set(SSH_HOSTS)


def test_each_host_has_its_own_network_and_images(multi):
    networks = {host_of(r) for r in multi.of_type("docker:index/network:Network")}
    assert networks == set(SSH_HOSTS)
    plan = build_plan(validate(multi_config()))
    planned = {(spec.host, c.image) for spec in plan.services for c in spec.containers}
    pulled = {(host_of(r), r.inputs["name"]) for r in multi.of_type("docker:index/remoteImage:RemoteImage")}
    assert pulled == planned
