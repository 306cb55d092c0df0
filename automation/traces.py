"""Deployment traces (home-idp's trace-manager, for deployments): one trace per `up`/`destroy`,
one span per resource step, built from the engine events and sent as OTLP/HTTP JSON.

The root span covers the whole operation; each step span carries the resource type, name,
operation, duration and result. No SDK is needed: OTLP/HTTP accepts this JSON as is.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from automation.progress import Progress, Step


def _ns(seconds: float) -> str:
    return str(int(seconds * 1_000_000_000))


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


@dataclass
class DeploymentTrace:
    """Wall-clock times of the operation; the steps come from a `Progress`."""

    operation: str
    stack: str
    service_name: str = "homelab-deployments"
    started: float = field(default_factory=time.time)
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def payload(self, progress: Progress, finished: float, ok: bool) -> dict[str, Any]:
        root_id = secrets.token_hex(8)
        # Progress times steps on a monotonic clock; anchor them to the trace's start.
        first = min((s.started for s in progress.steps.values()), default=0.0)

        def wall(t: float) -> float:
            return self.started + (t - first)

        spans = [
            {
                "traceId": self.trace_id,
                "spanId": root_id,
                "name": f"pulumi {self.operation} {self.stack}",
                "kind": 1,
                "startTimeUnixNano": _ns(self.started),
                "endTimeUnixNano": _ns(finished),
                "attributes": [
                    _attr("pulumi.operation", self.operation),
                    _attr("pulumi.stack", self.stack),
                    _attr("pulumi.resources", progress.total),
                    _attr("pulumi.failures", len(progress.failures)),
                ],
                "status": {"code": 1 if ok else 2},
            }
        ]
        for step in progress.steps.values():
            spans.append(self._span(step, root_id, wall))
        return {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_attr("service.name", self.service_name)]},
                    "scopeSpans": [{"scope": {"name": "homelab.automation"}, "spans": spans}],
                }
            ]
        }

    def _span(self, step: Step, parent: str, wall: Any) -> dict[str, Any]:
        end = step.finished if step.finished is not None else step.started
        span: dict[str, Any] = {
            "traceId": self.trace_id,
            "spanId": secrets.token_hex(8),
            "parentSpanId": parent,
            "name": f"{step.op} {step.type}",
            "kind": 1,
            "startTimeUnixNano": _ns(wall(step.started)),
            "endTimeUnixNano": _ns(wall(end)),
            "attributes": [
                _attr("pulumi.resource.type", step.type),
                _attr("pulumi.resource.name", step.name),
                _attr("pulumi.resource.urn", step.urn),
                _attr("pulumi.operation", step.op),
                _attr("pulumi.result", step.result),
                _attr("pulumi.duration_ms", int(step.seconds * 1000)),
            ],
            "status": {"code": 2 if step.result == "failed" else 1},
        }
        if step.message:
            span["status"]["message"] = step.message
        return span


def export(endpoint: str, payload: dict[str, Any], timeout: float = 10.0) -> None:
    """POST the spans to `<endpoint>/v1/traces` (OTLP/HTTP, JSON encoding)."""
    url = endpoint.rstrip("/") + "/v1/traces"
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        response.read()
