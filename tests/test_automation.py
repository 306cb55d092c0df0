"""The `automation/` package: offline validation, the Automation API wiring up to the CLI
boundary, live progress from engine events, deployment traces and backup/restore runs.

The Pulumi CLI is not needed: the stack is faked at `open_stack`, and the engine events are
a recorded sequence built with `pulumi.automation.events`.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import cli_here, cli_process
from pulumi.automation import CommandResult, events
from pulumi.automation import errors as auto_errors

import automation.workspace as workspace
from automation import backup as backups
from automation import cli
from automation import validate as offline
from automation.backup import BackupError, HostBackup, host_backup
from automation.progress import Progress
from automation.traces import DeploymentTrace, export
from automation.workspace import INSTALL_HELP, MissingCliError, StackOptions, open_stack
from components.docker.service import volume_name
from stacks.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))

# The secrets each example names (key path in the error, config key).
EXAMPLE_SECRETS = {
    "apps.yaml": [
        ("platform.kubeconfig-secret", "kubeconfig"),
        ("platform.github-token-secret", "github-token"),
        ("platform.tls.acme.cloudflare-api-token-secret", "cloudflare-token"),
        ("apps[2].secret-env.STRIPE_KEY", "shop-stripe-key"),
        ("notifications.webhook-url-secret", "mattermost-webhook"),
    ],
    "multi-host.yaml": [
        ("hosts[0].private-key-secret", "ops-ssh-key"),
        ("hosts[1].private-key-secret", "apps-ssh-key"),
        ("hosts[1].proxy.private-key-secret", "bastion-ssh-key"),
    ],
    "platform.yaml": [
        ("platform.kubeconfig-secret", "kubeconfig"),
        ("platform.github-token-secret", "github-token"),
        ("platform.components.argocd.sso.client-secret-secret", "github-oauth-secret"),
        ("platform.tls.nodes[0].private-key-secret", "node-ssh-key"),
        ("platform.tls.nodes[1].private-key-secret", "node-ssh-key"),
    ],
    "single-host.yaml": [
        ("hosts[0].private-key-secret", "server-ssh-key"),
        ("monitoring.alerting.receiver.url-secret", "alerts-webhook"),
        ("identity.users[0].password-secret", "alice-password"),
        ("identity.users[1].password-secret", "bob-password"),
    ],
}


def write_stack(directory: Path, config: dict[str, Any], name: str = "Pulumi.test.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


# ---- 1. validate ------------------------------------------------------------------------


def test_validate_dev_prints_the_plan() -> None:
    result = cli_process("validate", "--stack", "dev")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "layers: homelab" in out
    assert "hosts:\n  local: local\n" in out
    assert "services:" in out
    assert "  portainer (Portainer) on local: routes infra.localhost; volumes portainer-data" in out
    assert "  grafana (Grafana) on local: routes monitoring.localhost; volumes grafana-data" in out
    assert "mysql" not in out  # off unless enabled
    assert "  landing (LandingPage) on local: routes home.localhost\n" in out
    assert "backup-local (BackupSchedule) on local" in out
    assert "Traceback" not in result.stderr


def test_validate_dev_json() -> None:
    result = cli_here("validate", "--stack", "dev", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["layers"] == {"homelab": True, "platform": False, "apps": False}
    assert plan["hosts"] == {"local": "local"}
    services = {s["name"]: s for s in plan["services"]}
    assert services["grafana"]["routes"] == ["monitoring.localhost"]
    assert services["grafana"]["volumes"] == ["grafana-data"]
    assert services["grafana"]["host"] == "local"
    assert "mysql" not in services
    assert all(s["images"] for s in plan["services"])
    assert plan["urls"] == {
        "portainer": "https://infra.localhost/",
        "grafana": "https://monitoring.localhost/",
        "prometheus": "https://metrics.localhost/",
        "alertmanager": "https://alerts.localhost/",
        "landing": "https://home.localhost/",
    }


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_every_example_validates_as_a_template(example: str) -> None:
    result = cli_here("validate", "--file", f"examples/{example}", "--allow-missing-secrets")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("layers: homelab")
    as_json = cli_here("validate", "--file", f"examples/{example}", "--allow-missing-secrets", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["services"]


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_every_example_without_its_secrets_fails_naming_them(example: str) -> None:
    result = cli_here("validate", "--file", f"examples/{example}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "invalid stack config" in result.stderr
    assert f"({len(EXAMPLE_SECRETS[example])} problem(s))" in result.stderr
    for path, key in EXAMPLE_SECRETS[example]:
        assert f"  {path}: config key {key!r} is not set" in result.stderr


def test_example_secrets_table_covers_every_example() -> None:
    assert sorted(EXAMPLE_SECRETS) == EXAMPLE_FILES


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"homelab:whatever": 1}, "  whatever: unknown key"),
        ({"homelab:proxy": {"bogus": 1}}, "  proxy.bogus: unknown key"),
        ({"homelab:services": {"grafana": {"colour": "red"}}}, "  services.grafana.colour: unknown key"),
        ({"homelab:domain": "bad_domain!"}, "  domain: 'bad_domain!' is not a valid DNS domain name"),
        ({"homelab:proxy": {"http-port": 70000}}, "  proxy.http-port: Input should be less than or equal"),
        (
            {"homelab:hosts": [{"name": "h", "address": "me@h.example.com:99999"}]},
            "  hosts[0].address: 'me@h.example.com:99999': port 99999 is out of range",
        ),
        (
            {
                "homelab:custom-services": [
                    {"name": "x", "image": "nginx:1", "routes": [{"hostname": "x", "port": 0}]}
                ]
            },
            "  custom-services[0].routes[0].port: Input should be greater than or equal to 1",
        ),
    ],
    ids=["unknown-top-level", "unknown-nested", "unknown-service-key", "domain", "port", "ssh-port", "route"],
)
def test_bad_config_names_the_key_path(tmp_path: Path, config: dict[str, Any], expected: str) -> None:
    path = write_stack(tmp_path, config)
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert "invalid stack config" in result.stderr
    assert expected in result.stderr


def test_missing_stack_is_a_clear_error() -> None:
    result = cli_here("validate", "--stack", "no-such-stack")
    assert result.returncode == 1
    assert result.stderr.strip() == f"no stack file Pulumi.no-such-stack.yaml in {ROOT}"
    assert result.stdout == ""


def test_missing_stack_file_given_with_file_is_an_error(tmp_path: Path) -> None:
    result = cli_here("validate", "--file", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "no stack file absent.yaml" in result.stderr


def test_missing_stack_file_message_names_where_it_looked(tmp_path: Path) -> None:
    result = cli_here("validate", "--file", str(tmp_path / "absent.yaml"))
    assert str(tmp_path) in result.stderr


PLATFORM = {
    "homelab:layers": {"homelab": True, "platform": True},
    "homelab:platform": {
        "kubeconfig-secret": "kubeconfig",
        "github-owner": "acme",
        "github-token-secret": "github-token",
        "gitops": {"repository": "acme/gitops"},
        "tls": {"mode": "acme", "acme": {"email": "ops@acme.example", "solver": "http01"}},
    },
}


def test_secure_values_count_as_secrets(tmp_path: Path) -> None:
    path = write_stack(
        tmp_path,
        {
            **PLATFORM,
            "homelab:kubeconfig": {"secure": "v1:abc"},
            "homelab:github-token": {"secure": "v1:def"},
        },
    )
    stack = offline.read_stack_file(path)
    assert {"homelab:kubeconfig", "homelab:github-token"} <= stack.secret_keys
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert "platform:" in result.stdout
    config = offline.load(tmp_path, "test", path)
    assert config.platform is not None and config.platform.kubeconfig_secret == "kubeconfig"


def test_a_plain_value_does_not_satisfy_a_secret_reference(tmp_path: Path) -> None:
    path = write_stack(
        tmp_path,
        {**PLATFORM, "homelab:kubeconfig": "apiVersion: v1", "homelab:github-token": {"secure": "v1:x"}},
    )
    result = cli_here("validate", "--file", str(path))
    assert result.returncode == 1
    assert "  platform.kubeconfig-secret: config key 'kubeconfig' must be set with --secret" in result.stderr
    # Present but plain is wrong even for a template.
    result = cli_here("validate", "--file", str(path), "--allow-missing-secrets")
    assert result.returncode == 1
    assert "must be set with --secret" in result.stderr


def test_a_model_key_given_as_secure_is_rejected(tmp_path: Path) -> None:
    path = write_stack(tmp_path, {"homelab:domain": {"secure": "v1:abc"}})
    result = cli_here("validate", "--file", str(path), "--allow-missing-secrets")
    assert result.returncode == 1
    assert "  domain: holds a secret; keep secrets in their own keys" in result.stderr
    nested = write_stack(tmp_path, {"homelab:tls": {"ca-common-name": {"secure": "v1:abc"}}}, "n.yaml")
    result = cli_here("validate", "--file", str(nested), "--allow-missing-secrets")
    assert result.returncode == 1
    assert "  tls: holds a secret" in result.stderr


def test_platform_components_are_listed_by_their_config_keys() -> None:
    plan = cli.validate(file=EXAMPLES / "platform.yaml", require_secrets=False)
    assert "cert-manager" in plan["platform"]["components"]


# ---- 2. Automation API wiring -----------------------------------------------------------


def test_stack_options_default_to_the_local_file_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    assert StackOptions("dev").backend == f"file://{ROOT / '.pulumi-state'}"
    options = StackOptions("dev", project_dir=tmp_path)
    assert options.backend == f"file://{tmp_path / '.pulumi-state'}"
    assert options.secrets_provider == "passphrase"
    env = options.env_vars("s3cret")
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / '.pulumi-state'}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "s3cret"
    assert "PULUMI_CONFIG_PASSPHRASE" not in options.env_vars(None)
    assert options.env_vars("")["PULUMI_CONFIG_PASSPHRASE"] == ""  # an empty passphrase is one


def test_stack_options_honour_the_environment_and_an_explicit_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state-bucket/homelab")
    options = StackOptions("dev", project_dir=tmp_path)
    assert options.backend == "s3://state-bucket/homelab"
    assert options.env_vars(None)["PULUMI_BACKEND_URL"] == "s3://state-bucket/homelab"
    explicit = StackOptions("dev", project_dir=tmp_path, backend_url="file:///srv/state")
    assert explicit.backend == "file:///srv/state"
    assert explicit.env_vars("p")["PULUMI_BACKEND_URL"] == "file:///srv/state"


def test_passphrase_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "from-env")
    assert workspace.passphrase_from_env_or_prompt(False) == "from-env"
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", "/run/secrets/pass")
    assert workspace.passphrase_from_env_or_prompt(True) is None  # the CLI reads the file itself
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE")
    assert workspace.passphrase_from_env_or_prompt(False) is None
    monkeypatch.setattr(workspace.getpass, "getpass", lambda prompt: "typed")
    assert workspace.passphrase_from_env_or_prompt(True) == "typed"


@dataclass
class RecordingStack:
    config: list[tuple[str, Any]] = field(default_factory=list)

    def set_config(self, key: str, value: Any) -> None:
        self.config.append((key, value))


def test_open_stack_wires_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    calls: list[dict[str, Any]] = []
    stack = RecordingStack()
    command = object()

    def fake_create_or_select_stack(**kwargs: Any) -> RecordingStack:
        calls.append(kwargs)
        return stack

    monkeypatch.setattr(auto, "create_or_select_stack", fake_create_or_select_stack)
    monkeypatch.setattr(workspace, "pulumi_command", lambda install=True: command)
    options = StackOptions(
        "staging", project_dir=tmp_path, config={"domain": "lab.example.com", "other:key": "v"}
    )
    assert open_stack(options, "pw") is stack

    assert len(calls) == 1
    call = calls[0]
    assert call["stack_name"] == "staging"
    assert call["work_dir"] == str(tmp_path)
    opts = call["opts"]
    assert isinstance(opts, auto.LocalWorkspaceOptions)
    assert opts.work_dir == str(tmp_path)
    assert opts.secrets_provider == "passphrase"
    assert opts.pulumi_command is command
    assert opts.env_vars == {
        "PULUMI_BACKEND_URL": f"file://{tmp_path / '.pulumi-state'}",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_CONFIG_PASSPHRASE": "pw",
    }
    assert (tmp_path / ".pulumi-state").is_dir()  # the file backend exists before the CLI runs
    keys = {key: value for key, value in stack.config}
    assert set(keys) == {"homelab:domain", "other:key"}
    assert isinstance(keys["homelab:domain"], auto.ConfigValue)
    assert keys["homelab:domain"].value == "lab.example.com"
    assert keys["homelab:domain"].secret is False


def test_cli_config_values_reach_set_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    seen: dict[str, Any] = {}

    class Stack(RecordingStack):
        def preview(self, on_event: Any) -> None:
            seen["config"] = list(self.config)

    monkeypatch.setattr(auto, "create_or_select_stack", lambda **kwargs: Stack())
    monkeypatch.setattr(workspace, "pulumi_command", lambda install=True: None)
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'state'}")
    out = io.StringIO()
    code = cli.main(["preview", "--stack", "dev", "--config", "domain=lab.example.com"], out=out)
    assert code == 0, out.getvalue()
    [(key, value)] = seen["config"]
    assert key == "homelab:domain" and value.value == "lab.example.com"


def test_config_without_a_value_is_a_usage_error() -> None:
    err = io.StringIO()
    code = cli.main(["preview", "--stack", "dev", "--config", "domain"], out=io.StringIO(), err=err)
    assert code == cli.USAGE_ERROR and "expected KEY=VALUE" in err.getvalue()


def test_no_cli_on_path_and_no_install_is_missing_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    monkeypatch.setenv("PATH", "/nonexistent")

    def no_install(*args: Any, **kwargs: Any) -> None:
        raise OSError("no network")

    monkeypatch.setattr(auto.PulumiCommand, "install", no_install)
    with pytest.raises(MissingCliError) as error:
        workspace.pulumi_command()
    assert "Pulumi CLI is not installed" in str(error.value)
    with pytest.raises(MissingCliError):
        workspace.pulumi_command(install=False)


def test_cli_vanishing_mid_call_is_missing_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    def vanished(**kwargs: Any) -> None:
        raise FileNotFoundError("pulumi")

    monkeypatch.setattr(auto, "create_or_select_stack", vanished)
    monkeypatch.setattr(workspace, "pulumi_command", lambda install=True: None)
    with pytest.raises(MissingCliError, match="Pulumi CLI is not installed"):
        open_stack(StackOptions("dev", project_dir=tmp_path, backend_url="file://" + str(tmp_path)), None)


def no_cli_env(tmp_path: Path) -> dict[str, str]:
    env = {
        "PATH": "/nonexistent",
        "HOME": str(tmp_path),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
    }
    for name in ("PYTHONPATH", "LANG", "LC_ALL", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def test_missing_cli_gives_the_install_message_and_exit_2(tmp_path: Path) -> None:
    """End to end, in a fresh process: no CLI on PATH, and the automatic install fails too."""
    result = cli_process("up", "--stack", "dev", env=no_cli_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(INSTALL_HELP.strip() + "\nThe automatic install failed: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def no_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process without a Pulumi CLI: none on PATH, and installing one fails."""
    from pulumi import automation as auto

    for name, value in no_cli_env(tmp_path).items():
        monkeypatch.setenv(name, value)

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("no network")

    monkeypatch.setattr(auto.PulumiCommand, "install", no_network)
    return tmp_path


