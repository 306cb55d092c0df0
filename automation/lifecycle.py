"""A stack's life without an account: `init` creates it on the local file backend with the
passphrase secrets provider and asks for every secret its config names; `config set` sets one
value (`--secret` encrypts it). Both go through the Automation API (`open_stack`), so the Pulumi
CLI is needed only at that boundary, and both validate before they write.

Plain values land in `Pulumi.<stack>.yaml` as text: that is why a key that is (or looks like)
a secret is refused unless it is set with `--secret`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automation import validate as offline
from automation.workspace import PROJECT_DIR, StackOptions, open_stack, set_config
from stacks.config import NAMESPACE, ConfigError, StackConfig

# Key names that say "secret" even when no config references them (yet).
_SECRET_NAME = re.compile(r"secret|password|passphrase|token|private|credential|(^|[-_])key$", re.IGNORECASE)

Ask = Callable[[str], str]


class LifecycleError(RuntimeError):
    """A stack operation refused before anything was written; the message says what to do."""


def full_key(key: str) -> str:
    return key if ":" in key else f"{NAMESPACE}:{key}"


def model_keys() -> set[str]:
    return {StackConfig.model_fields[n].alias or n for n in StackConfig.model_fields}


def secret_references(config: StackConfig) -> dict[str, str]:
    """Config key -> the first key path that names it as a secret."""
    refs: dict[str, str] = {}
    for path, key in config.secret_keys():
        refs.setdefault(key, path)
    return refs


def secret_set_command(key: str, stack: str) -> str:
    return f"python -m automation config set --secret {key} --stack {stack} < FILE"


def refuse_secrets_in_plain_text(keys: list[str], stack: str, config: StackConfig | None) -> None:
    """`--config` and `config set` write plain text: never for a secret."""
    referenced = secret_references(config) if config is not None else {}
    for key in keys:
        name = key.partition(":")[2] if ":" in key else key
        if name in referenced or (_SECRET_NAME.search(name) and name not in model_keys()):
            where = f" ({referenced[name]} names it)" if name in referenced else ""
            raise LifecycleError(
                f"{name!r} is a secret{where}: a plain value would be written to Pulumi.{stack}.yaml "
                f"as text. Set it encrypted: {secret_set_command(name, stack)}"
            )


def current_config(project_dir: Path, stack: str) -> StackConfig | None:
    """The stack's config as it is (a template), or None when it is not valid (yet)."""
    try:
        return offline.load(project_dir, stack, require_secrets=False)
    except (ConfigError, FileNotFoundError):
        return None


def need_passphrase(passphrase: str | None) -> None:
    """Secrets are encrypted with the stack's passphrase: without one, say where it comes from."""
    if passphrase is None and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        raise LifecycleError(
            "secrets need the stack's passphrase: set PULUMI_CONFIG_PASSPHRASE (or "
            "PULUMI_CONFIG_PASSPHRASE_FILE), or run this from a terminal to be asked"
        )


def read_value(text: str) -> str:
    """A value as typed: `@PATH` reads the file (an SSH key, a kubeconfig, a certificate)."""
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            return path.read_text()
        except OSError as error:
            raise LifecycleError(f"cannot read {path}: {error.strerror}") from None
    return text


def set_value(
    stack: str,
    key: str,
    value: str,
    secret: bool,
    passphrase: str | None,
    project_dir: Path = PROJECT_DIR,
) -> str:
    """Set one config value of `stack` (validated first unless it is a secret's value)."""
    name = key.partition(":")[2] if ":" in key else key
    if secret:
        if full_key(key).startswith(f"{NAMESPACE}:") and name in model_keys():
            raise LifecycleError(
                f"{name!r} is a setting of the stack, not a secret: set it without --secret "
                "(secrets live in keys of their own that the config names)"
            )
    else:
        refuse_secrets_in_plain_text([key], stack, current_config(project_dir, stack))
        # Validated with the new value in place (a template: other secrets may be missing).
        offline.load(project_dir, stack, require_secrets=False, overrides={key: value})
    from pulumi import automation as auto

    if secret:
        need_passphrase(passphrase)
    opened = open_stack(StackOptions(stack, project_dir=project_dir), passphrase)
    set_config(opened, full_key(key), auto.ConfigValue(value=value, secret=secret))
    return full_key(key)


@dataclass
class InitResult:
    stack: str
    path: Path
    source: Path | None
    backend: str
    secrets_set: list[str] = field(default_factory=list)
    secrets_missing: list[tuple[str, str]] = field(default_factory=list)  # (config key, key path)

    def render(self) -> str:
        lines = [
            f"stack {self.stack!r}: {self.path.name}"
            + (f" (from {self.source})" if self.source else "")
            + f", state in {self.backend}, secrets encrypted with your passphrase"
        ]
        if self.secrets_set:
            lines.append(f"secrets set: {', '.join(self.secrets_set)}")
        for key, path in self.secrets_missing:
            lines.append(f"still to set: {key} ({path} names it): {secret_set_command(key, self.stack)}")
        lines.append(
            f"next: edit {self.path.name} (domain, hosts), then "
            f"`python -m automation validate --stack {self.stack}` and "
            f"`python -m automation up --stack {self.stack}`"
        )
        return "\n".join(lines) + "\n"


def init_stack(
    stack: str,
    source: Path | None,
    passphrase: str | None,
    ask: Ask | None,
    project_dir: Path = PROJECT_DIR,
) -> InitResult:
    """Create `stack`: its stack file (copied from `source` when given), the stack itself on
    the local backend with the passphrase provider, and every secret its config names
    (asked with `ask`; without it, listed as still to set)."""
    target = offline.stack_file_path(project_dir, stack)
    if source is not None:
        if target.exists():
            raise LifecycleError(
                f"{target.name} exists already: run `init --stack {stack}` without --from to use it, "
                "or choose another stack name"
            )
        if source.is_dir():
            raise LifecycleError(
                f"--from {source} is a folder: name one stack file in it "
                f"(e.g. --from {source / 'single-host.yaml'})"
            )
        if not source.is_file():
            raise FileNotFoundError(f"no stack file {source.name} in {source.parent}")
        offline.load(project_dir, stack, path=source, require_secrets=False)  # a valid template
        need_passphrase(passphrase)  # before anything is written: a rerun must not find the file
        target.write_text(source.read_text())  # as written: its comments say what to change
    elif not target.exists():
        raise FileNotFoundError(
            f"no stack file {target.name} in {project_dir}: start from an example with "
            f"`init --stack {stack} --from examples/single-host.yaml`"
        )
    config = offline.load(project_dir, stack, require_secrets=False)
    need_passphrase(passphrase)
    options = StackOptions(stack, project_dir=project_dir)
    opened: Any = open_stack(options, passphrase)
    result = InitResult(stack, target, source, options.backend)
    present = offline.read_stack_file(target).secret_keys
    from pulumi import automation as auto

    for key, path in secret_references(config).items():
        if full_key(key) in present:
            continue
        if ask is None:
            result.secrets_missing.append((key, path))
            continue
        value = read_value(ask(f"{key} ({path} names it; @FILE reads a file): "))
        set_config(opened, full_key(key), auto.ConfigValue(value=value, secret=True))
        result.secrets_set.append(key)
    return result


__all__ = [
    "ConfigError",
    "InitResult",
    "LifecycleError",
    "init_stack",
    "current_config",
    "read_value",
    "refuse_secrets_in_plain_text",
    "set_value",
]
