"""Support windows: how long each pinned line gets fixes from its vendor, as data.

A pin is a line with a support window. Beside every pin of every layer (images, charts, the
Kubernetes version the manifests target, the Python and Pulumi the program runs on) a
`Product` records the vendor's policy in one sentence and, per line, a `Window`: the date its
support ends (or `None` with the maintainer's statement where no end is published), the
upstream file that says so (`Seen`), the day it was read, and the newest release of the line
on that day. The tables live next to the pins (components/homelab/images.py,
components/platform/charts.py, components/platform/images.py, components/pipeline/images.py,
and RUNTIME below); `python -m automation lifecycle` reads them offline, and
tests/test_lifecycle.py checks that every pin has its window.

Lines are named by the first `digits` numbers of a version: "17.11-alpine" is PostgreSQL's
line "17" (digits=1), "v3.5.5" Prometheus' line "3.5" (digits=2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from components.contracts import Seen

__all__ = ["RUNTIME", "Product", "UpgradeRule", "Window", "line_of", "upgrade_findings", "version_numbers"]

_NUMBERS = re.compile(r"^v?(\d+(?:\.\d+)*)")


def version_numbers(version: str) -> tuple[int, ...]:
    """The leading dotted numbers of a tag or version: "v1.19.6" -> (1, 19, 6),
    "11.3.1-php8.4-apache" -> (11, 3, 1), "12.3.6-security-01" -> (12, 3, 6); () for none."""
    found = _NUMBERS.match(version.strip())
    return tuple(int(n) for n in found.group(1).split(".")) if found else ()


def line_of(version: str, digits: int) -> str:
    numbers = version_numbers(version)
    return ".".join(str(n) for n in numbers[:digits]) if len(numbers) >= digits else ""


# The day the tables were last read upstream (every window says when it was read).
READ = date(2026, 12, 7)


@dataclass(frozen=True)
class Window:
    """One line's support, as its vendor states it."""

    line: str  # "3.11", "17", "11.3"
    ends: date | None  # the last day of support; None: no end is published
    source: Seen  # where the date (or the statement) was read
    newest: str  # the newest release of the line on the day it was read
    note: str = ""  # the maintainer's words where no date is published, or how the date follows
    read: date = READ  # the day it was read


@dataclass(frozen=True)
class Product:
    """A vendor's product: its support policy and the windows of the lines we know."""

    name: str
    policy: str  # the vendor's policy, in one sentence
    windows: tuple[Window, ...]
    digits: int = 2  # how many leading numbers of a version name its line
    # Image repositories or chart names that carry it (matched without a registry host for
    # Docker Hub names: "prom/prometheus", "ghcr.io/google/cadvisor", "chart:argo-cd").
    names: tuple[str, ...] = ()

    def line(self, version: str) -> str:
        return line_of(version, self.digits)

    def window(self, version: str) -> Window | None:
        line = self.line(version)
        return next((w for w in self.windows if w.line == line), None)

    def newest_supported(self, today: date) -> Window | None:
        """The newest line still supported on `today` (by version), if the table knows one."""
        alive = [w for w in self.windows if w.ends is None or w.ends >= today]
        return max(alive, key=lambda w: version_numbers(w.line), default=None)


# ---- upgrade paths ----------------------------------------------------------------------------


def _padded(numbers: tuple[int, ...], width: int = 4) -> tuple[int, ...]:
    return numbers + (0,) * (width - len(numbers))


def _within(version: tuple[int, ...], bounds: tuple[str, str]) -> bool:
    low, high = (_padded(version_numbers(b)) for b in bounds)
    return low <= _padded(version) <= high


