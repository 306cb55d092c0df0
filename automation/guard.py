"""The guard on stateful changes: which steps of a preview replace or delete data, and
whether `up` may go ahead.

The engine tells every step before it runs (`ResourcePreEvent`, pulumi 3.272.0
`pulumi/automation/events.py`): its `op` (replace, create-replacement, delete-replaced,
delete, ...), the resource's `old` and `new` state (inputs, `retain_on_delete`, `protect`),
the properties that force the replacement (`keys`), and the changed properties with their
kind (`detailed_diff`: `update-replace`, `add-replace`, ...). From those alone, with no
config, the guard knows which resources hold data:

- a Docker volume labelled `homelab.stateful=true` (`components/docker/service.py` labels
  it), or retained on delete;
- a Docker container that mounts such a volume writable (a database, Grafana, ...): the
  backup run mounts them read-only and does not count;
- a Kubernetes PersistentVolumeClaim, and the CloudNativePG `Cluster`.

A resource removed from the program shows as a `delete` with only its old state, so the
guard sees removals the program no longer knows about.

`up` goes ahead with a change only when the user names its service (`--allow-replace S`)
or the service's newest successful backup is younger than `data.max-backup-age`. Where the
backups are is the backup engine's business: the guard asks a `BackupLedger`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi.automation import events

VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"

REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
DELETE_OPS = {"delete"}
REMOVED = "no longer declared by the program"


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {rest // 60}m"
    return f"{rest // 60}m"


# ---- which steps touch data ---------------------------------------------------------------


@dataclass(frozen=True)
class StatefulChange:
    """One replace or delete of a resource that holds data."""

    urn: str
    type: str
    name: str  # the resource's name in the program
    action: str  # "replace" or "delete"
    what: str  # e.g. "volume homelab_mysql_data", "container homelab-mysql"
    service: str  # what --allow-replace names
    host: str | None  # the Docker host (None for Kubernetes resources)
    causes: tuple[str, ...]  # the properties that caused it, or REMOVED

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "what": self.what,
            "service": self.service,
            "host": self.host,
            "causes": list(self.causes),
            "urn": self.urn,
        }


def _op(meta: events.StepEventMetadata) -> str:
    return str(getattr(meta.op, "value", meta.op))


def _inputs(meta: events.StepEventMetadata) -> Mapping[str, Any]:
    """The resource's inputs: the new state's, else the old state's (a delete has no new)."""
    for state in (meta.new, meta.old):
        if state is not None and state.inputs:
            return state.inputs
    return {}


def _labels(inputs: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for item in inputs.get("labels") or []:
        if isinstance(item, Mapping) and "label" in item:
            out[str(item["label"])] = str(item.get("value", ""))
    return out


def _k8s_name(inputs: Mapping[str, Any], fallback: str) -> str:
    metadata = inputs.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str):
        return fallback
    return f"{namespace}/{name}" if isinstance(namespace, str) else name


def _retained(meta: events.StepEventMetadata) -> bool:
    return any(s is not None and bool(s.retain_on_delete) for s in (meta.old, meta.new))


def _causes(meta: events.StepEventMetadata) -> list[str]:
    """The properties that force a replacement: `keys`, else the `*-replace` diffs."""
    if meta.keys:
        return list(meta.keys)
    kinds = meta.detailed_diff or {}
    forced = [
        p for p, d in kinds.items() if str(getattr(d.diff_kind, "value", d.diff_kind)).endswith("-replace")
    ]
    return forced


class _Resource:
    """What the guard knows about one URN across its steps."""

    def __init__(self, meta: events.StepEventMetadata) -> None:
        self.urn = meta.urn
        self.type = meta.type
        self.metas: list[events.StepEventMetadata] = []

    @property
    def ops(self) -> set[str]:
        return {_op(m) for m in self.metas}

    @property
    def inputs(self) -> Mapping[str, Any]:
        for meta in self.metas:
            found = _inputs(meta)
            if found:
                return found
        return {}

    @property
    def causes(self) -> list[str]:
        found: list[str] = []
        for meta in self.metas:
            found += [c for c in _causes(meta) if c not in found]
        return found


