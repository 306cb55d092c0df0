"""Backups with Volumerize: every stateful volume of a host, on a schedule, to a target.

The backup set is derived from the services' declarations alone: each stateful volume is
mounted read-only under /source/<volume>, and the containers that own them are stopped
during the backup (VOLUMERIZE_CONTAINERS) so databases are copied consistently. Backups are
encrypted with a generated passphrase (a Pulumi secret, exported so a restore is possible).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.service import volume_name
from components.docker.spec import (
    Basics,
    BindMount,
    ContainerSpec,
    ExternalVolume,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
)

SOURCE = "/source"


@dataclass(frozen=True)
class BackupEntry:
    """One stateful volume: its Docker name, the container that writes it, and its service."""

    volume: str
    container: str
    service: str


def backup_set(specs: list[ServiceSpec], prefix: str) -> list[BackupEntry]:
    """Every stateful volume the given services declare, in a stable order."""
    entries = [
        BackupEntry(volume_name(prefix, spec, volume), f"{prefix}-{container.name}", spec.name)
        for spec in specs
        for container, volume in spec.stateful_volumes
    ]
    return sorted(entries, key=lambda e: e.volume)


@dataclass(frozen=True)
class BackupArgs:
    basics: Basics
    entries: tuple[BackupEntry, ...]
    schedule: str  # jobber's 6-field cron: seconds minutes hours day month weekday
    target: str  # absolute directory on the host, or s3://bucket/path
    prefix: str = "homelab"


def volumerize(a: BackupArgs) -> ServiceSpec:
    b = a.basics
    is_s3 = a.target.startswith("s3://")
    stop = sorted({e.container for e in a.entries})
    env: dict[str, str | SecretRef] = {
        "VOLUMERIZE_SOURCE": SOURCE,
        "VOLUMERIZE_TARGET": a.target if is_s3 else "file:///backup",
        "VOLUMERIZE_CONTAINERS": " ".join(stop),
        "VOLUMERIZE_JOBBER_TIME": a.schedule,
        "VOLUMERIZE_CACHE": "/volumerize-cache",
        "PASSPHRASE": SecretRef("{passphrase}"),
    }
    if is_s3:
        env["AWS_ACCESS_KEY_ID"] = SecretRef("{s3-access-key-id}")
        env["AWS_SECRET_ACCESS_KEY"] = SecretRef("{s3-secret-access-key}")
    container = ContainerSpec(
        name="volumerize",
        image=b.image,
        env=env,
        volumes=(Volume("volumerize-cache", "/volumerize-cache", stateful=False),),
        external_volumes=tuple(
            ExternalVolume(e.volume, f"{SOURCE}/{e.volume}", read_only=True) for e in a.entries
        ),
        binds=() if is_s3 else (BindMount(a.target, "/backup", read_only=False),),
        # Stopping and starting the owners of the volumes needs the Docker API.
        docker_socket="rw",
        memory_mb=b.memory(512),
    )
    return ServiceSpec(
        name=b.name or f"volumerize-{b.host}",
        kind="BackupSchedule",
        host=b.host,
        containers=(container,),
        secrets=(SecretSpec("passphrase", length=48),),
        restart=b.restart,
        title="Backups (Volumerize)",
    )