@pytest.mark.parametrize("command", [["preview"], ["refresh"], ["outputs"], ["destroy", "--yes"]])
def test_every_operation_stops_at_the_missing_cli(no_cli: Path, command: list[str]) -> None:
    result = cli_here(*command, "--stack", "dev")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == INSTALL_HELP + "\nThe automatic install failed: no network\n"


def test_destroy_without_yes_and_without_a_terminal_refuses(no_cli: Path) -> None:
    # No CLI: touching Pulumi would exit 2 with the install message instead.
    tmp_path = no_cli
    result = cli_here("destroy", "--stack", "dev")
    assert result.returncode == 1
    assert result.stderr == "destroy needs --yes when not run from a terminal\n"
    assert result.stdout == ""
    assert not (tmp_path / "state").exists()


def test_destroy_refusal_happens_before_opening_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_open(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("open_stack called")

    monkeypatch.setattr(cli, "open_stack", must_not_open)
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation("destroy", StackOptions("dev"), out, yes=False, interactive=False, err=err) == 1
    assert "destroy needs --yes" in err.getvalue() and out.getvalue() == ""
    for typed in ("n\n", ""):  # "no", and the end of input
        monkeypatch.setattr("sys.stdin", io.StringIO(typed))
        err = io.StringIO()
        assert (
            cli.run_operation("destroy", StackOptions("dev"), out, yes=False, interactive=True, err=err) == 1
        )
        assert "[y/N] nothing destroyed" in err.getvalue() and out.getvalue() == ""


# ---- 3. progress --------------------------------------------------------------------------

PREFIX = "urn:pulumi:dev::homelab::homelab:index:Host$"
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"


def urn(type_: str, name: str) -> str:
    return f"{PREFIX}{type_}::{name}"


def meta(op: str, type_: str, name: str) -> events.StepEventMetadata:
    return events.StepEventMetadata(op=events.OpType(op), urn=urn(type_, name), type=type_, provider="docker")


def pre(op: str, type_: str, name: str) -> events.EngineEvent:
    return events.EngineEvent(0, 0, resource_pre_event=events.ResourcePreEvent(meta(op, type_, name)))


def outputs(op: str, type_: str, name: str) -> events.EngineEvent:
    return events.EngineEvent(0, 0, res_outputs_event=events.ResOutputsEvent(meta(op, type_, name)))


FAILURE = "docker: Error response from daemon: port 5432 is already allocated"

# (clock time, event): a create, an update, a same step, a failing create, the summary.
RECORDED: list[tuple[float, events.EngineEvent]] = [
    (100.0, pre("create", CONTAINER, "grafana")),
    (100.5, pre("update", VOLUME, "grafana-data")),
    (101.0, outputs("update", VOLUME, "grafana-data")),
    (102.0, outputs("create", CONTAINER, "grafana")),
    (102.0, pre("same", NETWORK, "homelab")),
    (102.0, outputs("same", NETWORK, "homelab")),
    (103.0, pre("create", CONTAINER, "postgres")),
    (
        103.25,
        events.EngineEvent.from_json(
            {
                "sequence": 9,
                "timestamp": 0,
                "diagnosticEvent": {
                    "urn": urn(CONTAINER, "postgres"),
                    "message": f"  {FAILURE}\n",
                    "color": "never",
                    "severity": "error",
                },
            }
        ),
    ),
    (
        103.5,
        events.EngineEvent.from_json(
            {
                "sequence": 10,
                "timestamp": 0,
                "resOpFailedEvent": {
                    "metadata": {
                        "op": "create",
                        "urn": urn(CONTAINER, "postgres"),
                        "type": CONTAINER,
                        "provider": "docker",
                    },
                    "status": 0,
                    "steps": 2,
                },
            }
        ),
    ),
    (
        104.0,
        events.EngineEvent(
            0,
            0,
            summary_event=events.SummaryEvent(
                maybe_corrupt=False,
                duration_seconds=7,
                resource_changes={events.OpType.CREATE: 1, events.OpType.UPDATE: 1, events.OpType.SAME: 1},
                policy_packs={},
            ),
        ),
    ),
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(progress: Progress, clock: Clock, upto: int | None = None) -> None:
    for now, event in RECORDED[:upto]:
        clock.now = now
        progress(event)


def test_progress_counts_and_running_list_mid_way() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out=out, clock=clock)
    replay(progress, clock, upto=2)
    assert (progress.done, progress.total) == (0, 2)
    assert [s.name for s in progress.running] == ["grafana", "grafana-data"]
    assert [s.op for s in progress.running] == ["create", "update"]
    replay_rest = RECORDED[2:3]
    for now, event in replay_rest:
        clock.now = now
        progress(event)
    assert (progress.done, progress.total) == (1, 2)
    assert [s.name for s in progress.running] == ["grafana"]
    assert progress.failures == []


def test_progress_lines_and_failures() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out=out, clock=clock)
    replay(progress, clock)
    assert (progress.done, progress.total) == (4, 4)
    assert progress.running == []
    assert out.getvalue().splitlines() == [
        f"[0/1] create   {CONTAINER} grafana ...",
        f"[0/2] update   {VOLUME} grafana-data ...",
        f"[1/2] update   {VOLUME} grafana-data done (0.5s)",
        f"[2/2] create   {CONTAINER} grafana done (2.0s)",
        f"[3/4] create   {CONTAINER} postgres ...",
        f"[4/4] create   {CONTAINER} postgres FAILED (0.5s): {FAILURE}",
    ]
    [failed] = progress.failures
    assert (failed.name, failed.result, failed.message) == ("postgres", "failed", FAILURE)
    assert progress.summary == {"create": 1, "update": 1, "same": 1}
    assert progress.duration == 7


