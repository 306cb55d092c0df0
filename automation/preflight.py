"""`preview` and `up` with the guard on stateful changes in front (automation/guard.py).

- `preview` lists the replaces and deletes of data first, above the steps and the summary
  (the steps are held back until the preview ends), and with `--comment FILE` writes the
  same as Markdown for the pull request (guard, then policy violations, then the changes).
- `up` previews first, saving the update plan (`pulumi preview --save-plan`), and refuses
  before anything changes when a data change is neither named (`--allow-replace SERVICE`)
  nor covered by a backup younger than `data.max-backup-age`. It then runs the update
  constrained to that plan (`pulumi up --plan`), so what runs is what the guard judged: the
  engine fails the update at the first step that exceeds the plan (pulumi/pulumi
  pkg/cmd/pulumi/operations/up.go and preview.go: `--plan` / `--save-plan`; docs: "Update
  plans"). `--no-plan` skips that constraint (the guard then judges the preview only).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from automation.guard import (
    BackupLedger,
    GuardReport,
    Recorder,
    changes_markdown,
    judge,
    policy_markdown,
)
from automation.progress import Progress, error_object
from automation.upgrades import check_upgrades
from stacks.config import StackConfig
from stacks.config_base import duration_seconds


@dataclass(frozen=True)
class GuardOptions:
    allow_replace: tuple[str, ...] = ()
    allow_upgrade: tuple[str, ...] = ()
    policy_packs: tuple[str, ...] = ()
    comment: Path | None = None  # preview: write the Markdown report here
    use_plan: bool = True  # up: constrain the update to the previewed plan
    check_backups: bool = True  # ask the backup engine when the last backup was


def add_guard_arguments(p: argparse.ArgumentParser, operation: str) -> None:
    p.add_argument(
        "--allow-replace",
        action="append",
        default=[],
        metavar="SERVICE",
        help="let this service's data be replaced or deleted (repeat for more)",
    )
    p.add_argument(
        "--allow-upgrade",
        action="append",
        default=[],
        metavar="SERVICE",
        help="let this service's image move across a documented unsafe upgrade path (repeat for "
        "more); the pre-upgrade backup runs first",
    )
    p.add_argument(
        "--policy-pack", action="append", default=[], metavar="DIR", help="run this policy pack too"
    )
    if operation == "preview":
        p.add_argument("--comment", type=Path, metavar="FILE", help="also write the report as Markdown")
    if operation == "up":
        p.add_argument(
            "--no-plan", action="store_true", help="do not constrain the update to the previewed plan"
        )


def guard_options_from(args: argparse.Namespace) -> GuardOptions:
    return GuardOptions(
        allow_replace=tuple(getattr(args, "allow_replace", None) or ()),
        allow_upgrade=tuple(getattr(args, "allow_upgrade", None) or ()),
        policy_packs=tuple(getattr(args, "policy_pack", None) or ()),
        comment=getattr(args, "comment", None),
        use_plan=not getattr(args, "no_plan", False),
    )


def backup_ledger(config: StackConfig) -> BackupLedger | None:
    """The backup engine's answer to "when was the last backup"; None when it cannot tell."""
    from automation.ledger import ledger_for

    return ledger_for(config)


def _report(recorder: Recorder, config: StackConfig, options: GuardOptions) -> GuardReport:
    changes = recorder.changes()
    ledger = None
    if changes and options.check_backups and any(c.service not in options.allow_replace for c in changes):
        ledger = backup_ledger(config)
    return judge(changes, options.allow_replace, ledger, duration_seconds(config.data.max_backup_age))


def _policy_kwargs(options: GuardOptions) -> dict[str, Any]:
    return {"policy_packs": list(options.policy_packs)} if options.policy_packs else {}


def _failure(error: Exception) -> str:
    from automation.workspace import cli_reason

    return cli_reason(error)


def _error(out: TextIO, err: TextIO | None, json_lines: bool, kind: str, message: str) -> None:
    """An error line on stderr; with --json also one JSON error object on stdout."""
    (err if err is not None else sys.stderr).write(message + "\n")
    if json_lines:
        out.write(error_object(kind, message))


