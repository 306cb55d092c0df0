"""The homelab layer: hosts, TLS, and every planned service as Docker resources."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from components.docker.host import DockerHost, HostArgs, JumpHost, SshTarget
from components.docker.service import DataSafety, Service, ServiceArgs
from components.docker.spec import LogLimits
from components.homelab import alerting, backup, identity
from components.homelab.images import IMAGES
from components.homelab.preupgrade import PreUpgradeBackup, PreUpgradeBackupArgs
from components.homelab.proxy import FALLBACK_NAME, cert_secret_name
from components.homelab.tls import CertificateAuthority, CertificateAuthorityArgs, fallback_certificate
from stacks.config import StackConfig
from stacks.config_hosts import HostConfig, public_host_key
from stacks.plan import IDENTITY_CA, Plan, build_plan, public_records, signed_by_stack_ca, tunnel_ca_names


@dataclass
class HomelabSecrets:
    """Secrets read from the stack config (always Pulumi secrets), by purpose."""

    host_keys: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    # The private keys of the hosts' jump hosts, by host name.
    proxy_keys: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    certificates: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    # The backup section's secrets by the names the backup run reads (components/homelab/backup.py).
    backup: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    alert_webhook_url: pulumi.Output[str] | None = None
    # The identity users' passwords, by user name (hashed before they reach any resource).
    identity_passwords: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    # The DNS provider's API token of dns.public.
    public_dns_api_token: pulumi.Output[str] | None = None
    # The Tailscale API key of tunnel.tailscale.
    tailscale_api_key: pulumi.Output[str] | None = None
    # The Cloudflare API token of tunnel.cloudflare.
    tunnel_api_token: pulumi.Output[str] | None = None
    # The ACME DNS provider's variables (tls.acme.credentials), by variable name.
    acme_credentials: dict[str, pulumi.Output[str]] = field(default_factory=dict)


@dataclass
class Homelab:
    plan: Plan
    hosts: dict[str, DockerHost]
    services: dict[str, Service]
    admin_password: pulumi.Output[str]
    ca: CertificateAuthority | None
    backup_key: tls.PrivateKey | None = None
    pre_upgrade: dict[str, PreUpgradeBackup] = field(default_factory=dict)
    # The identity provider's OpenID Connect clients' secrets, by client ID (the platform
    # layer's clients read theirs here).
    oidc_client_secrets: dict[str, pulumi.Output[str]] = field(default_factory=dict)

    def issuer_ca(self) -> pulumi.Output[str] | None:
        """The CA certificate the identity provider's certificate chains to, when it is the
        stack's own (None: yours or ACME's, trusted by the system's roots)."""
        issuer = self.issuer()
        if self.ca is None or issuer is None:
            return None
        return (
            self.ca.ca_cert_pem
            if signed_by_stack_ca(self.plan.config, issuer.removeprefix("https://"))
            else None
        )

    def issuer(self) -> str | None:
        """The identity provider's issuer URL (no trailing slash), when it runs."""
        spec = next((s for s in self.plan.services if s.kind == identity.KIND), None)
        route = spec.url_routes()[0] if spec is not None and spec.url_routes() else None
        return f"https://{route.fqdn}" if route is not None else None