def test_progress_summary_table() -> None:
    clock = Clock()
    progress = Progress(out=io.StringIO(), clock=clock)
    replay(progress, clock)
    lines = progress.render_summary().splitlines()
    assert lines[0].split() == ["operation", "resource", "type", "result", "seconds"]
    rows = [line.split() for line in lines[1:4]]
    assert rows == [
        ["create", "grafana", CONTAINER, "ok", "2.0"],
        ["update", "grafana-data", VOLUME, "ok", "0.5"],
        ["create", "postgres", CONTAINER, "failed", "0.5"],
    ]
    assert not any("homelab" in line.split()[1:2] for line in lines[1:4])  # `same` is not a change
    assert lines[4] == "4/4 resources; create 1, same 1, update 1; 7s"
    assert lines[5] == f"FAILED postgres: {FAILURE}"
    assert len(lines) == 6


def test_progress_summary_without_changes() -> None:
    progress = Progress(out=io.StringIO(), clock=Clock())
    assert progress.render_summary().splitlines()[-1] == "0/0 resources; no changes"


def test_failure_without_diagnostic_still_says_failed() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out=out, clock=clock)
    progress(RECORDED[8][1])  # resOpFailed with no pre event and no diagnostic
    [failed] = progress.failures
    assert failed.message == "failed"
    assert "postgres FAILED (0.0s): failed" in out.getvalue()


