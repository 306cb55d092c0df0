"""The homelab layer's config sections: built-in and custom services, TLS, monitoring and
alerting, data safety (keys `homelab:services`, `homelab:custom-services`, ...). Hosts are in
`config_hosts.py`, backups in `config_backup.py`.

Field-level rules only; checks that need the planned services live in `stacks/checks.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from stacks.config_base import (
    AbsolutePath,
    BindAddress,
    DockerDuration,
    Domain,
    Duration,
    Email,
    EnvName,
    Image,
    Label,
    MemoryMb,
    Model,
    Port,
    Restart,
    SecretKey,
    SourceNetwork,
    Subdomain,
    Text,
    UrlPath,
    _http_url,
)

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


EXPOSE_HELP = (
    "Publish the proxy's TCP frontend for it on the host (off by default: the service is then "
    "reachable only on the stack network)."
)
BIND_ADDRESS_HELP = (
    "The one host address the TCP port is published on (its LAN address), never every interface."
)
ALLOW_FROM_HELP = (
    "Networks (CIDR) that may connect; the proxy refuses any other source. Connections from the "
    "host itself come from the Docker bridge's gateway address."
)


def exposure_problems(expose: bool, bind_address: str | None, allow_from: list[str], what: str) -> list[str]:
    """What an exposed TCP frontend lacks, or what a closed one sets in vain."""
    if not expose:
        extra = [k for k, v in (("bind-address", bind_address), ("allow-from", allow_from)) if v]
        return [f"{' and '.join(extra)} only apply to {what}: set expose: true too"] if extra else []
    out = []
    if bind_address is None:
        out.append(
            f"{what} needs bind-address: the host's LAN address to publish it on (e.g. 192.168.1.10), "
            "not every interface"
        )
    if not allow_from:
        out.append(f"{what} needs allow-from: the networks that may connect (e.g. [192.168.1.0/24])")
    return out


class TcpServiceConfig(RoutedServiceConfig):
    """A service the proxy may expose over TCP on `exposed-port` of one host address, to the
    networks `allow-from` lists; not exposed unless `expose: true`."""

    exposed_port: Port
    expose: bool = Field(default=False, description=EXPOSE_HELP)
    bind_address: BindAddress | None = Field(default=None, description=BIND_ADDRESS_HELP)
    allow_from: list[SourceNetwork] = Field(default_factory=list, description=ALLOW_FROM_HELP)

    @model_validator(mode="after")
    def _check_exposure(self) -> TcpServiceConfig:
        problems = exposure_problems(self.expose, self.bind_address, self.allow_from, "an exposed database")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class AgentConfig(Model):
    """A per-host agent (exporter): runs on every host unless `hosts` narrows it."""

    enabled: bool = Field(default=True, description="Run this exporter.")
    hosts: list[Label] | None = Field(default=None, description="Hosts to run on (default: all).")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class CadvisorConfig(AgentConfig):
    containerd_socket: bool = Field(
        default=False,
        description="Mount containerd's socket (/run/containerd/containerd.sock): needed where "
        "Docker keeps its images in containerd (`docker info` shows the storage driver "
        "`overlayfs`), for cAdvisor to name the containers. That socket is root on the host; "
        "the Docker API itself reaches cAdvisor through a read-only proxy either way.",
    )


class SidecarConfig(Model):
    """A monitoring service that runs beside Prometheus (same host, same network)."""

    enabled: bool = Field(default=True, description="Run it (only where Prometheus runs).")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class AlertmanagerConfig(SidecarConfig):
    hostname: Subdomain | None = Field(
        default="alerts",
        description="Name under the domain its UI is routed at; the chat messages link there "
        "(--web.external-url). null: not routed, and the messages carry no link.",
    )


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
    without_sign_in: list[Subdomain] = Field(
        default_factory=list,
        description="Admin tools (Prometheus, Alertmanager) you serve without any sign-in on purpose, "
        "by hostname. Any other admin tool routed without sign-in (forward auth or a login of its "
        "own) fails the `admin-sign-in` policy.",
    )

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
    cadvisor: CadvisorConfig = Field(default_factory=CadvisorConfig)
    node_exporter: AgentConfig = Field(default_factory=AgentConfig)
    alertmanager: AlertmanagerConfig = Field(default_factory=AlertmanagerConfig)
    blackbox_exporter: SidecarConfig = Field(default_factory=SidecarConfig)
    mattermost: MattermostConfig = Field(default_factory=MattermostConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    mysql: MysqlConfig = Field(default_factory=MysqlConfig)
    drupal: DrupalConfig = Field(default_factory=DrupalConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    landing: LandingConfig = Field(default_factory=LandingConfig)


# ---- custom services ----------------------------------------------------------------


def _capability(value: str) -> str:
    """The spelling only; stacks/checks.py checks the name against the kernel's list."""
    if value.startswith(("CAP_", "cap_")):
        raise ValueError(f"write {value!r} as {value[4:].upper()!r} (Docker's name, without CAP_)")
    if not value.isupper() or not value.replace("_", "").isalpha():
        raise ValueError(f"{value!r} is not a capability name (upper case, like CHOWN or NET_BIND_SERVICE)")
    return value


