"""The stack configuration: the root model of the `homelab:` namespace and how it is read.

Keys are kebab-case in `Pulumi.<stack>.yaml` (`homelab:custom-services`), snake_case in
Python. Unknown keys are errors. Secrets are never part of these models: a model holds the
*name* of a top-level config key that must be set with `pulumi config set --secret`, and
the stack layer reads it with `require_secret`, so the value stays a Pulumi secret.

This module is a leaf: it knows the sections of each layer (`config_homelab`,
`config_platform`, `config_apps`) and field-level validation (`parse`). The cross-checks
that need the planned services (`validate`, `load_config`) are in `stacks/checks.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError

from stacks.config_apps import AppConfig, NotificationsConfig
from stacks.config_backup import REMOVED_KEYS, BackupConfig
from stacks.config_base import (
    NAMESPACE,
    ConfigError,
    Domain,
    Label,
    Model,
    host_name,
    join_key,
)
from stacks.config_dns import DnsConfig
from stacks.config_homelab import (
    CustomService,
    DataConfig,
    LogsConfig,
    MonitoringConfig,
    ProxyConfig,
    ServicesConfig,
    TlsConfig,
)
from stacks.config_hosts import HostConfig
from stacks.config_identity import IdentityConfig
from stacks.config_platform import PlatformConfig
from stacks.config_tunnel import TunnelConfig

__all__ = ["NAMESPACE", "ConfigError", "StackConfig", "app_fqdn", "parse", "raw_from_pulumi_config"]


class DeploymentTracesConfig(Model):
    """Export each `up`/`destroy` run by `python -m automation` as an OpenTelemetry trace."""

    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s\x00-\x1f\x7f/]+(/[^\s\x00-\x1f\x7f]*)?$",
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
    logs: LogsConfig = Field(default_factory=LogsConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    tunnel: TunnelConfig = Field(default_factory=TunnelConfig)
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
        refs += [
            (f"hosts[{i}].proxy.private-key-secret", h.proxy.private_key_secret)
            for i, h in enumerate(self.hosts)
            if h.proxy is not None and h.proxy.private_key_secret
        ]
        refs += [(f"tls.certificates.{host}", key) for host, key in self.tls.certificates.items()]
        if self.layers.homelab:
            refs += self.identity.secret_refs() + self.tls.secret_refs()
            if self.dns.public is not None:
                refs.append(("dns.public.api-token-secret", self.dns.public.api_token_secret))
            if self.tunnel.tailscale is not None:
                refs.append(("tunnel.tailscale.api-key-secret", self.tunnel.tailscale.api_key_secret))
            if self.tunnel.cloudflare is not None:
                refs.append(("tunnel.cloudflare.api-token-secret", self.tunnel.cloudflare.api_token_secret))
        if self.backup.enabled:
            refs += self.backup.secret_refs()
        receiver = self.monitoring.alerting.receiver
        if self.layers.homelab and receiver is not None:
            refs.append(("monitoring.alerting.receiver.url-secret", receiver.url_secret))
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


def app_fqdn(config: StackConfig, app: AppConfig) -> str:
    assert config.platform is not None
    domain = config.platform.domain or config.domain
    hostname = app.hostname or app.name
    return host_name(hostname, domain)


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
                path = join_key(path, str(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = REMOVED_KEYS.get(path, "unknown key")
        problems.append((path or "(top level)", message))
    return problems


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Field-level validation only (types, ranges, unknown keys), or raise `ConfigError`."""
    try:
        # Keys are kebab-case in files: snake_case names are for Python callers only.
        return StackConfig.model_validate(dict(raw), by_alias=True, by_name=False)
    except ValidationError as error:
        raise ConfigError(_problems_from(error)) from None


def pulumi_wire_value(value: Any) -> str:
    """A stack-file value as the Pulumi CLI hands it to the program: a string. Scalars are
    their text (numbers and booleans as JSON, null as `null`), objects and lists are JSON
    (pulumi/pulumi sdk/go/common/resource/config/object.go, `MarshalString`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


# How deep a config value may nest: far beyond any real config, well below Python's recursion
# limit (the stack-file reader, automation/validate.py, holds files to the same).
MAX_DEPTH = 64


def nesting(value: Any) -> int:
    """How many levels of lists and mappings `value` has, counted without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:  # not JSON, or an integer of more than 4,300 digits: left as text
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
        if value is None or value == "null":  # `key: null` (the CLI passes "null"): not set
            continue
        try:
            raw[key] = _decode(value)
        except RecursionError:
            raise ConfigError([(key, f"nested more than {MAX_DEPTH} levels deep")]) from None
        if nesting(raw[key]) > MAX_DEPTH:
            raise ConfigError([(key, f"nested more than {MAX_DEPTH} levels deep")])
    secrets = {k.partition(":")[2] for k in secret_keys if k.startswith(f"{NAMESPACE}:")}
    return raw, secrets, present


def read_pulumi_config(
    items: Iterable[tuple[str, Any]], secret_keys: Iterable[str], require_secrets: bool = True
) -> tuple[StackConfig, list[tuple[str, str]]]:
    """Parse the `homelab:` namespace of a Pulumi config and check its secret references.

    Returns the config and the problems with its keys (secrets set in plain text, referenced
    secrets missing, unknown keys); raises `ConfigError` when a field is invalid.
    `require_secrets=False` (offline checks of a template, like the examples) lets a
    referenced secret be absent; one that is present must still be a secret.
    """
    raw, secrets, present = raw_from_pulumi_config(items, secret_keys)
    model_keys = {StackConfig.model_fields[n].alias or n for n in StackConfig.model_fields}
    # A setting given as a secret is not parsed: offline it cannot be read, and the program
    # would report its decrypted value. Either way the one problem is that it is a secret.
    model_raw = {k: v for k, v in raw.items() if k in model_keys and k not in secrets}
    secret_settings = sorted(k for k in raw if k in model_keys and k in secrets)
    try:
        config = parse(model_raw)
    except ConfigError as error:
        settings = [(key, _SECRET_SETTING) for key in secret_settings]
        raise ConfigError(settings + error.problems) from None
    problems: list[tuple[str, str]] = []
    referenced = set()
    for path, key in config.secret_keys():
        referenced.add(key)
        if key in model_keys:
            message = f"{key!r} is a setting of this stack ({NAMESPACE}:{key}), not a secret: "
            message += "give the secret a key of its own"
            for i, host in enumerate(config.hosts):
                if path == f"hosts[{i}].private-key-secret":
                    message += f", e.g. '{host.name}-ssh-key'"
            problems.append((path, message))
        elif key not in present:
            if not require_secrets:
                continue
            problems.append((path, f"config key {key!r} is not set (pulumi config set --secret {key})"))
        elif key not in secrets:
            problems.append((path, f"config key {key!r} must be set with --secret"))
    problems = [(key, _SECRET_SETTING) for key in secret_settings if key not in referenced] + problems
    for key in sorted(present - model_keys - referenced):
        problems.append((join_key("", key), "unknown key"))
    return config, problems


_SECRET_SETTING = "holds a secret; keep secrets in their own keys and reference them by name"
