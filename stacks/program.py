"""The whole program: load and validate config, read secrets, build the enabled layers."""

from __future__ import annotations

import os
from typing import Any

import pulumi

from stacks.checks import load_config
from stacks.config import ConfigError, StackConfig


def read_homelab_secrets(config: StackConfig) -> Any:
    """Every secret the homelab section names, read with `require_secret` so it stays secret."""
    from stacks.homelab import HomelabSecrets

    cfg = pulumi.Config("homelab")
    secrets = HomelabSecrets()
    for h in config.hosts:
        if h.private_key_secret:
            secrets.host_keys[h.name] = cfg.require_secret(h.private_key_secret)
        if h.proxy is not None and h.proxy.private_key_secret:
            secrets.proxy_keys[h.name] = cfg.require_secret(h.proxy.private_key_secret)
    for fqdn, key in config.tls.certificates.items():
        secrets.certificates[fqdn] = cfg.require_secret(key)
    if config.backup.enabled:
        from components.homelab import backup

        bk = config.backup
        keys = {backup.NOTIFY_URL: bk.notify_url_secret}
        if bk.s3 is not None:
            keys[backup.S3_ACCESS_KEY_ID] = bk.s3.access_key_id_secret
            keys[backup.S3_SECRET_ACCESS_KEY] = bk.s3.secret_access_key_secret
        if bk.ssh is not None:
            keys[backup.SSH_PRIVATE_KEY] = bk.ssh.private_key_secret
        if bk.webdav is not None:
            keys[backup.WEBDAV_PASSWORD] = bk.webdav.password_secret
        secrets.backup = {name: cfg.require_secret(key) for name, key in keys.items() if key}
    receiver = config.monitoring.alerting.receiver
    if receiver is not None:
        secrets.alert_webhook_url = cfg.require_secret(receiver.url_secret)
    if config.identity.enabled:
        secrets.identity_passwords = {
            u.name: cfg.require_secret(u.password_secret) for u in config.identity.users
        }
    if config.tunnel.tailscale is not None:
        secrets.tailscale_api_key = cfg.require_secret(config.tunnel.tailscale.api_key_secret)
    if config.dns.public is not None:
        secrets.public_dns_api_token = cfg.require_secret(config.dns.public.api_token_secret)
    if config.tunnel.cloudflare is not None:
        secrets.tunnel_api_token = cfg.require_secret(config.tunnel.cloudflare.api_token_secret)
    if config.tls.enabled and config.tls.acme is not None:
        secrets.acme_credentials = {
            name: cfg.require_secret(key) for name, key in config.tls.acme.credentials.items()
        }
    return secrets


def read_platform_secrets(config: StackConfig) -> Any:
    from stacks.platform import PlatformSecrets

    cfg = pulumi.Config("homelab")
    p = config.platform
    assert p is not None
    sso = p.components.argocd.sso
    webhook = config.notifications.webhook_url_secret if config.layers.apps else None
    tls = p.tls
    assert tls is not None
    token = tls.acme.cloudflare_api_token_secret if tls.acme else None
    ca_key = tls.ca.key_secret if tls.ca else None
    return PlatformSecrets(
        github_token=cfg.require_secret(p.github_token_secret),
        kubeconfig=cfg.require_secret(p.kubeconfig_secret) if p.kubeconfig_secret else None,
        sso_client_secret=cfg.require_secret(sso.client_secret_secret) if sso else None,
        notifications_webhook=cfg.require_secret(webhook) if webhook else None,
        cloudflare_api_token=cfg.require_secret(token) if token else None,
        ca_key=cfg.require_secret(ca_key) if ca_key else None,
        node_keys={
            i: cfg.require_secret(node.private_key_secret)
            for i, node in enumerate(tls.nodes)
            if node.private_key_secret
        },
        node_proxy_keys={
            i: cfg.require_secret(node.proxy.private_key_secret)
            for i, node in enumerate(tls.nodes)
            if node.proxy is not None and node.proxy.private_key_secret
        },
    )


def read_apps_secrets(config: StackConfig) -> Any:
    from stacks.apps import AppsSecrets

    cfg = pulumi.Config("homelab")
    assert config.platform is not None
    return AppsSecrets(
        github_token=cfg.require_secret(config.platform.github_token_secret),
        secret_env={
            i: {env: cfg.require_secret(key) for env, key in app.secret_env.items()}
            for i, app in enumerate(config.apps)
            if app.secret_env
        },
    )


def main() -> None:
    try:
        config = load_config()
        if config.layers.platform:
            # Checks that need this machine or another layer, still before any resource.
            from stacks.platform import preflight_problems

            problems = preflight_problems(config)
            if problems:
                raise ConfigError(problems)
    except ConfigError as error:
        # RunError: Pulumi prints the message without a Python traceback.
        raise pulumi.RunError(str(error)) from None

    lab = None
    if config.layers.homelab:
        from stacks.homelab import build_homelab, export_homelab

        lab = build_homelab(
            config,
            read_homelab_secrets(config),
            stack=pulumi.get_stack(),
            key_dir=os.environ.get("HOMELAB_SSH_KEY_DIR", "~/.ssh/homelab"),
        )
        export_homelab(config, lab)

    if config.layers.platform:
        # Imported here: the Kubernetes, GitHub and Harbor SDKs load only for this layer.
        from stacks.platform import build_platform, export_platform

        platform = build_platform(
            config, read_platform_secrets(config), lab.ca if lab is not None else None, lab
        )
        export_platform(platform)
        if config.layers.apps:
            from stacks.apps import build_apps, export_apps

            export_apps(build_apps(config, platform, read_apps_secrets(config)))
