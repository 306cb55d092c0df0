"""The platform layer: cluster, charts, GitOps repository and per-project access.

Imported only when `layers.platform` is on: it pulls in the Kubernetes, GitHub and Harbor
SDKs, which a homelab-only stack never loads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pulumi
import pulumi_github as github
import pulumi_random as random

from components.platform.access import ProjectAccess, ProjectArgs, Quota, gitops_permissions
from components.platform.argocd import ArgoCd, ArgoCdArgs, GitHubSsoArgs, OidcSsoArgs
from components.platform.cluster import ClusterArgs, KubernetesCluster
from components.platform.gitops import GitOpsArgs, GitOpsRepository
from components.platform.harbor import ExternalDatabase, Harbor, HarborArgs, HarborOidc
from components.platform.ingress import AcmeIssuer, CaIssuer, CertManager, CertManagerArgs
from components.platform.postgres import PlatformPostgres, PostgresArgs, ServiceDatabase
from components.platform.routing import GatewayArgs, Listener, PlatformGateway, Route, route_certificate
from components.platform.tracing import Tracing, TracingArgs
from components.platform.trust import (
    Node,
    NodeProxy,
    NodeTrust,
    NodeTrustArgs,
    machine_trusts,
    untrusted_ca_message,
)
from stacks.config import ConfigError, StackConfig, app_fqdn
from stacks.config_base import host_name, ssh_endpoint
from stacks.config_hosts import public_host_key
from stacks.config_platform import PlatformConfig

HARBOR_DATABASE = ServiceDatabase("harbor", "harbor-database")


@dataclass
class PlatformSecrets:
    github_token: pulumi.Output[str]
    kubeconfig: pulumi.Output[str] | None = None
    sso_client_secret: pulumi.Output[str] | None = None
    notifications_webhook: pulumi.Output[str] | None = None
    cloudflare_api_token: pulumi.Output[str] | None = None
    ca_key: pulumi.Output[str] | None = None
    node_keys: dict[int, pulumi.Output[str]] = field(default_factory=dict)
    node_proxy_keys: dict[int, pulumi.Output[str]] = field(default_factory=dict)


@dataclass
class PlatformCa:
    """The private CA the platform's certificates chain to, as this run receives it."""

    cert_pem: pulumi.Input[str]
    key_pem: pulumi.Input[str] | None  # None: someone else's issuer signs
    where: str  # for messages: where the CA comes from


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
    # The private CA behind the platform's certificates (None: publicly trusted ones).
    ca_cert_pem: pulumi.Input[str] | None = None
    # What must exist before a node pulls from Harbor (the CA installed on the nodes).
    node_trust: list[pulumi.Resource] = field(default_factory=list)
    # Where each UI ("argocd", "harbor", "tracing") and app ("app:<project>/<name>") is served.
    routes: dict[str, Route] = field(default_factory=dict)


GATEWAY_NAME = "platform"


def platform_routes(config: StackConfig) -> dict[str, Route]:
    """The route of every enabled UI and, with the apps layer, of every app: a listener of the
    platform's Gateway, or an Ingress of the configured class."""
    p = config.platform
    assert p is not None
    domain = platform_domain(config)
    c = p.components

    def route(key: str, host: str) -> Route:
        return Route(p.routing.mode, key, host, GATEWAY_NAME, p.namespace, p.ingress_class or "")

    routes = {
        key: route(key, host_name(hostname, domain))
        for key, hostname, enabled in (
            ("argocd", c.argocd.hostname, c.argocd.enabled),
            ("harbor", c.harbor.hostname, c.harbor.enabled),
            ("tracing", c.tracing.hostname, c.tracing.enabled),
        )
        if enabled
    }
    if config.layers.apps:
        for app in config.apps:
            # An app's listener and TLS Secret live with the Gateway; its HTTPRoute in its project.
            r = route(f"{app.project}-{app.name}", app_fqdn(config, app))
            routes[f"app:{app.project}/{app.name}"] = r
    return routes


def platform_domain(config: StackConfig) -> str:
    assert config.platform is not None
    return config.platform.domain or config.domain


def platform_ca(
    config: StackConfig, secrets: PlatformSecrets, homelab_ca: object | None
) -> PlatformCa | None:
    """The private CA of mode private-ca: from config, or the homelab layer's (`homelab_ca`, a
    components.homelab.tls.CertificateAuthority)."""
    p = config.platform
    assert p is not None and p.tls is not None
    if p.tls.mode != "private-ca":
        return None
    ca = p.tls.ca
    assert ca is not None, "validated"
    if ca.source == "config":
        assert ca.certificate is not None
        return PlatformCa(ca.certificate, secrets.ca_key, "of platform.tls.ca.certificate")
    assert homelab_ca is not None, "preflight: source homelab needs the homelab layer's CA"
    return PlatformCa(
        homelab_ca.ca_cert_pem,  # type: ignore[attr-defined]
        homelab_ca.ca_key_pem,  # type: ignore[attr-defined]
        "the homelab layer made (stack output ca-certificate)",
    )