class CustomRoute(Model):
    hostname: Subdomain
    port: Port
    mode: Literal["http", "tcp"] = "http"
    exposed_port: Port | None = None
    bind_address: BindAddress | None = Field(default=None, description=BIND_ADDRESS_HELP)
    allow_from: list[SourceNetwork] = Field(default_factory=list, description=ALLOW_FROM_HELP)

    @model_validator(mode="after")
    def _check(self) -> CustomRoute:
        if self.mode == "tcp" and self.exposed_port is None:
            raise ValueError("a tcp route needs exposed-port")
        if self.mode == "http":
            extra = [
                key
                for key, value in (
                    ("exposed-port", self.exposed_port),
                    ("bind-address", self.bind_address),
                    ("allow-from", self.allow_from),
                )
                if value
            ]
            if extra:
                raise ValueError(f"{' and '.join(extra)} only apply to tcp routes")
            return self
        problems = exposure_problems(True, self.bind_address, self.allow_from, "a tcp route")
        if problems:
            raise ValueError("; ".join(problems))
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


Capability = Annotated[str, AfterValidator(_capability)]


class CustomSecurity(Model):
    """How far a custom service is confined. Unset keys take the image's contract where the
    program knows the image (components/homelab/images.py), else the strict defaults."""

    capabilities: list[Capability] | None = Field(
        default=None,
        description="Capabilities the container keeps (Docker names: CHOWN, SETUID, ...); every "
        "other one is dropped. Default: what the image's contract lists, else none.",
    )
    no_new_privileges: bool = Field(
        default=True, description="Forbid gaining privileges through setuid binaries or file capabilities."
    )
    read_only: bool | None = Field(
        default=None,
        description="Read-only root filesystem; the volumes and `tmpfs` stay writable. Default: "
        "true, unless the image's contract says the image is not run read-only.",
    )
    tmpfs: list[AbsolutePath] | None = Field(
        default=None,
        description="Writable in-memory paths of a read-only container (default: [/tmp]).",
    )

    @model_validator(mode="after")
    def _check(self) -> CustomSecurity:
        if self.read_only is False and self.tmpfs:
            raise ValueError("tmpfs is only for a read-only root filesystem (read-only: true)")
        return self


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
    security: CustomSecurity = Field(default_factory=CustomSecurity)


# ---- cross-cutting sections ---------------------------------------------------------