def build_homelab(
    config: StackConfig,
    secrets: HomelabSecrets,
    stack: str,
    key_dir: str = "~/.ssh/homelab",
) -> Homelab:
    plan = build_plan(config)
    labels = {"managed-by": "pulumi-homelab", "homelab.stack": stack}

    admin = random.RandomPassword("admin-password", length=26, special=False)
    shared: dict[str, pulumi.Output[str]] = {"admin-password": pulumi.Output.secret(admin.result)}
    shared.update(secrets.backup)
    if backup.NOTIFY_URL in secrets.backup:
        shared[backup.NOTIFY_URL] = secrets.backup[backup.NOTIFY_URL].apply(backup.notification_url)
    backup_key = None
    if config.backup.encryption == "age" and any(s.kind == "BackupSchedule" for s in plan.services):
        if config.backup.age_recipients:
            shared[backup.RECIPIENTS] = pulumi.Output.from_input(",".join(config.backup.age_recipients))
        else:
            # An ssh-ed25519 key pair, which age takes as recipient and identity
            # (offen/docker-volume-backup v2.48.2: cmd/backup/encrypt_archive.go): the hosts get
            # only the public key; the private key is the stack output `backup-identity`.
            backup_key = tls.PrivateKey("backup-key", algorithm="ED25519")
            shared[backup.RECIPIENTS] = backup_key.public_key_openssh.apply(lambda key: key.strip())
    if secrets.alert_webhook_url is not None:
        # Uploaded to Alertmanager as a file its config names; never in env or plain state.
        shared[alerting.WEBHOOK_SECRET] = secrets.alert_webhook_url

    if config.identity.enabled:
        shared[identity.USERS_SECRET] = identity_users(config, secrets)
    if plan.oidc_clients:
        shared.update(oidc_secrets(config, plan.oidc_clients))
    if secrets.acme_credentials:
        from components.homelab import acme

        shared[acme.ENV_SECRET] = pulumi.Output.secret(
            pulumi.Output.all(**secrets.acme_credentials).apply(acme.env_file)
        )

    ca = None
    if config.tls.enabled:
        generated = tuple(h for h in plan.tls_hosts() if h not in secrets.certificates)
        if config.tls.self_signed:
            ca = CertificateAuthority(
                "tls",
                CertificateAuthorityArgs(config.tls.ca_common_name, generated, config.tls.validity_days),
            )
            shared[IDENTITY_CA] = ca.ca_cert_pem
            for fqdn, pem in ca.pems.items():
                shared[cert_secret_name(fqdn)] = pem
        for fqdn, pem in secrets.certificates.items():
            shared[cert_secret_name(fqdn)] = pem
        if any(r.mode == "http" for _, r in plan.routes):
            shared[cert_secret_name(FALLBACK_NAME)] = fallback_certificate(
                "tls-fallback", FALLBACK_NAME, config.tls.validity_days
            )

    t = config.tunnel.cloudflare
    if t is not None and secrets.tunnel_api_token is not None:
        from components.homelab import tunnel

        cf = tunnel.CloudflareTunnel(
            "tunnel",
            tunnel.CloudflareTunnelArgs(
                t.account_id,
                t.zone_id,
                secrets.tunnel_api_token,
                f"{stack or config.name}-{config.name}",
                tuple(config.fqdn(h) for h in t.routes),
                stack_ca_names=tunnel_ca_names(config),
            ),
        )
        shared[tunnel.TOKEN_SECRET] = cf.token

    ts = config.tunnel.tailscale
    if ts is not None and secrets.tailscale_api_key is not None:
        from components.homelab.tailscale import KEY_SECRET, TailscaleKey, TailscaleKeyArgs

        shared[KEY_SECRET] = TailscaleKey(
            "tailscale", TailscaleKeyArgs(secrets.tailscale_api_key, ts.tailnet, tuple(ts.tags))
        ).key

    if config.dns.public is not None and secrets.public_dns_api_token is not None:
        from components.homelab.public_dns import PublicRecords, PublicRecordsArgs

        records = tuple(public_records(plan))
        PublicRecords(
            "public-dns", PublicRecordsArgs(config.dns.public.zone_id, secrets.public_dns_api_token, records)
        )

    hosts = {
        h.name: DockerHost(h.name, host_args(config, h, secrets, key_dir, stack, labels))
        for h in config.hosts
    }

    safety = DataSafety(retain_on_delete=not config.data.delete_on_destroy, protect=config.data.protect)
    logs = log_limits(config)
    services: dict[str, Service] = {}
    backups = [s for s in plan.services if s.kind == "BackupSchedule"]
    pre_upgrade = pre_upgrade_backups(config, plan, hosts)
    for spec in [s for s in plan.services if s.kind != "BackupSchedule"] + backups:
        after: list[pulumi.Resource] = []
        if spec.name in pre_upgrade:
            # Its containers are replaced only after the backup their change triggered.
            after = [pre_upgrade[spec.name]]
        if spec.kind == "BackupSchedule":
            # The backup run mounts the other services' volumes: create it after them.
            after = [svc for svc in services.values() if svc.spec.host == spec.host]
        services[spec.name] = Service(
            spec.name,
            # The backup engine's image stages the files: FROM alpine:3.24 (offen/docker-volume-
            # backup Dockerfile @ v2.48.2), whose BusyBox has sh, find (-maxdepth, -exec +), cp,
            # rm, chmod and chown (alpinelinux/aports main/busybox/busyboxconfig @ 05253d2ccfbc).
            ServiceArgs(spec, config.name, labels, shared, safety, logs, IMAGES["backup"]),
            hosts[spec.host],
            after=after,
        )
    client_secrets = {
        c.client_id: shared[identity.client_secret_name(c.client_id)]
        for c in plan.oidc_clients
        if not c.public
    }
    return Homelab(
        plan, hosts, services, shared["admin-password"], ca, backup_key, pre_upgrade, client_secrets
    )