def preflight_problems(config: StackConfig) -> list[tuple[str, str]]:
    """What stops the platform before any resource exists, beyond the config checks: a private
    CA this machine does not trust (Pulumi's Harbor provider would fail on every call)."""
    p = config.platform
    if p is None or p.tls is None or p.tls.ca is None or p.tls.ca.source != "config":
        return []  # a homelab CA is checked once it exists (`harbor_api_url`)
    harbor = p.components.harbor
    if not (p.tls.mode == "private-ca" and harbor.enabled and harbor.verify_tls):
        return []
    assert p.tls.ca.certificate is not None, "validated"
    if machine_trusts(p.tls.ca.certificate) is not False:
        return []
    harbor_url = f"https://{host_name(harbor.hostname, platform_domain(config))}"
    return [("platform.tls.ca.certificate", untrusted_ca_message(harbor_url, "of this setting"))]


def harbor_api_url(url: str, ca: PlatformCa) -> pulumi.Output[str]:
    """`url`, once this machine is known to trust the CA: the Harbor provider cannot be told a CA,
    so it must not start (and fail on every call) when the CA is missing or not yet made."""
    cert = pulumi.Output.from_input(ca.cert_pem)

    async def checked() -> str:
        if not await cert.is_known():
            raise pulumi.RunError(
                "platform.tls.ca: "
                + untrusted_ca_message(url, f"{ca.where}, which does not exist yet")
                + " A CA made in this run cannot be trusted in time: run `pulumi up` with "
                "layers.platform off first, install the CA, then turn the platform on."
            )
        pem = await cert.future()
        assert pem is not None
        trusted = machine_trusts(pem)
        if trusted is False:
            raise pulumi.RunError("platform.tls.ca: " + untrusted_ca_message(url, ca.where))
        if trusted is None:
            pulumi.log.warn(
                "cannot tell whether this machine trusts the platform CA (Go uses the system "
                "verifier here); if Harbor calls fail with x509 errors, install the CA"
            )
        return url

    return pulumi.Output.from_input(asyncio.ensure_future(checked()))


@dataclass(frozen=True)
class IdentityClient:
    """A platform service's sign-in through the homelab's identity provider: its issuer, the
    client's secret, the provider's CA when the homelab's certificates are its own (None:
    trusted by the system's roots), the admin groups."""

    issuer: str
    secret: pulumi.Output[str]
    ca: pulumi.Output[str] | None
    admin_groups: tuple[str, ...]


def identity_client(lab: object | None, client_id: str) -> IdentityClient | None:
    """`client_id`'s sign-in, when the plan made it a client of the homelab's identity
    provider (stacks.plan: argocd_client, harbor_client)."""
    secrets = getattr(lab, "oidc_client_secrets", {})
    if lab is None or client_id not in secrets:
        return None
    issuer = lab.issuer()  # type: ignore[attr-defined]
    assert issuer is not None, "a client exists only when the identity provider is routed"
    admins = tuple(lab.plan.config.identity.admin_groups)  # type: ignore[attr-defined]
    return IdentityClient(issuer, secrets[client_id], lab.issuer_ca(), admins)  # type: ignore[attr-defined]


def argocd_oidc(lab: object | None) -> OidcSsoArgs | None:
    """Argo CD's sign-in through the homelab's identity provider."""
    c = identity_client(lab, "argocd")
    return OidcSsoArgs(c.issuer, "argocd", c.secret, c.ca, admin_groups=c.admin_groups) if c else None


def harbor_oidc(lab: object | None) -> HarborOidc | None:
    """Harbor's sign-in through the homelab's identity provider; the first admin group is
    Harbor's admin group (it takes one)."""
    c = identity_client(lab, "harbor")
    if c is None:
        return None
    return HarborOidc(c.issuer, "harbor", c.secret, c.ca, c.admin_groups[0] if c.admin_groups else None)