def _acme_server(value: str) -> str:
    if value in ("production", "staging"):
        return value
    try:
        return _http_url(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not production, staging or an ACME directory URL (https://...)"
        ) from None


AcmeServer = Annotated[str, AfterValidator(_acme_server)]


class AcmeConfig(Model):
    """Publicly trusted certificates through ACME (lego), renewed on each proxy host: DNS-01 for
    the domain and its wildcard, or HTTP-01 for the names a public host serves."""

    email: Email = Field(description="Account e-mail at the CA (expiry notices).")
    server: AcmeServer = Field(
        default="staging",
        description="`staging` (Let's Encrypt's test CA: untrusted certificates, generous limits; "
        "try this first), `production`, or another CA's ACME directory URL.",
    )
    challenge: Literal["dns-01", "http-01"] = Field(
        default="dns-01",
        description="`dns-01`: one certificate for the domain and *.domain, through your DNS "
        "provider (hosts the internet cannot reach too); `http-01`: a certificate per proxy host for "
        "the names it routes, the CA asking the host on port 80 (a public host).",
    )
    dns_provider: Label | None = Field(
        default=None,
        description="dns-01: lego's code of your DNS provider (e.g. cloudflare, route53, ovh; the "
        "list: https://go-acme.github.io/lego/dns/).",
    )
    credentials: dict[EnvName, SecretKey] = Field(
        default_factory=dict,
        description="The provider's variables as lego names them (e.g. CF_DNS_API_TOKEN) -> the "
        "config key (set with --secret) holding each value.",
    )
    zone: Domain | None = Field(
        default=None,
        description="The DNS zone at dns-provider the challenge records go in (default: the domain "
        "itself); the domain must be in it.",
    )
    resolvers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+:\d+$")]] = Field(
        default_factory=list,
        description="DNS servers (host:port) lego checks the challenge records with (default: "
        "the authoritative ones).",
    )

    @model_validator(mode="after")
    def _check(self) -> AcmeConfig:
        from components.homelab.lego_providers import LEGO_DNS_PROVIDERS

        if self.challenge == "http-01":
            extra = [
                k for k, v in (("dns-provider", self.dns_provider), ("credentials", self.credentials)) if v
            ]
            if extra:
                raise ValueError(f"{' and '.join(extra)} only apply to challenge dns-01")
            return self
        if self.dns_provider is None:
            raise ValueError("challenge dns-01 needs dns-provider (lego's code of your DNS provider)")
        if self.dns_provider not in LEGO_DNS_PROVIDERS:
            raise ValueError(
                f"dns-provider {self.dns_provider!r} is not a DNS provider lego knows (v5.3.1 list: "
                "https://go-acme.github.io/lego/dns/)"
            )
        if not self.credentials:
            raise ValueError(
                f"credentials: name the variables {self.dns_provider} needs (lego's page for it) and "
                "the config keys holding them"
            )
        return self


class TlsConfig(Model):
    enabled: bool = Field(default=True, description="HTTPS with HTTP->HTTPS redirect.")
    mode: Literal["generated", "acme"] = Field(
        default="generated",
        description="`generated`: the certificates of `self-signed` and `certificates`; `acme`: one "
        "publicly trusted certificate for the domain and *.domain, renewed by lego on each proxy "
        "host without `pulumi up` (tls.acme).",
    )
    acme: AcmeConfig | None = Field(
        default=None, description="The ACME account and DNS-01 challenge (mode acme)."
    )
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

    @model_validator(mode="after")
    def _acme(self) -> TlsConfig:
        if self.mode == "acme" and self.acme is None:
            raise ValueError("mode acme needs the acme section (email, dns-provider, credentials)")
        if self.mode != "acme" and self.acme is not None:
            raise ValueError("the acme section is only read with mode: acme")
        return self

    def secret_refs(self) -> list[tuple[str, str]]:
        if self.mode != "acme" or self.acme is None:
            return []
        return [(f"tls.acme.credentials.{name}", key) for name, key in self.acme.credentials.items()]


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


class LogsConfig(Model):
    """Every container's logs, rotated so that a chatty service cannot fill the disk (Docker's
    default `json-file` driver keeps everything). Option names and defaults as Docker documents
    them (docs.docker.com/engine/logging/drivers/local.md and json-file.md: `max-size`, a
    positive integer with k, m or g; `max-file`, a positive integer)."""

    driver: Literal["local", "json-file"] = Field(
        default="local",
        description="`local` (Docker's compressed, rotating format) or `json-file` (for tools "
        "that read Docker's JSON log files).",
    )
    max_size: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,5}[kmg]$")] = Field(
        default="20m", description="Size of one log file before it is rotated, e.g. 20m."
    )
    max_file: Annotated[int, Field(ge=1, le=100)] = Field(
        default=5, description="Rotated files kept per container (the oldest goes first)."
    )


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