def log_limits(config: StackConfig) -> LogLimits:
    """The stack's `logs`: every container's and each bootstrapped host's daemon default."""
    return LogLimits(config.logs.driver, config.logs.max_size, config.logs.max_file)


def pre_upgrade_backups(
    config: StackConfig, plan: Plan, hosts: dict[str, DockerHost]
) -> dict[str, PreUpgradeBackup]:
    """One pre-upgrade backup per stateful service on a host with a backup schedule."""
    if not config.data.pre_upgrade_backup:
        return {}
    engines = {s.host: s for s in plan.services if s.kind == "BackupSchedule"}
    found = {}
    for spec in plan.services:
        engine = engines.get(spec.host)
        if spec.kind == "BackupSchedule" or engine is None or not spec.stateful_volumes:
            continue
        args = PreUpgradeBackupArgs(
            spec,
            config.name,
            backup_container=f"{config.name}-{backup.CONTAINER}",
            archive_prefix=backup.archive_prefix(config.name, spec.host),
            encrypted=config.backup.encryption == "age",
        )
        found[spec.name] = PreUpgradeBackup(f"{spec.name}-pre-upgrade-backup", args, hosts[spec.host])
    return found


def host_args(
    config: StackConfig,
    h: HostConfig,
    secrets: HomelabSecrets,
    key_dir: str,
    stack: str,
    labels: dict[str, str] | None = None,
) -> HostArgs:
    """What the host `h` is, for its DockerHost and for the tool's own Docker connection."""
    ssh = h.ssh
    return HostArgs(
        name=h.name,
        ssh=SshTarget(*ssh) if ssh else None,
        root_dir=h.root,
        install_docker=h.install_docker,
        images_from_bundle=h.images_from_bundle,
        private_key=secrets.host_keys.get(h.name),
        host_key=public_host_key(h.host_key),
        trust_on_first_use=h.trust_on_first_use,
        proxy=jump_host(h, secrets),
        key_dir=key_dir,
        stack=stack,
        network_name=config.name,
        labels=labels or {},
        logs=log_limits(config),
    )


def jump_host(host: HostConfig, secrets: HomelabSecrets) -> JumpHost | None:
    proxy = host.proxy
    if proxy is None or proxy.ssh is None:
        return None
    return JumpHost(
        SshTarget(*proxy.ssh),
        host_key=public_host_key(proxy.host_key),
        trust_on_first_use=proxy.trust_on_first_use,
        private_key=secrets.proxy_keys.get(host.name),
    )


