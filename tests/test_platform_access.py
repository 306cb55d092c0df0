"""The platform layer's own objects: every Kubernetes object valid for the configured cluster
version, custom resources valid against their real CRDs, each project's access compiled the
same way to Kubernetes RBAC, Argo CD, Harbor and GitHub, the GitOps repository locked down,
one cluster provider, secrets kept secret, and the SDKs loaded only with the platform layer."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from harness import (
    ROOT,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    _fake,
    cert_pem,
    example_run,
    example_secrets,
    is_secret,
    load_stack_file,
    plain_strings,
    run_program,
)
from harness import crd_schema as served_crd_schema

from stacks.checks import validate

EXAMPLE = ROOT / "examples" / "platform.yaml"

K8S_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE_T = "kubernetes:core/v1:Namespace"
QUOTA_T = "kubernetes:core/v1:ResourceQuota"
LIMITS_T = "kubernetes:core/v1:LimitRange"
SECRET_T = "kubernetes:core/v1:Secret"
ROLE_T = "kubernetes:rbac.authorization.k8s.io/v1:Role"
BINDING_T = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
INGRESS_T = "kubernetes:networking.k8s.io/v1:Ingress"
APP_PROJECT_T = "kubernetes:argoproj.io/v1alpha1:AppProject"
CNPG_CLUSTER_T = "kubernetes:postgresql.cnpg.io/v1:Cluster"
CLUSTER_ISSUER_T = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE_T = "kubernetes:cert-manager.io/v1:Certificate"
HARBOR_PROJECT_T = "harbor:index/project:Project"
HARBOR_MEMBER_T = "harbor:index/projectMemberUser:ProjectMemberUser"
GH_REPOSITORY_T = "github:index/repository:Repository"
GH_COLLABORATOR_T = "github:index/repositoryCollaborator:RepositoryCollaborator"
GH_PROTECTION_T = "github:index/branchProtection:BranchProtection"
GH_DEPLOY_KEY_T = "github:index/repositoryDeployKey:RepositoryDeployKey"
GH_WEBHOOK_T = "github:index/repositoryWebhook:RepositoryWebhook"
TLS_KEY_T = "tls:index/privateKey:PrivateKey"
RELEASE_T = "kubernetes:helm.sh/v3:Release"

# Kubernetes objects the program builds itself (not through a chart or a CRD).
DIRECT_PREFIXES = (
    "kubernetes:core/v1:",
    "kubernetes:rbac.authorization.k8s.io/v1:",
    "kubernetes:networking.k8s.io/v1:",
)
# Input keys of those objects that are part of the manifest.
MANIFEST_FIELDS = ("spec", "rules", "roleRef", "subjects", "type", "stringData", "data", "immutable")

PLATFORM_NS = "idp-system"
IN_CLUSTER = "https://kubernetes.default.svc"
GITOPS_URL = "git@github.com:acme-lab/gitops.git"
GITOPS_NAME = "gitops"
WEBHOOK_URL = "https://argocd.idp.lab.example.com/api/webhook"
OIDC = "oidc:"

MEMBERS = {
    "team-a": {"admin": ["alice"], "developer": ["bob", "carol"], "viewer": ["dave"]},
    "team-b": {"admin": ["erin"], "developer": ["alice"]},
}
GROUPS = {  # identity groups by role (the example's `groups`)
    "team-a": {"developer": ["team-a"], "viewer": ["auditors"]},
    "team-b": {"viewer": ["auditors"]},
}
QUOTAS = {  # cpu, memory, pods, storage (team-b: the documented defaults)
    "team-a": ("8", "16Gi", 100, "100Gi"),
    "team-b": ("4", "8Gi", 50, "50Gi"),
}
HARBOR_ROLE = {"admin": "projectadmin", "developer": "developer", "viewer": "guest"}
GITHUB_PERMISSION = {"admin": "maintain", "developer": "push", "viewer": "pull"}
SDK_MODULES = ("pulumi_kubernetes", "pulumi_github", "pulumiverse_harbor")


# ---- fixtures and helpers ---------------------------------------------------------------


def example_config() -> dict[str, Any]:
    return load_stack_file(EXAMPLE)


def node_id(repository_name: str) -> str:
    return f"R_node_{repository_name}"


def run(config: dict[str, Any], secrets: dict[str, str], key_dir: str) -> RecordingMocks:
    return run_program(config, secrets, key_dir=key_dir)


def run_variant(tmp_path_factory, change) -> RecordingMocks:
    """Run the platform example after `change(config, secrets)` edited copies of both."""
    config = example_config()
    secrets = example_secrets(config)
    config, secrets = copy.deepcopy(config), dict(secrets)
    change(config, secrets)
    return run(config, secrets, str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> RecordingMocks:
    return example_run(EXAMPLE)


@pytest.fixture(scope="module")
def k8s_version() -> str:
    model = validate(example_config())
    assert model.platform is not None
    return f"{model.platform.kubernetes_version}.0"


def integral(value: Any) -> Any:
    """Numbers come back from the engine as floats: 2.0 -> 2, as a manifest would have it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def token_parts(type_: str) -> tuple[str, str]:
    """`kubernetes:rbac.authorization.k8s.io/v1:Role` -> ("rbac.authorization.k8s.io/v1", "Role")."""
    package, module, kind = type_.split(":")
    assert package == "kubernetes", type_
    return module.removeprefix("core/"), kind


