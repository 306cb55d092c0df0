"""A newcomer's path, tested up to the Pulumi CLI boundary (the stack is faked at `open_stack`):
`Pulumi.yaml` pins the local backend the tool uses, `init` creates a stack with the passphrase
provider and asks for each secret its config names, `config set` sets values (encrypted with
--secret), and the CLI is tidy: errors on stderr, a JSON error object with --json, help on
every option, the reason an automatic install failed, destroy's words as the data settings say.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import cli_here
from pulumi import automation as auto

import automation.lifecycle as lifecycle
import automation.workspace as workspace
from automation import cli
from automation.workspace import INSTALL_HELP, StackOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The top-level fields of a Pulumi project file (pulumi/pulumi
# sdk/go/common/workspace/project.json, `properties`; `backend` is {url}).
PROJECT_FIELDS = {
    "name",
    "description",
    "author",
    "website",
    "license",
    "runtime",
    "main",
    "config",
    "stackConfigDir",
    "backend",
    "options",
    "template",
    "packages",
    "plugins",
}


@dataclass
class FakeStack:
    """What `open_stack` returns here: it records config writes and operations."""

    config: list[tuple[str, auto.ConfigValue]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def set_config(self, key: str, value: auto.ConfigValue) -> None:
        self.config.append((key, value))

    def destroy(self, on_event: Any, **kwargs: Any) -> None:
        self.calls.append(("destroy", kwargs))

    def preview(self, on_event: Any, **kwargs: Any) -> None:  # `up` previews first (the guard)
        self.calls.append(("preview", kwargs))

    def up(self, on_event: Any, **kwargs: Any) -> None:
        self.calls.append(("up", kwargs))

    def export_stack(self) -> Any:  # the state the upgrade guard reads: nothing deployed yet
        from pulumi.automation import Deployment

        return Deployment(version=3, deployment={"resources": []})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's Pulumi.yaml in tmp_path, as the CLI's project directory."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    monkeypatch.setattr(cli, "PROJECT_DIR", tmp_path)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct horse")
    return tmp_path


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[StackOptions, str | None, FakeStack]]:
    calls: list[tuple[StackOptions, str | None, FakeStack]] = []

    def fake_open_stack(options: StackOptions, passphrase: str | None) -> FakeStack:
        stack = FakeStack()
        calls.append((options, passphrase, stack))
        return stack

    monkeypatch.setattr(lifecycle, "open_stack", fake_open_stack)
    monkeypatch.setattr(cli, "open_stack", fake_open_stack)
    return calls


# ---- Pulumi.yaml pins the backend the tool uses ------------------------------------------------


def test_pulumi_yaml_pins_the_local_backend_the_tool_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert set(document) <= PROJECT_FIELDS
    assert document["backend"] == {"url": "file://.pulumi-state"}
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    # Bare `pulumi` in the project root and the tool reach the same state.
    assert StackOptions("dev").backend == f"file://{ROOT / '.pulumi-state'}"
    assert workspace.project_backend(ROOT) == f"file://{ROOT / '.pulumi-state'}"
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/state")  # the environment wins, as in Pulumi
    assert StackOptions("dev").backend == "s3://bucket/state"


def test_a_project_without_a_pinned_backend_uses_its_state_folder(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    assert workspace.project_backend(tmp_path) == f"file://{tmp_path / '.pulumi-state'}"
    (tmp_path / "Pulumi.yaml").write_text("name: x\nbackend:\n  url: file://~/state\n")
    assert workspace.project_backend(tmp_path) == "file://~/state"


# ---- init --------------------------------------------------------------------------------------


def test_init_from_an_example_creates_the_stack_and_asks_for_each_secret(
    project: Path, opened: list[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return f"@{key_file}"

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(cli, "_ask_secret", ask)
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "multi-host.yaml"))
    assert result.returncode == 0, result.stderr
    # The example, copied as written (its comments say what to change).
    assert (project / "Pulumi.lab.yaml").read_text() == (EXAMPLES / "multi-host.yaml").read_text()
    [(options, passphrase, stack)] = opened
    assert (options.stack, options.project_dir, passphrase) == ("lab", project, "correct horse")
    assert options.secrets_provider == "passphrase"
    assert options.backend == f"file://{project / '.pulumi-state'}"
    assert [p.split(" ")[0] for p in asked] == ["ops-ssh-key", "apps-ssh-key", "bastion-ssh-key"]
    assert "hosts[0].private-key-secret names it" in asked[0]
    assert [(k, v.value, v.secret) for k, v in stack.config] == [
        ("homelab:ops-ssh-key", key_file.read_text(), True),
        ("homelab:apps-ssh-key", key_file.read_text(), True),
        ("homelab:bastion-ssh-key", key_file.read_text(), True),
    ]
    assert "hosts[1].proxy.private-key-secret names it" in asked[2]
    assert "secrets set: ops-ssh-key, apps-ssh-key, bastion-ssh-key" in result.stdout
    assert "python -m automation up --stack lab" in result.stdout


def test_init_without_a_terminal_lists_the_secrets_still_to_set(project: Path, opened: list[Any]) -> None:
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "single-host.yaml"))
    assert result.returncode == 0, result.stderr
    [(_, _, stack)] = opened
    assert stack.config == []
    assert (
        "still to set: server-ssh-key (hosts[0].private-key-secret names it): "
        "python -m automation config set --secret server-ssh-key --stack lab < FILE"
    ) in result.stdout


def test_init_skips_secrets_the_stack_file_already_holds(project: Path, opened: list[Any]) -> None:
    text = (EXAMPLES / "single-host.yaml").read_text()
    text += "  homelab:server-ssh-key:\n    secure: v1:abc\n  homelab:alerts-webhook:\n    secure: v1:def\n"
    text += "  homelab:alice-password:\n    secure: v1:ghi\n  homelab:bob-password:\n    secure: v1:jkl\n"
    (project / "Pulumi.lab.yaml").write_text(text)
    result = cli_here("init", "--stack", "lab")
    assert result.returncode == 0, result.stderr
    assert "still to set" not in result.stdout
    assert (project / "Pulumi.lab.yaml").read_text() == text


def test_init_never_overwrites_a_stack_file(project: Path, opened: list[Any]) -> None:
    (project / "Pulumi.lab.yaml").write_text("config: {}\n")
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "single-host.yaml"))
    assert result.returncode == 1
    assert "Pulumi.lab.yaml exists already" in result.stderr
    assert (project / "Pulumi.lab.yaml").read_text() == "config: {}\n"
    assert opened == []


def test_init_of_a_stack_without_a_file_says_how_to_start(project: Path, opened: list[Any]) -> None:
    result = cli_here("init", "--stack", "lab")
    assert result.returncode == 1
    assert "--from examples/single-host.yaml" in result.stderr
    assert opened == []


def test_init_from_an_invalid_file_writes_nothing(project: Path, opened: list[Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("config:\n  homelab:domain: bad_domain!\n")
    result = cli_here("init", "--stack", "lab", "--from", str(bad))
    assert result.returncode == 1
    assert "  domain: 'bad_domain!' is not a valid DNS domain name" in result.stderr
    assert not (project / "Pulumi.lab.yaml").exists()
    assert opened == []


def test_init_without_the_pulumi_cli_says_why_the_install_failed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("no route to get.pulumi.com")

    monkeypatch.setattr(auto.PulumiCommand, "install", no_network)
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "single-host.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith(INSTALL_HELP)
    assert "The automatic install failed: no route to get.pulumi.com" in result.stderr


# ---- config set ----------------------------------------------------------------------------------


def test_config_set_secret_encrypts_it(project: Path, opened: list[Any], monkeypatch) -> None:
    shutil.copy(EXAMPLES / "single-host.yaml", project / "Pulumi.lab.yaml")
    monkeypatch.setattr(cli.sys, "stdin", io.StringIO("-----BEGIN KEY-----\nx\n-----END KEY-----\n"))
    result = cli_here("config", "set", "--secret", "server-ssh-key", "--stack", "lab")
    assert result.returncode == 0, result.stderr
    [(_, _, stack)] = opened
    [(key, value)] = stack.config
    assert (key, value.value, value.secret) == (
        "homelab:server-ssh-key",
        "-----BEGIN KEY-----\nx\n-----END KEY-----\n",
        True,
    )
    assert "homelab:server-ssh-key set (encrypted)" in result.stdout


def test_config_set_of_a_setting_is_validated_before_it_is_written(project: Path, opened: list[Any]) -> None:
    shutil.copy(EXAMPLES / "single-host.yaml", project / "Pulumi.lab.yaml")
    result = cli_here("config", "set", "domain", "bad_domain!", "--stack", "lab")
    assert result.returncode == 1
    assert "  domain: 'bad_domain!' is not a valid DNS domain name" in result.stderr
    assert opened == []
    result = cli_here("config", "set", "domain", "home.example.net", "--stack", "lab")
    assert result.returncode == 0, result.stderr
    [(key, value)] = opened[0][2].config
    assert (key, value.value, value.secret) == ("homelab:domain", "home.example.net", False)


@pytest.mark.parametrize("key", ["server-ssh-key", "github-token", "db-password"])
def test_config_set_refuses_a_secret_in_plain_text(project: Path, opened: list[Any], key: str) -> None:
    shutil.copy(EXAMPLES / "single-host.yaml", project / "Pulumi.lab.yaml")
    result = cli_here("config", "set", key, "hunter2", "--stack", "lab")
    assert result.returncode == 1
    assert f"config set --secret {key} --stack lab" in result.stderr
    assert "as text" in result.stderr
    assert opened == []


def test_config_set_secret_refuses_a_setting(project: Path, opened: list[Any]) -> None:
    shutil.copy(EXAMPLES / "single-host.yaml", project / "Pulumi.lab.yaml")
    result = cli_here("config", "set", "--secret", "domain", "x.example.com", "--stack", "lab")
    assert result.returncode == 1
    assert "'domain' is a setting of the stack, not a secret" in result.stderr
    assert opened == []


# ---- --config on an operation: applied, then validated; plain text said ----------------------------


def options_for(project: Path, config: dict[str, str]) -> StackOptions:
    (project / "Pulumi.lab.yaml").write_text("config:\n  homelab:domain: bad_domain!\n")
    return StackOptions("lab", project_dir=project, config=config)


def test_config_values_are_applied_before_the_config_is_validated(project: Path, opened: list[Any]) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = options_for(project, {"domain": "lab.example.com"})  # fixes the file's bad domain
    assert cli.run_operation("up", options, out, err=err) == 0, err.getvalue()
    assert [c for c, _ in opened[0][2].calls] == ["preview", "up"]
    assert "note: --config writes plain text into Pulumi.lab.yaml: domain" in err.getvalue()


def test_a_bad_config_value_stops_the_operation_before_the_stack_opens(
    project: Path, opened: list[Any]
) -> None:
    (project / "Pulumi.lab.yaml").write_text("config: {}\n")
    result = cli_here("up", "--stack", "lab", "--config", "domain=bad_domain!", "--json")
    assert result.returncode == 1
    assert opened == []
    assert json.loads(result.stdout)["error"]["problems"] == [
        {"path": "domain", "message": "'bad_domain!' is not a valid DNS domain name"}
    ]


def test_config_refuses_a_secret(project: Path, opened: list[Any]) -> None:
    shutil.copy(EXAMPLES / "single-host.yaml", project / "Pulumi.lab.yaml")
    result = cli_here("preview", "--stack", "lab", "--config", "server-ssh-key=-----BEGIN")
    assert result.returncode == 1
    assert "'server-ssh-key' is a secret (hosts[0].private-key-secret names it)" in result.stderr
    assert opened == []


# ---- errors, JSON, help ----------------------------------------------------------------------------


def test_errors_go_to_stderr_and_json_gets_an_error_object(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  homelab:domain: bad_domain!\n  homelab:proxy: {colour: red}\n")
    text = cli_here("validate", "--file", str(path))
    assert (text.returncode, text.stdout) == (1, "")
    assert text.stderr.startswith("invalid stack config (2 problem(s)):")
    as_json = cli_here("validate", "--file", str(path), "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {
        "error": {
            "kind": "config",
            "message": text.stderr.strip(),
            "problems": [
                {"path": "domain", "message": "'bad_domain!' is not a valid DNS domain name"},
                {"path": "proxy.colour", "message": "unknown key"},
            ],
        }
    }
    missing = cli_here("validate", "--stack", "nope", "--json")
    assert json.loads(missing.stdout)["error"]["kind"] == "not-found"
    assert "no stack file Pulumi.nope.yaml" in missing.stderr


def test_a_broken_stack_file_is_a_clear_error_on_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  homelab:domain: a.example.com\n  homelab:domain: b.example.com\n")
    result = cli_here("validate", "--file", str(path), "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "config"
    assert "'homelab:domain' appears twice (lines 2 and 3)" in error["message"]
    assert "Traceback" not in result.stderr


def _actions(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _actions(sub, f"{prefix}{name} ")
        elif not isinstance(action, argparse._HelpAction):
            found.append((f"{prefix}{'/'.join(action.option_strings) or action.dest}", action))
    return found


def test_every_option_has_help() -> None:
    actions = _actions(cli._parser())
    assert len(actions) > 30
    assert [name for name, action in actions if not (action.help or "").strip()] == []


# ---- destroy's words follow the data settings ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "before", "after", "extra"),
    [
        ({}, "are kept with their data", "were retained with their data", {}),
        ({"delete-on-destroy": True}, "will be DELETED with their data", "were deleted with their data", {}),
        ({"protect": True}, "are protected (data.protect is on)", "were kept", {"exclude_protected": True}),
    ],
    ids=["default", "delete-on-destroy", "protect"],
)
def test_destroy_says_what_happens_to_the_volumes(
    project: Path, opened: list[Any], monkeypatch: pytest.MonkeyPatch, data, before, after, extra
) -> None:
    (project / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {"homelab:data": data}}))
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_operation(
        "destroy", StackOptions("lab", project_dir=project), out, interactive=True, err=err
    )
    assert code == 0
    assert before in err.getvalue()  # the question: on stderr, never in the results on stdout
    assert after in out.getvalue()
    assert opened[0][2].calls == [("destroy", extra)]


def test_destroy_with_json_keeps_stdout_json_only(
    project: Path, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json is for scripts: no prompt on stdout (it needs --yes, even at a terminal), and the
    note on the kept volumes goes to stderr; stdout parses line by line."""
    (project / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {}}))
    monkeypatch.setattr("sys.stdin", None)  # never read: --json needs --yes
    options = StackOptions("lab", project_dir=project)
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation("destroy", options, out, interactive=True, json_lines=True, err=err) == 1
    assert json.loads(out.getvalue())["error"]["kind"] == "refused" and opened == []
    assert "--yes" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation("destroy", options, out, yes=True, json_lines=True, err=err) == 0
    assert all(json.loads(line) is not None for line in out.getvalue().splitlines())
    assert "Stateful volumes were retained" in err.getvalue()