def json_records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_progress_json_lines() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out=out, json_lines=True, clock=clock)
    replay(progress, clock)
    records = json_records(out.getvalue())
    assert all(r["op"] != "same" for r in records)
    done = [r for r in records if r["phase"] == "done"]
    assert done == [
        {
            "phase": "done",
            "op": "update",
            "type": VOLUME,
            "name": "grafana-data",
            "result": "ok",
            "seconds": 0.5,
            "done": 1,
            "total": 2,
        },
        {
            "phase": "done",
            "op": "create",
            "type": CONTAINER,
            "name": "grafana",
            "result": "ok",
            "seconds": 2.0,
            "done": 2,
            "total": 2,
        },
        {
            "phase": "done",
            "op": "create",
            "type": CONTAINER,
            "name": "postgres",
            "result": "failed",
            "seconds": 0.5,
            "done": 4,
            "total": 4,
            "message": FAILURE,
        },
    ]
    assert all("message" not in r for r in records if r["result"] != "failed")


def test_progress_json_lines_one_object_per_step() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out=out, json_lines=True, clock=clock)
    replay(progress, clock)
    assert [r["name"] for r in json_records(out.getvalue())] == ["grafana-data", "grafana", "postgres"]


# ---- 4. deployment traces -----------------------------------------------------------------


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def recorded_progress() -> Progress:
    clock = Clock()
    progress = Progress(out=io.StringIO(), clock=clock)
    replay(progress, clock)
    return progress


def test_trace_payload() -> None:
    progress = recorded_progress()
    trace = DeploymentTrace("up", "dev", "homelab-test", started=1_700_000_000.0)
    payload = trace.payload(progress, 1_700_000_010.0, ok=False)
    [resource_spans] = payload["resourceSpans"]
    assert attributes(resource_spans["resource"]) == {"service.name": "homelab-test"}
    [scope] = resource_spans["scopeSpans"]
    spans = scope["spans"]
    assert len(spans) == 1 + len(progress.steps) == 5
    roots = [s for s in spans if "parentSpanId" not in s]
    [root] = roots
    assert root["name"] == "pulumi up dev"
    assert root["status"]["code"] == 2
    assert attributes(root)["pulumi.resources"] == "4"
    assert attributes(root)["pulumi.failures"] == "1"
    assert {s["traceId"] for s in spans} == {trace.trace_id}
    assert len(trace.trace_id) == 32
    assert len({s["spanId"] for s in spans}) == 5
    children = [s for s in spans if s is not root]
    assert all(s["parentSpanId"] == root["spanId"] for s in children)
    by_name = {attributes(s)["pulumi.resource.name"]: s for s in children}
    assert set(by_name) == {"grafana", "grafana-data", "homelab", "postgres"}
    grafana = attributes(by_name["grafana"])
    assert grafana["pulumi.resource.type"] == CONTAINER
    assert grafana["pulumi.operation"] == "create"
    assert grafana["pulumi.result"] == "ok"
    assert grafana["pulumi.duration_ms"] == "2000"
    assert grafana["pulumi.resource.urn"] == urn(CONTAINER, "grafana")
    assert attributes(by_name["homelab"])["pulumi.operation"] == "same"
    assert by_name["grafana"]["status"] == {"code": 1}
    failed = by_name["postgres"]
    assert failed["status"] == {"code": 2, "message": FAILURE}
    assert attributes(failed)["pulumi.result"] == "failed"
    assert attributes(failed)["pulumi.duration_ms"] == "500"
    # Step times are anchored to the trace start and lie within the root span.
    starts = {n: int(s["startTimeUnixNano"]) for n, s in by_name.items()}
    assert starts["grafana"] == int(root["startTimeUnixNano"])
    for span in children:
        assert int(root["startTimeUnixNano"]) <= int(span["startTimeUnixNano"])
        assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
        assert int(span["endTimeUnixNano"]) <= int(root["endTimeUnixNano"])
    assert int(by_name["grafana"]["endTimeUnixNano"]) - starts["grafana"] == pytest.approx(2e9, abs=1e3)


def test_trace_payload_ok_root() -> None:
    payload = DeploymentTrace("destroy", "prod").payload(Progress(out=io.StringIO()), 0.0, ok=True)
    [root] = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert root["status"] == {"code": 1}
    assert root["name"] == "pulumi destroy prod"
    assert attributes(payload["resourceSpans"][0]["resource"]) == {"service.name": "homelab-deployments"}


@dataclass
class Received:
    path: str
    content_type: str
    body: Any


