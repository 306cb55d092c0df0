"""The stack configuration: pydantic models, validated once before any resource exists.

Keys are kebab-case in `Pulumi.<stack>.yaml` (`homelab:custom-services`), snake_case in
Python. Unknown keys are errors. Secrets are never part of these models: a model holds the
*name* of a top-level config key that must be set with `pulumi config set --secret`, and
the stack layer reads it with `require_secret`, so the value stays a Pulumi secret.

`load_config()` reads every `homelab:*` key, validates, runs the cross-checks (hosts that
exist, host names claimed once, ports free, certificates present) and raises one
`ConfigError` listing every problem with its key path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from stacks.config_apps import AppConfig, NotificationsConfig
from stacks.config_base import (
    _SSH_RE,
    NAMESPACE,
    ConfigError,
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
    _kebab,
    host_name,
)
from stacks.config_platform import PlatformConfig, platform_problems

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


class DeploymentTracesConfig(Model):
    """Export each `up`/`destroy` run by `python -m automation` as an OpenTelemetry trace."""

    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OTLP/HTTP endpoint, e.g. the platform's collector (http://host:4318).",
    )
    service_name: str = Field(default="homelab-deployments", description="service.name of the spans.")


class LayersConfig(Model):
    """Which layers this stack builds."""

    homelab: bool = Field(default=True, description="The Docker service stack on the hosts.")
    platform: bool = Field(default=False, description="The Kubernetes platform (needs `platform:`).")
    apps: bool = Field(default=False, description="The app pipelines (needs the platform layer).")


class StackConfig(Model):
    """The whole `homelab:` namespace of a stack config."""

    layers: LayersConfig = Field(default_factory=LayersConfig)
    name: Label = Field(
        default="homelab", description="Prefix of containers and volumes; the stack network's name."
    )
    domain: Domain = Field(default="localhost", description="Root domain: services get <name>.<domain>.")
    admin_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")] = Field(
        default="admin", description="Grafana admin user (the password is generated)."
    )
    hosts: list[HostConfig] = Field(
        default_factory=lambda: [HostConfig(name="local")],
        min_length=1,
        description="Docker hosts; services run on the first unless they say otherwise.",
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    custom_services: list[CustomService] = Field(
        default_factory=list, description="Your own services, routed, scraped and backed up."
    )
    platform: PlatformConfig | None = Field(
        default=None, description="The Kubernetes platform; built when layers.platform is true."
    )
    apps: list[AppConfig] = Field(
        default_factory=list, description="App pipelines; built when layers.apps is true."
    )
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    deployment_traces: DeploymentTracesConfig = Field(default_factory=DeploymentTracesConfig)

    @property
    def default_host(self) -> str:
        return self.hosts[0].name

    def host(self, name: str) -> HostConfig:
        return next(h for h in self.hosts if h.name == name)

    def fqdn(self, hostname: str) -> str:
        return host_name(hostname, self.domain)

    def secret_keys(self) -> list[tuple[str, str]]:
        """(key path, config key) of every secret this config references."""
        refs = [
            (f"hosts[{i}].private-key-secret", h.private_key_secret)
            for i, h in enumerate(self.hosts)
            if h.private_key_secret
        ]
        refs += [(f"tls.certificates.{host}", key) for host, key in self.tls.certificates.items()]
        for field_name in ("s3_access_key_id_secret", "s3_secret_access_key_secret"):
            key = getattr(self.backup, field_name)
            if key:
                refs.append((f"backup.{_kebab(field_name)}", key))
        p = self.platform
        if self.layers.platform and p is not None:
            if p.kubeconfig_secret:
                refs.append(("platform.kubeconfig-secret", p.kubeconfig_secret))
            refs.append(("platform.github-token-secret", p.github_token_secret))
            if p.components.argocd.sso is not None:
                key = p.components.argocd.sso.client_secret_secret
                refs.append(("platform.components.argocd.sso.client-secret-secret", key))
            refs += p.tls_secret_keys() if p.tls is not None else []
        if self.layers.apps:
            for i, app in enumerate(self.apps):
                refs += [(f"apps[{i}].secret-env.{env}", key) for env, key in app.secret_env.items()]
            if self.notifications.webhook_url_secret:
                refs.append(("notifications.webhook-url-secret", self.notifications.webhook_url_secret))
        return refs


# ---- cross-checks -------------------------------------------------------------------

BUILTIN_NAMES = frozenset(
    {_kebab(n) for n in ServicesConfig.model_fields} | {"haproxy", "volumerize", "proxy"}
)


def check(config: StackConfig) -> list[tuple[str, str]]:
    """Consistency rules pydantic cannot express field by field."""
    from stacks.plan import plan_problems  # the plan knows routes, ports and hosts

    problems: list[tuple[str, str]] = []
    seen_hosts: set[str] = set()
    for i, host in enumerate(config.hosts):
        if host.name in seen_hosts:
            problems.append((f"hosts[{i}].name", f"host {host.name!r} is declared twice"))
        seen_hosts.add(host.name)
    problems += config.backup.problems()
    if config.layers.platform:
        if config.platform is None:
            problems.append(("platform", "layers.platform is on but the platform section is missing"))
        else:
            problems += platform_problems(config.platform)
    if config.layers.apps:
        problems += apps_problems(config)
    local = [i for i, h in enumerate(config.hosts) if h.is_local]
    if len(local) > 1:
        problems.append((f"hosts[{local[1]}].address", "only one host can be 'local'"))

    seen_custom: set[str] = set()
    for i, svc in enumerate(config.custom_services):
        path = f"custom-services[{i}].name"
        if svc.name in BUILTIN_NAMES:
            problems.append((path, f"{svc.name!r} is the name of a built-in service"))
        elif svc.name in seen_custom:
            problems.append((path, f"custom service {svc.name!r} is declared twice"))
        seen_custom.add(svc.name)
        names = [v.name for v in svc.volumes]
        for j, v in enumerate(svc.volumes):
            if names.index(v.name) != j:
                problems.append(
                    (f"custom-services[{i}].volumes[{j}].name", f"volume {v.name!r} declared twice")
                )
    if problems:
        return problems
    return plan_problems(config)


def app_fqdn(config: StackConfig, app: AppConfig) -> str:
    assert config.platform is not None
    domain = config.platform.domain or config.domain
    hostname = app.hostname or app.name
    return host_name(hostname, domain)


def apps_problems(config: StackConfig) -> list[tuple[str, str]]:
    """The apps layer: needs the platform, known projects, unique names and host names."""
    p = config.platform
    if not config.layers.platform or p is None:
        return [("layers.apps", "the apps layer needs the platform layer (layers.platform: true)")]
    problems: list[tuple[str, str]] = []
    for component in ("argocd", "harbor"):
        if not getattr(p.components, component).enabled:
            problems.append((f"platform.components.{component}.enabled", "the apps layer needs it on"))
    projects = [project.name for project in p.projects]
    domain = p.domain or config.domain
    claimed: dict[str, str] = {
        host_name(getattr(p.components, c).hostname, domain): f"platform.components.{c}"
        for c in ("argocd", "harbor", "tracing")
        if getattr(p.components, c).enabled
    }
    if config.layers.homelab:
        from stacks.plan import build_plan

        for spec, route in build_plan(config).routes:
            claimed.setdefault(route.fqdn, f"homelab service {spec.name}")
    seen: set[tuple[str, str]] = set()
    applications: dict[str, str] = {}
    for i, app in enumerate(config.apps):
        path = f"apps[{i}]"
        # Argo CD Applications share one namespace, named <project>-<app>.
        application = f"{app.project}-{app.name}"
        if application in applications and (app.project, app.name) not in seen:
            problems.append(
                (
                    f"{path}.name",
                    f"Argo CD application {application!r} would clash with {applications[application]}",
                )
            )
        applications.setdefault(application, path)
        if app.project not in projects:
            problems.append(
                (
                    f"{path}.project",
                    f"unknown project {app.project!r} (projects: {', '.join(projects) or 'none'})",
                )
            )
        if (app.project, app.name) in seen:
            problems.append(
                (f"{path}.name", f"app {app.name!r} is declared twice in project {app.project!r}")
            )
        seen.add((app.project, app.name))
        fqdn = app_fqdn(config, app)
        if fqdn in claimed:
            problems.append((f"{path}.hostname", f"host name {fqdn!r} is already claimed by {claimed[fqdn]}"))
        claimed.setdefault(fqdn, path)
    return problems


def _problems_from(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            if part == "[key]":  # a dict key failed: the path already ends with that key
                continue
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += ("." if path else "") + str(part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append((path or "(top level)", message))
    return problems


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Field-level validation only (types, ranges, unknown keys), or raise `ConfigError`."""
    try:
        # Keys are kebab-case in files: snake_case names are for Python callers only.
        return StackConfig.model_validate(dict(raw), by_alias=True, by_name=False)
    except ValidationError as error:
        raise ConfigError(_problems_from(error)) from None