def classify(steps: Iterable[events.StepEventMetadata]) -> list[StatefulChange]:
    """The replaces and deletes of data-holding resources among `steps`, in step order."""
    resources: dict[str, _Resource] = {}
    for meta in steps:
        resources.setdefault(meta.urn, _Resource(meta)).metas.append(meta)

    # Stateful volumes by (host label, Docker volume name), from every step (same ones too).
    stateful_volumes: set[tuple[str, str]] = set()
    for r in resources.values():
        if r.type != VOLUME:
            continue
        labels = _labels(r.inputs)
        if labels.get("homelab.stateful") == "true" or any(_retained(m) for m in r.metas):
            stateful_volumes.add((labels.get("homelab.host", ""), str(r.inputs.get("name", ""))))

    changes = []
    for r in resources.values():
        ops = r.ops
        if ops & REPLACE_OPS:
            action = "replace"
        elif ops & DELETE_OPS:
            action = "delete"
        else:
            continue
        inputs = r.inputs
        labels = _labels(inputs)
        name = r.urn.rsplit("::", 1)[-1]
        host = labels.get("homelab.host")
        service = labels.get("homelab.service", name)
        if r.type == VOLUME:
            if (labels.get("homelab.host", ""), str(inputs.get("name", ""))) not in stateful_volumes:
                continue
            what = f"volume {inputs.get('name', name)}"
        elif r.type == CONTAINER:
            writes = [
                str(m.get("volumeName"))
                for m in inputs.get("volumes") or []
                if isinstance(m, Mapping) and m.get("volumeName") and not m.get("readOnly")
            ]
            data = [v for v in writes if (labels.get("homelab.host", ""), v) in stateful_volumes]
            if not data:
                continue
            what = f"container {inputs.get('name', name)} (writes {', '.join(data)})"
        elif r.type == PVC:
            service = _k8s_name(inputs, name)
            what, host = f"PersistentVolumeClaim {service}", None
        elif r.type == CNPG_CLUSTER:
            service = _k8s_name(inputs, name)
            what, host = f"CloudNativePG Cluster {service}", None
        else:
            continue
        causes = r.causes if action == "replace" else [REMOVED]
        if action == "replace" and not causes:
            causes = ["replacement requested (--replace, a trigger or a changed provider)"]
        changes.append(StatefulChange(r.urn, r.type, name, action, what, service, host, tuple(causes)))
    return changes


# ---- may `up` go ahead? ---------------------------------------------------------------------


class BackupLedger(Protocol):
    """Where the guard learns about backups: the backup engine's archives of a host
    (automation/ledger.py)."""

    def newest_backup(self, host: str, service: str) -> float | None:
        """Unix time of the newest successful backup holding `service`'s data on `host`;
        raises when the host cannot tell (the guard then refuses, saying why)."""
        ...


@dataclass(frozen=True)
class Verdict:
    change: StatefulChange
    allowed: bool
    reason: str


@dataclass
class GuardReport:
    verdicts: list[Verdict] = field(default_factory=list)
    max_age: float = 86400.0

    @property
    def refused(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.allowed]

    def render_text(self, refusing: bool) -> str:
        if not self.verdicts:
            return "Stateful data: no volume, database or claim is replaced or deleted.\n"
        lines = [f"Stateful data replaced or deleted ({len(self.verdicts)}):"]
        for v in self.verdicts:
            c = v.change
            where = f"service {c.service}" + (f" on {c.host}" if c.host else "")
            mark = "allowed" if v.allowed else ("REFUSED" if refusing else "up would refuse")
            lines.append(
                f"  {c.action.upper():<7} {c.what} ({where}): {', '.join(c.causes)} -> {mark}: {v.reason}"
            )
        return "\n".join(lines) + "\n"

    def render_markdown(self) -> str:
        if not self.verdicts:
            return "### Stateful data\n\nNo volume, database or claim is replaced or deleted.\n"
        lines = [
            f"### :warning: Stateful data replaced or deleted ({len(self.verdicts)})",
            "",
            "| change | resource | service | caused by | `up` |",
            "| --- | --- | --- | --- | --- |",
        ]
        for v in self.verdicts:
            c = v.change
            service = c.service + (f" on {c.host}" if c.host else "")
            causes = ", ".join(f"`{x}`" if x != REMOVED else x for x in c.causes)
            verdict = ("goes ahead: " if v.allowed else "**refuses**: ") + v.reason
            lines.append(f"| **{c.action}** | {c.what} | {service} | {causes} | {verdict} |")
        return "\n".join(lines) + "\n"

    def as_json(self) -> str:
        return json.dumps(
            {
                "guard": [
                    {**v.change.as_dict(), "allowed": v.allowed, "reason": v.reason} for v in self.verdicts
                ]
            }
        )