@pytest.fixture
def otlp_server() -> Iterator[tuple[str, list[Received]]]:
    """A real OTLP/HTTP-ish receiver on 127.0.0.1, random port."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            received.append(Received(self.path, self.headers.get("Content-Type", ""), json.loads(body)))
            reply = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_export_posts_json_to_v1_traces(otlp_server: tuple[str, list[Received]]) -> None:
    endpoint, received = otlp_server
    payload = DeploymentTrace("up", "dev").payload(recorded_progress(), 0.0, ok=True)
    export(endpoint + "/", payload)
    [request] = received
    assert request.path == "/v1/traces"
    assert request.content_type == "application/json"
    assert request.body == payload


class FakeStack:
    """What `open_stack` returns: its operations feed the recorded events to `on_event`."""

    def __init__(self, recorded: list[tuple[float, events.EngineEvent]], fail: bool = False) -> None:
        self.recorded = recorded
        self.fail = fail
        self.calls: list[str] = []

    def _run(self, operation: str, on_event: Any) -> None:
        self.calls.append(operation)
        for _, event in self.recorded:
            on_event(event)
        if self.fail and operation != "preview":  # `up` previews first, for the guard
            raise auto_errors.CommandError(
                CommandResult(stdout="", stderr="error: update failed\n", code=255)
            )

    def up(self, on_event: Any, **kwargs: Any) -> None:
        self._run("up", on_event)

    def export_stack(self) -> Any:  # the state the upgrade guard reads: nothing deployed yet
        from pulumi.automation import Deployment

        return Deployment(version=3, deployment={"resources": []})

    def preview(self, on_event: Any, **kwargs: Any) -> None:
        self._run("preview", on_event)

    def destroy(self, on_event: Any) -> None:
        self._run("destroy", on_event)


def traced_project(tmp_path: Path, endpoint: str, stack: str = "traced") -> StackOptions:
    write_stack(
        tmp_path,
        {
            "homelab:deployment-traces": {"otlp-endpoint": endpoint, "service-name": "homelab-test"},
        },
        f"Pulumi.{stack}.yaml",
    )
    return StackOptions(stack, project_dir=tmp_path)


# The same run without the failing resource: its first six events and the summary.
SUCCESS = [*RECORDED[:6], RECORDED[-1]]


def open_fake(monkeypatch: pytest.MonkeyPatch, stack: FakeStack) -> list[tuple[StackOptions, Any]]:
    opened: list[tuple[StackOptions, Any]] = []

    def fake_open_stack(options: StackOptions, passphrase: Any) -> FakeStack:
        opened.append((options, passphrase))
        return stack

    monkeypatch.setattr(cli, "open_stack", fake_open_stack)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    return opened


def test_run_operation_exports_a_trace_and_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, otlp_server: tuple[str, list[Received]]
) -> None:
    endpoint, received = otlp_server
    stack = FakeStack(SUCCESS)
    opened = open_fake(monkeypatch, stack)
    options = traced_project(tmp_path, endpoint)
    out = io.StringIO()
    assert cli.run_operation("up", options, out) == 0, out.getvalue()
    assert stack.calls == ["preview", "up"]  # the guard's preview first
    assert opened == [(options, "pw")]
    text = out.getvalue()
    assert "operation resource" in text
    assert "3/3 resources; create 1, same 1, update 1; 7s" in text
    assert "FAILED" not in text
    [request] = received
    assert request.path == "/v1/traces"
    assert request.content_type == "application/json"
    [resource_spans] = request.body["resourceSpans"]
    assert attributes(resource_spans["resource"]) == {"service.name": "homelab-test"}
    spans = resource_spans["scopeSpans"][0]["spans"]
    assert len(spans) == 4
    [root] = [s for s in spans if "parentSpanId" not in s]
    assert root["name"] == "pulumi up traced"
    assert root["status"] == {"code": 1}


def test_run_operation_with_a_failing_step_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, otlp_server: tuple[str, list[Received]]
) -> None:
    endpoint, received = otlp_server
    open_fake(monkeypatch, FakeStack(RECORDED, fail=True))
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation("up", traced_project(tmp_path, endpoint), out, err=err) == 1
    text = out.getvalue()
    assert "up failed: " in err.getvalue() and "error: update failed" in err.getvalue()
    assert f"FAILED postgres: {FAILURE}" in text
    assert "4/4 resources; create 1, same 1, update 1; 7s" in text
    [request] = received
    spans = request.body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    [root] = [s for s in spans if "parentSpanId" not in s]
    assert root["status"]["code"] == 2
    failed = [s for s in spans if s["status"]["code"] == 2 and s is not root]
    assert [attributes(s)["pulumi.resource.name"] for s in failed] == ["postgres"]


def test_failed_step_without_command_error_still_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, otlp_server: tuple[str, list[Received]]
) -> None:
    endpoint, _ = otlp_server
    open_fake(monkeypatch, FakeStack(RECORDED, fail=False))
    out = io.StringIO()
    assert cli.run_operation("up", traced_project(tmp_path, endpoint), out) == 1
    assert f"FAILED postgres: {FAILURE}" in out.getvalue()


def test_preview_sends_no_trace_and_json_lines_skip_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, otlp_server: tuple[str, list[Received]]
) -> None:
    endpoint, received = otlp_server
    open_fake(monkeypatch, FakeStack(SUCCESS))
    out = io.StringIO()
    assert cli.run_operation("preview", traced_project(tmp_path, endpoint), out, json_lines=True) == 0
    assert received == []
    records = json_records(out.getvalue())  # every line is JSON: no summary table
    assert {r["name"] for r in records} == {"grafana", "grafana-data"}


def test_unreachable_trace_endpoint_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    open_fake(monkeypatch, FakeStack(SUCCESS))
    out, err = io.StringIO(), io.StringIO()
    endpoint = f"http://127.0.0.1:{port}"
    assert cli.run_operation("destroy", traced_project(tmp_path, endpoint), out, yes=True, err=err) == 0
    assert f"could not send the deployment trace to {endpoint}" in err.getvalue()
    assert "Stateful volumes were retained" in out.getvalue()


def test_outputs_hide_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi.automation import OutputValue

    class Stack:
        def outputs(self) -> dict[str, Any]:
            return {"url": OutputValue("https://home.localhost/", False), "pw": OutputValue("x", True)}

    monkeypatch.setattr(cli, "open_stack", lambda options, passphrase: Stack())
    write_stack(tmp_path, {}, "Pulumi.o.yaml")
    out = io.StringIO()
    assert cli.run_operation("outputs", StackOptions("o", project_dir=tmp_path), out) == 0
    assert json.loads(out.getvalue()) == {"pw": "[secret]", "url": "https://home.localhost/"}
    out = io.StringIO()
    cli.run_operation("outputs", StackOptions("o", project_dir=tmp_path), out, show_secrets=True)
    assert json.loads(out.getvalue())["pw"] == "x"


# ---- 5. backup / restore (the real-engine runs are in tests/test_restore.py) ---------------


def example(name: str) -> Any:
    return offline.load(ROOT, "unused", path=EXAMPLES / name, require_secrets=False)


def expected_entries(config: Any, host: str) -> tuple[set[str], set[str]]:
    """(volume names, owning containers) of every stateful volume on `host`, from the plan."""
    volumes, owners = set(), set()
    for spec in build_plan(config).on_host(host):
        for container, volume in spec.stateful_volumes:
            volumes.add(volume_name(config.name, spec, volume))
            owners.add(f"{config.name}-{container.name}")
    return volumes, owners


CASES = [
    ("single-host.yaml", "server", "ssh://deploy@server.lab.example.com:22", "/srv/backups/homelab"),
    ("multi-host.yaml", "ops", "ssh://deploy@ops.lab.example.com:22", "/opt/homelab/backups"),
    ("multi-host.yaml", "apps", "ssh://deploy@apps.lab.example.com:2222", "/srv/homelab/backups"),
]


@pytest.mark.parametrize(("file", "host", "docker_host", "directory"), CASES)
def test_host_backup_comes_from_the_plan(file: str, host: str, docker_host: str, directory: str) -> None:
    config = example(file)
    volumes, owners = expected_entries(config, host)
    assert volumes and owners
    hb = host_backup(config, host)
    assert hb.docker_host == docker_host
    assert hb.directory == directory
    assert {e.volume for e in hb.entries} == volumes and len(hb.entries) == len(volumes)
    assert {e.container for e in hb.entries} == owners
    assert hb.container == "homelab-backup"
    assert hb.archive_prefix == f"homelab-{host}-"
    assert hb.image == "offen/docker-volume-backup:v2.48.2"


def test_host_backup_knows_the_services_of_each_host() -> None:
    config = example("multi-host.yaml")
    ops, apps = host_backup(config, "ops"), host_backup(config, "apps")
    assert {e.container for e in ops.entries} == {
        "homelab-alertmanager",
        "homelab-grafana",
        "homelab-portainer",
        "homelab-prometheus",
    }
    assert "homelab_mysql_data" in {e.volume for e in apps.entries}
    assert "homelab_metrics_demo_html" in {e.volume for e in apps.entries}  # custom service volume
    assert not {e.volume for e in ops.entries} & {e.volume for e in apps.entries}
    assert [e.volume for e in apps.select("mysql")] == ["homelab_mysql_data"]
    with pytest.raises(BackupError, match="service 'grafana' has no stateful volume on host 'apps'"):
        apps.select("grafana")


def test_local_host_uses_the_docker_socket() -> None:
    hb = host_backup(offline.load(ROOT, "dev"), "local")
    assert hb.docker_host == "unix:///var/run/docker.sock"
    assert hb.directory == "/opt/homelab/backups"


def test_unknown_host_is_a_backup_error() -> None:
    with pytest.raises(BackupError, match="unknown host 'nas'.*server"):
        host_backup(example("single-host.yaml"), "nas")


@pytest.mark.parametrize("command", ["backup", "backups"])
def test_unknown_host_through_the_cli_is_exit_1(command: str) -> None:
    result = cli_here(command, "--host", "nas", "--stack", "dev")
    assert result.returncode == 1
    assert "unknown host 'nas' (hosts: local)" in result.stderr


def test_restore_needs_an_archive() -> None:
    result = cli_process("restore", "--host", "local")
    assert result.returncode == 64 and "--archive" in result.stderr


def test_backups_without_a_local_directory_says_where_to_look(tmp_path: Path) -> None:
    config = {
        "homelab:backup": {
            "local": False,
            "s3": {"bucket": "lab-backups", "access-key-id-secret": "k", "secret-access-key-secret": "s"},
        }
    }
    path = write_stack(tmp_path, config)
    result = cli_here("backups", "--host", "local", "--file", str(path))
    assert result.returncode == 1
    assert "host 'local' keeps no archives (backup.local is off)" in result.stderr


class FakeDocker(backups.DockerCli):
    """Records calls; answers `ps`, `volume inspect`, `stop`, `start`, `exec` from tables."""

    def __init__(
        self,
        users: dict[str, list[str]],
        unstoppable: tuple[str, ...] = (),
        free_kib: int = 99_999_999,
        leftover: str = "",
    ) -> None:
        super().__init__("unix:///fake.sock")
        self.users, self.unstoppable = users, unstoppable
        self.free_kib, self.leftover = free_kib, leftover
        self.calls: list[list[str]] = []
        self.stopped: set[str] = set()

    def run(self, args: Any, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
        args = list(args)
        self.calls.append(args)
        code, out = 0, b""
        if args[0] == "ps" and args[-3].startswith("name="):  # a restore helper left behind
            out = self.leftover.encode()
        elif args[0] == "ps":  # the users of any of the volumes filtered on
            names = {n for a in args if a.startswith("volume=") for n in self.users.get(a[7:], [])}
            out = "\n".join(sorted(names)).encode()
        elif args[0] == "inspect":  # running: all but what `stop` stopped
            names = [a for a in args[3:]]
            out = "".join(f"/{n} {str(n not in self.stopped).lower()}\n" for n in names).encode()
        elif args[0] == "run" and args[-1].startswith("df -Pk"):  # probe_volumes: df -P, stat
            mounts = [f"/v{i}" for i in range(sum(a.endswith(",readonly") for a in args))]
            lines = ["Filesystem 1024-blocks Used Available Capacity Mounted on"]
            lines += [f"/dev/x 99999999 0 {self.free_kib} 0% {m}" for m in mounts]
            lines += [f"{m} 2049 {100 + i}" for i, m in enumerate(mounts)]
            out = "\n".join(lines).encode()
        elif args[:3] == ["volume", "inspect", "--format"]:  # preflight: each one exists, local
            out = "".join(f"{v}\tlocal\tnull\t/var/lib/docker/volumes/{v}/_data\n" for v in args[4:]).encode()
        elif args[0] == "stop":  # side by side: those it can stop are stopped
            self.stopped |= {n for n in args[1:] if n not in self.unstoppable}
            code = 1 if set(args[1:]) & set(self.unstoppable) else 0
        elif args[0] == "start":
            self.stopped -= set(args[1:])
        return subprocess.CompletedProcess(args, code, out, b"permission denied" if code else b"")

    def feed(self, args: Any, write: Any) -> tuple[int, bytes]:
        self.calls.append(list(args))
        write(io.BytesIO())
        if self.free_kib < 1000:
            return 1, b"tar: write: No space left on device"
        return 0, b""


def tiny_archive(path: Path, volumes: dict[str, bytes]) -> Path:
    """An archive in the engine's layout: /backup/<volume>/file."""
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for volume, data in volumes.items():
            info = tarfile.TarInfo(f"/backup/{volume}/file")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def swaps(docker: FakeDocker) -> list[list[str]]:
    """The helper runs that swap staged files in (HelperStager.swap)."""
    return [c for c in docker.calls if c[0] == "run" and 'mv "$f"' in c[-1]]


