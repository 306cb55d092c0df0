"""The platform layer: cluster, charts, GitOps repository and per-project access.

Imported only when `layers.platform` is on: it pulls in the Kubernetes, GitHub and Harbor
SDKs, which a homelab-only stack never loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_github as github
import pulumi_random as random

from components.platform.access import ProjectAccess, ProjectArgs, Quota, gitops_permissions
from components.platform.argocd import ArgoCd, ArgoCdArgs, GitHubSsoArgs
from components.platform.cluster import ClusterArgs, KubernetesCluster
from components.platform.gitops import GitOpsArgs, GitOpsRepository
from components.platform.harbor import Harbor, HarborArgs
from components.platform.ingress import CertManager, CertManagerArgs, IngressController, IngressControllerArgs
from components.platform.postgres import PlatformPostgres, PostgresArgs
from components.platform.tracing import Tracing, TracingArgs
from stacks.config import StackConfig
from stacks.config_base import host_name
from stacks.config_platform import PlatformConfig


@dataclass
class PlatformSecrets:
    github_token: pulumi.Output[str]
    kubeconfig: pulumi.Output[str] | None = None
    sso_client_secret: pulumi.Output[str] | None = None
    notifications_webhook: pulumi.Output[str] | None = None


@dataclass
class Platform:
    config: PlatformConfig
    cluster: KubernetesCluster
    argocd: ArgoCd | None = None
    harbor: Harbor | None = None
    tracing: Tracing | None = None
    postgres: PlatformPostgres | None = None
    gitops: GitOpsRepository | None = None
    projects: dict[str, ProjectAccess] = field(default_factory=dict)
    github: github.Provider | None = None
    # The private CA behind the ingress certificates, when this stack made it.
    ca_cert_pem: pulumi.Output[str] | None = None


def platform_domain(config: StackConfig) -> str:
    assert config.platform is not None
    return config.platform.domain or config.domain


def build_platform(config: StackConfig, secrets: PlatformSecrets) -> Platform:
    p = config.platform
    assert p is not None, "validated: layers.platform needs the platform section"
    domain = platform_domain(config)
    c = p.components

    cluster = KubernetesCluster(
        "platform",
        ClusterArgs(
            namespace=p.namespace,
            kubeconfig=secrets.kubeconfig if secrets.kubeconfig is not None else p.kubeconfig_path,
            context=p.context,
            labels={"app.kubernetes.io/managed-by": "pulumi-homelab"},
        ),
    )
    platform = Platform(p, cluster)
    # Ingress and certificates first: every UI below is an ingress with a TLS secret.
    prerequisites: list[pulumi.Resource] = []
    if c.ingress_nginx.enabled:
        prerequisites.append(
            IngressController("ingress-nginx", IngressControllerArgs(p.ingress_class), cluster).release
        )
    if c.cert_manager.enabled:
        cm = c.cert_manager
        cert_manager = CertManager(
            "cert-manager",
            CertManagerArgs(p.cluster_issuer, cm.issuer, cm.acme_email, cm.acme_server, p.ingress_class),
            cluster,
        )
        prerequisites.append(cert_manager.issuer)
        platform.ca_cert_pem = cert_manager.ca_cert_pem

    if c.argocd.enabled:
        webhook_secret = random.RandomPassword("argocd-webhook-secret", length=40, special=False)
        sso = None
        if c.argocd.sso is not None and secrets.sso_client_secret is not None:
            sso = GitHubSsoArgs(c.argocd.sso.client_id, secrets.sso_client_secret, tuple(c.argocd.sso.orgs))
        platform.argocd = ArgoCd(
            "argocd",
            ArgoCdArgs(
                host_name(c.argocd.hostname, domain),
                pulumi.Output.secret(webhook_secret.result),
                p.ingress_class,
                p.cluster_issuer,
                sso,
                c.argocd.ha,
                prerequisites,
                secrets.notifications_webhook,
            ),
            cluster,
        )
    if c.harbor.enabled:
        platform.harbor = Harbor(
            "harbor",
            HarborArgs(
                host_name(c.harbor.hostname, domain),
                p.ingress_class,
                p.cluster_issuer,
                c.harbor.registry_size,
                p.storage_class,
                c.harbor.trivy,
                c.harbor.verify_tls,
                prerequisites,
            ),
            cluster,
        )
    if c.tracing.enabled:
        platform.tracing = Tracing(
            "tracing",
            TracingArgs(
                host_name(c.tracing.hostname, domain), p.ingress_class, p.cluster_issuer, prerequisites
            ),
            cluster,
        )
    if c.postgres.enabled:
        pg = c.postgres
        platform.postgres = PlatformPostgres(
            "postgres",
            PostgresArgs(
                "platform-db", pg.instances, pg.storage_size, p.storage_class, pg.database, pg.owner
            ),
            cluster,
        )

    github_provider = github.Provider("github", owner=p.github_owner, token=secrets.github_token)
    platform.github = github_provider
    gitops_repo_url = None
    if platform.argocd is not None:
        platform.gitops = GitOpsRepository(
            "gitops",
            GitOpsArgs(
                owner=p.github_owner,
                repository=p.gitops.repository.split("/", 1)[1],
                branch=p.gitops.branch,
                create=p.gitops.create,
                argocd_namespace=p.namespace,
                argocd_url=platform.argocd.url,
                webhook_secret=webhook_secret.result,
            ),
            cluster,
            github_provider,
        )
        gitops_repo_url = platform.gitops.url

    for project in p.projects:
        q = project.quota
        platform.projects[project.name] = ProjectAccess(
            f"project-{project.name}",
            ProjectArgs(
                name=project.name,
                members=dict(project.roles_of()),
                argocd_namespace=p.namespace,
                gitops_repo_url=gitops_repo_url,
                quota=Quota(q.cpu, q.memory, q.pods, q.storage),
                oidc_prefix=p.oidc_prefix,
            ),
            cluster,
            harbor_provider=platform.harbor.provider if platform.harbor else None,
            argocd=platform.argocd.release if platform.argocd else None,
        )
    if platform.gitops is not None:
        platform.gitops.grant(gitops_permissions({x.name: x.roles_of() for x in p.projects}))
    return platform


def export_platform(platform: Platform) -> None:
    outputs: dict[str, object] = {"namespace": platform.config.namespace}
    if platform.argocd is not None:
        outputs["argocd-url"] = platform.argocd.url
        pulumi.export("argocd-admin-password", platform.argocd.admin_password)
    if platform.harbor is not None:
        outputs["harbor-url"] = platform.harbor.url
        outputs["registry-host"] = platform.harbor.registry_host
        pulumi.export("harbor-admin-password", platform.harbor.admin_password)
    if platform.tracing is not None:
        outputs["tracing-url"] = platform.tracing.url
        outputs["otlp-endpoint"] = platform.tracing.otlp_endpoint
    if platform.postgres is not None:
        outputs["postgres-host"] = platform.postgres.host
        pulumi.export("postgres-password", platform.postgres.password)
    if platform.gitops is not None:
        outputs["gitops-repository"] = platform.gitops.url
    outputs["projects"] = sorted(platform.projects)
    pulumi.export("platform", outputs)
    if platform.ca_cert_pem is not None:
        pulumi.export("platform-ca-certificate", platform.ca_cert_pem)
