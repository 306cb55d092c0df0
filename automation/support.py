"""`python -m automation lifecycle`: every pin, its line, when that line's support ends.

Offline: the answers come from the support tables beside the pins (components/lifecycle.py
says where). Without a stack the report covers every pin of every layer; with `--stack` or
`--file` it covers what that config registers: each container's image (custom services too),
the platform's charts and images, the apps' build images and their Dockerfiles' base images,
and the Kubernetes version the manifests target. Exit 1 when any pin's line is past its end
of support or ends within `--within` days (default 60).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from components.lifecycle import RUNTIME, Product, Window, version_numbers

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WITHIN = 60

OK, EXPIRING, ENDED, UNKNOWN = "ok", "expiring", "ended", "unknown"


@cache
def products() -> dict[str, Product]:
    """Every product of every layer's table, by each name it is known by."""
    from components.homelab.images import SUPPORT as HOMELAB
    from components.pipeline.images import SUPPORT as PIPELINE
    from components.platform.charts import SUPPORT as PLATFORM

    found: dict[str, Product] = {}
    for table in (HOMELAB, PLATFORM, PIPELINE, RUNTIME):
        for product in table.values():
            for name in (product.name, *product.names):
                if name in found and found[name] is not product:
                    raise ValueError(f"support tables: {name!r} is claimed twice")
                found[name] = product
    return found


