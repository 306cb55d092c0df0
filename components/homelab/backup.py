"""Backups with offen/docker-volume-backup: every stateful volume of a host, on a schedule.

The backup set is derived from the services' declarations alone: each stateful volume is
mounted read-only under /backup/<volume>, and the containers that write one carry the
stop-during-backup label whose value names this host's schedule (`ServiceSpec.backup_group`,
set by the plan, applied by `components/docker/service.py`), so the engine stops them for the
length of the archive run and starts them again, and no other schedule touches them.

Facts about the engine are from github.com/offen/docker-volume-backup at tag v2.48.2:
- docs/reference/index.md: every variable below, and that any of them can be given as
  `<NAME>_FILE` instead (implemented in cmd/backup/config_provider.go, `loadConfig`; the file
  is read as is, whitespace included). Secrets therefore reach the engine as uploaded files.
- cmd/backup/script.go, `init`: the archive is written under /tmp, then copied to every
  configured storage: the /archive directory when it exists (our host directory), S3
  (AWS_S3_BUCKET_NAME), WebDAV (WEBDAV_URL) and SSH (SSH_HOST_NAME).
- cmd/backup/archive.go: a tar (gzip by default) of BACKUP_SOURCES whose entries are named by
  their full path, `/backup/<volume>/...`; cmd/backup/encrypt_archive.go: with
  AGE_PUBLIC_KEYS the whole archive is encrypted to those recipients and named `<file>.age`.
- cmd/backup/run_script.go: containers are stopped before the archive is made and started
  right after; a container that fails to stop fails the run (no archive of live data), and
  NOTIFICATION_URLS (shoutrrr URLs) hear about failed runs at NOTIFICATION_LEVEL=error.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from components.docker.service import volume_name
from components.docker.spec import (
    Basics,
    BindMount,
    ContainerSpec,
    ExternalVolume,
    FileUpload,
    SecretRef,
    ServiceSpec,
)
from components.homelab.docker_api import BACKUP_API, DockerApiProxy
from components.homelab.images import CONTRACTS

SOURCES = "/backup"  # BACKUP_SOURCES: each volume at /backup/<docker volume name>
ARCHIVE = "/archive"  # BACKUP_ARCHIVE: the host directory, when archives are kept locally
SECRETS_DIR = "/run/homelab"
CONTAINER = "backup"  # the container's name on the host is <stack name>-backup
API = DockerApiProxy(CONTAINER, BACKUP_API)  # the engine's narrowed Docker API

# Names of the secrets the backup run reads, in the stack's shared secrets.
RECIPIENTS = "backup-recipients"  # comma-separated age recipients (public, kept as a secret value)
NOTIFY_URL = "backup-notify-url"
S3_ACCESS_KEY_ID = "backup-s3-access-key-id"
S3_SECRET_ACCESS_KEY = "backup-s3-secret-access-key"
SSH_PRIVATE_KEY = "backup-ssh-private-key"
WEBDAV_PASSWORD = "backup-webdav-password"


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


def backup_group(prefix: str, host: str) -> str:
    """The stop-during-backup label value of one host's schedule: unique per stack and host."""
    return f"{prefix}-{host}"


def archive_prefix(prefix: str, host: str) -> str:
    """Archive names start with this (and pruning only ever looks at names that do)."""
    return f"{prefix}-{host}-"