def validate(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a plain dict (kebab-case keys) into a `StackConfig`, or raise `ConfigError`.

    Field problems are reported first; the cross-checks need a config whose fields are valid.
    """
    config = parse(raw)
    problems = check(config)
    if problems:
        raise ConfigError(problems)
    return config


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def raw_from_pulumi_config(
    items: Iterable[tuple[str, Any]], secret_keys: Iterable[str]
) -> tuple[dict[str, Any], set[str], set[str]]:
    """Split `homelab:*` config into (model keys, present secret keys, all keys)."""
    raw: dict[str, Any] = {}
    present: set[str] = set()
    for full_key, value in items:
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        present.add(key)
        raw[key] = _decode(value)
    secrets = {k.partition(":")[2] for k in secret_keys if k.startswith(f"{NAMESPACE}:")}
    return raw, secrets, present


def validate_pulumi_config(
    items: Iterable[tuple[str, Any]], secret_keys: Iterable[str], require_secrets: bool = True
) -> StackConfig:
    """Validate the `homelab:` namespace of a Pulumi config, secrets references included.

    `require_secrets=False` (offline checks of a template, like the examples) lets a
    referenced secret be absent; one that is present must still be a secret.
    """
    raw, secrets, present = raw_from_pulumi_config(items, secret_keys)
    model_keys = {StackConfig.model_fields[n].alias or n for n in StackConfig.model_fields}
    model_raw = {k: v for k, v in raw.items() if k in model_keys}
    problems: list[tuple[str, str]] = [
        (key, "holds a secret; keep secrets in their own keys and reference them by name")
        for key in sorted(model_raw)
        if key in secrets
    ]
    try:
        config = parse(model_raw)
    except ConfigError as error:
        raise ConfigError(problems + error.problems) from None
    referenced = set()
    for path, key in config.secret_keys():
        referenced.add(key)
        if key not in present:
            if not require_secrets:
                continue
            problems.append((path, f"config key {key!r} is not set (pulumi config set --secret {key})"))
        elif key not in secrets:
            problems.append((path, f"config key {key!r} must be set with --secret"))
    for key in sorted(present - model_keys - referenced):
        problems.append((key, "unknown key"))
    problems += check(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config() -> StackConfig:
    """Read and validate this stack's `homelab:` config from the Pulumi runtime."""
    from pulumi.runtime import config as runtime_config

    items = dict(runtime_config.get_config_env())
    items.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {k for k in items if runtime_config.is_config_secret(k)}
    return validate_pulumi_config(items.items(), secret_keys)
