"""The homelab layer's config sections: hosts, built-in and custom services, TLS, backups,
monitoring and data safety (keys `homelab:hosts`, `homelab:services`, ...).

Field-level rules only; checks that need the planned services live in `stacks/checks.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from stacks.config_base import (
    _SSH_RE,
    AbsolutePath,
    Address,
    DockerDuration,
    Domain,
    Duration,
    EnvName,
    HttpUrl,
    Image,
    Label,
    MemoryMb,
    Model,
    Port,
    Restart,
    SecretKey,
    Subdomain,
    Text,
    UrlPath,
    ssh_address,
    ssh_parts,
)

# ---- hosts --------------------------------------------------------------------------

# Host key types a host can present, by their OpenSSH names (openssh-portable V_9_2_P1:
# ssh-ed25519.c, ssh-ecdsa.c, ssh-rsa.c). Certificates and the security-key types are not
# host keys we can pin; DSA is gone from current OpenSSH.
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def _host_key(value: str) -> str:
    """A host's public key (`<type> <base64> [comment]`) or a known_hosts line for it."""
    parse_host_key(value)
    return value


def parse_host_key(value: str) -> tuple[str | None, str, str]:
    """(known_hosts host patterns or None, key type, base64 key) of a `host-key` value.

    Raises ValueError when it is not one public host key: the base64 part must decode to the
    SSH wire form of a key of the named type (its first field is that type's name).
    """
    lines = [line for line in value.strip().splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise ValueError("give exactly one key (one line)")
    tokens = lines[0].split()
    if tokens[0].startswith("@"):
        raise ValueError(f"{tokens[0]} lines are not host keys")
    patterns: str | None = None
    if tokens[0] not in HOST_KEY_TYPES and len(tokens) >= 3 and tokens[1] in HOST_KEY_TYPES:
        patterns, tokens = tokens[0], tokens[1:]
    if tokens[0] not in HOST_KEY_TYPES or len(tokens) < 2:
        raise ValueError(
            "not a host public key: expected '<type> <base64>' or a known_hosts line "
            f"'<host> <type> <base64>', with type one of {', '.join(HOST_KEY_TYPES)}"
        )
    kind, data = tokens[0], tokens[1]
    try:
        blob = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ValueError(f"the {kind} key is not valid base64") from None
    size = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + size or blob[4 : 4 + size] != kind.encode() or len(blob) == 4 + size:
        raise ValueError(f"the base64 part is not an {kind} public key")
    return patterns, kind, data


def known_hosts_name(hostname: str, port: int) -> str:
    """How known_hosts names a host: `host`, or `[host]:port` off port 22 (sshd(8))."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):  # hashed: HMAC-SHA1 of the name, keyed with the salt
        try:
            _, _, salt, digest = pattern.split("|")
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            return False
    # ssh patterns know only `*` and `?` (ssh_config(5) PATTERNS); `[` is literal.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name.lower()) is not None


def known_hosts_line_matches(patterns: str, name: str) -> bool:
    """Whether a known_hosts host field (comma-separated, `!` negates) names `name`."""
    items = patterns.split(",")
    if any(p.startswith("!") and _pattern_matches(p[1:], name) for p in items):
        return False
    return any(not p.startswith("!") and _pattern_matches(p, name) for p in items)


SshHostKey = Annotated[str, AfterValidator(_host_key)]


HOST_KEY_HELP = (
    "Required for SSH unless trust-on-first-use: the host's SSH public key, `ssh-ed25519 AAAA...` "
    "(its /etc/ssh/ssh_host_ed25519_key.pub), or its line of `ssh-keyscan -p PORT HOST` output. "
    "The bootstrap command and the Docker provider refuse a host presenting another key."
)
TOFU_HELP = (
    "Opt in to trusting whatever key the host presents instead of a host-key: the Docker "
    "provider records it in ~/.ssh/known_hosts on first use; the bootstrap command "
    "(pulumi-command) checks no key at all."
)


def public_host_key(host_key: str | None) -> str | None:
    """`<type> <base64>` of a `host-key` value: the form pulumi-command's `hostKey` and a
    known_hosts line take."""
    if host_key is None:
        return None
    _, kind, data = parse_host_key(host_key)
    return f"{kind} {data}"


def _host_key_problems(
    path: str, ssh: tuple[str, str, int], host_key: str | None, tofu: bool, keyscan: str
) -> list[tuple[str, str]]:
    if host_key is not None and tofu:
        return [(f"{path}.trust-on-first-use", "set host-key or trust-on-first-use, not both")]
    if host_key is None:
        if tofu:
            return []
        return [
            (
                f"{path}.host-key",
                f"an SSH host needs its host key: print it with `{keyscan}`, check its fingerprint "
                "on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and set host-key "
                "to one of its lines; or opt in to trust-on-first-use: true",
            )
        ]
    patterns = parse_host_key(host_key)[0]
    name = known_hosts_name(ssh[1], ssh[2])
    if patterns is not None and not known_hosts_line_matches(patterns, name):
        return [(f"{path}.host-key", f"this known_hosts line is not for {name!r}")]
    return []


class SshProxyConfig(Model):
    """A jump host (bastion) the host is reached through."""

    address: Annotated[str, AfterValidator(ssh_address)] = Field(
        description="`user@host[:port]` of the jump host."
    )
    private_key_secret: SecretKey | None = Field(
        default=None,
        description="Config key holding the jump host's SSH private key (set with --secret); "
        "without it the SSH agent is used.",
    )
    host_key: SshHostKey | None = Field(
        default=None, description="The jump host's key, in the same forms as the host's host-key."
    )
    trust_on_first_use: bool = Field(default=False, description=TOFU_HELP)

    @property
    def ssh(self) -> tuple[str, str, int] | None:
        return ssh_parts(self.address)


class HostConfig(Model):
    """A Docker host: `local` (this machine's socket) or `user@host[:port]` over SSH."""

    name: Label = Field(description="Short name services refer to in `host:`.")
    address: str = Field(default="local", description="`local`, or `user@host[:port]` for SSH.")
    private_key_secret: SecretKey | None = Field(
        default=None,
        description="Config key holding the SSH private key (set with --secret); "
        "without it the SSH agent is used.",
    )
    host_key: SshHostKey | None = Field(default=None, description=HOST_KEY_HELP)
    trust_on_first_use: bool = Field(default=False, description=TOFU_HELP)
    proxy: SshProxyConfig | None = Field(
        default=None,
        description="Jump host (bastion) to reach this host through, for the bootstrap command "
        "and the Docker provider alike.",
    )
    root: AbsolutePath = Field(
        default="/opt/homelab", description="Root directory with config/, data/, data/secrets/."
    )
    install_docker: bool = Field(
        default=True, description="Install Docker from the distribution's packages if missing."
    )
    images_from_bundle: bool = Field(
        default=False,
        description="The host takes its images from a release bundle (`python -m automation "
        "setup`, for a host without registry access): the program finds each image by its "
        "`name:tag`, which the bundle restores and `setup` checked to be the released image, "
        "instead of its `@sha256:` digest, which `docker load` does not keep.",
    )
    scrape_address: Address | None = Field(
        default=None,
        description="Address other hosts' Prometheus uses to reach this host's exporters "
        "(defaults to the SSH host name).",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "local":
            return value
        if not _SSH_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be 'local' or 'user@host[:port]'")
        return ssh_address(value)

    @model_validator(mode="after")
    def _check(self) -> HostConfig:
        if self.is_local:
            for key in ("private_key_secret", "host_key", "proxy"):
                if getattr(self, key):
                    raise ValueError(f"{key.replace('_', '-')} is only for SSH hosts")
            if self.trust_on_first_use:
                raise ValueError("trust-on-first-use is only for SSH hosts")
        return self

    def problems(self, path: str) -> list[tuple[str, str]]:
        """Host keys: each SSH endpoint pins one, unless it opts in to trust on first use."""
        ssh = self.ssh
        if ssh is None:
            return []
        _, host, port = ssh
        keyscan = f"ssh-keyscan -p {port} {host}"
        problems = []
        proxy = self.proxy.ssh if self.proxy is not None else None
        if self.proxy is not None and proxy is not None:
            p_user, p_host, p_port = proxy
            problems += _host_key_problems(
                f"{path}.proxy",
                proxy,
                self.proxy.host_key,
                self.proxy.trust_on_first_use,
                f"ssh-keyscan -p {p_port} {p_host}",
            )
            # Behind a jump host, ask from there: the host may be unreachable from here.
            keyscan = f"ssh -p {p_port} {p_user}@{p_host} {keyscan}"
        return _host_key_problems(path, ssh, self.host_key, self.trust_on_first_use, keyscan) + problems

    @property
    def is_local(self) -> bool:
        return self.address == "local"

    @property
    def ssh(self) -> tuple[str, str, int] | None:
        return ssh_parts(self.address)

    @property
    def reachable_address(self) -> str | None:
        if self.scrape_address:
            return self.scrape_address
        ssh = self.ssh
        return ssh[1] if ssh else None


# ---- services -----------------------------------------------------------------------


class ServiceConfig(Model):
    """Settings every built-in service has."""

    enabled: bool = Field(default=True, description="Run this service.")
    host: Label | None = Field(default=None, description="Host to run on (default: the first).")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class RoutedServiceConfig(ServiceConfig):
    hostname: Subdomain = Field(description="Name under the domain; '@' is the domain itself.")


class TcpServiceConfig(RoutedServiceConfig):
    """A service the proxy exposes over TCP on `exposed-port` of its host."""

    exposed_port: Port


class AgentConfig(Model):
    """A per-host agent (exporter): runs on every host unless `hosts` narrows it."""

    enabled: bool = Field(default=True, description="Run this exporter.")
    hosts: list[Label] | None = Field(default=None, description="Hosts to run on (default: all).")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class SidecarConfig(Model):
    """A monitoring service that runs beside Prometheus (same host, same network)."""

    enabled: bool = Field(default=True, description="Run it (only where Prometheus runs).")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class ProxyConfig(Model):
    """HAProxy on every host that has routes."""

    image: Image | None = Field(default=None, description="Override the pinned HAProxy image.")
    http_port: Port = Field(default=80, description="Host port for HTTP.")
    https_port: Port = Field(default=443, description="Host port for HTTPS.")
    stats_port: Port = Field(
        default=8404, description="Stats, /healthz and Prometheus /metrics (published for remote scrapes)."
    )
    memory_mb: MemoryMb | None = Field(default=256, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")

    def problems(self) -> list[tuple[str, str]]:
        """The proxy's own ports are three different ports."""
        problems = []
        claimed: dict[int, str] = {}
        for key in ("http_port", "https_port", "stats_port"):
            port, path = getattr(self, key), f"proxy.{key.replace('_', '-')}"
            if port in claimed:
                problems.append((path, f"port {port} is also {claimed[port]}: give each its own port"))
            claimed.setdefault(port, path)
        return problems


class PortainerConfig(RoutedServiceConfig):
    hostname: Subdomain = "infra"


class PrometheusConfig(RoutedServiceConfig):
    hostname: Subdomain = "metrics"


class GrafanaConfig(RoutedServiceConfig):
    hostname: Subdomain = "monitoring"


class MattermostConfig(RoutedServiceConfig):
    enabled: bool = False
    hostname: Subdomain = "mattermost"


class PostgresConfig(TcpServiceConfig):
    enabled: bool = False
    hostname: Subdomain = "postgres"
    exposed_port: Port = 5432


class MysqlConfig(TcpServiceConfig):
    enabled: bool = False
    hostname: Subdomain = "kodidb"
    exposed_port: Port = 3307


class DrupalConfig(RoutedServiceConfig):
    enabled: bool = False
    hostname: Subdomain = "intranet"


class WebConfig(RoutedServiceConfig):
    enabled: bool = False
    hostname: Subdomain = "@"


class LandingConfig(RoutedServiceConfig):
    hostname: Subdomain = "home"


class ServicesConfig(Model):
    """The built-in services; each key takes the settings of `ServiceConfig` and its kind."""

    portainer: PortainerConfig = Field(default_factory=PortainerConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    cadvisor: AgentConfig = Field(default_factory=AgentConfig)
    node_exporter: AgentConfig = Field(default_factory=AgentConfig)
    alertmanager: SidecarConfig = Field(default_factory=SidecarConfig)
    blackbox_exporter: SidecarConfig = Field(default_factory=SidecarConfig)
    mattermost: MattermostConfig = Field(default_factory=MattermostConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    mysql: MysqlConfig = Field(default_factory=MysqlConfig)
    drupal: DrupalConfig = Field(default_factory=DrupalConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    landing: LandingConfig = Field(default_factory=LandingConfig)


# ---- custom services ----------------------------------------------------------------


class CustomRoute(Model):
    hostname: Subdomain
    port: Port
    mode: Literal["http", "tcp"] = "http"
    exposed_port: Port | None = None

    @model_validator(mode="after")
    def _check(self) -> CustomRoute:
        if self.mode == "tcp" and self.exposed_port is None:
            raise ValueError("a tcp route needs exposed-port")
        if self.mode == "http" and self.exposed_port is not None:
            raise ValueError("exposed-port is only for tcp routes")
        return self


class CustomMetrics(Model):
    port: Port
    path: UrlPath = "/metrics"
    host_port: Port | None = Field(
        default=None, description="Published port, for a Prometheus on another host."
    )


class CustomVolume(Model):
    name: Label
    path: AbsolutePath
    stateful: bool = True


class CustomSecret(Model):
    name: Label
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    length: Annotated[int, Field(ge=16, le=128)] = 32


class CustomHealthCheck(Model):
    test: list[str] = Field(min_length=1)
    interval: DockerDuration = "30s"
    timeout: DockerDuration = "5s"
    retries: Annotated[int, Field(ge=1, le=100)] = 3


class CustomService(Model):
    """A service declared in config alone: routed, scraped and backed up like the built-ins."""

    name: Label
    image: Image
    enabled: bool = True
    host: Label | None = None
    routes: list[CustomRoute] = Field(default_factory=list)
    metrics: list[CustomMetrics] = Field(default_factory=list)
    volumes: list[CustomVolume] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict)
    secrets: list[CustomSecret] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    health_check: CustomHealthCheck | None = None
    memory_mb: MemoryMb | None = None
    restart: Restart = "unless-stopped"
    title: Text | None = None


# ---- cross-cutting sections ---------------------------------------------------------


class TlsConfig(Model):
    enabled: bool = Field(default=True, description="HTTPS with HTTP->HTTPS redirect.")
    self_signed: bool = Field(
        default=True, description="Generate a CA and a certificate per routed host name."
    )
    ca_common_name: Text = Field(default="Homelab CA", description="Common name of the generated CA.")
    validity_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=825, description="Validity of generated certificates."
    )
    certificates: dict[Domain, SecretKey] = Field(
        default_factory=dict,
        description="Your own certificates: host name -> config key (secret) holding the "
        "PEM with private key and certificate chain. Yours wins over the generated one.",
    )


# Cron as the backup engine reads it: robfig/cron/v3 with an optional seconds field and the
# @-descriptors (offen/docker-volume-backup v2.48.2: cmd/backup/command.go, runInForeground).
# We take the standard 5 fields; the old 6-field form of earlier releases (seconds first) is
# refused with its 5-field equivalent, so nobody's schedule shifts silently.
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_PART_RE = re.compile(r"(?P<range>\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/(?P<step>[0-9]+))?")  # fullmatch


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + (1 if low == 1 else 0)
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _cron_field(text: str, index: int) -> None:
    name, low, high, names = _CRON_FIELDS[index]
    for part in text.split(","):
        match = _CRON_PART_RE.fullmatch(part)
        if not match or (match.group("range") == "?" and name not in ("day of month", "day of week")):
            raise ValueError(f"{name} {text!r} is not a cron field")
        if match.group("step") is not None and int(match.group("step")) == 0:
            raise ValueError(f"{name} {text!r}: a step must be at least 1")
        if match.group("range") in ("*", "?"):
            continue
        try:
            bounds = [_cron_value(v, low, names) for v in match.group("range").split("-")]
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a cron field") from None
        if any(not low <= v <= high for v in bounds) or bounds[0] > bounds[-1]:
            raise ValueError(f"{name} {text!r} is out of range {low}-{high}")


def _cron5(value: str) -> str:
    fields = value.split()
    if len(fields) == 1 and fields[0] in _CRON_DESCRIPTORS:
        return fields[0]
    if len(fields) == 6:
        hint = " ".join(fields[1:])
        seconds = "" if fields[0] == "0" else f" (at second 0: seconds {fields[0]!r} are not kept)"
        raise ValueError(
            f"{value!r} is the old 6-field form (seconds first); the backup engine takes 5 fields "
            f"(minute hour day month weekday): write {hint!r}{seconds}"
        )
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} must have 5 fields (minute hour day month weekday), e.g. '0 4 * * *', "
            f"or be one of {', '.join(_CRON_DESCRIPTORS)}"
        )
    for index, text in enumerate(fields):
        _cron_field(text, index)
    return " ".join(fields)


Cron = Annotated[str, AfterValidator(_cron5)]

# age recipients the engine accepts in AGE_PUBLIC_KEYS: native X25519 keys and ssh-ed25519 /
# ssh-rsa public keys (cmd/backup/encrypt_archive.go, parseAgeRecipient). The list is
# comma-separated there, so a key cannot hold a comma.
# fullmatch, and the comment of an ssh key without control characters (no line breaks).
_AGE_RECIPIENT_RE = re.compile(
    r"age1[02-9ac-hj-np-z]{58}|ssh-(ed25519|rsa) [A-Za-z0-9+/]+=*( [^,\x00-\x1f\x7f]*)?"
)


def _age_recipient(value: str) -> str:
    value = value.strip()
    if not _AGE_RECIPIENT_RE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not an age public key (age1...) or an ssh-ed25519/ssh-rsa key")
    return value


class S3Target(Model):
    """S3-compatible storage (AWS, MinIO, Backblaze B2, ...): a copy of every archive."""

    endpoint: str = Field(
        default="s3.amazonaws.com",
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="Host name (and port) of the S3 API, without scheme.",
    )
    protocol: Literal["https", "http"] = Field(default="https", description="`http` only inside your LAN.")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="Bucket name.")
    path: Text = Field(
        default="", pattern=r"^([^/].*)?$", description="Folder in the bucket, without a leading slash."
    )
    access_key_id_secret: SecretKey = Field(description="Config key (secret) with the access key id.")
    secret_access_key_secret: SecretKey = Field(description="Config key (secret) with the secret key.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        _, _, port = value.partition(":")
        if port and not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
        return value


class SshBackupTarget(Model):
    """An SFTP server: a copy of every archive (the engine does not check its host key)."""

    address: str = Field(description="`user@host[:port]` of the SSH server.")
    path: AbsolutePath = Field(description="Absolute directory on the server (created if missing).")
    private_key_secret: SecretKey = Field(description="Config key (secret) with the SSH private key.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return ssh_address(value)

    @property
    def target(self) -> tuple[str, str, int]:
        parts = ssh_parts(self.address)
        assert parts is not None, "validated"
        return parts


class WebdavTarget(Model):
    """A WebDAV server (Nextcloud, ownCloud, ...): a copy of every archive."""

    url: HttpUrl = Field(description="Server URL, e.g. https://dav.example.com.")
    path: Text = Field(default="/", description="Directory on the server (created if missing).")
    username: Text = Field(min_length=1, description="User name.")
    password_secret: SecretKey = Field(description="Config key (secret) with the password.")


# Keys of earlier releases, with what replaced them (reported instead of "unknown key").
REMOVED_KEYS = {
    "backup.target": "removed: archives go to backup.directory on each host (default <root>/backups) "
    "and, with a backup.s3 section, to S3 too (docs/howto.md)",
    "backup.s3-access-key-id-secret": "moved to backup.s3.access-key-id-secret",
    "backup.s3-secret-access-key-secret": "moved to backup.s3.secret-access-key-secret",
}


class BackupConfig(Model):
    """A backup run per host (offen/docker-volume-backup): every stateful volume, on a schedule,
    encrypted, to the host's backup directory and any remote targets configured."""

    enabled: bool = Field(default=True, description="Back up every stateful volume.")
    schedule: Cron = Field(
        default="0 4 * * *", description="5-field cron (minute hour day month weekday, UTC), per host."
    )
    retention_days: Annotated[int, Field(ge=1, le=36500)] | None = Field(
        default=14, description="Delete archives older than this many days (null: keep all)."
    )
    encryption: Literal["age", "none"] = Field(
        default="age",
        description="Encrypt archives with age. The program generates the key pair; only the public "
        "key is on the hosts, the private key is the secret stack output `backup-identity`.",
    )
    age_recipients: list[Annotated[str, AfterValidator(_age_recipient)]] = Field(
        default_factory=list,
        description="Your own age (age1...) or ssh-ed25519/ssh-rsa public keys instead of a "
        "generated key pair.",
    )
    directory: AbsolutePath | None = Field(
        default=None, description="Archive directory on each host (default: <root>/backups)."
    )
    local: bool = Field(default=True, description="Keep archives in `directory` on the host.")
    s3: S3Target | None = Field(default=None, description="Also copy archives to S3-compatible storage.")
    ssh: SshBackupTarget | None = Field(default=None, description="Also copy archives over SFTP.")
    webdav: WebdavTarget | None = Field(default=None, description="Also copy archives to WebDAV.")
    notify_url_secret: SecretKey | None = Field(
        default=None,
        description="Config key (secret) with where failed runs are reported: a Mattermost incoming "
        "webhook URL (https://chat.example.com/hooks/...), another webhook URL (POSTed to), or any "
        "shoutrrr URL the engine takes.",
    )
    image: Image | None = Field(default=None, description="Override the pinned backup engine image.")

    def problems(self) -> list[tuple[str, str]]:
        problems = []
        if not self.local and not (self.s3 or self.ssh or self.webdav):
            problems.append(
                ("backup.local", "with local off, configure backup.s3, backup.ssh or backup.webdav")
            )
        if self.encryption == "none" and self.age_recipients:
            problems.append(
                ("backup.age-recipients", "encryption is 'none': drop the recipients or use 'age'")
            )
        if self.encryption == "none" and self.ssh is not None:
            problems.append(
                (
                    "backup.ssh",
                    "the backup engine does not verify the SSH server's host key, so archives sent "
                    "over SSH must be encrypted: set backup.encryption to 'age'",
                )
            )
        return problems

    def secret_refs(self) -> list[tuple[str, str]]:
        """(key path, config key) of the secrets the backup section names."""
        refs = []
        if self.s3 is not None:
            refs += [
                ("backup.s3.access-key-id-secret", self.s3.access_key_id_secret),
                ("backup.s3.secret-access-key-secret", self.s3.secret_access_key_secret),
            ]
        if self.ssh is not None:
            refs.append(("backup.ssh.private-key-secret", self.ssh.private_key_secret))
        if self.webdav is not None:
            refs.append(("backup.webdav.password-secret", self.webdav.password_secret))
        if self.notify_url_secret:
            refs.append(("backup.notify-url-secret", self.notify_url_secret))
        return refs


Percent = Annotated[float, Field(gt=0, lt=100)]


class AlertReceiverConfig(Model):
    """Where Alertmanager sends notifications: an incoming webhook whose URL is a secret."""

    kind: Literal["slack", "webhook"] = Field(
        default="slack",
        description="`slack`: a Slack-compatible incoming webhook (Mattermost, Slack); "
        "`webhook`: Alertmanager's JSON payload to any URL.",
    )
    url_secret: SecretKey = Field(
        description="Config key (set with --secret) holding the webhook URL, e.g. "
        "https://mattermost.example.com/hooks/xxx."
    )
    channel: Text | None = Field(
        default=None,
        min_length=1,
        description="Channel override (slack kind; Mattermost honours it when the webhook allows).",
    )

    @model_validator(mode="after")
    def _check(self) -> AlertReceiverConfig:
        if self.kind == "webhook" and self.channel is not None:
            raise ValueError("channel is only for the slack kind")
        return self


class AlertThresholdsConfig(Model):
    """When the generated alert rules fire."""

    target_down_for: Duration = Field(default="5m", description="A scrape target or host down this long.")
    disk_used_percent: Percent = Field(default=85, description="A filesystem of a host fuller than this.")
    memory_used_percent: Percent = Field(default=90, description="Memory of a host used above this.")
    clock_skew_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=0.5, description="A host's clock off by more than this."
    )
    container_restarts: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3, description="Restarts of one container within container-restart-window."
    )
    container_restart_window: Duration = Field(default="15m", description="Window for container-restarts.")
    container_unhealthy_for: Duration = Field(default="5m", description="A failing health check this long.")
    http_5xx_percent: Percent = Field(default=5, description="Share of 5xx responses of a proxy backend.")
    certificate_days: Annotated[int, Field(ge=1, le=365)] = Field(
        default=14, description="A routed host's certificate expiring within this many days."
    )
    backup_age_factor: Annotated[float, Field(ge=1, le=10)] = Field(
        default=1.5, description="No successful backup within this many times the schedule's interval."
    )


class AlertingConfig(Model):
    """Alertmanager's routing of the alerts the rules raise."""

    receiver: AlertReceiverConfig | None = Field(
        default=None, description="The chat or webhook to notify (without it alerts are only shown)."
    )
    group_wait: Duration = Field(default="30s", description="Wait this long to group new alerts.")
    group_interval: Duration = Field(default="5m", description="Wait this long before telling of changes.")
    repeat_interval: Duration = Field(default="4h", description="Repeat a firing alert this often.")
    thresholds: AlertThresholdsConfig = Field(default_factory=AlertThresholdsConfig)


class MonitoringConfig(Model):
    scrape_interval: Duration = Field(default="15s", description="Prometheus scrape interval.")
    retention: Duration = Field(default="15d", description="Prometheus data retention.")
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)


class RestoreDrillConfig(Model):
    """Restore drills: each host's newest archive restored into scratch volumes and checked
    (`python -m automation drill --due`, run from where the backup identity is)."""

    every: Duration = Field(default="7d", description="How often each host is drilled.")
    hosts: dict[Label, Duration] = Field(
        default_factory=dict, description="Per host: another interval than `every`."
    )
    max_age: Duration = Field(
        default="8d", description="Alert when a service has no verified restore newer than this."
    )
    sample: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=8, description="Files per volume read back and compared with the archive's checksums."
    )

    def problems(self, hosts: list[str]) -> list[tuple[str, str]]:
        return [
            (f"data.restore-drills.hosts.{name}", f"unknown host {name!r} (hosts: {', '.join(hosts)})")
            for name in self.hosts
            if name not in hosts
        ]


class DataConfig(Model):
    """What happens to stateful volumes when a service or the stack goes away."""

    protect: bool = Field(default=False, description="Refuse to delete volumes at all.")
    delete_on_destroy: bool = Field(default=False, description="Opt in to deleting volumes with the stack.")
    max_backup_age: Duration = Field(
        default="24h",
        description="`up` replaces or deletes a service's data only when its newest backup is "
        "younger than this, or when named with --allow-replace SERVICE.",
    )
    pre_upgrade_backup: bool = Field(
        default=True,
        description="Back up a stateful service's host before its container is replaced "
        "(image bump, changed settings), in the same `up`.",
    )
    restore_drills: RestoreDrillConfig = Field(default_factory=RestoreDrillConfig)

    def problems(self) -> list[tuple[str, str]]:
        if self.protect and self.delete_on_destroy:
            message = "contradicts data.protect (protected volumes cannot be deleted): turn one of them off"
            return [("data.delete-on-destroy", message)]
        return []