def manifest(r: Resource) -> dict[str, Any]:
    """The object as the cluster would receive it, rebuilt from the recorded inputs."""
    api_version, kind = token_parts(r.type)
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": r.inputs["metadata"]}
    for key in MANIFEST_FIELDS:
        if key in r.inputs:
            out[key] = r.inputs[key]
    return integral(out)


def direct_objects(mocks: RecordingMocks) -> list[Resource]:
    return [r for r in mocks.resources if r.type.startswith(DIRECT_PREFIXES)]


def in_namespace(mocks: RecordingMocks, type_: str, namespace: str) -> list[Resource]:
    return [r for r in mocks.of_type(type_) if r.input("metadata.namespace") == namespace]


def one(resources: list[Resource], what: str) -> Resource:
    assert len(resources) == 1, f"{len(resources)} {what}: {[r.name for r in resources]}"
    return resources[0]


def provider_urn(r: Resource) -> str:
    assert r.provider, f"{r.type} {r.name} uses the default provider"
    return r.provider.rsplit("::", 1)[0]


# ---- CRD schemas -------------------------------------------------------------------------


def closed(schema: Any) -> Any:
    """The schema with unknown fields rejected where the API server would prune them: every
    object with `properties` gets `additionalProperties: false` unless it keeps unknown fields.
    The `x-kubernetes-*` extensions are left in place; jsonschema ignores unknown keywords."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    """The served CRD's schema as the pinned chart installs it (tests/data), closed."""
    group, version = api_version.split("/")
    return closed(served_crd_schema(group, kind, version))


