"""Schema checks of the custom resources no Python package describes: the Gateway API's
(Gateway, GatewayClass, HTTPRoute) and Envoy Gateway's (EnvoyProxy, BackendTrafficPolicy), with
the schemas kubernetes-models publishes (.ci/k8s-models, pinned with its lockfile; `make tools`
installs it). They check types, enums, required fields and patterns; unknown fields are not
rejected by these schemas, so the tests assert the fields that matter themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from harness import ROOT

MODELS = ROOT / ".ci" / "k8s-models"
GROUPS = ("gateway.networking.k8s.io/", "gateway.envoyproxy.io/")


def available() -> str | None:
    """Why the check cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt-get install nodejs npm; then make tools)"
    if not (MODELS / "node_modules" / "@kubernetes-models" / "gateway-api").is_dir():
        return "the kubernetes-models schemas are not installed (make tools: npm ci in .ci/k8s-models)"
    return None


def schema_errors(docs: list[dict[str, Any]]) -> list[str | None]:
    """One error message (or None) per manifest, in order."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    result = subprocess.run(
        ["node", str(MODELS / "validate.mjs")],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        cwd=MODELS,
        check=True,
    )
    errors: list[str | None] = json.loads(result.stdout)
    return errors
