"""The `platform:` section: the internal developer platform on a Kubernetes cluster.

One access model (projects, members by GitHub login, a role each) that the platform layer
compiles to Kubernetes RBAC, Argo CD AppProjects, Harbor project members and GitHub
repository permissions.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from stacks.config_base import _CONTROL_RE, _DOMAIN_RE, Domain, Label, Model, SecretKey, Subdomain

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
        description="Check Harbor's certificate when Pulumi calls its API (trust the CA, or turn off).",
    )


class PostgresClusterConfig(ComponentConfig):
    instances: Annotated[int, Field(ge=1, le=9)] = Field(default=1, description="PostgreSQL instances.")
    storage_size: Quantity = Field(default="10Gi", description="Storage per instance.")
    database: Label = Field(default="platform", description="Database created at bootstrap.")
    owner: Label = Field(default="platform", description="Owner role of that database.")


class TracingConfig(RoutedComponent):
    hostname: Subdomain = "tracing"


class CertManagerConfig(ComponentConfig):
    enabled: bool = Field(default=False, description="Install cert-manager (for clusters without it).")
    issuer: Literal["self-signed", "acme"] = Field(
        default="self-signed", description="The ClusterIssuer to create: a private CA, or ACME."
    )
    acme_email: str | None = Field(default=None, description="ACME account e-mail (issuer: acme).")
    acme_server: str = Field(
        default="https://acme-v02.api.letsencrypt.org/directory", description="ACME directory URL."
    )

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        local, _, domain = (value or "").rpartition("@")
        bad_local = not local or _CONTROL_RE.search(local) or " " in local
        if value is not None and (bad_local or not _DOMAIN_RE.fullmatch(domain.lower()) or "." not in domain):
            raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
        return value

    @field_validator("acme_server")
    @classmethod
    def _server(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme != "https" or not url.hostname or _CONTROL_RE.search(value) or " " in value:
            raise ValueError(f"{value!r} is not an https:// URL of an ACME directory")
        return value

    @model_validator(mode="after")
    def _acme(self) -> CertManagerConfig:
        if self.issuer == "acme" and not self.acme_email:
            raise ValueError("issuer 'acme' needs acme-email")
        return self


class IngressNginxConfig(ComponentConfig):
    enabled: bool = Field(default=False, description="Install ingress-nginx (for clusters without one).")


class ComponentsConfig(Model):
    argocd: ArgoCdConfig = Field(default_factory=ArgoCdConfig)
    harbor: HarborConfig = Field(default_factory=HarborConfig)
    postgres: PostgresClusterConfig = Field(default_factory=PostgresClusterConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    cert_manager: CertManagerConfig = Field(default_factory=CertManagerConfig)
    ingress_nginx: IngressNginxConfig = Field(default_factory=IngressNginxConfig)


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
    quota: QuotaConfig = Field(default_factory=QuotaConfig)

    def roles_of(self) -> dict[str, Role]:
        return {login: role for role, logins in self.members.items() for login in logins}


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
        default="1.33", description="Cluster version the manifests are validated for."
    )
    namespace: Label = Field(default="idp-system", description="Namespace of the platform components.")
    domain: Domain | None = Field(default=None, description="Platform domain (default: the stack domain).")
    ingress_class: Label = Field(default="nginx", description="IngressClass of the platform's ingresses.")
    cluster_issuer: Label = Field(
        default="homelab-ca", description="cert-manager ClusterIssuer that signs ingress certificates."
    )
    storage_class: str | None = Field(default=None, description="StorageClass (default: the cluster's).")
    oidc_prefix: str = Field(
        default="oidc:", description="Prefix of Kubernetes user names from your OIDC provider."
    )
    github_owner: Annotated[str, Field(pattern=_GITHUB_LOGIN)] = Field(
        description="GitHub user or organisation that owns the repositories."
    )
    github_token_secret: SecretKey = Field(
        description="Config key (secret) with a GitHub token (repo, admin:repo_hook)."
    )
    gitops: GitOpsConfig
    components: ComponentsConfig = Field(default_factory=ComponentsConfig)
    projects: list[ProjectConfig] = Field(default_factory=list)

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
    return problems