def split_image(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference, Docker Hub's default prefixes removed."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix) :]
            break
    return repo, tag


@dataclass(frozen=True)
class Pin:
    """One pinned thing the program (or a config) uses."""

    component: str  # where it is used: "mattermost", "chart argo-cd", "custom-services[0] whoami"
    kind: str  # image, chart, kubernetes, runtime, base-image
    reference: str  # what is pinned, as written
    product: str  # the support table's product name
    version: str  # the version the line is read from


def chart_pin(key: str) -> Pin:
    """The pin of chart `key` of components/platform/charts.py CHARTS."""
    from components.platform.charts import CHARTS

    c = CHARTS[key]
    return Pin(f"chart {key}", "chart", f"{c.name} {c.version}", f"chart:{c.name}", c.version)


def image_pin(component: str, ref: str, kind: str = "image") -> Pin:
    repo, tag = split_image(ref)
    return Pin(component, kind, ref, repo, tag)


@dataclass(frozen=True)
class Row:
    pin: Pin
    line: str
    window: Window | None
    status: str
    days_left: int | None
    newest_of_line: str
    newest_supported: str  # the newest supported line's newest release, if another

    def as_dict(self) -> dict[str, object]:
        w = self.window
        return {
            "component": self.pin.component,
            "kind": self.pin.kind,
            "reference": self.pin.reference,
            "product": self.pin.product,
            "line": self.line,
            "ends": w.ends.isoformat() if w is not None and w.ends is not None else None,
            "days-left": self.days_left,
            "status": self.status,
            "newest-of-line": self.newest_of_line or None,
            "newest-supported": self.newest_supported or None,
            "source": str(w.source) if w is not None else None,
            "read": w.read.isoformat() if w is not None else None,
            "note": (w.note or None) if w is not None else None,
        }


def judge_pin(pin: Pin, today: date, within: int) -> Row:
    product = products().get(pin.product)
    if product is None:
        return Row(pin, "", None, UNKNOWN, None, "", "")
    line = product.line(pin.version)
    window = product.window(pin.version)
    best = product.newest_supported(today)
    newest_supported = best.newest if best is not None and best is not window else ""
    if window is None:
        return Row(pin, line, None, UNKNOWN, None, "", newest_supported)
    days = (window.ends - today).days if window.ends is not None else None
    if days is not None and days < 0:
        status = ENDED
    elif days is not None and days <= within:
        status = EXPIRING
    else:
        status = OK
    return Row(pin, line, window, status, days, window.newest, newest_supported)


# ---- which pins -------------------------------------------------------------------------------


def _requirements() -> list[Pin]:
    """The Pulumi SDK and providers pinned in requirements.txt."""
    pins = []
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        name, _, version = line.partition("==")
        if version and (name == "pulumi" or name.startswith(("pulumi-", "pulumiverse-"))):
            pins.append(Pin(name, "runtime", line, f"pypi:{name}", version))
    return pins


def _python() -> Pin:
    """The Python the project targets (pyproject's mypy python_version, the workflows' setup)."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^python_version = "(\d+\.\d+)"', text, re.MULTILINE)
    version = found.group(1) if found else ""
    return Pin("python", "runtime", f"python {version}", "python", version)


def table_pins() -> list[Pin]:
    """Every pin the code carries, whatever a config turns on."""
    from components.homelab.images import CONTRACTS as HOMELAB
    from components.pipeline.images import CONTRACTS as PIPELINE
    from components.platform.charts import CHARTS, KUBERNETES_VERSION
    from components.platform.images import CONTRACTS as PLATFORM

    pins = [image_pin(key, c.image) for key, c in HOMELAB.items()]
    pins += [image_pin(key, c.image) for key, c in {**PLATFORM, **PIPELINE}.items()]
    pins += [chart_pin(key) for key in CHARTS]
    pins.append(Pin("kubernetes", "kubernetes", KUBERNETES_VERSION, "kubernetes", KUBERNETES_VERSION))
    pins.append(_python())
    pins += _requirements()
    return pins


_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


def config_pins(config: object) -> list[Pin]:
    """What one stack config registers (see the module's docstring)."""
    from stacks.config import StackConfig

    assert isinstance(config, StackConfig)
    pins: list[Pin] = []
    if config.layers.homelab:
        from stacks.plan import build_plan

        plan = build_plan(config)
        seen: set[tuple[str, str]] = set()
        for spec in plan.services:
            for c in spec.containers:
                used = (spec.name if c.name == spec.name else f"{spec.name}/{c.name}", c.image)
                if used not in seen:
                    seen.add(used)
                    pins.append(image_pin(used[0], c.image))
    if config.layers.platform and config.platform is not None:
        from components.platform.images import CONTRACTS as PLATFORM

        p = config.platform
        pins += [chart_pin(key) for key in p.components.charts(p.routing)]
        if p.components.tracing.enabled:
            pins += [image_pin(name, contract.image) for name, contract in PLATFORM.items()]
        pins.append(Pin("kubernetes", "kubernetes", p.kubernetes_version, "kubernetes", p.kubernetes_version))
        if config.layers.apps:
            from components.pipeline.images import CONTRACTS as PIPELINE

            pins += [image_pin(key, c.image) for key, c in PIPELINE.items()]
            for app in config.apps:
                for ref in _FROM.findall(app.dockerfile_inline or ""):
                    pins.append(image_pin(f"apps {app.name} (FROM)", ref, "base-image"))
    return pins


# ---- the report -------------------------------------------------------------------------------


def report(pins: Iterable[Pin], today: date, within: int = DEFAULT_WITHIN) -> list[Row]:
    return [judge_pin(p, today, within) for p in pins]


def failing(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status in (ENDED, EXPIRING)]


def render_text(rows: list[Row], today: date, within: int) -> str:
    header = ("component", "kind", "pin", "line", "ends", "days", "newest", "status")
    table = [header]
    for r in rows:
        ends = (
            "-" if r.window is None else (r.window.ends.isoformat() if r.window.ends else "no end published")
        )
        newest = r.newest_of_line or "-"
        if r.newest_supported:
            newest += f" (supported line: {r.newest_supported})"
        table.append(
            (
                r.pin.component,
                r.pin.kind,
                r.pin.reference.split("@", 1)[0],
                r.line or "-",
                ends,
                "-" if r.days_left is None else str(r.days_left),
                newest,
                r.status,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    ]
    bad = failing(rows)
    unknown = [r for r in rows if r.status == UNKNOWN]
    lines.append("")
    lines.append(
        f"{len(rows)} pin(s) on {today.isoformat()}: {len(bad)} past or within {within} day(s) of their "
        f"end of support, {len(unknown)} with no support data."
    )
    for r in bad:
        w = r.window
        assert w is not None and w.ends is not None
        when = "ended" if r.status == ENDED else "ends"
        move = f"; move to {r.newest_supported}" if r.newest_supported else ""
        lines.append(
            f"  {r.pin.component}: {products()[r.pin.product].name.removeprefix('pypi:')} {r.line} {when} "
            f"{w.ends.isoformat()} ({w.source}){move}"
        )
    for r in unknown:
        lines.append(
            f"  {r.pin.component}: {r.pin.reference}: no support window known for this "
            f"{'line' if r.line else 'product'}"
        )
    return "\n".join(lines) + "\n"


def render_json(rows: list[Row], today: date, within: int) -> str:
    return json.dumps(
        {
            "date": today.isoformat(),
            "within-days": within,
            "failing": len(failing(rows)),
            "pins": [r.as_dict() for r in rows],
        },
        indent=2,
    )


def by_version(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.pin.kind, r.pin.component, version_numbers(r.pin.version)))
