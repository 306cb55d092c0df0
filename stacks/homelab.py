"""The homelab layer: hosts, TLS, and every planned service as Docker resources."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_random as random

from components.docker.host import DockerHost, HostArgs, SshTarget
from components.docker.service import DataSafety, Service, ServiceArgs
from components.homelab import alerting
from components.homelab.proxy import cert_secret_name
from components.homelab.tls import CertificateAuthority, CertificateAuthorityArgs
from stacks.config import StackConfig
from stacks.plan import Plan, build_plan


@dataclass
class HomelabSecrets:
    """Secrets read from the stack config (always Pulumi secrets), by purpose."""

    host_keys: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    certificates: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    s3_access_key_id: pulumi.Output[str] | None = None
    s3_secret_access_key: pulumi.Output[str] | None = None
    alert_webhook_url: pulumi.Output[str] | None = None


@dataclass
class Homelab:
    plan: Plan
    hosts: dict[str, DockerHost]
    services: dict[str, Service]
    admin_password: pulumi.Output[str]
    ca: CertificateAuthority | None


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
    if secrets.s3_access_key_id is not None and secrets.s3_secret_access_key is not None:
        shared["s3-access-key-id"] = secrets.s3_access_key_id
        shared["s3-secret-access-key"] = secrets.s3_secret_access_key
    if secrets.alert_webhook_url is not None:
        # Uploaded to Alertmanager as a file its config names; never in env or plain state.
        shared[alerting.WEBHOOK_SECRET] = secrets.alert_webhook_url

    ca = None
    if config.tls.enabled:
        generated = tuple(h for h in plan.tls_hosts() if h not in secrets.certificates)
        if config.tls.self_signed:
            ca = CertificateAuthority(
                "tls",
                CertificateAuthorityArgs(config.tls.ca_common_name, generated, config.tls.validity_days),
            )
            for fqdn, pem in ca.pems.items():
                shared[cert_secret_name(fqdn)] = pem
        for fqdn, pem in secrets.certificates.items():
            shared[cert_secret_name(fqdn)] = pem

    hosts: dict[str, DockerHost] = {}
    for h in config.hosts:
        ssh = h.ssh
        hosts[h.name] = DockerHost(
            h.name,
            HostArgs(
                name=h.name,
                ssh=SshTarget(*ssh) if ssh else None,
                root_dir=h.root,
                install_docker=h.install_docker,
                private_key=secrets.host_keys.get(h.name),
                key_dir=key_dir,
                network_name=config.name,
                labels=labels,
            ),
        )

    safety = DataSafety(retain_on_delete=not config.data.delete_on_destroy, protect=config.data.protect)
    services: dict[str, Service] = {}
    backups = [s for s in plan.services if s.kind == "BackupSchedule"]
    for spec in [s for s in plan.services if s.kind != "BackupSchedule"] + backups:
        after: list[pulumi.Resource] = []
        if spec.kind == "BackupSchedule":
            # The backup run mounts the other services' volumes: create it after them.
            after = [svc for svc in services.values() if svc.spec.host == spec.host]
        services[spec.name] = Service(
            spec.name,
            ServiceArgs(spec, config.name, labels, shared, safety),
            hosts[spec.host],
            after=after,
        )
    return Homelab(plan, hosts, services, shared["admin-password"], ca)


def export_homelab(config: StackConfig, lab: Homelab) -> None:
    pulumi.export("urls", lab.plan.urls())
    pulumi.export("admin-user", config.admin_user)
    pulumi.export("admin-password", lab.admin_password)
    if lab.ca is not None:
        pulumi.export("ca-certificate", lab.ca.ca_cert_pem)
    passphrases = {
        name: svc.secrets["passphrase"] for name, svc in lab.services.items() if "passphrase" in svc.secrets
    }
    if passphrases:
        pulumi.export("backup-passphrases", pulumi.Output.secret(passphrases))
    for name, svc in lab.services.items():
        if svc.credentials is not None:
            pulumi.export(f"{name}-credentials", svc.credentials)
    pulumi.export("hosts", {name: host.args.docker_host for name, host in lab.hosts.items()})