@dataclass(frozen=True)
class UpgradeRule:
    """What a vendor documents about moving a stateful service from one version to another.

    `change` says when the rule applies to a move from `old` to a newer `new`:
    - "major": the first version number differs;
    - "minor": the first two numbers differ (a new major or minor line);
    - "window": `old` lies in `from_versions` and `new` in `to_versions` (inclusive bounds);
    - "any": the version differs at all.
    `action` "refuse" stops `up` unless the service is named with `--allow-upgrade`;
    "after" is a step to take once the new image runs (said by preview and up).
    """

    product: str
    change: Literal["major", "minor", "window", "any"]
    action: Literal["refuse", "after"]
    reason: str  # what goes wrong, in the vendor's terms
    way: str  # the way through
    source: Seen
    from_versions: tuple[str, str] | None = None
    to_versions: tuple[str, str] | None = None

    def applies(self, old: str, new: str) -> bool:
        o, n = version_numbers(old), version_numbers(new)
        if not o or not n or _padded(n) <= _padded(o):
            return False
        if self.change == "major":
            return o[0] != n[0]
        if self.change == "minor":
            return _padded(o)[:2] != _padded(n)[:2]
        if self.change == "window":
            assert self.from_versions is not None and self.to_versions is not None
            return _within(o, self.from_versions) and _within(n, self.to_versions)
        return True


DOWNGRADE = "downgrade"


def upgrade_findings(
    rules: tuple[UpgradeRule, ...], product: str, old: str, new: str
) -> list[tuple[str, str, str]]:
    """(action, reason, way) of each rule that applies to moving `product` from `old` to
    `new`, a downgrade first (no vendor supports running old code on data a newer one wrote)."""
    o, n = version_numbers(old), version_numbers(new)
    found: list[tuple[str, str, str]] = []
    if o and n and _padded(n) < _padded(o):
        found.append(
            (
                "refuse",
                f"{old} -> {new} is a downgrade: the data was written by the newer version, and "
                "the older one may not read it",
                "restore the backup taken before the upgrade (python -m automation restore) "
                "instead of running the old image on the new data",
            )
        )
    for rule in rules:
        if rule.product == product and rule.applies(old, new):
            found.append((rule.action, f"{rule.reason} ({rule.source})", rule.way))
    return found


# ---- the program's own runtime ----------------------------------------------------------------


_NO_PULUMI_END = "no end published; the latest major of each provider is maintained"


def _pulumi(name: str, line: str, newest: str, note: str = _NO_PULUMI_END) -> Product:
    return Product(
        name=f"pypi:{name}",
        policy="Pulumi actively maintains the latest released major version of every provider; "
        "no end of support is published for CLI or SDK versions.",
        windows=(
            Window(
                line,
                None,
                Seen("pulumi/docs", "content/docs/support/provider-support-policy.md", "438cef54e930"),
                newest,
                note,
            ),
        ),
        digits=1,
    )


RUNTIME: dict[str, Product] = {
    "python": Product(
        name="python",
        policy="Each CPython feature release gets two years of bug fixes, then security fixes "
        "until five years after its release (PEP 602).",
        windows=(
            Window(
                "3.11",
                date(2027, 10, 1),
                Seen("python/peps", "release_management/python-releases.toml", "b53285d29f16"),
                "3.11.15",
                "security fixes only (source releases) since 2024-04",
            ),
        ),
    ),
    "pulumi": _pulumi("pulumi", "3", "3.272.0", "no end published for CLI or SDK versions"),
    "pulumi-docker": _pulumi("pulumi-docker", "5", "5.2.0"),
    "pulumi-command": _pulumi("pulumi-command", "1", "1.2.1"),
    "pulumi-random": _pulumi("pulumi-random", "4", "4.21.4"),
    "pulumi-tls": _pulumi("pulumi-tls", "5", "5.6.2"),
    "pulumi-kubernetes": _pulumi("pulumi-kubernetes", "4", "4.34.2"),
    "pulumi-github": _pulumi("pulumi-github", "6", "6.15.0"),
    # 6 is the newest major on PyPI (6.23.1, read 2026-12-07).
    "pulumi-cloudflare": _pulumi("pulumi-cloudflare", "6", "6.23.1"),
    # 0.29.2 is the newest on PyPI (read 2026-12-07): no 1.x yet.
    "pulumi-tailscale": _pulumi("pulumi-tailscale", "0", "0.29.2"),
    "pulumiverse-harbor": _pulumi(
        "pulumiverse-harbor", "3", "3.10.21", "no end published (a community provider)"
    ),
    "pulumiverse-time": _pulumi("pulumiverse-time", "0", "0.1.1", "no end published (a community provider)"),
}
