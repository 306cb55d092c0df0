"""The `platform:` section: the internal developer platform on a Kubernetes cluster.

One access model (projects, members by GitHub login, a role each) that the platform layer
compiles to Kubernetes RBAC, Argo CD AppProjects, Harbor project members and GitHub
repository permissions.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from stacks.config_base import (
    _CONTROL_RE,
    Domain,
    Email,
    Label,
    Model,
    SecretKey,
    SshAddress,
    Subdomain,
    ssh_endpoint,
)
from stacks.config_hosts import (
    HOST_KEY_HELP,
    TOFU_HELP,
    SshHostKey,
    SshProxyConfig,
    ssh_endpoint_problems,
)

Role = Literal["admin", "developer", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "developer", "viewer")

_GITHUB_LOGIN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$"
_REPO = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|M|G|T|P|E|Ei)?")  # fullmatch
_K8S_VERSION = r"^1\.[0-9]{2}$"

GitHubLogin = Annotated[str, Field(pattern=_GITHUB_LOGIN)]


def _quantity(value: str) -> str:
    if not _QUANTITY.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity like '500m', '4' or '8Gi'")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]


class ComponentConfig(Model):
    enabled: bool = Field(default=True, description="Install this component.")


class RoutedComponent(ComponentConfig):
    hostname: Subdomain = Field(description="Name under the platform domain.")


class GitHubSso(Model):
    """Sign in to Argo CD with GitHub through Dex."""

    client_id: str = Field(description="GitHub OAuth app client id.")
    client_secret_secret: SecretKey = Field(
        description="Config key (secret) holding the OAuth app client secret."
    )
    orgs: list[str] = Field(default_factory=list, description="Only members of these orgs may sign in.")


class ArgoCdConfig(RoutedComponent):
    hostname: Subdomain = "argocd"
    sso: GitHubSso | None = Field(default=None, description="GitHub SSO through Dex (optional).")
    ha: bool = Field(default=False, description="Run the HA variant (Redis HA, replicas).")


class HarborConfig(RoutedComponent):
    hostname: Subdomain = "harbor"
    registry_size: Quantity = Field(default="50Gi", description="Registry storage (PVC size).")
    trivy: bool = Field(default=True, description="Vulnerability scanning with Trivy.")
    verify_tls: bool = Field(
        default=True,
        description="Check Harbor's certificate when Pulumi calls its API (on: the machine running "
        "Pulumi must trust the signer; off only if you accept an unverified admin connection).",
    )
    user_emails: dict[GitHubLogin, Email] = Field(
        default_factory=dict,
        description="E-mail of a project member's Harbor user, by GitHub login "
        "(default: <login>@users.noreply.github.com; Harbor requires one).",
    )


class PostgresClusterConfig(ComponentConfig):
    instances: Annotated[int, Field(ge=1, le=9)] = Field(default=1, description="PostgreSQL instances.")
    storage_size: Quantity = Field(default="10Gi", description="Storage per instance.")
    database: Label = Field(default="platform", description="Database created at bootstrap.")
    owner: Label = Field(default="platform", description="Owner role of that database.")


class TracingConfig(RoutedComponent):
    hostname: Subdomain = "tracing"


class CertManagerConfig(ComponentConfig):
    enabled: bool = Field(
        default=False,
        description="Install cert-manager and the ClusterIssuer `platform.tls` describes "
        "(for clusters without them).",
    )


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class AcmeConfig(Model):
    """Publicly trusted certificates from an ACME CA (Let's Encrypt by default)."""

    email: Email = Field(description="ACME account e-mail.")
    server: str = Field(
        default=LETS_ENCRYPT,
        description="ACME directory URL (a staging directory issues untrusted certificates).",
    )
    solver: Literal["dns01-cloudflare", "http01"] = Field(
        default="dns01-cloudflare",
        description="How the CA checks the names: a DNS-01 TXT record through Cloudflare's API "
        "(works for hosts not reachable from the internet), or HTTP-01 through the ingress.",
    )
    cloudflare_api_token_secret: SecretKey | None = Field(
        default=None,
        description="Config key (secret) with a Cloudflare API token (Zone:DNS:Edit, Zone:Zone:Read) "
        "for solver dns01-cloudflare.",
    )
    dns_zones: list[Domain] = Field(
        default_factory=list,
        description="Only solve for names in these DNS zones (default: every name).",
    )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        url = urlsplit(value)
        try:
            port = url.port  # ValueError when out of 0..65535 or not a number
        except ValueError:
            port = 0
        if port is None and ":" in url.netloc.rsplit("]", 1)[-1]:
            port = 0  # "host:" with no port
        bad = url.scheme != "https" or not url.hostname or _CONTROL_RE.search(value) or " " in value
        if bad or port == 0:
            raise ValueError(f"{value!r} is not an https:// URL of an ACME directory")
        return value

    @model_validator(mode="after")
    def _solver(self) -> AcmeConfig:
        if self.solver == "dns01-cloudflare" and self.cloudflare_api_token_secret is None:
            raise ValueError("solver dns01-cloudflare needs cloudflare-api-token-secret")
        if self.solver != "dns01-cloudflare" and self.cloudflare_api_token_secret is not None:
            raise ValueError("cloudflare-api-token-secret is only for solver dns01-cloudflare")
        return self


_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")


def _pem_certificates(value: str) -> str:
    """PEM certificate blocks (RFC 7468), each base64 of a DER SEQUENCE, and nothing else but
    whitespace: the text reaches a Secret, a ConfigMap and every node's trust store as is."""
    blocks = list(_PEM_BLOCK.finditer(value))
    rest = _PEM_BLOCK.sub("", value)
    if not blocks or rest.strip() or re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", value):
        raise ValueError(
            "not a PEM certificate: '-----BEGIN CERTIFICATE-----', base64, "
            "'-----END CERTIFICATE-----' (and only whitespace around)"
        )
    for block in blocks:
        try:
            der = base64.b64decode("".join(block.group(1).split()), validate=True)
        except binascii.Error:
            raise ValueError("a certificate block is not valid base64") from None
        if der[:1] != b"\x30":
            raise ValueError("a certificate block is not a DER certificate")
    return value


class PrivateCaConfig(Model):
    """A private CA that exists before the platform needs it."""

    source: Literal["config", "homelab"] = Field(
        default="config",
        description="`config`: the certificate below (and its key in a secret); `homelab`: the CA "
        "the homelab layer of this stack made (tls.self-signed), from a run before the platform's.",
    )
    certificate: Annotated[str, AfterValidator(_pem_certificates)] | None = Field(
        default=None, description="The CA certificate (PEM; public) for source `config`."
    )
    key_secret: SecretKey | None = Field(
        default=None,
        description="Config key (secret) with the CA's private key (PEM), for source `config` when "
        "cert-manager is installed by this stack (its CA issuer signs with it).",
    )

    @model_validator(mode="after")
    def _source(self) -> PrivateCaConfig:
        if self.source == "config":
            if not self.certificate:
                raise ValueError("source 'config' needs certificate: the CA certificate in PEM")
        elif self.certificate is not None or self.key_secret is not None:
            raise ValueError("certificate and key-secret are only for source 'config'")
        return self


class NodeConfig(Model):
    """A node of the cluster this program reaches over SSH to install the private CA."""

    address: SshAddress = Field(description="`user@host[:port]`; the user needs root or password-less sudo.")
    private_key_secret: SecretKey | None = Field(
        default=None, description="Config key (secret) with the SSH private key (default: the SSH agent)."
    )
    runtime: Literal["containerd", "docker"] = Field(
        default="containerd", description="The container runtime that pulls the node's images."
    )
    # As a Docker host has them (stacks/config_hosts.py): the install runs as root, so whom it
    # talks to is checked (issue 22).
    host_key: SshHostKey | None = Field(default=None, description=HOST_KEY_HELP)
    trust_on_first_use: bool = Field(default=False, description=TOFU_HELP)
    proxy: SshProxyConfig | None = Field(
        default=None, description="Jump host (bastion) the node is reached through."
    )

    @property
    def ssh(self) -> tuple[str, str, int]:
        return ssh_endpoint(self.address)

    def problems(self, path: str) -> list[tuple[str, str]]:
        return ssh_endpoint_problems(path, self.ssh, self.host_key, self.trust_on_first_use, self.proxy)


class PlatformTlsConfig(Model):
    """Who signs the platform's certificates, and who must trust that signer."""

    mode: Literal["acme", "private-ca"] = Field(
        default="private-ca",
        description="`acme`: publicly trusted certificates; `private-ca`: your own CA, which every "
        "client of Harbor (Pulumi's Harbor provider, builds, the nodes) must trust.",
    )
    acme: AcmeConfig | None = Field(default=None, description="The ACME account and solver (mode acme).")
    ca: PrivateCaConfig | None = Field(default=None, description="The private CA (mode private-ca).")
    nodes: list[NodeConfig] = Field(
        default_factory=list,
        description="The cluster's nodes, reached over SSH: the private CA is installed in their "
        "system trust and their container runtime's registry CA directory.",
    )
    nodes_trust_ca: bool = Field(
        default=False,
        description="Every node already trusts the private CA (you installed it): nothing to install.",
    )

    @model_validator(mode="after")
    def _mode(self) -> PlatformTlsConfig:
        if self.mode == "acme":
            if self.acme is None:
                raise ValueError("mode 'acme' needs the acme section (email, solver)")
            if self.ca is not None or self.nodes or self.nodes_trust_ca:
                raise ValueError("ca, nodes and nodes-trust-ca are only for mode 'private-ca'")
        else:
            if self.acme is not None:
                raise ValueError("the acme section is only for mode 'acme'")
            if self.ca is None:
                raise ValueError("mode 'private-ca' needs the ca section (source: config or homelab)")
            if self.nodes and self.nodes_trust_ca:
                raise ValueError("give nodes (installed by this program) or nodes-trust-ca, not both")
        return self


class IngressNginxConfig(ComponentConfig):
    enabled: bool = Field(
        default=False,
        description="Retired: ingress-nginx gets no releases or security fixes after March 2026 "
        "(kubernetes/ingress-nginx README), so the platform refuses to install it. Route through "
        "the Gateway API (`routing.mode: gateway`) or your own ingress controller "
        "(`routing.mode: ingress`).",
    )


class GatewayConfig(Model):
    """The Gateway the platform's UIs are routed through (Gateway API v1, standard channel)."""

    install: bool = Field(
        default=True,
        description="Install Envoy Gateway (with the Gateway API CRDs its chart brings) and a "
        "GatewayClass named `class-name` for it; false: use the GatewayClass `class-name` your "
        "cluster already has (k3s' Traefik with its Gateway provider on, Cilium, ...).",
    )
    class_name: Label = Field(default="homelab", description="The GatewayClass of the platform's Gateway.")
    service_type: Literal["NodePort", "LoadBalancer", "ClusterIP"] = Field(
        default="NodePort",
        description="How the installed gateway's Envoy is exposed: NodePort works on every cluster "
        "(kind and k3s included); LoadBalancer needs a load-balancer implementation (k3s' "
        "servicelb, MetalLB, cloud-provider-kind), or the first `up` waits for an address that "
        "never comes.",
    )


class RoutingConfig(Model):
    """How requests reach the platform's UIs (Argo CD, Harbor, Jaeger)."""

    mode: Literal["gateway", "ingress"] = Field(
        default="gateway",
        description="`gateway`: a Gateway API Gateway with one HTTPS listener per UI (the default, "
        "for a bare cluster too); `ingress`: plain Ingresses of the class `ingress-class`, with no "
        "implementation-specific annotations, for a cluster that has only an ingress controller.",
    )
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)


