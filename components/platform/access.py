"""Access control, done declaratively: one project model compiled to each system's own RBAC.

A project becomes a Namespace with a ResourceQuota and a LimitRange; namespaced Roles and
RoleBindings for its members (OIDC user names); an Argo CD AppProject limited to that
namespace and the GitOps repository, with project roles for the members; and a private
Harbor project with member roles. GitHub permissions on the shared GitOps repository are
granted once per login across projects (`gitops_permissions`). No ClusterRole is created,
and no rule uses a wildcard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_harbor as harbor

from components.platform.cluster import KubernetesCluster, custom_resource

IN_CLUSTER = "https://kubernetes.default.svc"
READ = ["get", "list", "watch"]
WRITE = [*READ, "create", "update", "patch", "delete"]

# Kubernetes permissions per role, namespaced and explicit.
K8S_RULES: dict[str, list[dict[str, Any]]] = {
    "viewer": [
        {
            "apiGroups": [""],
            "resources": [
                "pods",
                "pods/log",
                "services",
                "endpoints",
                "configmaps",
                "events",
                "persistentvolumeclaims",
            ],
            "verbs": READ,
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
            "verbs": READ,
        },
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": READ},
    ],
    "developer": [
        {
            "apiGroups": [""],
            "resources": ["pods", "services", "endpoints", "configmaps", "persistentvolumeclaims"],
            "verbs": WRITE,
        },
        {"apiGroups": [""], "resources": ["pods/log", "events"], "verbs": READ},
        {"apiGroups": [""], "resources": ["pods/exec", "pods/portforward"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"], "verbs": WRITE},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": WRITE},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": WRITE},
    ],
}
K8S_RULES["admin"] = [
    *K8S_RULES["developer"],
    {"apiGroups": [""], "resources": ["secrets", "serviceaccounts"], "verbs": WRITE},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": READ},
    {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"], "verbs": READ},
]

# Argo CD project policies per role (subject `proj:<project>:<role>`).
ARGO_ACTIONS: dict[str, list[tuple[str, str]]] = {
    "viewer": [("applications", "get"), ("logs", "get")],
    "developer": [
        ("applications", "get"),
        ("applications", "sync"),
        ("applications", "action/*"),
        ("logs", "get"),
    ],
    # No ("exec", "create"): the argo-cd chart keeps the UI's exec off (`exec.enabled: false`,
    # values.yaml @ 10.1.1), so the grant would promise what the server refuses; project admins
    # exec through the cluster's RBAC (pods/exec above) instead.
    "admin": [("applications", "*"), ("logs", "get")],
}
HARBOR_ROLES = {"admin": "projectadmin", "developer": "developer", "viewer": "guest"}
GITHUB_PERMISSIONS = {"admin": "maintain", "developer": "push", "viewer": "pull"}
_RANK = {"viewer": 0, "developer": 1, "admin": 2}


def gitops_permissions(projects: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """GitHub permission per login on the one GitOps repository: the highest role they hold
    in any project (one collaborator per login, so projects cannot overwrite each other)."""
    best: dict[str, tuple[str, str]] = {}
    for members in projects.values():
        for login, role in members.items():
            key = login.lower()
            if key not in best or _RANK[role] > _RANK[best[key][1]]:
                best[key] = (login, role)
    return {login: GITHUB_PERMISSIONS[role] for login, role in sorted(best.values())}


@dataclass(frozen=True)
class Quota:
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 50
    storage: str = "50Gi"


@dataclass(frozen=True)
class ProjectArgs:
    name: str
    members: Mapping[str, str]  # GitHub login -> role
    argocd_namespace: str
    # The GitOps repository's URL for Argo CD; None without Argo CD.
    gitops_repo_url: str | None = None
    quota: Quota = field(default_factory=Quota)
    oidc_prefix: str = "oidc:"
    # Identity groups (the OIDC `groups` claim) -> role, and the API server's group prefix.
    groups: Mapping[str, str] = field(default_factory=dict)
    oidc_groups_prefix: str = "oidc:"

    def holders(self, role: str) -> tuple[list[str], list[str]]:
        """The logins and the groups that hold `role`, sorted."""
        logins = sorted(login for login, r in self.members.items() if r == role)
        return logins, sorted(group for group, r in self.groups.items() if r == role)


def namespace_manifest(a: ProjectArgs) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": a.name,
            "labels": {
                "homelab.project": a.name,
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def quota_manifest(a: ProjectArgs) -> dict[str, Any]:
    q = a.quota
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "project-quota", "namespace": a.name},
        "spec": {
            "hard": {
                "requests.cpu": q.cpu,
                "limits.cpu": q.cpu,
                "requests.memory": q.memory,
                "limits.memory": q.memory,
                "pods": str(q.pods),
                "requests.storage": q.storage,
            }
        },
    }


def limit_range_manifest(a: ProjectArgs) -> dict[str, Any]:
    """Defaults so that pods without resources still fit the quota."""
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "project-defaults", "namespace": a.name},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "512Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                }
            ]
        },
    }


def role_manifests(a: ProjectArgs) -> list[dict[str, Any]]:
    """A Role and a RoleBinding per role that has members or groups: each member a User, each
    group a Group (rbac.authorization.k8s.io/v1 subjects), under the API server's prefixes."""
    out: list[dict[str, Any]] = []
    for role in ("admin", "developer", "viewer"):
        logins, groups = a.holders(role)
        if not logins and not groups:
            continue
        name = f"project-{role}"
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": a.name},
                "rules": K8S_RULES[role],
            }
        )
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": a.name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": f"{a.oidc_prefix}{login}",
                    }
                    for login in logins
                ]
                + [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Group",
                        "name": f"{a.oidc_groups_prefix}{group}",
                    }
                    for group in groups
                ],
            }
        )
    return out


