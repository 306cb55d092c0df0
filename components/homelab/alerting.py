"""Alerting: the alert rules derived from the service model, Alertmanager beside Prometheus
routing them to the homelab's chat, and the blackbox exporter that reads the certificate of
every routed HTTPS host name.

The rules file is generated like the scrape config: every scrape job gets "target down",
and each kind of service in the plan brings the rules that read its metrics (node-exporter:
disk, memory, clock; cAdvisor: restarts, health; HAProxy: backends, 5xx; the TLS probes:
certificate expiry; each backup run: its age). A service declared in config is one more
scrape job, so it gets its alert without any edit here.

The webhook URL is a secret: it reaches Alertmanager only as an uploaded file that the
config names (`api_url_file` / `url_file`), never in the config file, the environment or
the logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from components.docker.spec import (
    SECRETS_DIR,
    Basics,
    ContainerSpec,
    ExternalVolume,
    FileUpload,
    MetricsEndpoint,
    Route,
    ServiceSpec,
    Volume,
    http_check,
    secret_file,
)
from components.homelab.images import CONTRACTS
from components.templating import render

# ---- Alertmanager (prometheus/alertmanager v0.34.0) -----------------------------------

ALERTMANAGER_PORT = 9093
# The image's entrypoint is /bin/alertmanager; it runs as `nobody` with /alertmanager as its
# data directory (prometheus/alertmanager Dockerfile, v0.34.0).
ALERTMANAGER_CONFIG = "/etc/alertmanager/alertmanager.yml"
ALERTMANAGER_DATA = "/alertmanager"
# A secret file (components/docker/spec.py): 0400, owned by the image's user (its contract).
WEBHOOK_URL_FILE = f"{SECRETS_DIR}/alert-webhook-url"
# The shared-secret name the stack hands the webhook URL over with.
WEBHOOK_SECRET = "alert-webhook-url"

ReceiverKind = Literal["slack", "webhook"]


@dataclass(frozen=True)
class Receiver:
    """Where notifications go. `slack`: a Slack-compatible incoming webhook (Mattermost's
    incoming webhooks take Slack's payload); `webhook`: Alertmanager's own JSON to any URL."""

    kind: ReceiverKind = "slack"
    channel: str | None = None


@dataclass(frozen=True)
class Routing:
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"


@dataclass(frozen=True)
class AlertmanagerArgs:
    basics: Basics
    receiver: Receiver | None = None
    routing: Routing = Routing()


def alertmanager_config(receiver: Receiver | None, routing: Routing) -> str:
    """alertmanager.yml: grouped by alert and host; a host that is down silences the rest of
    its alerts. Without a receiver, alerts are kept (UI, API, Grafana) but sent nowhere."""
    return render(
        __file__,
        "alertmanager.yml.j2",
        receiver=receiver,
        routing=routing,
        url_file=WEBHOOK_URL_FILE,
    )


def alertmanager(a: AlertmanagerArgs) -> ServiceSpec:
    b = a.basics
    uploads = [FileUpload(ALERTMANAGER_CONFIG, alertmanager_config(a.receiver, a.routing))]
    if a.receiver is not None:
        uploads.append(secret_file("alert-webhook-url", WEBHOOK_SECRET, owner=CONTRACTS["alertmanager"].uid))
    container = ContainerSpec(
        name="alertmanager",
        image=b.image,
        privileges=CONTRACTS["alertmanager"].privileges(),
        command=(
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={ALERTMANAGER_DATA}",
            # One instance: no gossip cluster (flag of cmd/alertmanager/main.go).
            "--cluster.listen-address=",
            # The URL the chat messages link to (`.ExternalURL`, cmd/alertmanager/main.go
            # --web.external-url): its route, not the container's own name (a dead link).
            *((f"--web.external-url={b.url}",) if b.url else ()),
        ),
        # Silences and the notification log: kept (and backed up) across re-creation.
        volumes=(Volume("alertmanager-data", ALERTMANAGER_DATA),),
        uploads=tuple(uploads),
        # BusyBox wget (the image is quay.io/prometheus/busybox); /-/healthy is served by
        # httpserver/httpserver.go. 127.0.0.1: BusyBox tries ::1 for localhost first.
        healthcheck=http_check(f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/healthy"),
        memory_mb=b.memory(128),
    )
    return ServiceSpec(
        name=b.name or "alertmanager",
        kind="Alertmanager",
        host=b.host,
        containers=(container,),
        metrics=(MetricsEndpoint("alertmanager", "alertmanager", ALERTMANAGER_PORT),),
        routes=(Route(b.fqdn, "alertmanager", ALERTMANAGER_PORT),) if b.fqdn else (),
        restart=b.restart,
        title="Alertmanager",
    )


# ---- blackbox exporter (prometheus/blackbox_exporter v0.28.0) -------------------------

BLACKBOX_PORT = 9115
BLACKBOX_CONFIG = "/etc/blackbox_exporter/config.yml"
TLS_JOB = "tls-certificates"
TLS_MODULE = "tls_certificate"


@dataclass(frozen=True)
class TlsProbe:
    """One routed HTTPS host name, probed at its proxy's TLS port with that name as SNI."""

    address: str  # host:port of the proxy as the blackbox exporter dials it
    fqdn: str
    host: str  # the homelab host whose proxy answers


@dataclass(frozen=True)
class ProbeJob:
    """A scrape job of the blackbox exporter: one probe per target, `hostname` as SNI."""

    name: str
    module: str
    exporter: str  # host:port of the blackbox exporter
    probes: tuple[TlsProbe, ...]


def tls_probes(
    routes_by_host: dict[str, list[Route]],
    prometheus_host: str,
    addresses: dict[str, str | None],
    https_port: int,
) -> list[TlsProbe]:
    """Every routed HTTP host name, at the TLS port of the proxy on its host.

    Beside Prometheus the proxy is `haproxy:443` on the stack network; on another host it is
    that host's address and the published HTTPS port. Hosts without an address are skipped
    (the config checks already report them).
    """
    probes = []
    for host, routes in sorted(routes_by_host.items()):
        if host == prometheus_host:
            address = "haproxy:443"
        elif addresses.get(host):
            address = f"{addresses[host]}:{https_port}"
        else:
            continue
        for fqdn in sorted({r.fqdn for r in routes if r.mode == "http"}):
            probes.append(TlsProbe(address, fqdn, host))
    return probes


def blackbox_config() -> str:
    return render(__file__, "blackbox.yml.j2", module=TLS_MODULE)


def blackbox_exporter(b: Basics) -> ServiceSpec:
    container = ContainerSpec(
        name="blackbox-exporter",
        image=b.image,
        privileges=CONTRACTS["blackbox-exporter"].privileges(),
        command=(f"--config.file={BLACKBOX_CONFIG}",),
        uploads=(FileUpload(BLACKBOX_CONFIG, blackbox_config()),),
        # /-/healthy: main.go of v0.28.0; BusyBox wget as in the Alertmanager image.
        healthcheck=http_check(f"http://127.0.0.1:{BLACKBOX_PORT}/-/healthy"),
        memory_mb=b.memory(64),
    )
    return ServiceSpec(
        name=b.name or "blackbox-exporter",
        kind="BlackboxExporter",
        host=b.host,
        containers=(container,),
        metrics=(MetricsEndpoint("blackbox-exporter", "blackbox-exporter", BLACKBOX_PORT),),
        restart=b.restart,
        title="Blackbox exporter",
    )


def tls_probe_job(probes: Iterable[TlsProbe]) -> ProbeJob:
    return ProbeJob(TLS_JOB, TLS_MODULE, f"blackbox-exporter:{BLACKBOX_PORT}", tuple(probes))


# ---- backups: the metric the backup run leaves behind ---------------------------------

# node-exporter's textfile collector (collector/textfile.go, --collector.textfile.directory)
# exports every *.prom file of this directory. The backup run of a host writes BACKUP_METRIC
# there after each successful run (see `backup_success_command`).
TEXTFILE_DIR = "/var/lib/node-exporter/textfile"
BACKUP_METRIC = "homelab_backup_last_success_timestamp_seconds"
BACKUP_TEXTFILE = "homelab-backup.prom"


def backup_success_command(directory: str = TEXTFILE_DIR) -> str:
    """A shell command that records "a backup succeeded now" for the textfile collector.

    Written to a temporary file and renamed, so node-exporter never reads half a file.
    """
    target = f"{directory}/{BACKUP_TEXTFILE}"
    return (
        f'printf "# HELP {BACKUP_METRIC} Time of the last successful backup run.\\n'
        f'# TYPE {BACKUP_METRIC} gauge\\n{BACKUP_METRIC} %s\\n" "$(date +%s)" > {target}.tmp'
        f" && mv {target}.tmp {target}"
    )


def textfile_volume(spec: ServiceSpec) -> Volume:
    """The textfile directory of a node-exporter service: a volume of its own, not backed up."""
    return Volume(f"{spec.name}-textfile", TEXTFILE_DIR, stateful=False, read_only=True)


def with_textfile_collector(spec: ServiceSpec) -> ServiceSpec:
    """node-exporter reading its textfile directory (collector/textfile.go)."""
    containers = tuple(
        dataclasses.replace(
            c,
            command=(*c.command, f"--collector.textfile.directory={TEXTFILE_DIR}"),
            volumes=(*c.volumes, textfile_volume(spec)),
        )
        if c.name == "node-exporter"
        else c
        for c in spec.containers
    )
    return dataclasses.replace(spec, containers=containers)


# offen/docker-volume-backup v2.48.2 runs the command of a `docker-volume-backup.<step>-pre`
# label in the labelled container (docs/how-tos/run-custom-commands.md; with EXEC_LABEL set,
# only in containers whose `docker-volume-backup.exec-label` matches it: cmd/backup/exec.go).
# cmd/backup/run_script.go reaches the `prune` step only after the archive was made and copied
# to every storage, and a `-post` command would also run after a failed step (a deferred call),
# so `prune-pre` is the hook that means "this run succeeded".
SUCCESS_HOOK_LABEL = "docker-volume-backup.prune-pre"
EXEC_LABEL = "docker-volume-backup.exec-label"


def with_backup_success_hook(spec: ServiceSpec, textfile_volume_name: str) -> ServiceSpec:
    """The backup run of a host, recording each success in its node-exporter's textfile
    directory (the Docker volume `textfile_volume_name`)."""
    containers = []
    for c in spec.containers:
        group = c.env.get("EXEC_LABEL")
        if not isinstance(group, str):
            containers.append(c)
            continue
        hook = {SUCCESS_HOOK_LABEL: f"/bin/sh -c '{backup_success_command()}'", EXEC_LABEL: group}
        mount = ExternalVolume(textfile_volume_name, TEXTFILE_DIR, read_only=False)
        containers.append(
            dataclasses.replace(c, labels={**c.labels, **hook}, external_volumes=(*c.external_volumes, mount))
        )
    return dataclasses.replace(spec, containers=tuple(containers))


# ---- the rules ------------------------------------------------------------------------

RULES_FILE = "/etc/prometheus/rules/homelab.yml"
# As prometheus.yml names it: relative paths are read from the config file's directory.
RULES_FILE_REF = "rules/homelab.yml"


@dataclass(frozen=True)
class Thresholds:
    """When a rule fires. Percentages are 0-100; durations are Prometheus durations."""

    target_down_for: str = "5m"
    disk_used_percent: float = 85
    memory_used_percent: float = 90
    clock_skew_seconds: float = 0.5
    container_restarts: int = 3
    container_restart_window: str = "15m"
    container_unhealthy_for: str = "5m"
    http_5xx_percent: float = 5
    certificate_days: int = 14
    backup_age_factor: float = 1.5


@dataclass(frozen=True)
class BackupWatch:
    """The backup run of `host`, expected at least every `interval_seconds`."""

    host: str
    interval_seconds: int


@dataclass(frozen=True)
class RuleSet:
    """What the plan holds, as far as the rules are concerned."""

    jobs: tuple[str, ...]
    hosts: bool = False  # node-exporter runs somewhere
    containers: bool = False  # cAdvisor runs somewhere
    proxy: bool = False  # HAProxy runs somewhere
    tls: bool = False  # the blackbox exporter probes certificates
    alertmanager: bool = False
    backups: tuple[BackupWatch, ...] = field(default_factory=tuple)


def rule_set(
    specs: Iterable[ServiceSpec],
    jobs: Iterable[str],
    backups: Iterable[BackupWatch] = (),
    tls: bool = False,
) -> RuleSet:
    kinds = {s.kind for s in specs}
    return RuleSet(
        jobs=tuple(sorted(set(jobs))),
        hosts="NodeExporter" in kinds,
        containers="CAdvisor" in kinds,
        proxy="ReverseProxy" in kinds,
        tls=tls,
        alertmanager="Alertmanager" in kinds,
        backups=tuple(sorted(backups, key=lambda w: w.host)),
    )


def prometheus_duration(seconds: float) -> str:
    """Whole seconds as the shortest Prometheus duration (`36h`, `90m`, `45s`)."""
    total = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total and total % size == 0:
            return f"{total // size}{unit}"
    return f"{total}s"


def alert_rules(rules: RuleSet, thresholds: Thresholds) -> str:
    """The rules file Prometheus loads (`rule_files`)."""
    backups = [
        {
            "host": w.host,
            "max_age_seconds": round(w.interval_seconds * thresholds.backup_age_factor),
            "max_age": prometheus_duration(w.interval_seconds * thresholds.backup_age_factor),
        }
        for w in rules.backups
    ]
    return render(
        __file__,
        "alert-rules.yml.j2",
        r=rules,
        t=thresholds,
        backups=backups,
        tls_job=TLS_JOB,
        backup_metric=BACKUP_METRIC,
    )
