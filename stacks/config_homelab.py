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
    Domain,
    Duration,
    Image,
    Label,
    MemoryMb,
    Model,
    Port,
    Restart,
    SecretKey,
    Subdomain,
    _cron6,
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


def _ssh_address(value: str) -> str:
    match = _SSH_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} must be 'user@host[:port]'")
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
    return value


def _ssh_parts(address: str) -> tuple[str, str, int] | None:
    match = _SSH_RE.match(address)
    if match is None:
        return None
    return match.group("user"), match.group("host").strip("[]"), int(match.group("port") or 22)


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

    address: Annotated[str, AfterValidator(_ssh_address)] = Field(
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
        return _ssh_parts(self.address)


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
    root: str = Field(
        default="/opt/homelab", description="Root directory with config/, data/, data/secrets/."
    )
    install_docker: bool = Field(
        default=True, description="Install Docker from the distribution's packages if missing."
    )
    scrape_address: str | None = Field(
        default=None,
        description="Address other hosts' Prometheus uses to reach this host's exporters "
        "(defaults to the SSH host name).",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "local":
            return value
        if not _SSH_RE.match(value):
            raise ValueError(f"{value!r} must be 'local' or 'user@host[:port]'")
        return _ssh_address(value)

    @model_validator(mode="after")
    def _check(self) -> HostConfig:
        if self.is_local:
            for key in ("private_key_secret", "host_key", "proxy"):
                if getattr(self, key):
                    raise ValueError(f"{key.replace('_', '-')} is only for SSH hosts")
            if self.trust_on_first_use:
                raise ValueError("trust-on-first-use is only for SSH hosts")
        if not self.root.startswith("/"):
            raise ValueError(f"root {self.root!r} must be an absolute path")
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
        return _ssh_parts(self.address)

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
    path: str = "/metrics"
    host_port: Port | None = Field(
        default=None, description="Published port, for a Prometheus on another host."
    )


class CustomVolume(Model):
    name: Label
    path: str
    stateful: bool = True


class CustomSecret(Model):
    name: Label
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    length: Annotated[int, Field(ge=16, le=128)] = 32


class CustomHealthCheck(Model):
    test: list[str] = Field(min_length=1)
    interval: Duration = "30s"
    timeout: Duration = "5s"
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
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[CustomSecret] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    health_check: CustomHealthCheck | None = None
    memory_mb: MemoryMb | None = None
    restart: Restart = "unless-stopped"
    title: str | None = None


# ---- cross-cutting sections ---------------------------------------------------------


class TlsConfig(Model):
    enabled: bool = Field(default=True, description="HTTPS with HTTP->HTTPS redirect.")
    self_signed: bool = Field(
        default=True, description="Generate a CA and a certificate per routed host name."
    )
    ca_common_name: str = Field(default="Homelab CA", description="Common name of the generated CA.")
    validity_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=825, description="Validity of generated certificates."
    )
    certificates: dict[Domain, SecretKey] = Field(
        default_factory=dict,
        description="Your own certificates: host name -> config key (secret) holding the "
        "PEM with private key and certificate chain. Yours wins over the generated one.",
    )


class BackupConfig(Model):
    enabled: bool = Field(default=True, description="Back up every stateful volume.")
    schedule: Annotated[str, AfterValidator(_cron6)] = Field(
        default="0 0 4 * * *", description="6-field cron (seconds first), per host."
    )
    target: str | None = Field(
        default=None,
        description="Absolute directory on each host, or an s3:// URL (default: <host root>/backups).",
    )
    s3_access_key_id_secret: SecretKey | None = Field(
        default=None, description="Config key (secret) with the S3 access key id."
    )
    s3_secret_access_key_secret: SecretKey | None = Field(
        default=None, description="Config key (secret) with the S3 secret access key."
    )
    image: Image | None = Field(default=None, description="Override the pinned Volumerize image.")

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("/") or value.startswith("s3://")):
            raise ValueError(f"{value!r} must be an absolute path or an s3:// URL")
        return value

    def problems(self) -> list[tuple[str, str]]:
        keys = (self.s3_access_key_id_secret, self.s3_secret_access_key_secret)
        if self.is_s3 and None in keys:
            return [
                (
                    "backup.target",
                    "an s3:// target needs s3-access-key-id-secret and s3-secret-access-key-secret",
                )
            ]
        if not self.is_s3 and any(keys):
            return [("backup.target", "s3 credentials are only for an s3:// target")]
        return []

    @property
    def is_s3(self) -> bool:
        return bool(self.target and self.target.startswith("s3://"))


class MonitoringConfig(Model):
    scrape_interval: Duration = Field(default="15s", description="Prometheus scrape interval.")
    retention: Duration = Field(default="15d", description="Prometheus data retention.")


class DataConfig(Model):
    """What happens to stateful volumes when a service or the stack goes away."""

    protect: bool = Field(default=False, description="Refuse to delete volumes at all.")
    delete_on_destroy: bool = Field(default=False, description="Opt in to deleting volumes with the stack.")