def test_a_container_that_does_not_stop_is_restarted_before_the_refusal(tmp_path: Path) -> None:
    hb = host_backup(example("multi-host.yaml"), "ops")
    volumes = {e.volume: b"x" for e in hb.entries}
    archive = tiny_archive(tmp_path / "a.tar.gz", volumes)
    users = {e.volume: [e.container, "homelab-backup"] for e in hb.entries}
    docker = FakeDocker(users, unstoppable=("homelab-portainer",))
    plan = backups.plan_restore(hb, archive.name, backups.read_archive(archive), None, docker)
    assert plan.stop == [
        "homelab-alertmanager",
        "homelab-backup",
        "homelab-grafana",
        "homelab-portainer",
        "homelab-prometheus",
    ]
    stager = backups.HelperStager(hb, docker, "helper:1")
    with pytest.raises(BackupError, match="refusing to restore: could not stop homelab-portainer"):
        backups.execute_restore(plan, stager, docker, io.StringIO())
    verbs = [c for c in docker.calls if c[0] in ("stop", "start")]
    # One stop for all (side by side); the ones it stopped are started again, with one start.
    assert verbs == [
        ["stop", *plan.stop],
        ["start", "homelab-alertmanager", "homelab-backup", "homelab-grafana", "homelab-prometheus"],
    ]
    assert docker.stopped == set()
    assert not swaps(docker)
    (discard,) = [c for c in docker.calls if c[0] == "run"]  # the staged files are removed
    assert discard[-1].startswith("rm -rf ") and backups.NEW_DIR in discard[-1]
    assert not backups.Journal.path(hb).exists()  # everything it stopped runs again


def test_restore_refuses_a_leftover_helper_before_stopping_anything(tmp_path: Path) -> None:
    hb = host_backup(example("multi-host.yaml"), "ops")
    docker = FakeDocker({e.volume: [e.container] for e in hb.entries}, leftover="homelab-restore")
    with pytest.raises(
        BackupError, match=r"homelab-restore is left .*docker rm -f homelab-restore.* nothing was stopped"
    ):
        backups.preflight(hb, [e.volume for e in hb.entries], docker)
    assert not [c for c in docker.calls if c[0] in ("stop", "start", "run")]


