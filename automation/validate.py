"""Offline validation: read `Pulumi.<stack>.yaml`, validate it, describe the resolved plan.

No Pulumi CLI, no backend, no decryption: a secret in the stack file (`{secure: ...}`) only
has to be there, and be a secret, which is all the config checks need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stacks.checks import validate_pulumi_config
from stacks.config import NAMESPACE, ConfigError, StackConfig


@dataclass
class StackFile:
    path: Path
    items: dict[str, Any] = field(default_factory=dict)
    secret_keys: set[str] = field(default_factory=set)


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def read_stack_file(path: Path) -> StackFile:
    """The config of a stack file as the runtime would see it (secret keys marked)."""
    document = yaml.safe_load(path.read_text()) or {}
    stack = StackFile(path)
    for key, value in (document.get("config") or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        stack.items[full] = value
        if _has_secure(value):
            stack.secret_keys.add(full)
    return stack


def stack_file_path(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load(
    project_dir: Path, stack: str, path: Path | None = None, require_secrets: bool = True
) -> StackConfig:
    """Validate `Pulumi.<stack>.yaml` (or the stack file at `path`) offline.

    Raises `ConfigError` or `FileNotFoundError`.
    """
    path = path or stack_file_path(project_dir, stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} in {path.parent}")
    stack_file = read_stack_file(path)
    return validate_pulumi_config(stack_file.items.items(), stack_file.secret_keys, require_secrets)


def describe(config: StackConfig) -> dict[str, Any]:
    """The resolved plan: hosts, services, routes, volumes, projects and apps."""
    out: dict[str, Any] = {"layers": config.layers.model_dump()}
    if config.layers.homelab:
        from stacks.plan import build_plan

        plan = build_plan(config)
        out["hosts"] = {h.name: h.address for h in config.hosts}
        out["services"] = [
            {
                "name": s.name,
                "kind": s.kind,
                "host": s.host,
                "images": sorted({c.image for c in s.containers}),
                "routes": [
                    r.fqdn if r.mode == "http" else f"tcp://{r.fqdn}:{r.exposed_port}" for r in s.routes
                ],
                "volumes": [v.name for _, v in s.stateful_volumes],
            }
            for s in plan.services
        ]
        out["urls"] = plan.urls()
    if config.layers.platform and config.platform is not None:
        p = config.platform
        out["platform"] = {
            "namespace": p.namespace,
            "domain": p.domain or config.domain,
            "components": [n.replace("_", "-") for n, c in p.components if c.enabled],
            "projects": {x.name: x.roles_of() for x in p.projects},
        }
    if config.layers.apps:
        from stacks.config import app_fqdn

        out["apps"] = [
            {"name": a.name, "project": a.project, "host": app_fqdn(config, a), "ref": a.source.ref}
            for a in config.apps
        ]
    return out


def render_text(plan: dict[str, Any]) -> str:
    lines = [f"layers: {', '.join(k for k, v in plan['layers'].items() if v)}"]
    if "hosts" in plan:
        lines.append("hosts:")
        lines += [f"  {name}: {address}" for name, address in plan["hosts"].items()]
        lines.append("services:")
        for s in plan["services"]:
            extra = []
            if s["routes"]:
                extra.append("routes " + ", ".join(s["routes"]))
            if s["volumes"]:
                extra.append("volumes " + ", ".join(s["volumes"]))
            lines.append(
                f"  {s['name']} ({s['kind']}) on {s['host']}" + (": " + "; ".join(extra) if extra else "")
            )
    if "platform" in plan:
        p = plan["platform"]
        lines.append(f"platform: {p['domain']} in {p['namespace']} ({', '.join(p['components'])})")
        lines += [f"  project {name}: {len(members)} member(s)" for name, members in p["projects"].items()]
    if "apps" in plan:
        lines.append("apps:")
        lines += [
            f"  {a['project']}/{a['name']} -> https://{a['host']}/ (ref {a['ref']})" for a in plan["apps"]
        ]
    return "\n".join(lines) + "\n"


__all__ = ["ConfigError", "describe", "load", "read_stack_file", "render_text"]
