"""The homelab layer's config sections: hosts, built-in and custom services, TLS, backups,
monitoring and data safety (keys `homelab:hosts`, `homelab:services`, ...).

Field-level rules only; checks that need the planned services live in `stacks/checks.py`.
"""

from __future__ import annotations

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


class HostConfig(Model):
    """A Docker host: `local` (this machine's socket) or `user@host[:port]` over SSH."""

    name: Label = Field(description="Short name services refer to in `host:`.")
    address: str = Field(default="local", description="`local`, or `user@host[:port]` for SSH.")
    private_key_secret: SecretKey | None = Field(
        default=None,
        description="Config key holding the SSH private key (set with --secret); "
        "without it the SSH agent is used.",
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
        match = _SSH_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} must be 'local' or 'user@host[:port]'")
        port = match.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
        return value

    @model_validator(mode="after")
    def _check(self) -> HostConfig:
        if self.is_local and self.private_key_secret:
            raise ValueError("private-key-secret is only for SSH hosts")
        if not self.root.startswith("/"):
            raise ValueError(f"root {self.root!r} must be an absolute path")
        return self

    @property
    def is_local(self) -> bool:
        return self.address == "local"

    @property
    def ssh(self) -> tuple[str, str, int] | None:
        match = _SSH_RE.match(self.address)
        if match is None:
            return None
        return match.group("user"), match.group("host").strip("[]"), int(match.group("port") or 22)

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
    channel: str | None = Field(
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


class DataConfig(Model):
    """What happens to stateful volumes when a service or the stack goes away."""

    protect: bool = Field(default=False, description="Refuse to delete volumes at all.")
    delete_on_destroy: bool = Field(default=False, description="Opt in to deleting volumes with the stack.")