def crd_errors(r: Resource) -> list[str]:
    api_version, kind = token_parts(r.type)
    assert r.inputs["apiVersion"] == api_version and r.inputs["kind"] == kind
    obj = integral({k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    validator = jsonschema.Draft7Validator(crd_schema(kind, api_version))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


# ---- 1. every Kubernetes object the program builds is valid for the cluster -----------------

DIRECT_KINDS = ["Namespace", "ResourceQuota", "LimitRange", "Secret", "Role", "RoleBinding"]


def test_only_known_kinds_are_built_directly(platform):
    kinds = {token_parts(r.type)[1] for r in direct_objects(platform)}
    assert kinds <= set(DIRECT_KINDS) | {"Ingress"}, kinds


@pytest.mark.parametrize("kind", DIRECT_KINDS)
def test_objects_validate_strictly_for_the_configured_kubernetes_version(platform, k8s_version, kind):
    objects = [r for r in direct_objects(platform) if token_parts(r.type)[1] == kind]
    assert objects, f"no {kind} registered"
    for r in objects:
        # Nothing of the object is lost by rebuilding it from the recorded inputs.
        assert set(r.inputs) <= {"apiVersion", "kind", "metadata", *MANIFEST_FIELDS}, r.inputs.keys()
        obj = manifest(r)
        assert (r.inputs["apiVersion"], r.inputs["kind"]) == (obj["apiVersion"], obj["kind"])
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{r.name}: {error}")


def test_the_platform_builds_no_ingress_itself(platform):
    """The charts make the platform's ingresses; the apps' Ingresses live in the GitOps repo."""
    assert platform.of_type(INGRESS_T) == []


def test_strict_validation_catches_a_misspelled_field(platform, k8s_version):
    binding = manifest(platform.named("project-team-a-binding-admin", BINDING_T))
    binding["subject"] = binding.pop("subjects")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(binding, k8s_version, strict=True)


# ---- 2. custom resources ------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "count"), [(APP_PROJECT_T, 2), (CNPG_CLUSTER_T, 1)])
def test_custom_resources_validate_against_their_crd(platform, type_, count):
    resources = platform.of_type(type_)
    assert len(resources) == count
    for r in resources:
        assert crd_errors(r) == [], r.name


@pytest.mark.parametrize(
    ("name", "type_", "field"),
    [
        ("project-team-a-appproject", APP_PROJECT_T, "sourceRepo"),
        ("postgres-cluster", CNPG_CLUSTER_T, "instance"),
    ],
)
def test_crd_validation_catches_a_misspelled_field(platform, name, type_, field):
    r = copy.deepcopy(platform.named(name, type_))
    r.inputs["spec"][field] = r.inputs["spec"].get(f"{field}s", 1)
    assert crd_errors(r), "an unknown spec field must fail the CRD schema"


def check_cluster_issuer(r: Resource) -> None:
    spec = r.inputs["spec"]
    kinds = [k for k in ("selfSigned", "ca", "acme", "vault", "venafi") if k in spec]
    assert len(kinds) == 1, f"{r.name}: exactly one issuer kind, got {kinds}"
    assert kinds[0] in ("selfSigned", "ca", "acme"), r.name
    assert "namespace" not in r.inputs["metadata"], "a ClusterIssuer is cluster-scoped"
    if "ca" in spec:
        assert spec["ca"]["secretName"]
    if "acme" in spec:
        acme = spec["acme"]
        assert acme["server"].startswith("https://")
        assert "@" in acme["email"]
        assert acme["privateKeySecretRef"]["name"]
        assert acme["solvers"], "an ACME issuer needs a solver"


def test_cert_manager_ca_issuer_signs_with_the_homelab_ca(platform):
    """The example's private CA is the homelab layer's: cert-manager signs with it."""
    (issuer,) = platform.of_type(CLUSTER_ISSUER_T)
    check_cluster_issuer(issuer)
    assert issuer.input("metadata.name") == "homelab-ca"
    secret_name = issuer.inputs["spec"]["ca"]["secretName"]
    secret = platform.named("cert-manager-ca-secret", "kubernetes:core/v1:Secret")
    assert secret.input("metadata.name") == secret_name
    assert secret.input("metadata.namespace") == PLATFORM_NS  # cert-manager's cluster resource namespace
    assert secret.inputs["type"] == "kubernetes.io/tls"
    ca = platform.named("tls-ca-cert", "tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True
    assert secret.inputs["stringData"]["tls.crt"] == cert_pem("tls-ca-cert")
    assert _fake("PRIVATE_KEY", "tls-ca-key") in secret.inputs["stringData"]["tls.key"]
    assert "stringData" in secret.secret_paths, "the CA key is a secret"
    # One Certificate per routed UI, each waited for (Harbor's before Pulumi calls its API).
    certificates = platform.of_type(CERTIFICATE_T)
    assert sorted(c.name for c in certificates) == [
        "argocd-certificate",
        "harbor-certificate",
        "tracing-certificate",
    ]
    for certificate in certificates:
        assert certificate.input("spec.issuerRef.name") == "homelab-ca"
        assert certificate.input("metadata.annotations")["pulumi.com/waitFor"] == "condition=Ready"
    assert platform.outputs["platform-ca-certificate"] == secret.inputs["stringData"]["tls.crt"]


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> RecordingMocks:
    def change(config, secrets):
        config["platform"]["tls"] = {"mode": "acme", "acme": {"email": "ops@example.com", "solver": "http01"}}
        secrets.pop("node-ssh-key")

    return run_variant(tmp_path_factory, change)


def test_cert_manager_acme_issuer(acme):
    issuer = one(acme.of_type(CLUSTER_ISSUER_T), "ClusterIssuers")
    assert issuer.input("metadata.name") == "homelab-ca"
    check_cluster_issuer(issuer)
    assert issuer.inputs["spec"]["acme"]["email"] == "ops@example.com"
    # HTTP-01 through the platform's Gateway: the solver's HTTPRoute on its port-80 listener
    # (cert-manager.io_clusterissuers.yaml @ v1.21.1, http01.gatewayHTTPRoute.parentRefs), with
    # cert-manager's Gateway API support on and started after the Gateway API CRDs.
    solver = issuer.inputs["spec"]["acme"]["solvers"][0]
    assert solver == {
        "http01": {
            "gatewayHTTPRoute": {
                "parentRefs": [{"name": "platform", "namespace": PLATFORM_NS, "sectionName": "http"}]
            }
        }
    }
    release = acme.named("cert-manager", "kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["config"]["gatewayAPI"] == {"enabled": True}
    assert acme.named("gateway-envoy-gateway", "kubernetes:helm.sh/v3:Release").urn in release.dependencies
    (gateway,) = acme.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    http = gateway.inputs["spec"]["listeners"][0]
    assert (http["name"], http["protocol"], int(http["port"])) == ("http", "HTTP", 80)
    for certificate in acme.of_type(CERTIFICATE_T):
        assert certificate.input("spec.issuerRef.name") == "homelab-ca"
        assert gateway.urn in certificate.dependencies or any(
            gateway.urn in r.dependencies for r in acme.resources if r.urn in certificate.dependencies
        ), "HTTP-01 answers through the Gateway: it must exist first"


# ---- 3. per project --------------------------------------------------------------------------


def test_example_declares_the_projects_tested_here():
    model = validate(example_config())
    assert model.platform is not None
    assert {p.name: {role: list(m) for role, m in p.members.items()} for p in model.platform.projects} == (
        MEMBERS
    )
    groups = {p.name: {role: list(g) for role, g in p.groups.items()} for p in model.platform.projects}
    assert groups == GROUPS
    for p in model.platform.projects:
        q = p.quota
        assert (q.cpu, q.memory, q.pods, q.storage) == QUOTAS[p.name]


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_project_namespace(platform, project):
    ns = one([r for r in platform.of_type(NAMESPACE_T) if r.input("metadata.name") == project], "namespaces")
    assert "namespace" not in ns.inputs["metadata"]


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_project_quota(platform, project):
    cpu, memory, pods, storage = QUOTAS[project]
    quota = one(in_namespace(platform, QUOTA_T, project), "ResourceQuotas")
    assert quota.inputs["spec"]["hard"] == {
        "requests.cpu": cpu,
        "limits.cpu": cpu,
        "requests.memory": memory,
        "limits.memory": memory,
        "pods": str(pods),
        "requests.storage": storage,
    }


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_project_limit_range(platform, project):
    limits = one(in_namespace(platform, LIMITS_T, project), "LimitRanges")
    (container,) = [item for item in limits.inputs["spec"]["limits"] if item["type"] == "Container"]
    # Defaults for both quota'd resources, so pods without resources still fit the quota.
    assert set(container["default"]) >= {"cpu", "memory"}
    assert set(container["defaultRequest"]) >= {"cpu", "memory"}


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_project_objects_wait_for_their_namespace(platform, project):
    ns = next(r for r in platform.of_type(NAMESPACE_T) if r.input("metadata.name") == project)
    for type_ in (QUOTA_T, LIMITS_T, ROLE_T, BINDING_T):
        for r in in_namespace(platform, type_, project):
            assert ns.urn in r.dependencies, f"{r.name} does not wait for namespace {project}"


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_project_roles_and_bindings_grant_exactly_the_members(platform, project):
    members = MEMBERS[project]
    roles = {r.input("metadata.name"): r for r in in_namespace(platform, ROLE_T, project)}
    bindings = {r.input("metadata.name"): r for r in in_namespace(platform, BINDING_T, project)}
    groups = GROUPS[project]
    expected = {f"project-{role}" for role in [*members, *groups]}
    assert set(roles) == expected
    assert set(bindings) == expected
    for role in {*members, *groups}:
        name = f"project-{role}"
        binding = bindings[name].inputs
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        subjects = binding["subjects"]
        # Each member a User, each identity group a Group, under the API server's prefixes.
        assert sorted((s["kind"], s["name"]) for s in subjects) == sorted(
            [("User", f"{OIDC}{login}") for login in members.get(role, [])]
            + [("Group", f"{OIDC}{group}") for group in groups.get(role, [])]
        )
        for s in subjects:
            assert s["apiGroup"] == "rbac.authorization.k8s.io"
            assert "namespace" not in s
        assert roles[name].inputs["rules"], f"{name} has no rules"


def test_no_rule_uses_a_wildcard(platform):
    rules = [
        (r.name, rule)
        for r in platform.resources
        if r.type.startswith("kubernetes:rbac.authorization.k8s.io/")
        for rule in r.inputs.get("rules") or []
    ]
    assert rules
    for name, rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), f"{name}: {key} {rule.get(key)}"
            assert not any("*" in value for value in rule.get(key, [])), f"{name}: {key}"


def test_no_cluster_wide_rbac(platform):
    cluster_wide = [r.type for r in platform.resources if re.search(r":ClusterRole(Binding)?$", r.type)]
    assert cluster_wide == []
    # Everything RBAC the program makes is namespaced, in a project namespace.
    for r in platform.resources:
        if r.type.startswith("kubernetes:rbac.authorization.k8s.io/"):
            assert r.input("metadata.namespace") in MEMBERS, r.name


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_app_project(platform, project):
    r = one(
        [p for p in platform.of_type(APP_PROJECT_T) if p.input("metadata.name") == project], "AppProjects"
    )
    assert r.input("metadata.namespace") == PLATFORM_NS
    spec = r.inputs["spec"]
    assert spec["destinations"] == [{"server": IN_CLUSTER, "namespace": project}]
    assert spec["sourceRepos"] == [GITOPS_URL]
    assert spec.get("clusterResourceWhitelist") == []
    assert "clusterResourceBlacklist" not in spec or spec["clusterResourceBlacklist"] != []
    members, groups = MEMBERS[project], GROUPS[project]
    assert {role["name"]: role["groups"] for role in spec["roles"]} == {
        role: sorted([*members.get(role, []), *groups.get(role, [])]) for role in {*members, *groups}
    }
    for role in spec["roles"]:
        for policy in role["policies"]:
            parts = [p.strip() for p in policy.split(",")]
            assert parts[0] == "p" and parts[1] == f"proj:{project}:{role['name']}", policy
            assert parts[4] == f"{project}/*", f"policy reaches beyond the project: {policy}"


@pytest.mark.parametrize("project", sorted(MEMBERS))
def test_harbor_project_and_members(platform, project):
    registry = one(
        [p for p in platform.of_type(HARBOR_PROJECT_T) if p.inputs["name"] == project], "Harbor projects"
    )
    assert registry.inputs["public"] is False
    members = {
        m.inputs["userName"]: m.inputs["role"]
        for m in platform.of_type(HARBOR_MEMBER_T)
        if m.inputs["projectId"] == f"{registry.name}-id"  # the mock's id of that project
    }
    assert members == {
        login: HARBOR_ROLE[role] for role, logins in MEMBERS[project].items() for login in logins
    }
    for m in platform.of_type(HARBOR_MEMBER_T):
        assert provider_urn(m) == provider_urn(registry), "members go through Harbor's API provider"


def test_every_harbor_member_belongs_to_a_project(platform):
    ids = {f"{p.name}-id" for p in platform.of_type(HARBOR_PROJECT_T)}
    assert {m.inputs["projectId"] for m in platform.of_type(HARBOR_MEMBER_T)} == ids
    assert len(platform.of_type(HARBOR_MEMBER_T)) == sum(
        len(ls) for m in MEMBERS.values() for ls in m.values()
    )


def test_github_collaborators_on_the_gitops_repository(platform):
    """Each login once, with the highest permission any of its projects gives it."""
    collaborators = {
        r.inputs["username"]: r.inputs["permission"] for r in platform.of_type(GH_COLLABORATOR_T)
    }
    rank = ["pull", "push", "maintain"]
    expected: dict[str, str] = {}
    for members in MEMBERS.values():
        for role, logins in members.items():
            for login in logins:
                permission = GITHUB_PERMISSION[role]
                if rank.index(permission) > rank.index(expected.get(login, "pull")):
                    expected[login] = permission
                expected.setdefault(login, permission)
    assert collaborators == expected
    assert collaborators["alice"] == "maintain"  # admin of team-a beats developer of team-b
    for r in platform.of_type(GH_COLLABORATOR_T):
        assert r.inputs["repository"] == GITOPS_NAME


def test_one_github_collaborator_per_login_on_the_shared_repository(platform):
    by_user: dict[tuple[str, str], list[str]] = {}
    for r in platform.of_type(GH_COLLABORATOR_T):
        by_user.setdefault((r.inputs["repository"], r.inputs["username"].lower()), []).append(
            r.inputs["permission"]
        )
    assert {k: v for k, v in by_user.items() if len(v) > 1} == {}


# ---- 4. GitOps repository ------------------------------------------------------------------------


def deploy_key(mocks: RecordingMocks) -> Resource:
    keys = [
        k for k in mocks.of_type(TLS_KEY_T) if k.inputs["algorithm"] == "ED25519" and k.name != "backup-key"
    ]
    return one(keys, "ED25519 keys besides the homelab's backup key")


def test_gitops_repository_is_private_and_kept(platform):
    repo = one(platform.of_type(GH_REPOSITORY_T), "repositories")
    assert repo.inputs["name"] == GITOPS_NAME
    assert repo.inputs["visibility"] == "private"
    assert repo.inputs.get("private") in (None, True)
    assert repo.protect or repo.inputs.get("archiveOnDestroy") is True


def test_branch_protection_forbids_force_pushes_and_deletions(platform):
    repo = one(platform.of_type(GH_REPOSITORY_T), "repositories")
    protection = one(platform.of_type(GH_PROTECTION_T), "branch protections")
    assert protection.inputs["pattern"] == "main"
    assert protection.inputs["allowsForcePushes"] is False
    assert protection.inputs["allowsDeletions"] is False
    # It protects the new repository: its node id, so it waits for the repository.
    assert protection.inputs["repositoryId"] == node_id(GITOPS_NAME)
    assert repo.urn in protection.dependencies


def test_deploy_key_is_read_only_and_the_generated_public_key(platform):
    key = deploy_key(platform)
    expected = f"ssh-ed25519 AAAA{hashlib.sha256(key.name.encode()).hexdigest()} {key.name}\n"
    deploy = one(platform.of_type(GH_DEPLOY_KEY_T), "deploy keys")
    assert deploy.inputs["readOnly"] is True
    assert deploy.inputs["key"] == expected
    assert deploy.inputs["repository"] == GITOPS_NAME


def test_argocd_repository_secret(platform):
    key = deploy_key(platform)
    secret = one(
        [s for s in platform.of_type(SECRET_T) if s.input("metadata.name") == "gitops-repository"],
        "repository secrets",
    )
    assert secret.input("metadata.namespace") == PLATFORM_NS
    assert secret.input("metadata.labels") == {"argocd.argoproj.io/secret-type": "repository"}
    data = secret.inputs["stringData"]
    assert data["url"] == GITOPS_URL
    assert data["type"] == "git"
    assert data["sshPrivateKey"] == (
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{_fake('OPENSSH_PRIVATE_KEY', key.name)}\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    assert is_secret(secret, "stringData.sshPrivateKey")
    assert "data" not in secret.inputs
    plain = dict(plain_strings(secret.raw_inputs))
    assert "stringData.sshPrivateKey" not in plain
    assert not any("PRIVATE KEY" in v for v in plain.values())


def test_argocd_webhook(platform):
    hook = one(platform.of_type(GH_WEBHOOK_T), "webhooks")
    webhook_secret = _fake("password", "argocd-webhook-secret")
    assert webhook_secret in platform.generated_secrets
    assert hook.inputs["repository"] == GITOPS_NAME
    assert hook.inputs["events"] == ["push"]
    assert hook.inputs.get("active", True) is True
    conf = hook.inputs["configuration"]
    assert conf["url"] == WEBHOOK_URL
    assert conf["contentType"] == "json"
    assert conf["insecureSsl"] is False
    assert conf["secret"] == webhook_secret
    assert is_secret(hook, "configuration.secret")
    # Argo CD checks the same secret.
    argocd = platform.named("argocd", RELEASE_T)
    assert argocd.inputs["values"]["configs"]["secret"]["githubSecret"] == webhook_secret


@pytest.fixture(scope="module")
def existing_repo(tmp_path_factory) -> RecordingMocks:
    def change(config, secrets):
        config["platform"]["gitops"]["create"] = False

    return run_variant(tmp_path_factory, change)


def test_existing_gitops_repository_is_looked_up_not_created(existing_repo):
    assert existing_repo.of_type(GH_REPOSITORY_T) == []
    protection = one(existing_repo.of_type(GH_PROTECTION_T), "branch protections")
    assert protection.inputs["repositoryId"] == "R_acme-lab/gitops"  # getRepository's node id
    assert protection.inputs["pattern"] == "main"
    for type_ in (GH_DEPLOY_KEY_T, GH_WEBHOOK_T, GH_COLLABORATOR_T):
        for r in existing_repo.of_type(type_):
            assert r.inputs["repository"] == GITOPS_NAME, r.name
    assert len(existing_repo.of_type(GH_DEPLOY_KEY_T)) == 1


# ---- 5. one cluster provider -----------------------------------------------------------------------


def test_every_kubernetes_resource_uses_the_one_cluster_provider(platform):
    provider = one(platform.of_type(K8S_PROVIDER), "kubernetes providers")
    resources = [r for r in platform.resources if r.type.startswith("kubernetes:")]
    assert len(resources) > 20
    for r in resources:
        assert provider_urn(r) == provider.urn, f"{r.type} {r.name}"


def test_kubeconfig_secret_is_passed_as_a_secret(platform):
    provider = one(platform.of_type(K8S_PROVIDER), "kubernetes providers")
    assert provider.inputs["kubeconfig"] == f"{SECRET_MARK}-config-kubeconfig"
    assert is_secret(provider, "kubeconfig")
    assert "context" not in provider.inputs


@pytest.fixture(scope="module")
def kubeconfig_path(tmp_path_factory) -> RecordingMocks:
    def change(config, secrets):
        del config["platform"]["kubeconfig-secret"]
        del secrets["kubeconfig"]
        config["platform"]["kubeconfig-path"] = "/etc/homelab/kubeconfig"

    return run_variant(tmp_path_factory, change)


@pytest.fixture(scope="module")
def context_only(tmp_path_factory) -> RecordingMocks:
    def change(config, secrets):
        del config["platform"]["kubeconfig-secret"]
        del secrets["kubeconfig"]
        config["platform"]["context"] = "lab-admin"

    return run_variant(tmp_path_factory, change)


def test_kubeconfig_path_is_passed(kubeconfig_path):
    provider = one(kubeconfig_path.of_type(K8S_PROVIDER), "kubernetes providers")
    assert provider.inputs["kubeconfig"] == "/etc/homelab/kubeconfig"
    assert "context" not in provider.inputs


def test_context_only_is_passed(context_only):
    provider = one(context_only.of_type(K8S_PROVIDER), "kubernetes providers")
    assert provider.inputs["context"] == "lab-admin"
    assert "kubeconfig" not in provider.inputs
    for r in context_only.resources:
        if r.type.startswith("kubernetes:"):
            assert provider_urn(r) == provider.urn, r.name


# ---- 6. secrets ---------------------------------------------------------------------------------


def leaks(mocks: RecordingMocks) -> Iterator[str]:
    for r in mocks.resources:
        for path, value in plain_strings(r.raw_inputs):
            if SECRET_MARK in value or any(s in value for s in mocks.generated_secrets):
                yield f"{r.type} {r.name}: {path}"


def test_no_secret_in_any_plain_input(platform):
    assert platform.generated_secrets
    assert list(leaks(platform)) == []


@pytest.mark.parametrize("variant", ["existing_repo", "kubeconfig_path", "context_only", "acme"])
def test_no_secret_in_any_plain_input_of_the_variants(request, variant):
    assert list(leaks(request.getfixturevalue(variant))) == []


# ---- 7. the SDKs load only with the platform layer -------------------------------------------

# One fresh interpreter runs the stacks in order and reports, after each, which SDKs are
# loaded: a homelab-only stack first (nothing may load them before it), then the platform.
PROBE = """
import json, sys
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from harness import example_secrets, load_stack_file, run_program
for i, stack in enumerate(sys.argv[5:]):
    config = load_stack_file(Path(stack))
    mocks = run_program(config, example_secrets(config), key_dir=f"{sys.argv[3]}/{i}")
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[4].split(",")))
    print("PROBE " + json.dumps({"resources": len(mocks.resources), "loaded": loaded}))
"""


def loaded_sdks(tmp_path: Path, *stack_files: Path) -> list[tuple[int, list[str]]]:
    """(resources registered, platform SDKs loaded) after each stack, run in that order."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "tests"), str(ROOT), str(tmp_path), ",".join(SDK_MODULES)]
        + [str(f) for f in stack_files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stdout.splitlines() if x.startswith("PROBE ")]
    assert len(lines) == len(stack_files), done.stdout
    results = [json.loads(line.removeprefix("PROBE ")) for line in lines]
    return [(r["resources"], r["loaded"]) for r in results]


def test_the_platform_sdks_load_only_with_the_platform_layer(tmp_path):
    (dev_count, dev_loaded), (count, loaded) = loaded_sdks(tmp_path, ROOT / "Pulumi.dev.yaml", EXAMPLE)
    # A homelab-only stack (the dev stack) loads none of them ...
    assert dev_count > 0
    assert dev_loaded == []
    # ... the platform example, run next in the same interpreter, loads each.
    assert count > 0
    assert loaded == sorted(SDK_MODULES)
