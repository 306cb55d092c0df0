"""Live progress of an operation from the engine's events, and a summary at the end.

`Progress` is the `on_event` callback: it counts resources done out of those announced,
shows the operations under way, keeps failures with their messages, and times each step.
With `json_lines=True` it prints one JSON object per step instead (for CI logs).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from pulumi.automation import events

QUIET_OPS = {"same", "read"}


@dataclass
class Step:
    urn: str
    type: str
    name: str
    op: str
    started: float
    finished: float | None = None
    result: str = "running"
    message: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished or self.started) - self.started


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


@dataclass
class Progress:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    json_lines: bool = False
    clock: Any = time.monotonic
    steps: dict[str, Step] = field(default_factory=dict)
    diagnostics: dict[str, list[str]] = field(default_factory=dict)
    summary: dict[str, int] | None = None
    duration: int | None = None

    # ---- the callback ------------------------------------------------------------------

    def __call__(self, event: events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self._start(event.resource_pre_event.metadata)
        elif event.res_outputs_event is not None:
            self._finish(event.res_outputs_event.metadata, "ok")
        elif event.res_op_failed_event is not None:
            self._finish(event.res_op_failed_event.metadata, "failed")
        elif event.diagnostic_event is not None:
            d = event.diagnostic_event
            if d.severity == "error" and d.urn:
                self.diagnostics.setdefault(d.urn, []).append(d.message.strip())
        elif event.summary_event is not None:
            s = event.summary_event
            self.summary = {str(getattr(k, "value", k)): v for k, v in (s.resource_changes or {}).items()}
            self.duration = s.duration_seconds

    def _start(self, meta: events.StepEventMetadata) -> None:
        op = str(getattr(meta.op, "value", meta.op))
        self.steps[meta.urn] = Step(meta.urn, meta.type, _name(meta.urn), op, self.clock())
        if op not in QUIET_OPS:
            self._emit(self.steps[meta.urn], "start")

    def _finish(self, meta: events.StepEventMetadata, result: str) -> None:
        step = self.steps.get(meta.urn)
        if step is None:
            op = str(getattr(meta.op, "value", meta.op))
            step = self.steps[meta.urn] = Step(meta.urn, meta.type, _name(meta.urn), op, self.clock())
        step.finished = self.clock()
        step.result = result
        if result == "failed":
            step.message = " ".join(self.diagnostics.get(meta.urn, [])) or "failed"
        if step.op not in QUIET_OPS or result == "failed":
            self._emit(step, "done")

    # ---- views -------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps.values() if s.finished is not None)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def running(self) -> list[Step]:
        return [s for s in self.steps.values() if s.finished is None]

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps.values() if s.result == "failed"]

    def _emit(self, step: Step, phase: str) -> None:
        if self.json_lines:
            if phase == "start":
                return  # one object per step, when it ends
            record = {
                "phase": phase,
                "op": step.op,
                "type": step.type,
                "name": step.name,
                "result": step.result,
                "seconds": round(step.seconds, 3),
                "done": self.done,
                "total": self.total,
            }
            if step.message:
                record["message"] = step.message
            self.out.write(json.dumps(record) + "\n")
            return
        if phase == "start":
            self.out.write(f"[{self.done}/{self.total}] {step.op:<8} {step.type} {step.name} ...\n")
        else:
            mark = "FAILED" if step.result == "failed" else "done"
            line = f"[{self.done}/{self.total}] {step.op:<8} {step.type} {step.name} {mark}"
            line += f" ({step.seconds:.1f}s)"
            if step.message:
                line += f": {step.message}"
            self.out.write(line + "\n")
        self.out.flush()

    def render_summary(self) -> str:
        changed = [s for s in self.steps.values() if s.op not in QUIET_OPS or s.result == "failed"]
        width = max([len(s.name) for s in changed] + [8])
        lines = [f"{'operation':<9} {'resource':<{width}} {'type':<40} {'result':<7} {'seconds':>8}"]
        for s in sorted(changed, key=lambda s: s.started):
            lines.append(f"{s.op:<9} {s.name:<{width}} {s.type:<40} {s.result:<7} {s.seconds:>8.1f}")
        counts = ", ".join(f"{k} {v}" for k, v in sorted((self.summary or {}).items()))
        lines.append(f"{self.done}/{self.total} resources; {counts or 'no changes'}")
        if self.duration is not None:
            lines[-1] += f"; {self.duration}s"
        for f in self.failures:
            lines.append(f"FAILED {f.name}: {f.message}")
        return "\n".join(lines) + "\n"


def error_object(kind: str, message: str, problems: list[tuple[str, str]] | None = None) -> str:
    """One JSON object for an error, as `--json` prints it on stdout."""
    body: dict[str, Any] = {"kind": kind, "message": message}
    if problems:
        body["problems"] = [{"path": path, "message": text} for path, text in problems]
    return json.dumps({"error": body}) + "\n"