class ComponentsConfig(Model):
    argocd: ArgoCdConfig = Field(default_factory=ArgoCdConfig)
    harbor: HarborConfig = Field(default_factory=HarborConfig)
    postgres: PostgresClusterConfig = Field(default_factory=PostgresClusterConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    cert_manager: CertManagerConfig = Field(default_factory=CertManagerConfig)
    ingress_nginx: IngressNginxConfig = Field(default_factory=IngressNginxConfig)

    def charts(self, routing: RoutingConfig) -> list[str]:
        """The keys of components/platform/charts.py CHARTS that stacks/platform.py installs
        for these settings (tests/test_lifecycle.py checks them against a program run)."""
        found = [
            ("envoy-gateway", routing.mode == "gateway" and routing.gateway.install),
            ("cert-manager", self.cert_manager.enabled),
            ("argo-cd", self.argocd.enabled),
            ("cloudnative-pg", self.postgres.enabled),
            ("harbor", self.harbor.enabled),
            ("jaeger", self.tracing.enabled),
            ("opentelemetry-collector", self.tracing.enabled),
        ]
        return [key for key, on in found if on]


class QuotaConfig(Model):
    cpu: Quantity = Field(default="4", description="Total CPU requests and limits.")
    memory: Quantity = Field(default="8Gi", description="Total memory requests and limits.")
    pods: Annotated[int, Field(ge=1, le=10_000)] = Field(default=50, description="Pods at most.")
    storage: Quantity = Field(default="50Gi", description="Total PVC storage requests.")


class ProjectConfig(Model):
    """A team's project: namespace, registry project, Argo CD project and access, from one entry."""

    name: Label = Field(description="Project name: namespace, Harbor project and Argo CD project.")
    members: dict[Role, list[GitHubLogin]] = Field(
        default_factory=dict, description="GitHub logins by role: admin, developer, viewer."
    )
    groups: dict[Role, list[Label]] = Field(
        default_factory=dict,
        description="Identity groups by role (the OIDC `groups` claim, e.g. identity.groups): "
        "Kubernetes RoleBindings and Argo CD project roles for every member of the group.",
    )
    quota: QuotaConfig = Field(default_factory=QuotaConfig)

    def roles_of(self) -> dict[str, Role]:
        return {login: role for role, logins in self.members.items() for login in logins}

    def group_roles(self) -> dict[str, Role]:
        return {group: role for role, groups in self.groups.items() for group in groups}


class GitOpsConfig(Model):
    repository: Annotated[str, Field(pattern=_REPO)] = Field(
        description="GitHub repository `owner/name` that Argo CD syncs from."
    )
    branch: str = Field(default="main", description="Branch Argo CD follows.")
    create: bool = Field(default=True, description="Create the repository (private) if it is new.")


class PlatformConfig(Model):
    """The Kubernetes platform. Needs a cluster connection and a GitOps repository."""

    kubeconfig_secret: SecretKey | None = Field(
        default=None, description="Config key (secret) holding the kubeconfig."
    )
    kubeconfig_path: str | None = Field(default=None, description="Path to a kubeconfig file.")
    context: str | None = Field(default=None, description="Kubeconfig context to use.")
    kubernetes_version: Annotated[str, Field(pattern=_K8S_VERSION)] = Field(
        default="1.35",  # components/platform/charts.py KUBERNETES_VERSION (a test keeps them equal)
        description="Cluster version the manifests are validated for (a supported minor: "
        "`python -m automation lifecycle` says when it ends).",
    )
    namespace: Label = Field(default="idp-system", description="Namespace of the platform components.")
    domain: Domain | None = Field(default=None, description="Platform domain (default: the stack domain).")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    ingress_class: Label | None = Field(
        default=None,
        description="IngressClass of the platform's Ingresses (routing.mode ingress): your "
        "cluster's controller's.",
    )
    cluster_issuer: Label = Field(
        default="homelab-ca", description="cert-manager ClusterIssuer that signs ingress certificates."
    )
    storage_class: str | None = Field(default=None, description="StorageClass (default: the cluster's).")
    oidc_prefix: str = Field(
        default="oidc:", description="Prefix of Kubernetes user names from your OIDC provider."
    )
    oidc_groups_prefix: str = Field(
        default="oidc:",
        description="Prefix of Kubernetes group names from your OIDC provider (the API server's "
        "--oidc-groups-prefix).",
    )
    github_owner: Annotated[str, Field(pattern=_GITHUB_LOGIN)] = Field(
        description="GitHub user or organisation that owns the repositories."
    )
    github_token_secret: SecretKey = Field(
        description="Config key (secret) with a GitHub token (repo, admin:repo_hook)."
    )
    gitops: GitOpsConfig
    tls: PlatformTlsConfig | None = Field(
        default=None,
        description="Who signs the platform's certificates (mode acme or private-ca), and who must "
        "trust the signer. Required.",
    )
    components: ComponentsConfig = Field(default_factory=ComponentsConfig)
    projects: list[ProjectConfig] = Field(default_factory=list)

    def tls_secret_keys(self) -> list[tuple[str, str]]:
        """(key path, config key) of the secrets `tls` references."""
        tls = self.tls
        if tls is None:
            return []
        refs: list[tuple[str, str]] = []
        if tls.acme is not None and tls.acme.cloudflare_api_token_secret:
            refs.append(
                ("platform.tls.acme.cloudflare-api-token-secret", tls.acme.cloudflare_api_token_secret)
            )
        if tls.ca is not None and tls.ca.key_secret:
            refs.append(("platform.tls.ca.key-secret", tls.ca.key_secret))
        refs += [
            (f"platform.tls.nodes[{i}].private-key-secret", node.private_key_secret)
            for i, node in enumerate(tls.nodes)
            if node.private_key_secret
        ]
        refs += [
            (f"platform.tls.nodes[{i}].proxy.private-key-secret", node.proxy.private_key_secret)
            for i, node in enumerate(tls.nodes)
            if node.proxy is not None and node.proxy.private_key_secret
        ]
        return refs

    @property
    def has_connection(self) -> bool:
        return bool(self.kubeconfig_secret or self.kubeconfig_path or self.context)


def platform_problems(platform: PlatformConfig, base: str = "platform") -> list[tuple[str, str]]:
    """Rules across fields of the platform section."""
    problems: list[tuple[str, str]] = []
    if not platform.has_connection:
        problems.append(
            (
                f"{base}.kubeconfig-secret",
                "the platform layer needs a cluster: set kubeconfig-secret, kubeconfig-path or context",
            )
        )
    if platform.kubeconfig_secret and platform.kubeconfig_path:
        problems.append((f"{base}.kubeconfig-path", "give kubeconfig-secret or kubeconfig-path, not both"))
    problems += _tls_problems(platform, base)
    problems += _routing_problems(platform, base)
    seen: set[str] = set()
    for i, project in enumerate(platform.projects):
        path = f"{base}.projects[{i}]"
        if project.name in seen:
            problems.append((f"{path}.name", f"project {project.name!r} is declared twice"))
        if project.name == platform.namespace or project.name.startswith("kube-"):
            problems.append((f"{path}.name", f"{project.name!r} is reserved for the platform"))
        seen.add(project.name)
        first_role: dict[str, str] = {}
        for role, logins in project.members.items():
            for j, login in enumerate(logins):
                key = login.lower()
                if key in first_role:
                    problems.append(
                        (
                            f"{path}.members.{role}[{j}]",
                            f"{login!r} already has role {first_role[key]!r} in this project",
                        )
                    )
                first_role.setdefault(key, role)
        group_role: dict[str, str] = {}
        for role, groups in project.groups.items():
            for j, group in enumerate(groups):
                if group in group_role:
                    problems.append(
                        (
                            f"{path}.groups.{role}[{j}]",
                            f"group {group!r} already has role {group_role[group]!r}",
                        )
                    )
                group_role.setdefault(group, role)
    return problems


def _routing_problems(platform: PlatformConfig, base: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    routing = platform.routing
    if platform.components.ingress_nginx.enabled:
        problems.append(
            (
                f"{base}.components.ingress-nginx.enabled",
                "ingress-nginx is retired: no releases or security fixes after March 2026 "
                "(kubernetes/ingress-nginx README: 'if you are not already using ingress-nginx, you "
                "should not be deploying it'). Remove it: the platform routes through the Gateway "
                "API (routing.mode: gateway, the default, installs Envoy Gateway), or through your "
                "cluster's own ingress controller (routing.mode: ingress with ingress-class)",
            )
        )
    if routing.mode == "ingress" and platform.ingress_class is None:
        problems.append(
            (
                f"{base}.ingress-class",
                "routing.mode ingress needs the IngressClass of your cluster's ingress controller "
                "(kubectl get ingressclass)",
            )
        )
    if routing.mode == "gateway" and platform.ingress_class is not None:
        problems.append(
            (f"{base}.ingress-class", "only used with routing.mode ingress (the Gateway has no IngressClass)")
        )
    return problems


def _tls_problems(platform: PlatformConfig, base: str) -> list[tuple[str, str]]:
    tls = platform.tls
    if tls is None:
        return [
            (
                f"{base}.tls",
                "say who signs the platform's certificates: mode 'acme' (publicly trusted, e.g. "
                "Let's Encrypt through Cloudflare DNS-01) or mode 'private-ca' (your CA, which Pulumi's "
                "machine and the cluster's nodes must trust)",
            )
        ]
    problems: list[tuple[str, str]] = []
    cert_manager = platform.components.cert_manager.enabled
    if tls.mode == "private-ca" and tls.ca is not None and tls.ca.source == "config":
        if cert_manager and tls.ca.key_secret is None:
            problems.append(
                (
                    f"{base}.tls.ca.key-secret",
                    "cert-manager's CA issuer signs with the CA's private key: set key-secret "
                    "(or turn cert-manager off and bring your own issuer)",
                )
            )
        if not cert_manager and tls.ca.key_secret is not None:
            problems.append((f"{base}.tls.ca.key-secret", "only used when cert-manager is enabled"))
    seen: dict[str, int] = {}
    for i, node in enumerate(tls.nodes):
        problems += node.problems(f"{base}.tls.nodes[{i}]")
        host = node.ssh[1].lower().rstrip(".")  # one machine, however its name is spelled
        if host in seen:
            problems.append((f"{base}.tls.nodes[{i}].address", f"node {host!r} is listed twice"))
        seen.setdefault(host, i)
    return problems


CA_NAME = "homelab-platform-ca"  # components/platform/trust.py installs it under this name


def ca_origin(tls: PlatformTlsConfig) -> str:
    """Where the private CA comes from, for messages."""
    assert tls.ca is not None
    if tls.ca.source == "config":
        return "of platform.tls.ca.certificate"
    return "the homelab layer made (stack output ca-certificate)"


def node_instructions(registry_host: str, where: str) -> str:
    """What to install where, when the program cannot reach the nodes."""
    return (
        f"every node of the cluster pulls app images from {registry_host}, whose certificate is "
        f"signed by the private CA {where}; the program cannot reach the nodes. On each node install "
        f"it in the system trust (/usr/local/share/ca-certificates/{CA_NAME}.crt, then "
        "`update-ca-certificates`; Fedora/RHEL: /etc/pki/ca-trust/source/anchors/ and `update-ca-trust`) "
        f"and as /etc/containerd/certs.d/{registry_host}/ca.crt (containerd) or "
        f"/etc/docker/certs.d/{registry_host}/ca.crt (Docker), restart containerd, then set "
        "platform.tls.nodes-trust-ca: true. Or list the nodes under platform.tls.nodes "
        "(user@host) so this program installs it over SSH"
    )
