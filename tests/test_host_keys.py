"""SSH host keys in config: no SSH host (or jump host) without a pinned key unless it opts in
to trust on first use; the key forms accepted (a public key, an `ssh-keyscan` line, a hashed
known_hosts line), checked with OpenSSH's own ssh-keygen where it is installed; and the one
command that prints the missing key in the error.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import EXAMPLES, HOST_KEY, assert_one_problem, example_secrets, load_stack_file, run_program

from stacks.checks import validate
from stacks.config import ConfigError
from stacks.config_hosts import parse_host_key, public_host_key

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed"
)

SERVER = {"name": "server", "address": "deploy@server.example.com", "private-key-secret": "server-key"}
SECRETS = {"server-key": "-----BEGIN OPENSSH PRIVATE KEY-----"}
BASTION = {"address": "jump@bastion.example.com:2200", "host-key": HOST_KEY}


def stack(**host: Any) -> dict[str, Any]:
    return {"domain": "lab.example.com", "hosts": [SERVER | host]}


def problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        validate(config)
    return info.value.problems


def keygen(tmp_path: Path, kind: str, bits: str | None = None) -> str:
    """A fresh host key pair made by ssh-keygen; the public line."""
    path = tmp_path / f"host_{kind}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@host", "-f", str(path)]
    subprocess.run(args + (["-b", bits] if bits else []), check=True)
    return (tmp_path / f"host_{kind}.pub").read_text().strip()


# ---- no host key, no SSH ----------------------------------------------------------------


def test_ssh_host_without_a_host_key_is_refused_before_any_resource(tmp_path):
    """The old behaviour (accept-new, no hostKey) is gone: preview stops with the command."""
    assert_one_problem(
        stack(),
        SECRETS,
        str(tmp_path),
        "hosts[0].host-key",
        "print it with `ssh-keyscan -p 22 server.example.com`",
    )


def test_missing_key_message_names_the_port_and_the_opt_in():
    [(path, message)] = problems(stack(address="deploy@server.example.com:2222"))
    assert path == "hosts[0].host-key"
    assert "`ssh-keyscan -p 2222 server.example.com`" in message
    assert "trust-on-first-use: true" in message


@pytest.mark.parametrize("example", ["single-host.yaml", "multi-host.yaml"])
def test_shipped_examples_without_their_host_keys_are_refused(example):
    config = load_stack_file(EXAMPLES / example)
    config["hosts"] = [{k: v for k, v in h.items() if k != "host-key"} for h in config["hosts"]]
    paths = [path for path, _ in problems(config)]
    assert paths == [f"hosts[{i}].host-key" for i in range(len(config["hosts"]))]


def test_trust_on_first_use_is_the_explicit_way_out(tmp_path):
    config = stack(**{"trust-on-first-use": True})
    assert validate(config).hosts[0].trust_on_first_use
    lab = run_program(config, SECRETS, key_dir=str(tmp_path))
    assert len(lab.providers()) == 1


def test_key_and_trust_on_first_use_together_are_refused():
    assert problems(stack(**{"host-key": HOST_KEY, "trust-on-first-use": True})) == [
        ("hosts[0].trust-on-first-use", "set host-key or trust-on-first-use, not both")
    ]


def test_local_host_needs_no_key():
    assert validate({"hosts": [{"name": "local"}]}).hosts[0].host_key is None


@pytest.mark.parametrize(
    "key, value", [("host-key", HOST_KEY), ("trust-on-first-use", True), ("proxy", BASTION)]
)
def test_ssh_settings_on_the_local_host_are_refused(key, value):
    [(path, message)] = problems({"hosts": [{"name": "local", key: value}]})
    assert (path, message) == ("hosts[0]", f"{key} is only for SSH hosts")


# ---- jump hosts ---------------------------------------------------------------------------


def test_jump_host_needs_its_own_key():
    config = stack(**{"host-key": HOST_KEY, "proxy": {"address": "jump@bastion.example.com:2200"}})
    [(path, message)] = problems(config)
    assert path == "hosts[0].proxy.host-key"
    assert "`ssh-keyscan -p 2200 bastion.example.com`" in message


def test_key_of_a_host_behind_a_jump_host_is_printed_from_the_jump_host():
    [(path, message)] = problems(stack(proxy=BASTION))
    assert path == "hosts[0].host-key"
    assert "`ssh -p 2200 jump@bastion.example.com ssh-keyscan -p 22 server.example.com`" in message


def test_jump_host_may_trust_on_first_use_on_its_own():
    config = validate(
        stack(**{"host-key": HOST_KEY, "proxy": {"address": "j@b.example.com", "trust-on-first-use": True}})
    )
    assert config.hosts[0].proxy is not None and config.hosts[0].proxy.trust_on_first_use
    assert not config.hosts[0].trust_on_first_use


def test_jump_host_key_secret_is_a_referenced_secret(tmp_path):
    proxy = BASTION | {"private-key-secret": "bastion-key"}
    assert_one_problem(
        stack(**{"host-key": HOST_KEY, "proxy": proxy}),
        SECRETS,
        str(tmp_path),
        "hosts[0].proxy.private-key-secret",
        "config key 'bastion-key' is not set",
    )


def test_jump_host_address_is_checked():
    [(path, message)] = problems(
        stack(**{"host-key": HOST_KEY, "proxy": {"address": "bastion", "host-key": HOST_KEY}})
    )
    assert (path, message) == ("hosts[0].proxy.address", "'bastion' must be 'user@host[:port]'")


def test_example_secrets_include_the_jump_host_key():
    assert "bastion-ssh-key" in example_secrets(load_stack_file(EXAMPLES / "multi-host.yaml"))


# ---- key forms ------------------------------------------------------------------------------


@needs_ssh_keygen
@pytest.mark.parametrize("kind, bits", [("ed25519", None), ("ecdsa", "384"), ("rsa", "2048")])
def test_real_host_keys_of_each_type_are_accepted(tmp_path, kind, bits):
    line = keygen(tmp_path, kind, bits)
    kind_name, data, _comment = line.split()
    config = validate(stack(**{"host-key": line}))
    assert public_host_key(config.hosts[0].host_key) == f"{kind_name} {data}"


@needs_ssh_keygen
def test_keyscan_and_hashed_known_hosts_lines_are_accepted(tmp_path):
    key = keygen(tmp_path, "ed25519").rsplit(" ", 1)[0]
    known = tmp_path / "known_hosts"
    known.write_text(f"[server.example.com]:2222 {key}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    hashed = known.read_text().strip()
    assert hashed.startswith("|1|")
    for line in (f"[server.example.com]:2222 {key}", hashed):
        config = validate(stack(address="deploy@server.example.com:2222", **{"host-key": line}))
        assert public_host_key(config.hosts[0].host_key) == key


@needs_ssh_keygen
def test_known_hosts_line_for_another_host_is_refused(tmp_path):
    key = keygen(tmp_path, "ed25519").rsplit(" ", 1)[0]
    known = tmp_path / "known_hosts"
    known.write_text(f"other.example.com {key}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    for line in (f"other.example.com {key}", known.read_text().strip(), f"server.example.com {key}"):
        # port 2222: the line for port 22 is not the one for [server.example.com]:2222 either
        assert problems(stack(address="deploy@server.example.com:2222", **{"host-key": line})) == [
            ("hosts[0].host-key", "this known_hosts line is not for '[server.example.com]:2222'")
        ]


def test_known_hosts_patterns_follow_ssh():
    ok = validate(stack(**{"host-key": f"*.example.com,10.0.0.1 {HOST_KEY}"}))
    assert ok.hosts[0].host_key
    assert problems(stack(**{"host-key": f"*.example.com,!server.example.com {HOST_KEY}"}))


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("AAAAC3NzaC1lZDI1NTE5AAAAIHpj6Tcv6KAlrYrgS4aiVp0R4PQZz6gbhBdmR60xRixk", "not a host public key"),
        ("ssh-ed25519 not-base64!", "not valid base64"),
        # An ed25519 key labelled as RSA: the wire form names its real type.
        ("ssh-rsa " + HOST_KEY.split()[1], "not an ssh-rsa public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "not an ssh-ed25519 public key"),
        (f"@cert-authority *.example.com {HOST_KEY}", "@cert-authority lines are not host keys"),
        (f"{HOST_KEY}\n{HOST_KEY}", "give exactly one key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "not a host public key"),
        ("ssh-ed25519-cert-v01@openssh.com AAAA", "not a host public key"),
    ],
)
def test_malformed_host_keys_are_refused(value, fragment):
    [(path, message)] = problems(stack(**{"host-key": value}))
    assert path == "hosts[0].host-key" and fragment in message, message


@needs_ssh_keygen
def test_the_key_sent_on_is_what_ssh_keygen_reads_as_the_same_key(tmp_path):
    """`public_host_key` (pulumi-command's hostKey, our known_hosts) keeps the key itself."""
    line = keygen(tmp_path, "ed25519")
    normalized = tmp_path / "normalized.pub"
    normalized.write_text(public_host_key(f"[h.example.com]:2222 {line}") + "\n")

    def fingerprint(path: Path) -> str:
        result = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(path)], check=True, capture_output=True, text=True
        )
        return result.stdout.split()[1]

    assert fingerprint(normalized) == fingerprint(tmp_path / "host_ed25519.pub")


def test_parse_host_key_splits_patterns_type_and_key():
    assert parse_host_key(f"a.example.com,b {HOST_KEY} c") == ("a.example.com,b", *HOST_KEY.split())
    assert parse_host_key(f"# comment\n{HOST_KEY}\n") == (None, *HOST_KEY.split())