def judge(
    changes: list[StatefulChange],
    allow: Iterable[str] = (),
    ledger: BackupLedger | None = None,
    max_age: float = 86400.0,
    now: float | None = None,
) -> GuardReport:
    """Each change allowed by name (`--allow-replace`), by a fresh backup, or refused."""
    allowed = set(allow)
    now = time.time() if now is None else now
    limit = human_age(max_age)
    report = GuardReport(max_age=max_age)
    for c in changes:
        hint = f"pass --allow-replace {c.service}"
        if c.service in allowed or c.name in allowed:
            report.verdicts.append(Verdict(c, True, f"--allow-replace {c.service}"))
            continue
        if c.host is None or ledger is None:
            why = "no backup engine covers it" if c.host is None else "backups were not checked"
            report.verdicts.append(Verdict(c, False, f"{why}; {hint}"))
            continue
        try:
            newest = ledger.newest_backup(c.host, c.service)
        except Exception as error:  # the host did not answer: say why, and refuse
            report.verdicts.append(Verdict(c, False, f"backups could not be checked ({error}); {hint}"))
            continue
        if newest is None:
            report.verdicts.append(Verdict(c, False, f"no backup of {c.service} found; back it up or {hint}"))
        elif now - newest <= max_age:
            report.verdicts.append(Verdict(c, True, f"backup {human_age(now - newest)} old (limit {limit})"))
        else:
            report.verdicts.append(
                Verdict(
                    c,
                    False,
                    f"newest backup is {human_age(now - newest)} old (limit {limit}); back it up or {hint}",
                )
            )
    return report


# ---- the engine's events ----------------------------------------------------------------------


@dataclass
class Recorder:
    """An `on_event` callback that keeps the step metadata and policy violations, and
    passes every event on (to the progress display)."""

    forward: Any = None
    steps: list[events.StepEventMetadata] = field(default_factory=list)
    policy: list[events.PolicyEvent] = field(default_factory=list)

    def __call__(self, event: events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self.steps.append(event.resource_pre_event.metadata)
        elif event.policy_event is not None:
            self.policy.append(event.policy_event)
        if self.forward is not None:
            self.forward(event)

    def changes(self) -> list[StatefulChange]:
        return classify(self.steps)


def policy_markdown(violations: list[events.PolicyEvent]) -> str:
    if not violations:
        return ""
    lines = [f"### Policy violations ({len(violations)})", ""]
    for p in violations:
        where = p.resource_urn.rsplit("::", 1)[-1] if p.resource_urn else "stack"
        lines.append(f"- **{p.enforcement_level}** `{p.policy_name}` ({where}): {p.message.strip()}")
    return "\n".join(lines) + "\n"


def changes_markdown(summary: Mapping[str, int] | None, steps: list[events.StepEventMetadata]) -> str:
    changed = [m for m in steps if _op(m) not in ("same", "read")]
    counts = ", ".join(f"{k} {v}" for k, v in sorted((summary or {}).items())) or "no changes"
    lines = [f"### Changes: {counts}", ""]
    if changed:
        lines += ["<details><summary>Every step</summary>", ""]
        lines += [f"- `{_op(m)}` {m.type} **{m.urn.rsplit('::', 1)[-1]}**" for m in changed]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