def test_restore_refuses_a_volume_without_room_for_old_and_new(tmp_path: Path) -> None:
    """The extracting tar fails; the archive's sizes against the free space found before say
    why, and what was staged is removed."""
    hb = host_backup(example("multi-host.yaml"), "ops")
    archive = tiny_archive(tmp_path / "a.tar.gz", {e.volume: b"x" * 5000 for e in hb.entries})
    docker = FakeDocker({e.volume: [e.container] for e in hb.entries}, free_kib=4)
    volumes = [e.volume for e in hb.select("grafana")]
    probe = backups.probe_volumes(hb, volumes, docker)
    assert probe.free == {"homelab_grafana_data": 4096} and probe.ident == {
        "homelab_grafana_data": (2049, 100)
    }
    # One helper checks every chosen volume at once, read-only.
    (check,) = [c for c in docker.calls if c[0] == "run"]
    assert "type=volume,source=homelab_grafana_data,target=/v0,readonly" in check
    with pytest.raises(BackupError) as caught:
        backups.stage(backups.HelperStager(hb, docker), archive, volumes, probe)
    assert "homelab_grafana_data has 4.0 KiB free, and the archive's files need 4.9 KiB" in str(caught.value)
    assert "nothing was stopped or changed" in str(caught.value)
    assert not [c for c in docker.calls if c[0] in ("stop", "start")] and not swaps(docker)
    assert docker.calls[-1][-1].startswith("rm -rf ")  # the staged files removed
    # A failure with room to spare says what the tar said.
    roomy = backups.Probe({"homelab_grafana_data": 10_000}, {})
    with pytest.raises(BackupError, match="failed: tar: write: No space left on device; nothing was stopped"):
        backups.stage(backups.HelperStager(hb, docker), archive, volumes, roomy)


def test_restore_stages_with_the_services_running_and_swaps_between_stop_and_start(tmp_path: Path) -> None:
    hb = host_backup(example("multi-host.yaml"), "ops")
    archive = tiny_archive(tmp_path / "a.tar.gz", {e.volume: b"x" for e in hb.entries})
    docker = FakeDocker({e.volume: [e.container] for e in hb.entries})
    out = io.StringIO()
    plan = backups.restore(hb, str(archive), docker, out, image="helper:1", via="helper")
    assert len(plan.volumes) > 1
    verbs = [c[0] for c in docker.calls if c[0] in ("stop", "start", "run")]
    # The probe and the staging before the stop; one swap for every volume in between; the
    # old entries removed while they start again.
    assert verbs[:4] == ["run", "run", "stop", "run"] and sorted(verbs[4:]) == ["run", "start"]
    (finish,) = [c for c in docker.calls[4:] if c[0] == "run" and c[-1].startswith("rm -rf ")]
    assert backups.OLD_DIR in finish[-1]
    stage_run = docker.calls[
        [c[0] for c in docker.calls].index("run", 1 + [c[0] for c in docker.calls].index("run"))
    ]
    assert stage_run[:4] == ["run", "-i", "--name", "homelab-restore"]
    (swap,) = swaps(docker)
    assert swap[:3] == ["run", "--name", "homelab-restore"]
    for run in (stage_run, swap):
        mounts = [run[i + 1] for i, a in enumerate(run) if a == "--mount"]
        assert mounts == [
            f"type=volume,source={entry.volume},target=/restore/v{i}"
            for i, (entry, _) in enumerate(plan.volumes)
        ]
        assert run[run.index("--entrypoint") + 1 :][:3] == ["sh", "helper:1", "-c"]
    assert "staged beside the old data by a helper container" in out.getvalue()