def app_project_manifest(a: ProjectArgs) -> dict[str, Any]:
    roles = []
    for role in ("admin", "developer", "viewer"):
        logins, groups = a.holders(role)
        if not logins and not groups:
            continue
        subject = f"proj:{a.name}:{role}"
        roles.append(
            {
                "name": role,
                "description": f"{role} of project {a.name}",
                "policies": [
                    f"p, {subject}, {res}, {act}, {a.name}/*, allow" for res, act in ARGO_ACTIONS[role]
                ],
                # Matched against the token's groups claim (AppProject CRD: "a list of OIDC
                # group claims bound to this role"): the logins and the identity groups.
                "groups": sorted({*logins, *groups}),
            }
        )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": a.name, "namespace": a.argocd_namespace},
        "spec": {
            "description": f"Project {a.name} (managed by Pulumi)",
            "sourceRepos": [a.gitops_repo_url or ""],
            "destinations": [{"server": IN_CLUSTER, "namespace": a.name}],
            # Nothing cluster-scoped; and the project cannot rewrite its own limits or access.
            "clusterResourceWhitelist": [],
            "namespaceResourceBlacklist": [
                {"group": "", "kind": "ResourceQuota"},
                {"group": "", "kind": "LimitRange"},
                {"group": "rbac.authorization.k8s.io", "kind": "Role"},
                {"group": "rbac.authorization.k8s.io", "kind": "RoleBinding"},
            ],
            "roles": roles,
        },
    }


class ProjectAccess(pulumi.ComponentResource):
    """Everything one project gets, on every system, from one declaration."""

    def __init__(
        self,
        name: str,
        args: ProjectArgs,
        cluster: KubernetesCluster,
        harbor_provider: harbor.Provider | None = None,
        argocd: pulumi.Resource | None = None,
        opts: pulumi.ResourceOptions | None = None,
        harbor_users: Mapping[str, harbor.User] | None = None,
        harbor_auth: pulumi.Resource | None = None,
    ):
        """`harbor_users`: the Harbor user of each member, by lower-cased login (members must
        exist in Harbor before they can be added to a project). `harbor_auth`: Harbor signs in
        through OpenID Connect (its ConfigAuth): the project's groups are its members instead,
        as OIDC groups (type `oidc`: terraform-provider-harbor docs/resources/
        project_member_group.md @ v3.10.21), and no member is a local user."""
        super().__init__("homelab:platform:ProjectAccess", name, None, opts)
        ns = namespace_manifest(args)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=ns["metadata"], opts=cluster.opts(parent=self)
        )
        in_ns = cluster.opts(parent=self, depends_on=[self.namespace])
        quota = quota_manifest(args)
        k8s.core.v1.ResourceQuota(f"{name}-quota", metadata=quota["metadata"], spec=quota["spec"], opts=in_ns)
        limits = limit_range_manifest(args)
        k8s.core.v1.LimitRange(f"{name}-limits", metadata=limits["metadata"], spec=limits["spec"], opts=in_ns)
        for manifest in role_manifests(args):
            role = manifest["metadata"]["name"].removeprefix("project-")
            if manifest["kind"] == "Role":
                k8s.rbac.v1.Role(
                    f"{name}-role-{role}", metadata=manifest["metadata"], rules=manifest["rules"], opts=in_ns
                )
            else:
                k8s.rbac.v1.RoleBinding(
                    f"{name}-binding-{role}",
                    metadata=manifest["metadata"],
                    role_ref=manifest["roleRef"],
                    subjects=manifest["subjects"],
                    opts=in_ns,
                )

        self.app_project: pulumi.Resource | None = None
        if argocd is not None and args.gitops_repo_url:
            app_project = app_project_manifest(args)
            # The AppProject CRD comes with the Argo CD chart.
            self.app_project = custom_resource(
                f"{name}-appproject", app_project, cluster.opts(parent=self, depends_on=[argocd])
            )

        self.harbor_project: harbor.Project | None = None
        if harbor_provider is not None:
            hb = pulumi.ResourceOptions(parent=self, provider=harbor_provider)
            self.harbor_project = harbor.Project(
                f"{name}-registry", name=args.name, public=False, vulnerability_scanning=True, opts=hb
            )
            if harbor_auth is not None:
                after = pulumi.ResourceOptions.merge(hb, pulumi.ResourceOptions(depends_on=[harbor_auth]))
                for group, role in sorted(args.groups.items()):
                    harbor.ProjectMemberGroup(
                        f"{name}-registry-group-{group}",
                        project_id=self.harbor_project.id,
                        group_name=group,
                        type="oidc",
                        role=HARBOR_ROLES[role],
                        opts=after,
                    )
            else:
                users = harbor_users or {}
                for login, role in sorted(args.members.items()):
                    user = users.get(login.lower())
                    if user is None:
                        raise ValueError(f"project {args.name}: no Harbor user for member {login!r}")
                    harbor.ProjectMemberUser(
                        f"{name}-registry-{login.lower()}",
                        project_id=self.harbor_project.id,  # the API path, e.g. /projects/4
                        user_name=user.username,
                        role=HARBOR_ROLES[role],
                        opts=pulumi.ResourceOptions.merge(hb, pulumi.ResourceOptions(depends_on=[user])),
                    )
        self.register_outputs({"namespace": args.name})