def guarded_preview(
    stack: Any,
    config: StackConfig,
    options: GuardOptions,
    out: TextIO,
    json_lines: bool,
    err: TextIO | None = None,
) -> int:
    from pulumi.automation import errors as auto_errors

    held = io.StringIO()
    progress = Progress(out=held, json_lines=json_lines)
    recorder = Recorder(forward=progress)
    failure = ""
    try:
        stack.preview(on_event=recorder, **_policy_kwargs(options))
    except auto_errors.CommandError as error:
        failure = _failure(error)
    report = _report(recorder, config, options)
    upgrades = check_upgrades(stack, config, options.allow_upgrade)
    if json_lines:
        if report.verdicts:
            out.write(report.as_json() + "\n")
        if upgrades.verdicts:
            out.write(upgrades.as_json() + "\n")
    else:
        out.write(report.render_text(refusing=False))
        out.write(upgrades.render_text(refusing=False))
    out.write(held.getvalue())
    if not json_lines:
        out.write(progress.render_summary())
    if failure:
        _error(out, err, json_lines, "operation", f"preview failed: {failure}")
    if options.comment is not None:
        parts = [
            report.render_markdown(),
            upgrades.render_markdown(),
            policy_markdown(recorder.policy),
            changes_markdown(progress.summary, recorder.steps),
        ]
        if failure:
            parts.append(f"**preview failed**: {failure}\n")
        options.comment.write_text("\n".join(p for p in parts if p))
    return 0 if not failure and not progress.failures else 1


def check_before_up(
    stack: Any,
    config: StackConfig,
    options: GuardOptions,
    out: TextIO,
    json_lines: bool,
    err: TextIO | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Preview, judge, say so; (go ahead?, the keyword arguments for `stack.up`)."""
    from pulumi.automation import errors as auto_errors

    recorder = Recorder()
    extra = _policy_kwargs(options)
    plan: dict[str, Any] = {}
    if options.use_plan:
        plan = {"plan": str(Path(tempfile.mkdtemp(prefix="homelab-plan-")) / "plan.json")}
    try:
        stack.preview(on_event=recorder, **extra, **plan)
    except auto_errors.CommandError as error:
        discard_plan(plan)
        _error(
            out,
            err,
            json_lines,
            "operation",
            f"up stopped before any change: its preview failed: {_failure(error)}",
        )
        return False, {}
    report = _report(recorder, config, options)
    upgrades = check_upgrades(stack, config, options.allow_upgrade)
    if json_lines:
        if report.verdicts:
            out.write(report.as_json() + "\n")
        if upgrades.verdicts:
            out.write(upgrades.as_json() + "\n")
    else:
        out.write(report.render_text(refusing=True))
        out.write(upgrades.render_text(refusing=True))
    if upgrades.refused:
        names = sorted({v.change.service for v in upgrades.refused})
        reasons = "; ".join(f"{v.change.service}: {v.reason}. Way through: {v.way}" for v in upgrades.refused)
        _error(
            out,
            err,
            json_lines,
            "refused",
            f"up refused before any change: {len(upgrades.refused)} image change(s) of stateful "
            f"services cross an upgrade path their vendor documents as unsafe ({reasons}). After "
            f"doing what it says, or to go ahead anyway with the pre-upgrade backup taken first: "
            f"{' '.join('--allow-upgrade ' + n for n in names)}",
        )
        discard_plan(plan)
        return False, {}
    if report.refused:
        names = sorted({v.change.service for v in report.refused})
        _error(
            out,
            err,
            json_lines,
            "refused",
            f"up refused before any change: {len(report.refused)} change(s) would replace or delete "
            f"stateful data without a backup younger than {config.data.max_backup_age}. Back up "
            f"first (python -m automation backup --host H) or name them: "
            f"{' '.join('--allow-replace ' + n for n in names)}",
        )
        discard_plan(plan)
        return False, {}
    return True, {**extra, **plan}


def discard_plan(kwargs: dict[str, Any]) -> None:
    """Remove the saved plan of `check_before_up` (its own temporary folder), if any."""
    if "plan" in kwargs:
        shutil.rmtree(Path(kwargs["plan"]).parent, ignore_errors=True)


PRE_UPGRADE_SUFFIX = "-pre-upgrade-backup-run"  # components/homelab/preupgrade.py


@dataclass
class ArchiveAnnouncer:
    """Passes every event on, and says which archive each pre-upgrade backup wrote."""

    forward: Any
    out: TextIO
    json_lines: bool = False

    def __call__(self, event: Any) -> None:
        self.forward(event)
        done = event.res_outputs_event
        if done is None or not done.metadata.urn.endswith(PRE_UPGRADE_SUFFIX):
            return
        new = done.metadata.new
        stdout = str((new.outputs or {}).get("stdout") or "").strip() if new is not None else ""
        if not stdout:
            return
        if self.json_lines:
            self.out.write(json.dumps({"pre-upgrade-backup": stdout}) + "\n")
        else:
            self.out.write(stdout + "\n")
