"""Bad input the generated and mutated configs of issue 23 found: each class used to give a
traceback or slip through, and is now one message with its place (file line, key path or
command-line option), before anything is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import HOST_KEY, cli_here, cli_process

from stacks.checks import validate
from stacks.config import ConfigError, raw_from_pulumi_config

SSH = {"name": "server", "address": "deploy@server.example.com", "host-key": HOST_KEY}


def stack_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(body)
    return path


def problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        validate(config)
    return raised.value.problems


# ---- YAML the stack file cannot hold -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!binary aGVsbG8=", "binary"), ("!!set {a, b}", "set"), ("!!timestamp 2001-12-14", "timestamp")],
)
def test_an_explicit_yaml_tag_is_an_error_at_its_line(tmp_path, value, tag):
    path = stack_file(tmp_path, f"config:\n  homelab:domain: lab.example.com\n  homelab:name: {value}\n")
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert f"line 3, column 17: the explicit tag !!{tag} is not allowed in a stack file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_value_nested_too_deeply_is_an_error_at_its_line(tmp_path):
    deep = "[" * 2000 + "]" * 2000
    path = stack_file(tmp_path, f"config:\n  homelab:custom-services: {deep}\n")
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert "line 2, column 90: nested more than 64 levels deep" in result.stderr
    assert "recursion" not in result.stderr


@pytest.mark.parametrize("levels", [100, 5000])
def test_the_program_reports_a_value_nested_too_deeply_by_its_key(levels):
    """The program gets its config from the Pulumi CLI as JSON text: no RecursionError."""
    with pytest.raises(ConfigError) as raised:
        raw_from_pulumi_config([("homelab:custom-services", "[" * levels + "]" * levels)], [])
    assert raised.value.problems == [("custom-services", "nested more than 64 levels deep")]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("!!int abc", "the value is not an integer"),
        ("!!int ''", "the value is not an integer"),
        ("!!int 0x", "the value is not an integer"),
        ("!!float abc", "the value is not a number"),
        ("!!bool maybe", "the value is not true or false"),
        ("!!map [1]", "map: expected a mapping here"),
        (
            "09",
            "the value is an octal number (it starts with 0) with a digit 8 or 9: drop the 0, or quote it",
        ),
        ("1" * 5000, "the value is a number of more than 4300 digits"),
        (
            "*hunter2",
            "an alias (*name) that no anchor (&name) defines: a text that starts with * must be quoted",
        ),
        ("!hunter2 x", "an unknown tag (!name): a text that starts with ! must be quoted"),
    ],
    ids=[
        "int",
        "int-empty",
        "int-0x",
        "float",
        "bool",
        "map-of-a-list",
        "octal-09",
        "int-of-5000-digits",
        "password-like-an-alias",
        "password-like-a-tag",
    ],  # fmt: skip
)
def test_a_value_its_tag_cannot_read_is_an_error_at_its_line(tmp_path, value, says):
    """PyYAML's constructors raise ValueError, KeyError, IndexError or TypeError for these:
    they were tracebacks of `validate` and of every command that reads a stack file."""
    path = stack_file(tmp_path, f"config:\n  homelab:domain: lab.example.com\n  homelab:name: {value}\n")
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert f"invalid stack file {path}: line 3, column 17: {says}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "hunter2" not in result.stderr and "abc" not in result.stderr  # the value is never quoted


def test_aliases_that_expand_a_file_beyond_a_million_values_are_refused_at_their_line(tmp_path):
    """Nine levels of nine aliases ("billion laughs"): 9**9 values from 12 lines, which took
    36 s and 4 GB to end in MemoryError. Refused from the parse events, before any is built."""
    lines = ["config:", "  homelab:name: lab", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = stack_file(tmp_path, "\n".join([*lines, "  homelab:custom-services: [*a8]", ""]))
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert "line 9, column 17: its aliases expand the file past 1,000,000 values" in result.stderr
    # Aliases as people use them are fine.
    path.write_text("config:\n  other:a: &tags [x, y]\n  homelab:domain: lab.example.com\n  other:b: *tags\n")
    assert cli_here("validate", "--file", str(path)).returncode == 0


def test_a_long_text_aliased_again_and_again_is_refused_too(tmp_path):
    """One 10,000-character text, aliased 10**5 times: 111,111 values but a gigabyte of JSON
    (10.7 s and 4.2 GB before it ended in a config error)."""
    lines = ["config:", "  other:s: &s " + "x" * 10_000, f"  other:l1: &l1 [{', '.join(['*s'] * 10)}]"]
    lines += [f"  other:l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(2, 6)]
    path = stack_file(tmp_path, "\n".join([*lines, "  homelab:custom-services: *l5", ""]))
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert "line 6, column 48: its aliases expand the file past 1,000,000 values" in result.stderr, (
        result.stderr
    )


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path):
    """PyYAML builds a list that holds itself; the JSON encoder then raised `Circular reference
    detected` as a traceback."""
    path = stack_file(tmp_path, "config:\n  homelab:domain: &a [*a]\n")
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert (
        result.stderr
        == f"invalid stack file {path}: line 2, column 23: the alias *a is inside the value &a names\n"
    )


def test_a_folder_given_as_the_stack_file_says_so(tmp_path):
    result = cli_here("validate", "--file", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == f"invalid stack file {tmp_path}: a folder, not a stack file\n"


def test_an_integer_too_long_for_python_inside_a_json_value_is_a_config_error():
    """The Pulumi CLI hands `[1111...]` (5,000 digits) as text; json.loads refuses it with a
    ValueError that is no JSONDecodeError: it was a traceback of the program."""
    with pytest.raises(ConfigError) as raised:
        validate(raw_from_pulumi_config([("homelab:backup", "[" + "1" * 5000 + "]")], [])[0])
    assert [p for p, _ in raised.value.problems] == ["backup"]


def test_a_problem_quoting_a_huge_value_is_shortened():
    problem = f"{'a' * 1_000_000!r} is not a valid DNS domain name"
    message = str(ConfigError([("domain", problem)]))
    assert len(message) < 2100
    assert message.endswith(f"... ({len(problem) - 2000:,} more characters)")


# ---- accepted, but broken --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["...", "-x", "a..b", "999.1.1.1", "[:::::]", "a_b.example.com"])
def test_an_ssh_address_whose_host_is_no_host_is_refused_everywhere(host):
    address = f"deploy@{host}"
    assert [p for p, _ in problems({"hosts": [{**SSH, "address": address}]})] == ["hosts[0].address"]
    jump = {"hosts": [{**SSH, "proxy": {"address": address, "trust-on-first-use": True}}]}
    assert [p for p, _ in problems(jump)] == ["hosts[0].proxy.address"]
    target = {
        "hosts": [{"name": "local", "address": "local"}],
        "backup": {"ssh": {"address": address, "path": "/srv/backups", "private-key-secret": "sftp-key"}},
    }
    found = problems(target)
    assert [p for p, _ in found] == ["backup.ssh.address"], found


def test_a_cron_step_beyond_the_fields_span_is_refused():
    found = problems({"backup": {"schedule": "*/99999999999999999999 * * * *"}})
    assert found == [("backup.schedule", "minute '*/99999999999999999999': a step must be 1-60")]


def test_a_host_name_longer_than_dns_allows_is_refused():
    label = "a" * 63
    domain = ".".join([label, label, label, "b" * 57])  # 249 characters, a valid domain
    assert len(domain) == 249
    found = problems({"domain": domain, "hosts": [{"name": "local", "address": "local"}]})
    paths = {p for p, m in found if "a DNS name has at most 253" in m}
    assert "services.grafana.hostname" in paths  # monitoring.<domain>: 260 characters


def test_a_host_name_whose_certificate_file_name_is_too_long_is_refused():
    label = "a" * 63
    domain = ".".join([label, label, label, "b" * 52])  # 244 characters
    found = problems(
        {
            "domain": domain,
            "hosts": [{"name": "local", "address": "local"}],
            "services": {"landing": {"hostname": "1234567"}},  # 252 characters
        }
    )
    assert any(p == "services.landing.hostname" and "its certificate file" in m for p, m in found), found


# ---- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["a/b", "a\nb", "", "..", "x" * 101])
def test_a_stack_name_pulumi_would_refuse_is_refused_first(stack):
    result = cli_process("validate", "--stack", stack)
    assert result.returncode == 64
    assert "is not a stack name" in result.stderr
    assert "Errno" not in result.stderr


def test_init_from_a_folder_names_the_file_to_give(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "x")
    result = cli_here("init", "--stack", "fresh", "--from", "examples")
    assert result.returncode == 1
    assert "--from examples is a folder: name one stack file in it" in result.stderr
    assert json.dumps("no stack file") not in result.stderr


def test_an_age_recipient_must_be_a_whole_key_with_a_valid_checksum():
    good = "age1x3dukn4zyv2dcgnhl6avqnm7kwrd2au4y3fqx888vs52r27l7fzs8c25we"  # from age-keygen
    validate({"backup": {"age-recipients": [good]}})
    flipped = good[:-1] + "x"
    found = problems({"backup": {"age-recipients": [flipped]}})
    assert found[0][0] == "backup.age-recipients[0]" and "checksum does not hold" in found[0][1], found
    truncated = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdVbGBox2z5oc1BTI7B11ToThP3"
    found = problems({"backup": {"age-recipients": [truncated]}})
    assert "not a whole ssh-ed25519 public key" in found[0][1], found


def test_acme_dns_zones_that_cover_no_name_to_certify_are_refused():
    config = {
        "domain": "lab.example.com",
        "layers": {"platform": True},
        "platform": {
            "kubeconfig-path": "/k",
            "github-owner": "acme",
            "github-token-secret": "gh",
            "gitops": {"repository": "acme/gitops"},
            "components": {"cert-manager": {"enabled": True}},
            "tls": {
                "mode": "acme",
                "acme": {
                    "email": "ops@example.com",
                    "solver": "dns01-cloudflare",
                    "cloudflare-api-token-secret": "cf",
                    "dns-zones": ["other.example.org"],
                },
            },
        },
    }
    found = [(p, m) for p, m in problems(config) if p == "platform.tls.acme.dns-zones"]
    assert found and "cover none of the names to certify (argocd.lab.example.com" in found[0][1]
    config["platform"]["tls"]["acme"]["dns-zones"] = ["lab.example.com"]
    assert not [p for p, _ in problems_or_none(config) if p == "platform.tls.acme.dns-zones"]


def problems_or_none(config: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        validate(config)
    except ConfigError as error:
        return error.problems
    return []


# ---- a secret pasted where its key's name belongs is never quoted back -------------------------

MARKER = "S3CR3T-marker"


@pytest.mark.parametrize(
    "value",
    [
        f"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1{MARKER}\n-----END OPENSSH PRIVATE KEY-----\n",
        f"https://chat.example.com/hooks/{MARKER}",
        f"hunter2!{MARKER}",
        f"ghp_{MARKER}0123456789",  # a name by its characters, a GitHub token by its prefix
        f"AGE-SECRET-KEY-1{MARKER}",
        f"k{MARKER}" * 8,  # longer than any key name
    ],
    ids=["private-key", "webhook-url", "password", "github-token", "age-identity", "long"],
)
def test_a_secret_in_a_secret_key_field_is_refused_without_quoting_it(value):
    """`*-secret` fields name the config key that holds a secret; a user who pastes the secret
    itself there got it printed back (terminal, CI log, --json)."""
    found = problems({"hosts": [{**SSH, "private-key-secret": value}]})
    assert [p for p, _ in found] == ["hosts[0].private-key-secret"], found
    [(_, message)] = found
    assert MARKER not in message and "name the key that holds the secret" in message, message


def test_an_age_private_key_given_as_a_recipient_is_named_so_without_quoting_it():
    found = problems(
        {"backup": {"age-recipients": [f"AGE-SECRET-KEY-1{MARKER}QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"]}}
    )
    [(path, message)] = found
    assert path == "backup.age-recipients[0]" and MARKER not in message
    assert message.startswith("this is a private key: give its public key instead"), message


def test_a_config_option_without_an_equals_sign_is_not_quoted():
    result = cli_here("preview", "--json", "--config", f"homelab:alice-password:{MARKER}")
    assert result.returncode == 64
    assert "expected KEY=VALUE" in result.stderr and MARKER not in result.stderr + result.stdout