def test_the_readme_path_uses_commands_the_cli_has() -> None:
    """Every `python -m automation ...` line of the README's path parses (no drift)."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    path = readme.split("## From a clone to your own running stack", 1)[1].split("\n## ", 1)[0]
    commands = [
        shlex.split(line.split("#")[0].split("<")[0])[3:]
        for line in path.splitlines()
        if line.startswith("venv/bin/python -m automation ")
    ]
    assert [c[0] for c in commands] == ["init", "config", "config", "validate", "up", "destroy"]
    for command in commands:
        cli._parser().parse_args(command)
    assert "--from" in commands[0] and (ROOT / commands[0][commands[0].index("--from") + 1]).is_file()


def test_init_without_a_passphrase_says_where_it_comes_from(
    project: Path, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "single-host.yaml"))
    assert result.returncode == 1
    assert "set PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert opened == []
    # Nothing written: the same command, with the passphrase, then creates the stack.
    assert not (project / "Pulumi.lab.yaml").exists()


def test_a_stack_the_cli_cannot_open_is_one_line_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulumi.automation import CommandResult

    def refuse(**kwargs: Any) -> None:
        result = CommandResult(stdout="", stderr="error: incorrect passphrase\n", code=255)
        raise auto.errors.CommandError(result)

    monkeypatch.setattr(auto, "create_or_select_stack", refuse)
    monkeypatch.setattr(workspace, "pulumi_command", lambda install=True: None)
    result = cli_here("init", "--stack", "lab", "--from", str(EXAMPLES / "single-host.yaml"))
    assert result.returncode == 1
    assert result.stderr == "pulumi could not open stack 'lab': error: incorrect passphrase\n"


def test_a_comment_file_in_no_folder_is_refused_before_the_preview(project: Path, opened: list[Any]) -> None:
    """It was written after the preview: a failed one then printed two error objects, a good
    one lost its report."""
    from automation.preflight import GuardOptions

    (project / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {}}))
    where = project / "no-such-folder" / "comment.md"
    with pytest.raises(FileNotFoundError, match="there is no folder"):
        cli.run_operation(
            "preview",
            StackOptions("lab", project_dir=project),
            io.StringIO(),
            guard_options=GuardOptions(comment=where),
        )
    assert opened == []
