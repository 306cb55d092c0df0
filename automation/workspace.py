"""The Automation API side: one stack of this project, on the local file backend by default.

`stack_options` is plain data (what backend, which secrets provider, which environment), so it
is testable without the CLI; `open_stack` is the boundary where the Pulumi CLI is needed. A
missing CLI is installed with `PulumiCommand.install` when that works, and otherwise ends in
one clear `MissingCliError` message, never a traceback.
"""

from __future__ import annotations

import getpass
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent

INSTALL_HELP = """The Pulumi CLI is not installed (no `pulumi` on PATH) and could not be installed now.
Install it, then run this again:
  curl -fsSL https://get.pulumi.com | sh      # or: brew install pulumi
  export PATH="$HOME/.pulumi/bin:$PATH"
Offline: install the CLI from your own mirror; `python -m automation setup <bundle>` then installs
the provider plugins a release bundle carries."""


class MissingCliError(RuntimeError):
    """The Pulumi CLI is needed and not there."""


class StackError(RuntimeError):
    """The Pulumi CLI refused to open a stack or set its config (its last line says why)."""


def cli_reason(error: Exception) -> str:
    """The last line the Pulumi CLI wrote for a failed command: what went wrong."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    # str(CommandResult) ends with " stderr: <what the CLI wrote>" (pulumi.automation._cmd).
    return lines[-1].removeprefix("stderr: ") if lines else type(error).__name__


@dataclass(frozen=True)
class StackOptions:
    stack: str
    project_dir: Path = PROJECT_DIR
    backend_url: str | None = None  # default: file://<project>/.pulumi-state
    secrets_provider: str = "passphrase"
    config: dict[str, str] = field(default_factory=dict)  # extra `homelab:` values to set

    @property
    def backend(self) -> str:
        return self.backend_url or os.environ.get("PULUMI_BACKEND_URL") or project_backend(self.project_dir)

    def env_vars(self, passphrase: str | None) -> dict[str, str]:
        env = {"PULUMI_BACKEND_URL": self.backend, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        return env


def project_backend(project_dir: Path) -> str:
    """The backend `Pulumi.yaml` pins (`backend.url`), a relative file:// path made absolute
    against the project; `file://<project>/.pulumi-state` when it pins none."""
    default = f"file://{project_dir / '.pulumi-state'}"
    try:
        project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return default
    url = str((project.get("backend") or {}).get("url") or "")
    if not url:
        return default
    if url.startswith("file://") and not url.removeprefix("file://").startswith(("/", "~")):
        return f"file://{(project_dir / url.removeprefix('file://')).resolve()}"
    return url


def passphrase_from_env_or_prompt(interactive: bool) -> str | None:
    """PULUMI_CONFIG_PASSPHRASE(_FILE) from the environment, else a prompt when interactive."""
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ or "PULUMI_CONFIG_PASSPHRASE_FILE" in os.environ:
        return os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if interactive:
        return getpass.getpass("Passphrase for this stack's secrets: ")
    return None


def pulumi_command(install: bool = True) -> Any:
    """The Pulumi CLI: the one on PATH, else an installed one, else `MissingCliError`."""
    from pulumi import automation as auto

    if shutil.which("pulumi"):
        return auto.PulumiCommand()
    if install:
        try:
            return auto.PulumiCommand.install()
        except Exception as error:  # offline, or the download failed: say why, and what to do
            reason = str(error).strip() or type(error).__name__
            raise MissingCliError(f"{INSTALL_HELP}\nThe automatic install failed: {reason}") from None
    raise MissingCliError(INSTALL_HELP)


def open_stack(options: StackOptions, passphrase: str | None, install_cli: bool = True) -> Any:
    """Create the stack from its Pulumi.<stack>.yaml when new, or select it."""
    from pulumi import automation as auto

    backend = options.backend
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    try:
        command = pulumi_command(install_cli)
        stack = auto.create_or_select_stack(
            stack_name=options.stack,
            work_dir=str(options.project_dir),
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(options.project_dir),
                env_vars=options.env_vars(passphrase),
                secrets_provider=options.secrets_provider,
                pulumi_command=command,
            ),
        )
    except FileNotFoundError as error:  # the CLI vanished between the check and the call
        raise MissingCliError(INSTALL_HELP) from error
    except auto.errors.CommandError as error:  # e.g. no passphrase, a wrong one, a broken backend
        raise StackError(f"pulumi could not open stack {options.stack!r}: {cli_reason(error)}") from None
    for key, value in sorted(options.config.items()):
        set_config(stack, key if ":" in key else f"homelab:{key}", auto.ConfigValue(value=value))
    return stack


def set_config(stack: Any, key: str, value: Any) -> None:
    """`stack.set_config`, with the CLI's reason when it refuses."""
    from pulumi import automation as auto

    try:
        stack.set_config(key, value)
    except auto.errors.CommandError as error:
        raise StackError(f"pulumi could not set {key}: {cli_reason(error)}") from None