def notification_url(url: str) -> str:
    """The engine's (shoutrrr's) URL for where failed runs are reported.

    shoutrrr v0.16.1 (the engine's go.mod): a Mattermost incoming webhook
    `https://host/hooks/<token>` is `mattermost://host/<token>`, `?disabletls=yes` for http
    (docs/services/chat/mattermost/index.md); any other http(s) URL is a plain webhook,
    `generic+<url>` (docs/services/specialized/generic/index.md); shoutrrr URLs pass as given.
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    segments = parts.path.strip("/").split("/")
    if len(segments) == 2 and segments[0] == "hooks" and not parts.query:
        tls = "" if parts.scheme == "https" else "?disabletls=yes"
        return f"mattermost://{parts.netloc}/{segments[1]}{tls}"
    return f"generic+{url}"


@dataclass(frozen=True)
class S3Storage:
    endpoint: str
    protocol: str
    bucket: str
    path: str


@dataclass(frozen=True)
class SshStorage:
    user: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class WebdavStorage:
    url: str
    path: str
    username: str


@dataclass(frozen=True)
class BackupArgs:
    basics: Basics
    entries: tuple[BackupEntry, ...]
    schedule: str  # 5-field cron or an @-descriptor
    prefix: str = "homelab"
    retention_days: int | None = 14
    encrypted: bool = True  # to the recipients in the shared secret RECIPIENTS
    directory: str | None = None  # host directory for archives; None keeps none on the host
    s3: S3Storage | None = None
    ssh: SshStorage | None = None
    webdav: WebdavStorage | None = None
    notify: bool = False  # failed runs go to the shared secret NOTIFY_URL


def _secret_file(env: dict[str, str | SecretRef], key: str, name: str) -> FileUpload:
    """`<key>_FILE` names an uploaded file holding the secret `name`, exactly (no newline)."""
    path = f"{SECRETS_DIR}/{name}"
    env[f"{key}_FILE"] = path
    return FileUpload(path, SecretRef("{" + name + "}"))


def backup_schedule(a: BackupArgs) -> ServiceSpec:
    b = a.basics
    group = backup_group(a.prefix, b.host)
    name = archive_prefix(a.prefix, b.host)
    env: dict[str, str | SecretRef] = {
        "BACKUP_CRON_EXPRESSION": a.schedule,
        "BACKUP_SOURCES": SOURCES,
        # strftime verbs, then the engine's template for tar.gz (docs/reference/index.md).
        "BACKUP_FILENAME": name + "%Y-%m-%dT%H-%M-%S.{{ .Extension }}",
        "BACKUP_PRUNING_PREFIX": name,
        # Only containers labelled with this host's value are stopped, or run commands.
        "BACKUP_STOP_DURING_BACKUP_LABEL": group,
        "BACKUP_STOP_DURING_BACKUP_NO_RESTART_LABEL": group,
        "EXEC_LABEL": group,
        "DOCKER_HOST": API.url,
    }
    if a.retention_days is not None:
        env["BACKUP_RETENTION_DAYS"] = str(a.retention_days)
    uploads: list[FileUpload] = []
    if a.encrypted:
        uploads.append(_secret_file(env, "AGE_PUBLIC_KEYS", RECIPIENTS))
    if a.notify:
        uploads.append(_secret_file(env, "NOTIFICATION_URLS", NOTIFY_URL))
        env["NOTIFICATION_LEVEL"] = "error"
    binds: tuple[BindMount, ...] = ()
    if a.directory is not None:
        env["BACKUP_ARCHIVE"] = ARCHIVE
        binds = (BindMount(a.directory, ARCHIVE, read_only=False),)
    if a.s3 is not None:
        env.update(
            {
                "AWS_ENDPOINT": a.s3.endpoint,
                "AWS_ENDPOINT_PROTO": a.s3.protocol,
                "AWS_S3_BUCKET_NAME": a.s3.bucket,
            }
        )
        if a.s3.path:
            env["AWS_S3_PATH"] = a.s3.path
        uploads.append(_secret_file(env, "AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID))
        uploads.append(_secret_file(env, "AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY))
    if a.ssh is not None:
        env.update(
            {
                "SSH_HOST_NAME": a.ssh.host,
                "SSH_PORT": str(a.ssh.port),
                "SSH_USER": a.ssh.user,
                "SSH_REMOTE_PATH": a.ssh.path,
                # A path, not a value: the engine reads the key file itself.
                "SSH_IDENTITY_FILE": f"{SECRETS_DIR}/{SSH_PRIVATE_KEY}",
            }
        )
        uploads.append(FileUpload(f"{SECRETS_DIR}/{SSH_PRIVATE_KEY}", SecretRef("{" + SSH_PRIVATE_KEY + "}")))
    if a.webdav is not None:
        env.update(
            {"WEBDAV_URL": a.webdav.url, "WEBDAV_PATH": a.webdav.path, "WEBDAV_USERNAME": a.webdav.username}
        )
        uploads.append(_secret_file(env, "WEBDAV_PASSWORD", WEBDAV_PASSWORD))
    container = ContainerSpec(
        name=CONTAINER,
        image=b.image,
        privileges=CONTRACTS["backup"].privileges(),
        env=env,
        # What the policy pack reads to know the backup run (policies/rules.py).
        labels={"homelab.role": "backup"},
        external_volumes=tuple(
            ExternalVolume(e.volume, f"{SOURCES}/{e.volume}", read_only=True) for e in a.entries
        ),
        binds=binds,
        uploads=tuple(uploads),
        memory_mb=b.memory(256),
        # Stopping and starting the owners of the volumes needs the Docker API: its own proxy,
        # which allows those calls and no others (the engine reads DOCKER_HOST: client.FromEnv
        # in cmd/backup/script.go).
        depends_on=(API.name,),
    )
    return ServiceSpec(
        name=b.name or f"backup-{b.host}",
        kind="BackupSchedule",
        host=b.host,
        containers=(API.container(), container),
        restart=b.restart,
        title="Backups",
    )