def test_host_staging_only_where_this_machine_writes_the_engine_s_own_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HostStager needs a local engine, root, and a plain local volume whose Mountpoint here
    is what the engine mounts; otherwise auto takes the helper, and --via host says why."""
    hb = host_backup(example("multi-host.yaml"), "ops")
    volume = "homelab_grafana_data"
    data = tmp_path / "volumes" / volume / "_data"
    data.mkdir(parents=True)
    here = data.stat()

    class Inspecting(FakeDocker):
        def __init__(self, security: str = '["name=seccomp,profile=default"]') -> None:
            super().__init__({})
            self.security = security

        def text(self, args: Any, what: str) -> str:
            assert args[0] == "info", args
            return self.security + "\n"

    plain = {volume: ("local", "null", str(data))}
    probe = backups.Probe({volume: 1 << 30}, {volume: (here.st_dev, here.st_ino)})
    local = backups.HostBackup(**{**hb.__dict__, "docker_host": "unix:///var/run/docker.sock", "dial": None})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert backups.host_volumes_root(local, Inspecting(), plain, probe) == (tmp_path / "volumes", "")
    assert isinstance(
        backups.choose_stager(local, Inspecting(), None, plain, probe, "auto"), backups.HostStager
    )
    tmpfs = {volume: ("local", '{"type":"tmpfs"}', str(data))}
    other = backups.Probe({}, {volume: (here.st_dev, here.st_ino + 1)})
    cases = [
        (hb, Inspecting(), plain, probe, "the engine of host ops is not on this machine"),
        (local, Inspecting(), tmpfs, probe, f"{volume} is not a plain local volume"),
        (local, Inspecting('["name=seccomp,profile=default","name=userns"]'), plain, probe, "name=userns"),
        (local, Inspecting('["name=rootless"]'), plain, probe, "name=rootless"),
        (local, Inspecting('["name=selinux"]'), plain, probe, "owners or labels differ"),
        (local, Inspecting(), plain, other, "is not the directory the engine mounts"),
    ]
    for host, docker, layout, seen, why in cases:
        assert why in backups.host_volumes_root(host, docker, layout, seen)[1]
        assert isinstance(
            backups.choose_stager(host, docker, None, layout, seen, "auto"), backups.HelperStager
        )
        with pytest.raises(BackupError, match=f"--via host: .*{re.escape(why)}"):
            backups.choose_stager(host, docker, None, layout, seen, "host")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in backups.host_volumes_root(local, Inspecting(), plain, probe)[1]


@pytest.mark.parametrize(
    "entries, why",
    [
        ([("l", "sym", "/etc"), ("l/passwd", "file", "")], "lies under a symbolic link of the archive"),
        ([("d", "dir", ""), ("d", "sym", "/")], "is in the archive twice"),
        ([("l", "sym", "/etc/shadow"), ("h", "lnk", "/backup/v/l")], "does not point to a file before it"),
        ([("h", "lnk", "/backup/v/later"), ("later", "file", "")], "does not point to a file before it"),
        ([("null", "chr", "")], "is a device node"),
    ],
)
def test_the_host_s_tar_gets_nothing_that_leads_out_of_the_staging_directory(
    tmp_path: Path, entries: list[tuple[str, str, str]], why: str
) -> None:
    """What root's tar on the host is given (scan with host=True); a helper container may take
    the same archive (it extracts inside the container)."""
    import tarfile

    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE}
    path = tmp_path / "odd.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(f"/backup/v/{name}")
            info.type, info.linkname = kinds.get(kind, tarfile.CHRTYPE), link
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BackupError, match=re.escape(why)):
        backups.scan(path, {"v": "v/"}, io.BytesIO(), host=True)
    if "device" not in why and "twice" not in why:
        backups.scan(path, {"v": "v/"}, io.BytesIO())


def test_archive_entries_outside_backup_are_refused(tmp_path: Path) -> None:
    import tarfile

    path = tmp_path / "odd.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("/etc/passwd"), io.BytesIO(b""))
    with pytest.raises(BackupError, match="outside /backup: not an archive of this backup engine"):
        backups.read_archive(path)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("/backup/v/../../etc/passwd"), io.BytesIO(b""))
    with pytest.raises(BackupError, match="unsafe entry"):
        backups.read_archive(path)


def test_an_encrypted_archive_needs_an_identity(tmp_path: Path) -> None:
    archive = tmp_path / "homelab-local-2026.tar.gz.age"
    archive.write_bytes(b"age-encryption.org/v1")
    with pytest.raises(BackupError, match="is encrypted: give --identity FILE"):
        backups.open_archive(archive, None)
    with pytest.raises(BackupError, match="GPG-encrypted"):
        backups.open_archive(tmp_path / "x.tar.gz.gpg", None)


def test_archive_listing_renders_age_and_size() -> None:
    hb = host_backup(offline.load(ROOT, "dev"), "local")
    now = 1_800_000_000.0
    archives = [
        backups.Archive("homelab-local-b.tar.gz.age", 3 * 1024 * 1024, int(now - 5 * 3600 - 120)),
        backups.Archive("homelab-local-a.tar.gz.age", 512, int(now - 3 * 86400 - 7200)),
    ]
    text = backups.render_archives(hb, archives, now)
    lines = text.splitlines()
    assert lines[1].split() == ["homelab-local-b.tar.gz.age", "5h", "2m", "3.0", "MiB"]
    assert lines[2].split() == ["homelab-local-a.tar.gz.age", "3d", "2h", "512", "B"]
    assert lines[3] == "2 archive(s) in /opt/homelab/backups on host local"
    assert HostBackup.__name__ in repr(hb)


def test_preflight_tells_a_missing_volume_from_an_engine_that_does_not_answer() -> None:
    """One `docker volume inspect` for all the volumes: it prints those it finds and exits 1
    naming the others (docker 28.2 here: "no such volume"); any other failure is the engine's."""
    hb = host_backup(example("multi-host.yaml"), "ops")

    class Inspect(FakeDocker):
        def __init__(self, found: list[str], stderr: bytes) -> None:
            super().__init__({})
            self.found, self.stderr = found, stderr

        def run(self, args: Any, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
            if args[:2] != ["volume", "inspect"]:
                return super().run(args, stdout)
            out = "".join(f"{v}\tlocal\tnull\t/v/{v}/_data\n" for v in self.found).encode()
            return subprocess.CompletedProcess(args, 1 if self.stderr else 0, out, self.stderr)

    volumes = [e.volume for e in hb.entries]
    some = Inspect(volumes[:1], b"Error response from daemon: get x: no such volume")
    assert list(backups.preflight(hb, volumes, some)) == volumes[:1]
    gone = Inspect([], b"Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
    with pytest.raises(
        BackupError, match="inspecting the volumes failed: Cannot connect to the Docker daemon"
    ):
        backups.preflight(hb, volumes, gone)


def test_an_interrupt_while_the_containers_start_says_how_to_finish(tmp_path: Path) -> None:
    """Ctrl-C after the swap, while `docker start` runs: the volumes are restored, the journal
    keeps the containers, and the message names them and `--resume` (no traceback)."""
    hb = host_backup(example("multi-host.yaml"), "ops")
    archive = tiny_archive(tmp_path / "a.tar.gz", {e.volume: b"x" for e in hb.entries})

    class Interrupting(FakeDocker):
        def run(self, args: Any, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
            if list(args)[:1] == ["start"]:
                raise KeyboardInterrupt
            return super().run(args, stdout)

    docker = Interrupting({e.volume: [e.container] for e in hb.entries})
    with pytest.raises(BackupError) as caught:
        backups.restore(hb, str(archive), docker, io.StringIO(), image="helper:1", via="helper")
    message = str(caught.value)
    assert message.startswith("interrupted while starting the containers.")
    assert "already restored:" in message and "restore --resume --host ops" in message
    journal = backups.Journal.load(hb)
    assert journal is not None and journal.stopped and journal.restored
    backups.Journal.remove(hb)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"archive": 123}, "archive is not a non-empty text: 123"),
        ({"archive": None}, "archive is not a non-empty text: None"),
        ({"archive": ["a"]}, "archive is not a non-empty text: ['a']"),
        ({"service": 1}, "service is not a text or null: 1"),
        ({"stopped": "homelab-mysql"}, "stopped is not a list of names: 'homelab-mysql'"),
        ({"restored": [1]}, "restored is not a list of names: [1]"),
        ({"started": "now"}, "started is not a time: 'now'"),
    ],
    ids=["archive-number", "archive-null", "archive-list", "service", "stopped", "restored", "started"],
)
def test_a_journal_with_a_field_of_the_wrong_kind_is_unreadable_not_a_crash(
    fields: dict[str, Any], says: str
) -> None:
    """A journal edited by hand: `--resume` says which field is wrong and what to do, instead
    of a traceback (archive 123) or "give --archive FILE, or --resume" (archive null)."""
    hb = host_backup(example("multi-host.yaml"), "ops")
    journal = {"archive": "a.tar.gz", "shown": "a.tar.gz", "service": None, "stopped": ["x"]}
    journal |= {"restored": [], "started": 0, **fields}
    path = backups.Journal.path(hb)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(journal))
    with pytest.raises(BackupError) as caught:
        backups.restore(hb, None, FakeDocker({}), io.StringIO(), image="helper:1", resume=True)
    message = str(caught.value)
    assert f"the restore journal {path} is unreadable ({says})" in message, message
    assert "start the containers it names yourself" in message


def test_an_identity_that_is_a_folder_is_named_so(tmp_path: Path) -> None:
    archive = tmp_path / "homelab-local-2026-11-25T04-00-00.tar.gz.age"
    archive.write_bytes(b"age")
    with pytest.raises(BackupError) as caught:
        backups.open_archive(archive, tmp_path)
    assert str(caught.value) == f"identity file {tmp_path} is not a file; nothing was changed"
    with pytest.raises(BackupError) as caught:
        backups.open_archive(archive, tmp_path / "missing.key")
    assert (
        str(caught.value) == f"identity file {tmp_path / 'missing.key'} does not exist; nothing was changed"
    )


def test_an_ssh_hosts_bridge_leaves_no_thread_socket_or_exit_handler_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripts call backup, drill and restore many times in one process: each SSH host's
    bridge (a local socket served by a thread) goes with its call. close() alone left the
    thread blocked in accept(), and nothing closed the bridges of `backup`/`drill`."""
    import atexit
    import threading

    registered: list[Any] = []
    monkeypatch.setattr(backups.atexit, "register", registered.append)
    monkeypatch.setattr(backups.atexit, "unregister", registered.remove)
    before = threading.active_count()
    folders = []
    for _ in range(3):
        with backups.DockerCli("ssh://nobody@192.0.2.1", dial=["true"]) as docker:
            url = docker.base[-1]
            folders.append(Path(url.removeprefix("unix://")).parent)
            assert folders[-1].is_dir() and threading.active_count() > before and len(registered) == 1
    assert threading.active_count() == before
    assert not any(folder.exists() for folder in folders)
    assert registered == [] and atexit is backups.atexit


def test_help_goes_to_the_given_stream_and_returns() -> None:
    out = io.StringIO()
    assert cli.main(["validate", "--help"], out=out, err=io.StringIO()) == 0
    assert out.getvalue().startswith("usage: python -m automation validate")