def export_homelab(config: StackConfig, lab: Homelab) -> None:
    pulumi.export("urls", lab.plan.urls())
    pulumi.export("admin-user", config.admin_user)
    pulumi.export("admin-password", lab.admin_password)
    if lab.ca is not None:
        pulumi.export("ca-certificate", lab.ca.ca_cert_pem)
    if lab.backup_key is not None:
        # The one thing to keep off the servers: it decrypts every backup archive.
        pulumi.export("backup-identity", pulumi.Output.secret(lab.backup_key.private_key_openssh))
        pulumi.export("backup-recipient", lab.backup_key.public_key_openssh.apply(lambda key: key.strip()))
    for name, svc in lab.services.items():
        if svc.credentials is not None:
            pulumi.export(f"{name}-credentials", svc.credentials)
    pulumi.export("hosts", {name: host.args.docker_host for name, host in lab.hosts.items()})
    if "kubernetes" in lab.oidc_client_secrets:
        # For kubelogin's --oidc-client-secret on the cluster's users' machines.
        pulumi.export("kubernetes-oidc-client-secret", lab.oidc_client_secrets["kubernetes"])
    if lab.pre_upgrade:
        # The archive each service's last pre-upgrade backup wrote (or why it skipped).
        pulumi.export("pre-upgrade-backups", {name: b.archive for name, b in lab.pre_upgrade.items()})


def identity_users(config: StackConfig, secrets: HomelabSecrets) -> pulumi.Output[str]:
    """The identity provider's users file, each password an argon2id hash made here from a
    salt kept in state (so the file changes only when a password or a user does)."""
    users = [
        identity.IdentityUserSpec(u.name, u.display_name or u.name, u.email, tuple(u.groups), u.disabled)
        for u in config.identity.users
    ]
    hashes: dict[str, pulumi.Output[str]] = {}
    for u in users:
        salt = random.RandomBytes(f"identity-{u.name}-salt", length=identity.SALT_LENGTH)
        hashes[u.name] = pulumi.Output.all(secrets.identity_passwords[u.name], salt.base64).apply(
            lambda args: identity.password_hash(args[0], args[1])
        )
    text = pulumi.Output.all(**hashes).apply(lambda done: identity.users_file(users, done))
    return pulumi.Output.secret(text)


def oidc_secrets(
    config: StackConfig, clients: tuple[identity.OidcClient, ...]
) -> dict[str, pulumi.Output[str]]:
    """The identity provider's OpenID Connect secrets, all kept in state as secrets: its signing
    key (RSA 2048, RS256: the one key Authelia requires, provider.md @ v4.39.20), its HMAC
    secret (64 alphanumerics, as recommended there), and per client a secret, delivered to the
    client in plain text and to Authelia only as its pbkdf2-sha512 digest (made here, from a
    salt kept in state, so the digest changes only with the secret)."""
    key = tls.PrivateKey("identity-oidc-key", algorithm="RSA", rsa_bits=2048)
    hmac = random.RandomPassword("identity-oidc-hmac", length=64, special=False)
    out: dict[str, pulumi.Output[str]] = {}
    digests: dict[str, pulumi.Output[str]] = {}
    for c in [c for c in clients if not c.public]:
        secret = random.RandomPassword(f"identity-oidc-{c.client_id}-secret", length=64, special=False)
        salt = random.RandomBytes(f"identity-oidc-{c.client_id}-salt", length=16)
        out[identity.client_secret_name(c.client_id)] = pulumi.Output.secret(secret.result)
        digests[c.client_id] = pulumi.Output.all(secret.result, salt.base64).apply(
            lambda args: identity.client_secret_digest(args[0], args[1])
        )
    admins = tuple(config.identity.admin_groups)
    section = pulumi.Output.all(hmac.result, key.private_key_pem, pulumi.Output.all(**digests)).apply(
        lambda args: identity.oidc_section(clients, admins, args[0], args[1], args[2])
    )
    out[identity.OIDC_SECRET] = pulumi.Output.secret(section)
    return out
