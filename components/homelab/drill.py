"""Restore drills: what a drill reports to Prometheus, and the alert on it.

`python -m automation drill` (automation/drill.py) restores the newest archive of a host into
scratch volumes, checks it, and leaves its result for node-exporter's textfile collector
(prometheus/node_exporter collector/textfile.go: every `*.prom` file of
`--collector.textfile.directory` is exported; README "Textfile Collector": write a temporary
file and rename it, so a scrape never reads half a file).

Per service (Prometheus adds the host as a target label):

- `homelab_restore_drill_success`: 1 when the last drill of the service passed, 0 when not;
- `homelab_restore_drill_last_verified_restore_timestamp_seconds`: when a drill last passed
  (kept through failed drills, so its age is the age of the last proof that restores work);
- `homelab_restore_drill_last_run_timestamp_seconds`: when the last drill ran.

The alert rules fire when a service's last verified restore is older than the configured age
(or there never was one), and when its last drill failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from components.docker.spec import ServiceSpec
from components.homelab.alerting import prometheus_duration
from components.templating import render

SUCCESS = "homelab_restore_drill_success"
VERIFIED = "homelab_restore_drill_last_verified_restore_timestamp_seconds"
LAST_RUN = "homelab_restore_drill_last_run_timestamp_seconds"
TEXTFILE = "homelab-restore-drill.prom"
HELP = {
    SUCCESS: "1 when the last restore drill of the service passed, 0 when it failed.",
    VERIFIED: "Unix time of the last restore drill of the service that passed.",
    LAST_RUN: "Unix time of the last restore drill of the service.",
}
# The file lives on the host it is about: Prometheus adds the `host` label as a target label
# of the node-exporter scrape (templates/prometheus.yml.j2), so the lines carry `service` only.
_LINE = re.compile(r'(?P<metric>[a-z_]+)\{service="(?P<service>[^"]*)"\} (?P<value>\S+)')  # fullmatch


@dataclass(frozen=True)
class DrillState:
    """One service's drill record, as the textfile holds it."""

    service: str
    success: bool
    last_run: float
    last_verified: float | None


def parse_textfile(text: str) -> dict[str, DrillState]:
    """The records of a previous textfile by service (lines it does not know are ignored)."""
    values: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line.strip())
        if match is None or match["metric"] not in HELP:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        values.setdefault(match["service"], {})[match["metric"]] = value
    states = {}
    for service, found in values.items():
        if SUCCESS in found and LAST_RUN in found:
            states[service] = DrillState(service, found[SUCCESS] == 1, found[LAST_RUN], found.get(VERIFIED))
    return states


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_textfile(states: Iterable[DrillState]) -> str:
    """The Prometheus text format of every record (sorted, so a rewrite is stable)."""
    ordered = sorted(states, key=lambda s: s.service)
    lines: list[str] = []
    for metric in (SUCCESS, VERIFIED, LAST_RUN):
        lines += [f"# HELP {metric} {HELP[metric]}", f"# TYPE {metric} gauge"]
        for s in ordered:
            value = {SUCCESS: 1 if s.success else 0, VERIFIED: s.last_verified, LAST_RUN: s.last_run}[metric]
            if value is None:
                continue
            lines.append(f'{metric}{{service="{_escape(s.service)}"}} {value:.0f}')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DrillWatch:
    """A host whose drills Prometheus watches: alert when no verified restore is newer than
    `max_age_seconds`."""

    host: str
    max_age_seconds: int


def drill_rules(watches: Iterable[DrillWatch], standalone: bool = True) -> str:
    """A Prometheus rules file (`rule_files`) with the restore drill alerts; without
    `standalone`, only the group, to append to the stack's rules file (alerting.py)."""
    hosts = [
        {"host": w.host, "seconds": w.max_age_seconds, "duration": prometheus_duration(w.max_age_seconds)}
        for w in sorted(watches, key=lambda w: w.host)
    ]
    if not hosts:  # nobody reports drills: no group (an empty one is not a valid rules file)
        return "groups: []\n" if standalone else ""
    return render(
        __file__,
        "restore-drill-rules.yml.j2",
        hosts=hosts,
        verified=VERIFIED,
        success=SUCCESS,
        standalone=standalone,
    )


def drill_watches(specs: Iterable[ServiceSpec], max_age_seconds: int) -> list[DrillWatch]:
    """The hosts whose drills Prometheus can see: a backup run and a node-exporter there."""
    specs = list(specs)
    exporters = {s.host for s in specs if s.kind == "NodeExporter"}
    backed = {s.host for s in specs if s.kind == "BackupSchedule"}
    return [DrillWatch(host, max_age_seconds) for host in sorted(backed & exporters)]
