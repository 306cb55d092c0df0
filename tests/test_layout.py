"""The direction of the arrows (shared/ARCHITECTURE.md): config -> stacks -> components.

The config modules are leaves: importing them loads no plan, no component and no Pulumi
SDK, so the cross-checks (which need the plan) live on the plan side (`stacks/checks.py`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_config_modules_are_leaves():
    loaded = modules_loaded_by("stacks.config")
    sections = {"homelab", "hosts", "backup", "platform", "apps"}
    assert {f"stacks.config_{s}" for s in sections} <= loaded
    offenders = sorted(
        m for m in loaded if m.startswith(("stacks.plan", "stacks.checks", "components", "pulumi"))
    )
    assert offenders == []


def test_components_never_import_stacks():
    for path in (ROOT / "components").rglob("*.py"):
        text = path.read_text()
        assert "from stacks" not in text and "import stacks" not in text, path