def build_platform(
    config: StackConfig, secrets: PlatformSecrets, homelab_ca: object | None = None, lab: object | None = None
) -> Platform:
    """`homelab_ca`: the homelab layer's CertificateAuthority, for platform.tls.ca.source homelab;
    `lab`: the homelab layer (stacks.homelab.Homelab), whose identity provider Argo CD may sign
    in through."""
    p = config.platform
    assert p is not None, "validated: layers.platform needs the platform section"
    assert p.tls is not None, "validated: platform.tls is required"
    problems = preflight_problems(config)
    if problems:
        raise ConfigError(problems)
    domain = platform_domain(config)
    c = p.components
    ca = platform_ca(config, secrets, homelab_ca)

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
    # Routing and certificates first: every UI below is a route with a TLS secret.
    platform.routes = platform_routes(config)
    prerequisites: list[pulumi.Resource] = []
    gateway_crds: list[pulumi.Resource] = []
    if p.routing.mode == "gateway":
        g = p.routing.gateway
        # An app's route lives in its project's namespace: only that one may attach to it.
        listeners = tuple(
            Listener(route, key.removeprefix("app:").split("/")[0] if key.startswith("app:") else "")
            for key, route in platform.routes.items()
        )
        gateway = PlatformGateway(
            "gateway",
            GatewayArgs(GATEWAY_NAME, g.class_name, g.install, g.service_type, listeners),
            cluster,
        )
        prerequisites += gateway.ready
        if gateway.release is not None:
            gateway_crds.append(gateway.release)
    if c.cert_manager.enabled:
        acme = None
        if p.tls.acme is not None:
            a = p.tls.acme
            acme = AcmeIssuer(a.email, a.server, a.solver, secrets.cloudflare_api_token, tuple(a.dns_zones))
        ca_issuer = None
        if ca is not None:
            assert ca.key_pem is not None, "validated: cert-manager's CA issuer needs the key"
            ca_issuer = CaIssuer(ca.cert_pem, ca.key_pem)
        cert_manager = CertManager(
            "cert-manager",
            CertManagerArgs(
                p.cluster_issuer,
                acme,
                ca_issuer,
                gateway=(GATEWAY_NAME, p.namespace) if p.routing.mode == "gateway" else None,
                ingress_class=p.ingress_class or "",
                depends_on=gateway_crds,
            ),
            cluster,
        )
        prerequisites.append(cert_manager.issuer)
    if p.routing.mode == "gateway":
        # An app's TLS Secret lives with the Gateway that terminates its listener.
        for key, r in platform.routes.items():
            if key.startswith("app:"):
                route_certificate(f"app-{r.key}-certificate", r, p.cluster_issuer, cluster, prerequisites)
    if ca is not None:
        platform.ca_cert_pem = ca.cert_pem
        harbor_host = host_name(c.harbor.hostname, domain)
        if p.tls.nodes and c.harbor.enabled:
            nodes = tuple(
                Node(
                    *n.ssh,
                    runtime=n.runtime,
                    private_key=secrets.node_keys.get(i),
                    host_key=public_host_key(n.host_key),
                    proxy=None
                    if n.proxy is None
                    else NodeProxy(
                        *ssh_endpoint(n.proxy.address),
                        private_key=secrets.node_proxy_keys.get(i),
                        host_key=public_host_key(n.proxy.host_key),
                    ),
                )
                for i, n in enumerate(p.tls.nodes)
            )
            platform.node_trust.extend(
                NodeTrust("node-trust", NodeTrustArgs(ca.cert_pem, harbor_host, nodes)).commands
            )

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
                platform.routes["argocd"],
                p.cluster_issuer,
                sso,
                c.argocd.ha,
                prerequisites,
                secrets.notifications_webhook,
                oidc=argocd_oidc(lab),
            ),
            cluster,
        )
    if c.postgres.enabled:
        pg = c.postgres
        platform.postgres = PlatformPostgres(
            "postgres",
            PostgresArgs(
                "platform-db",
                pg.instances,
                pg.storage_size,
                p.storage_class,
                pg.database,
                pg.owner,
                services=(HARBOR_DATABASE,) if c.harbor.enabled else (),
            ),
            cluster,
        )
    if c.harbor.enabled:
        harbor_host = host_name(c.harbor.hostname, domain)
        database, database_ready = None, []
        if platform.postgres is not None:
            # Harbor's database on the platform's PostgreSQL, created declaratively.
            database = ExternalDatabase(
                platform.postgres.host,
                HARBOR_DATABASE.name,
                HARBOR_DATABASE.name,
                HARBOR_DATABASE.secret_name,
            )
            database_ready = platform.postgres.ready[HARBOR_DATABASE.name]
        api_url = None
        if ca is not None and c.harbor.verify_tls:
            api_url = harbor_api_url(f"https://{harbor_host}", ca)
        platform.harbor = Harbor(
            "harbor",
            HarborArgs(
                harbor_host,
                platform.routes["harbor"],
                p.cluster_issuer,
                c.harbor.registry_size,
                p.storage_class,
                c.harbor.trivy,
                c.harbor.verify_tls,
                prerequisites,
                ca_cert_pem=ca.cert_pem if ca is not None else None,
                database=database,
                database_ready=database_ready,
                api_url=api_url,
                envoy_gateway=p.routing.mode == "gateway" and p.routing.gateway.install,
                oidc=harbor_oidc(lab),
            ),
            cluster,
        )
        members = sorted({login for project in p.projects for login in project.roles_of()}, key=str.lower)
        platform.harbor.add_users(members, dict(c.harbor.user_emails))
    if c.tracing.enabled:
        platform.tracing = Tracing(
            "tracing",
            TracingArgs(
                host_name(c.tracing.hostname, domain),
                platform.routes["tracing"],
                p.cluster_issuer,
                prerequisites,
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
                groups=dict(project.group_roles()),
                oidc_groups_prefix=p.oidc_groups_prefix,
            ),
            cluster,
            harbor_provider=platform.harbor.provider if platform.harbor else None,
            argocd=platform.argocd.release if platform.argocd else None,
            harbor_users=platform.harbor.users if platform.harbor else None,
            harbor_auth=platform.harbor.auth if platform.harbor else None,
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
        if platform.harbor.user_passwords:
            # Each project member's Harbor login (user name: the lower-cased GitHub login).
            pulumi.export("harbor-user-passwords", pulumi.Output.secret(platform.harbor.user_passwords))
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
