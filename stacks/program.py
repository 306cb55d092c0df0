"""The whole program: load and validate config, read secrets, build the enabled layers."""

from __future__ import annotations

import os

import pulumi

from stacks.config import ConfigError, StackConfig, load_config


def read_secrets(config: StackConfig):  # type: ignore[no-untyped-def]
    """Read every secret the config names, with `require_secret` so they stay secret."""
    from stacks.homelab import HomelabSecrets

    cfg = pulumi.Config("homelab")
    secrets = HomelabSecrets()
    for h in config.hosts:
        if h.private_key_secret:
            secrets.host_keys[h.name] = cfg.require_secret(h.private_key_secret)
    for fqdn, key in config.tls.certificates.items():
        secrets.certificates[fqdn] = cfg.require_secret(key)
    if config.backup.s3_access_key_id_secret and config.backup.s3_secret_access_key_secret:
        secrets.s3_access_key_id = cfg.require_secret(config.backup.s3_access_key_id_secret)
        secrets.s3_secret_access_key = cfg.require_secret(config.backup.s3_secret_access_key_secret)
    return secrets


def main() -> None:
    try:
        config = load_config()
    except ConfigError as error:
        # RunError: Pulumi prints the message without a Python traceback.
        raise pulumi.RunError(str(error)) from None

    from stacks.homelab import build_homelab, export_homelab

    lab = build_homelab(
        config,
        read_secrets(config),
        stack=pulumi.get_stack(),
        key_dir=os.environ.get("HOMELAB_SSH_KEY_DIR", "~/.ssh/homelab"),
    )
    export_homelab(config, lab)
