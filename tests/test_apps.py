"""The apps layer: per app a source repository and read-only deploy key, least-privilege Harbor
robots, a pinned in-cluster build Job named by what it builds, valid manifests committed to the
GitOps repository after the build, an Argo CD Application valid against its CRD, notifications,
outputs, and no secret anywhere it should not be."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pulumi
import pytest
from custom_resources import GROUPS, schema_errors
from harness import (
    ROOT,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    _fake,
    chart_keys,
    crd_schema,
    example_run,
    example_secrets,
    is_secret,
    load_stack_file,
    plain_strings,
    read_yaml,
    run_program,
)

from components.pipeline import images
from components.platform.charts import KUBERNETES_VERSION
from stacks.checks import validate

EXAMPLE = ROOT / "examples" / "apps.yaml"

PIPELINE_T = "homelab:pipeline:AppPipeline"
REGISTRY_T = "homelab:pipeline:ProjectRegistry"
REPOSITORY_T = "github:index/repository:Repository"
FILE_T = "github:index/repositoryFile:RepositoryFile"
DEPLOY_KEY_T = "github:index/repositoryDeployKey:RepositoryDeployKey"
WEBHOOK_T = "github:index/repositoryWebhook:RepositoryWebhook"
GITHUB_PROVIDER_T = "pulumi:providers:github"
TLS_KEY_T = "tls:index/privateKey:PrivateKey"
ROBOT_T = "harbor:index/robotAccount:RobotAccount"
SECRET_T = "kubernetes:core/v1:Secret"
JOB_T = "kubernetes:batch/v1:Job"
APPLICATION_T = "kubernetes:argoproj.io/v1alpha1:Application"
APP_PROJECT_T = "kubernetes:argoproj.io/v1alpha1:AppProject"
RELEASE_T = "kubernetes:helm.sh/v3:Release"

DOMAIN = "idp.lab.example.com"
REGISTRY = f"harbor.{DOMAIN}"
ARGOCD_NS = "idp-system"
GITOPS_REPO = "gitops"
GITOPS_URL = "git@github.com:acme-lab/gitops.git"
IN_CLUSTER = "https://kubernetes.default.svc"
HARBOR_ADMIN_PASSWORD = _fake("password", "harbor-admin-password")
PINNED_TAG = re.compile(r":v[0-9]+\.[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class App:
    """What the example says about one app, and what the pipeline must make of it."""

    project: str
    name: str
    repository: str  # owner/name on GitHub
    ref: str
    dockerfile: str  # kaniko's --dockerfile
    created: bool
    port: int
    health_path: str
    resources: dict[str, dict[str, str]]
    build_args: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)  # env name -> config key
    files: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def component(self) -> str:
        return f"app-{self.project}-{self.name}"

    @property
    def host(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def ssh_url(self) -> str:
        return f"git@github.com:{self.repository}.git"

    @property
    def gitops_dir(self) -> str:
        return f"apps/{self.project}/{self.name}"


DEFAULT_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
HELLO_DOCKERFILE = (
    "FROM nginxinc/nginx-unprivileged:1.30.4-alpine\n"
    "RUN mkdir -p /etc/nginx/html \\\n"
    " && echo 'hello from the homelab platform' > /etc/nginx/html/index.html \\\n"
    " && printf 'server {\\n  listen 8080;\\n  root /etc/nginx/html;\\n}\\n'"
    " > /etc/nginx/conf.d/default.conf\n"
    "EXPOSE 8080\n"
)
WEB = App(
    project="team-a",
    name="web",
    repository="acme-lab/web",
    ref="main",
    dockerfile="/workspace/context/docker/Dockerfile",
    created=False,
    port=8080,
    health_path="/healthz",
    resources=DEFAULT_RESOURCES,
)
HELLO = App(
    project="team-a",
    name="hello",
    repository="acme-lab/hello",  # created under the platform's github-owner
    ref="main",
    dockerfile="/dockerfile/Dockerfile",  # the inline one, mounted from a ConfigMap
    created=True,
    port=8080,
    health_path="/",
    resources=DEFAULT_RESOURCES,
)
SHOP = App(
    project="team-b",
    name="shop",
    repository="acme-lab/shop",
    ref="v1.4.2",
    dockerfile="/workspace/context/Dockerfile",
    created=False,
    port=3000,
    health_path="/",
    resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    build_args={"NODE_ENV": "production"},
    secret_env={"STRIPE_KEY": "shop-stripe-key"},
    files={"/etc/shop/config.yaml": "currency: EUR\nfeatures: [cart, checkout]\n"},
)
APPS = [WEB, HELLO, SHOP]
PROJECTS = ["team-a", "team-b"]
ids = pytest.mark.parametrize("app", APPS, ids=[a.key for a in APPS])


# ---- running the program ---------------------------------------------------------------------

Change = Callable[[dict[str, Any], dict[str, str]], None]


def example() -> tuple[dict[str, Any], dict[str, str]]:
    config = load_stack_file(EXAMPLE)
    return copy.deepcopy(config), dict(example_secrets(config))


def run_variant(tmp_path_factory, change: Change | None = None) -> RecordingMocks:
    """Run the apps example after `change(config, secrets)` edited copies of both."""
    config, secrets = example()
    if change is not None:
        change(config, secrets)
    return run_program(config, secrets, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> RecordingMocks:
    return example_run(EXAMPLE)


def rejected_or_built(tmp_path_factory, change: Change, path: str) -> RecordingMocks | None:
    """Run a variant; a config check naming `path` is an acceptable answer too."""
    try:
        return run_variant(tmp_path_factory, change)
    except pulumi.RunError as error:
        assert f"  {path}" in str(error), str(error)
        return None


def app_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in config["apps"] if a["name"] == name)


# ---- looking things up ---------------------------------------------------------------------------


def integral(value: Any) -> Any:
    """Numbers come back from the engine as floats: 2.0 -> 2, as a manifest would have it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def one(resources: list[Resource], what: str) -> Resource:
    assert len(resources) == 1, f"{len(resources)} {what}: {[r.name for r in resources]}"
    return resources[0]


def children(mocks: RecordingMocks, component: str, type_: str) -> list[Resource]:
    """Resources of `type_` whose parent is the component named `component`."""
    urn = one([r for r in mocks.resources if r.name == component], component).urn
    return [r for r in mocks.of_type(type_) if r.parent == urn]


def part(mocks: RecordingMocks, app: App, type_: str, suffix: str) -> Resource:
    return mocks.named(f"{app.component}-{suffix}", type_)


def committed(mocks: RecordingMocks, app: App) -> dict[str, Resource]:
    """The app's files in the GitOps repository, by path."""
    files = [f for f in children(mocks, app.component, FILE_T) if f.inputs["repository"] == GITOPS_REPO]
    return {f.inputs["file"]: f for f in files}


def manifests(mocks: RecordingMocks, app: App) -> dict[str, dict[str, Any]]:
    """The app's committed manifests, parsed, by file name."""
    prefix = f"{app.gitops_dir}/"
    return {
        path.removeprefix(prefix): read_yaml(f.inputs["content"])
        for path, f in committed(mocks, app).items()
        if path.startswith(prefix)
    }


def build_job(mocks: RecordingMocks, app: App) -> Resource:
    return part(mocks, app, JOB_T, "build")


def pod_spec(job: Resource) -> dict[str, Any]:
    return integral(job.inputs["spec"]["template"]["spec"])


def container(job: Resource, name: str) -> dict[str, Any]:
    spec = pod_spec(job)
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    return one_item(found, f"containers named {name}")


def one_item(items: list[Any], what: str) -> Any:
    assert len(items) == 1, f"{len(items)} {what}"
    return items[0]


def volume_at(job: Resource, c: dict[str, Any], mount_path: str) -> dict[str, Any]:
    """The pod volume container `c` mounts at `mount_path`."""
    mount = one_item([m for m in c["volumeMounts"] if m["mountPath"] == mount_path], mount_path)
    return one_item([v for v in pod_spec(job)["volumes"] if v["name"] == mount["name"]], "volumes")


def arg(c: dict[str, Any], flag: str) -> list[str]:
    """The values of `--flag=value` arguments."""
    return [a.split("=", 1)[1] for a in c["args"] if a.startswith(f"--{flag}=")]


def output_image(mocks: RecordingMocks, app: App) -> str:
    return mocks.outputs["apps"][app.key]["image"]


# ---- 1. source repository, deploy key, registry access -------------------------------------------


@ids
def test_source_repository_is_created_private_only_when_asked(apps, app):
    repos = children(apps, app.component, REPOSITORY_T)
    if not app.created:
        assert repos == [], "an adopted repository is not managed"
        return
    repo = one(repos, "source repositories")
    assert repo.inputs["name"] == app.name
    assert repo.inputs["visibility"] == "private"
    assert repo.inputs.get("private") in (None, True)
    dockerfile = one(
        [f for f in children(apps, app.component, FILE_T) if f.inputs["repository"] == app.name],
        "files in the source repository",
    )
    assert dockerfile.inputs["file"] == "Dockerfile"
    assert dockerfile.inputs["content"] == HELLO_DOCKERFILE
    assert repo.urn in dockerfile.dependencies


def test_only_the_gitops_and_the_new_source_repository_are_created(apps):
    assert sorted(r.inputs["name"] for r in apps.of_type(REPOSITORY_T)) == ["gitops", "hello"]


def mocked_public_key(key: Resource) -> str:
    """The public_key_openssh the harness gives the PrivateKey `key`."""
    return f"ssh-ed25519 AAAA{hashlib.sha256(key.name.encode()).hexdigest()} {key.name}\n"


@ids
def test_deploy_key_is_read_only_and_the_generated_public_key(apps, app):
    key = part(apps, app, TLS_KEY_T, "deploy-key")
    assert key.inputs["algorithm"] == "ED25519"
    deploy = part(apps, app, DEPLOY_KEY_T, "deploy-key")
    assert deploy.inputs["readOnly"] is True
    assert deploy.inputs["repository"] == app.repository.split("/")[1]
    assert deploy.inputs["key"] == mocked_public_key(key)
    assert key.urn in deploy.dependencies
    # The provider's owner plus the repository name is the repository the build clones.
    provider = one(apps.of_type(GITHUB_PROVIDER_T), "github providers")
    assert deploy.provider and deploy.provider.rsplit("::", 1)[0] == provider.urn
    assert f"{provider.inputs['owner']}/{deploy.inputs['repository']}" == app.repository


@ids
def test_git_secret_holds_the_private_key_only_as_a_secret(apps, app):
    key = part(apps, app, TLS_KEY_T, "deploy-key")
    secret = part(apps, app, SECRET_T, "git")
    assert secret.input("metadata.name") == f"{app.name}-git"
    assert secret.input("metadata.namespace") == app.project
    data = secret.inputs["stringData"]
    assert set(data) == {"ssh", "known_hosts"}
    private = _fake("OPENSSH_PRIVATE_KEY", key.name)
    assert private in data["ssh"]
    assert is_secret(secret, "stringData.ssh")
    assert data["known_hosts"].startswith("github.com ssh-ed25519 ")
    assert "data" not in secret.inputs
    for r in apps.resources:
        for path, value in plain_strings(r.raw_inputs):
            assert private not in value, f"{r.type} {r.name}: {path}"


def test_gitops_webhook_has_a_secret_and_json_content_type(apps):
    hook = one(apps.of_type(WEBHOOK_T), "webhooks")
    assert hook.inputs["repository"] == GITOPS_REPO
    conf = hook.inputs["configuration"]
    assert conf["contentType"] == "json"
    assert conf["secret"] == _fake("password", "argocd-webhook-secret")
    assert is_secret(hook, "configuration.secret")


@ids
def test_files_committed_to_the_gitops_repository(apps, app):
    files = committed(apps, app)
    # The example routes through the platform's Gateway: an HTTPRoute, no Ingress (issue 22).
    expected = {f"{app.gitops_dir}/{name}" for name in ("deployment.yaml", "service.yaml", "httproute.yaml")}
    if app.files:
        expected.add(f"{app.gitops_dir}/configmap.yaml")
    if app.created:  # the inline Dockerfile, for review
        expected.add(f"dockerfiles/{app.project}/{app.name}/Dockerfile")
    assert set(files) == expected
    for f in files.values():
        assert f.inputs["branch"] == "main"
    if app.created:
        assert files[f"dockerfiles/{app.project}/{app.name}/Dockerfile"].inputs["content"] == HELLO_DOCKERFILE


def robots(mocks: RecordingMocks, project: str) -> dict[str, Resource]:
    found = children(mocks, f"registry-{project}", ROBOT_T)
    return {r.inputs["name"].removeprefix(f"{project}-"): r for r in found}


@pytest.mark.parametrize("project", PROJECTS)
def test_harbor_robots_have_least_privilege(apps, project):
    by_purpose = robots(apps, project)
    assert set(by_purpose) == {"push", "pull"}
    for purpose, actions in (("push", ["pull", "push"]), ("pull", ["pull"])):
        robot = by_purpose[purpose]
        assert robot.inputs["level"] == "project"
        (permission,) = robot.inputs["permissions"]
        assert permission["kind"] == "project"
        assert permission["namespace"] == project
        assert sorted(a["action"] for a in permission["accesses"]) == actions
        assert {a["resource"] for a in permission["accesses"]} == {"repository"}
        assert is_secret(robot, "secret")


def test_no_robot_anywhere_can_do_more_than_pull_and_push(apps):
    all_robots = apps.of_type(ROBOT_T)
    assert len(all_robots) == 2 * len(PROJECTS)
    for robot in all_robots:
        assert robot.inputs["level"] == "project", robot.name
        for permission in robot.inputs["permissions"]:
            assert permission["kind"] == "project", robot.name
            for access in permission["accesses"]:
                assert (access["resource"], access["action"]) in {
                    ("repository", "pull"),
                    ("repository", "push"),
                }, robot.name


@pytest.mark.parametrize("project", PROJECTS)
@pytest.mark.parametrize("purpose", ["pull", "push"])
def test_registry_secret_in_the_project_namespace(apps, project, purpose):
    secret = apps.named(f"registry-{project}-{purpose}-secret", SECRET_T)
    robot = robots(apps, project)[purpose]
    assert secret.input("metadata.name") == f"registry-{purpose}"
    assert secret.input("metadata.namespace") == project
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert is_secret(secret, "stringData..dockerconfigjson") or is_secret(secret, "stringData")
    auth = json.loads(secret.inputs["stringData"][".dockerconfigjson"])["auths"]
    assert set(auth) == {REGISTRY}
    assert auth[REGISTRY]["username"] == f"robot${project}-{purpose}"
    assert auth[REGISTRY]["password"] == robot.inputs["secret"]


def pipeline_resources(mocks: RecordingMocks) -> list[Resource]:
    """The pipeline components and everything under them."""
    roots = {r.urn for r in mocks.resources if r.type in (PIPELINE_T, REGISTRY_T)}
    return [r for r in mocks.resources if r.urn in roots or r.parent in roots]


def test_no_admin_credential_in_the_pipeline(apps):
    resources = pipeline_resources(apps)
    assert len(resources) > 30
    assert HARBOR_ADMIN_PASSWORD in apps.generated_secrets
    for r in resources:
        assert HARBOR_ADMIN_PASSWORD not in json.dumps(r.inputs), f"{r.type} {r.name}"


# ---- 2. the build Job ------------------------------------------------------------------------------


@ids
def test_build_images_are_pinned(apps, app):
    job = build_job(apps, app)
    git_sync, kaniko = container(job, "git-sync"), container(job, "kaniko")
    assert re.fullmatch(r"registry\.k8s\.io/git-sync/git-sync:v4\.[0-9]+\.[0-9]+", git_sync["image"])
    assert git_sync["image"] == images.GIT_SYNC
    assert kaniko["image"] == images.KANIKO
    for c in (git_sync, kaniko):
        assert PINNED_TAG.search(c["image"]), c["image"]
        assert "latest" not in c["image"]


@ids
def test_git_sync_fetches_the_ref_once_with_the_deploy_key(apps, app):
    git_sync = container(build_job(apps, app), "git-sync")
    assert arg(git_sync, "repo") == [app.ssh_url]
    assert arg(git_sync, "ref") == [app.ref]
    assert "--one-time" in git_sync["args"]
    (key_file,) = arg(git_sync, "ssh-key-file")
    directory, file_name = key_file.rsplit("/", 1)
    volume = volume_at(build_job(apps, app), git_sync, directory)
    assert volume["secret"]["secretName"] == f"{app.name}-git"
    assert file_name == "ssh"  # the key of the git Secret holding the private key


@ids
def test_kaniko_builds_and_pushes_over_tls(apps, app):
    kaniko = container(build_job(apps, app), "kaniko")
    assert arg(kaniko, "destination") == [output_image(apps, app)]
    assert output_image(apps, app).startswith(f"{REGISTRY}/{app.project}/{app.name}:")
    assert arg(kaniko, "dockerfile") == [app.dockerfile]
    assert arg(kaniko, "build-arg") == [f"{k}={v}" for k, v in app.build_args.items()]
    for flag in ("--insecure", "--skip-tls-verify", "--insecure-pull", "--skip-tls-verify-pull"):
        assert not any(a.startswith(flag) for a in kaniko["args"]), flag


def private_ca(config: dict[str, Any], secrets: dict[str, str]) -> None:
    """The platform on the homelab layer's private CA instead of ACME."""
    config["platform"]["tls"] = {"mode": "private-ca", "ca": {"source": "homelab"}, "nodes-trust-ca": True}
    secrets.pop("cloudflare-token")


@pytest.fixture(scope="module")
def private_ca_apps(tmp_path_factory) -> RecordingMocks:
    return run_variant(tmp_path_factory, private_ca)


@pytest.mark.parametrize("app", APPS, ids=lambda a: f"{a.project}/{a.name}")
def test_kaniko_trusts_the_private_ca_for_harbor(private_ca_apps, app):
    """With a private CA, builds verify Harbor against it."""
    apps = private_ca_apps
    job = build_job(apps, app)
    kaniko = container(job, "kaniko")
    assert arg(kaniko, "registry-certificate") == [f"{REGISTRY}=/etc/registry-ca/ca.crt"]
    volume = volume_at(job, kaniko, "/etc/registry-ca")
    assert volume["configMap"]["name"] == "registry-ca"
    (configmap,) = [
        r
        for r in apps.of_type("kubernetes:core/v1:ConfigMap")
        if r.input("metadata.name") == "registry-ca" and r.input("metadata.namespace") == app.project
    ]
    assert configmap.inputs["data"]["ca.crt"] == apps.outputs["platform-ca-certificate"]
    assert configmap.urn in job.dependencies


@ids
def test_with_acme_builds_use_the_system_trust(apps, app):
    """The example's certificates are publicly trusted (ACME): no CA is handed to the build."""
    kaniko = container(build_job(apps, app), "kaniko")
    assert arg(kaniko, "registry-certificate") == []
    assert not [
        r for r in apps.of_type("kubernetes:core/v1:ConfigMap") if r.input("metadata.name") == "registry-ca"
    ]
    assert "platform-ca-certificate" not in apps.outputs


def test_shop_passes_its_build_arg(apps):
    assert "--build-arg=NODE_ENV=production" in container(build_job(apps, SHOP), "kaniko")["args"]


def test_inline_dockerfile_is_mounted_into_the_build(apps):
    job = build_job(apps, HELLO)
    configmap = part(apps, HELLO, "kubernetes:core/v1:ConfigMap", "dockerfile")
    assert configmap.inputs["data"] == {"Dockerfile": HELLO_DOCKERFILE}
    volume = volume_at(job, container(job, "kaniko"), "/dockerfile")
    assert volume["configMap"]["name"] == configmap.input("metadata.name")
    assert configmap.urn in job.dependencies


@ids
def test_build_is_not_privileged_and_bounded(apps, app):
    job = build_job(apps, app)
    spec = integral(job.inputs["spec"])
    # Kept after it finishes (issue 22): a TTL would let the cluster delete it, `refresh` drop it
    # from the state, and the next `up` rebuild an unchanged commit.
    assert "ttlSecondsAfterFinished" not in spec
    assert 0 <= spec["backoffLimit"] <= 6
    for name in ("git-sync", "kaniko"):
        c = container(job, name)
        assert c["securityContext"].get("privileged", False) is False, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}, name
    assert not pod_spec(job).get("hostNetwork") and not pod_spec(job).get("hostPID")


@ids
def test_push_secret_is_mounted_as_the_docker_config(apps, app):
    job = build_job(apps, app)
    volume = volume_at(job, container(job, "kaniko"), "/kaniko/.docker")
    assert volume["secret"]["secretName"] == "registry-push"
    assert volume["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]


@ids
def test_build_job_validates_strictly(apps, app, k8s_version):
    job = build_job(apps, app)
    obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job.inputs["metadata"],
        "spec": job.inputs["spec"],
    }
    kubernetes_validate.validate(integral(obj), k8s_version, strict=True)
    assert job.input("metadata.namespace") == app.project


def build_identity(mocks: RecordingMocks) -> dict[str, tuple[str, str]]:
    """App -> (Job name, image) of a run."""
    return {a.key: (build_job(mocks, a).input("metadata.name"), output_image(mocks, a)) for a in APPS}


def edit(name: str, key: str, value: Any) -> Change:
    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        entry = app_entry(config, name)
        if key == "ref":
            entry["source"]["ref"] = value
        else:
            entry[key] = value

    return change


def test_build_name_and_tag_follow_exactly_what_is_built(apps, tmp_path_factory):
    base = build_identity(apps)
    for key, (job_name, image) in base.items():
        tag = image.rsplit(":", 1)[1]
        assert job_name == f"build-{key.split('/')[1]}-{tag}"
    # (what changes, apps whose build must change); everything else must stay as it was.
    variants: list[tuple[Change | None, set[str]]] = [
        (None, set()),
        (edit("hello", "dockerfile-inline", HELLO_DOCKERFILE + "USER nginx\n"), {"team-a/hello"}),
        (edit("web", "dockerfile", "docker/Dockerfile.prod"), {"team-a/web"}),
        (edit("shop", "ref", "v1.4.3"), {"team-b/shop"}),
        (edit("shop", "build-args", {"NODE_ENV": "staging"}), {"team-b/shop"}),
        (edit("web", "replicas", 3), set()),  # how it runs is not what is built
    ]
    for change, changed in variants:
        run = build_identity(run_variant(tmp_path_factory, change))
        for key in base:
            if key in changed:
                assert run[key][0] != base[key][0], f"{key}: Job name kept"
                assert run[key][1] != base[key][1], f"{key}: image kept"
            else:
                assert run[key] == base[key], f"{key} changed"


def long_names(config: dict[str, Any], secrets: dict[str, str]) -> None:
    stem = "a" * 56
    for suffix in ("one", "two"):
        config["apps"].append(
            {"name": f"{stem}-{suffix}", "project": "team-a", "source": {"repository": f"acme-lab/{suffix}"}}
        )


def test_job_names_keep_the_tag_for_long_app_names(tmp_path_factory):
    """Two 60-character app names sharing a prefix: the name is cut, never the build tag."""
    mocks = run_variant(tmp_path_factory, long_names)
    jobs = [j for j in mocks.of_type(JOB_T) if j.input("metadata.namespace") == "team-a"]
    names = [j.input("metadata.name") for j in jobs]
    assert len(set(names)) == len(names), names
    for job in jobs:
        name = job.input("metadata.name")
        assert len(name) <= 63
        assert name.endswith("-" + job.input("metadata.labels")["homelab.build"]), name


# ---- 3. the manifests in the GitOps repository --------------------------------------------------


@pytest.fixture(scope="module")
def k8s_version() -> str:
    config, _ = example()
    model = validate(config)
    assert model.platform is not None
    version = f"{model.platform.kubernetes_version}.0"
    assert version == "1.35.0"
    return version


@ids
def test_manifests_validate_strictly(apps, app, k8s_version):
    docs = manifests(apps, app)
    assert docs
    for name, doc in docs.items():
        if doc["apiVersion"].startswith(GROUPS):  # a custom resource: its published schema
            assert schema_errors([doc]) == [None], name
        else:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
        assert doc["metadata"]["namespace"] == app.project, name


def test_strict_validation_catches_a_misspelled_field(apps, k8s_version):
    doc = copy.deepcopy(manifests(apps, WEB)["deployment.yaml"])
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, k8s_version, strict=True)


def app_container(deployment: dict[str, Any], app: App) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return one_item([c for c in containers if c["name"] == app.name], "app containers")


@ids
def test_deployment_runs_the_built_image(apps, app):
    deployment = manifests(apps, app)["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    c = app_container(deployment, app)
    (destination,) = arg(container(build_job(apps, app), "kaniko"), "destination")
    assert c["image"] == output_image(apps, app) == destination
    assert pod["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert c["ports"] == [{"name": "http", "containerPort": app.port}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == app.health_path, probe
        assert c[probe]["httpGet"]["port"] in ("http", app.port), probe
    assert c["resources"] == app.resources


def test_web_runs_with_its_replicas_and_env(apps):
    deployment = manifests(apps, WEB)["deployment.yaml"]
    assert deployment["spec"]["replicas"] == 2
    assert {"name": "LOG_LEVEL", "value": "info"} in app_container(deployment, WEB)["env"]


def test_shop_secret_env_comes_from_its_secret(apps):
    c = app_container(manifests(apps, SHOP)["deployment.yaml"], SHOP)
    env = {e["name"]: e for e in c["env"]}
    assert env["STRIPE_KEY"] == {
        "name": "STRIPE_KEY",
        "valueFrom": {"secretKeyRef": {"name": "shop-env", "key": "STRIPE_KEY"}},
    }
    secret = part(apps, SHOP, SECRET_T, "env")
    assert secret.input("metadata.name") == "shop-env"
    assert secret.input("metadata.namespace") == SHOP.project
    assert secret.inputs["stringData"] == {"STRIPE_KEY": f"{SECRET_MARK}-config-shop-stripe-key"}
    assert is_secret(secret, "stringData.STRIPE_KEY")


def test_apps_without_secret_env_get_no_env_secret(apps):
    for app in (WEB, HELLO):
        assert not [s for s in apps.of_type(SECRET_T) if s.input("metadata.name") == f"{app.name}-env"]
        env = app_container(manifests(apps, app)["deployment.yaml"], app).get("env", [])
        assert not any("valueFrom" in e for e in env)


def test_shop_files_are_mounted_from_the_configmap(apps):
    docs = manifests(apps, SHOP)
    configmap = docs["configmap.yaml"]
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    c = app_container(docs["deployment.yaml"], SHOP)
    (path, content) = next(iter(SHOP.files.items()))
    volume = one_item([v for v in pod["volumes"] if v.get("configMap")], "configMap volumes")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    mount = one_item([m for m in c["volumeMounts"] if m["mountPath"] == path], "mounts of the file")
    assert mount["name"] == volume["name"]
    assert mount.get("readOnly") is True
    assert configmap["data"][mount["subPath"]] == content


GATEWAY_T = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
CERTIFICATE_T = "kubernetes:cert-manager.io/v1:Certificate"


@ids
def test_route_serves_the_host_with_tls_on_its_own_gateway_listener(apps, app):
    route = manifests(apps, app)["httproute.yaml"]
    spec = route["spec"]
    assert spec["hostnames"] == [app.host]
    service = manifests(apps, app)["service.yaml"]
    assert spec["rules"][0]["backendRefs"] == [{"name": service["metadata"]["name"], "port": 80}]
    (parent,) = spec["parentRefs"]
    (gateway,) = apps.of_type(GATEWAY_T)
    assert (parent["name"], parent["namespace"]) == (
        gateway.input("metadata.name"),
        gateway.input("metadata.namespace"),
    )
    (listener,) = [
        entry for entry in gateway.inputs["spec"]["listeners"] if entry["name"] == parent["sectionName"]
    ]
    assert listener["hostname"] == app.host and listener["protocol"] == "HTTPS"
    # Only the app's project may attach to its listener.
    assert listener["allowedRoutes"]["namespaces"] == {
        "from": "Selector",
        "selector": {"matchLabels": {"kubernetes.io/metadata.name": app.project}},
    }
    # Its certificate lives with the Gateway, written by a Certificate the program waits for.
    (secret,) = listener["tls"]["certificateRefs"]
    (certificate,) = [c for c in apps.of_type(CERTIFICATE_T) if c.input("spec.secretName") == secret["name"]]
    assert certificate.input("spec.dnsNames") == [app.host]
    assert certificate.input("metadata.namespace") == gateway.input("metadata.namespace")
    assert apps.outputs["apps"][app.key]["url"] == f"https://{app.host}/"


def test_shop_uses_its_own_hostname(apps):
    assert manifests(apps, SHOP)["httproute.yaml"]["spec"]["hostnames"] == ["shop.idp.lab.example.com"]


def test_ingress_mode_gives_each_app_an_ingress_of_the_class_with_no_controller_annotation(tmp_path_factory):
    """routing.mode ingress: plain Ingresses of the cluster's class; cert-manager's ingress-shim
    writes the TLS Secret (its annotation is cert-manager's, not a controller's)."""

    def ingress_mode(config: dict[str, Any], secrets: dict[str, str]) -> None:
        config["platform"]["routing"] = {"mode": "ingress"}
        config["platform"]["ingress-class"] = "traefik"

    mocks = run_variant(tmp_path_factory, ingress_mode)
    assert mocks.of_type(GATEWAY_T) == []
    for app in APPS:
        docs = manifests(mocks, app)
        assert "httproute.yaml" not in docs
        ingress = docs["ingress.yaml"]
        assert ingress["spec"]["ingressClassName"] == "traefik"
        assert set(ingress["metadata"]["annotations"]) == {"cert-manager.io/cluster-issuer"}
        assert [r["host"] for r in ingress["spec"]["rules"]] == [app.host]
        kubernetes_validate.validate(ingress, f"{KUBERNETES_VERSION}.0", strict=True)


# ---- 4. the Argo CD Application -------------------------------------------------------------------


def closed(schema: Any) -> Any:
    """Reject unknown fields where the API server would prune them."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    if "properties" in schema and not keeps_unknown:
        out["additionalProperties"] = False
    return out


@cache
def application_schema() -> dict[str, Any]:
    """The Application CRD of the pinned argo-cd chart (tests/data), closed."""
    return closed(crd_schema("argoproj.io", "Application", "v1alpha1"))


def crd_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(application_schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def application(mocks: RecordingMocks, app: App) -> Resource:
    return part(mocks, app, APPLICATION_T, "application")


def application_object(r: Resource) -> dict[str, Any]:
    return integral({k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})


@ids
def test_application_validates_against_the_crd(apps, app):
    assert crd_errors(application_object(application(apps, app))) == []


def test_crd_validation_catches_a_misspelled_field(apps):
    obj = application_object(application(apps, WEB))
    obj["spec"]["syncPolicy"]["automated"]["selfHeel"] = True
    assert crd_errors(obj)


@ids
def test_application_syncs_the_app_into_its_namespace(apps, app):
    r = application(apps, app)
    assert r.input("metadata.name") == apps.outputs["apps"][app.key]["application"]
    assert r.input("metadata.namespace") == ARGOCD_NS
    spec = r.inputs["spec"]
    assert spec["project"] == app.project
    assert spec["destination"] == {"server": IN_CLUSTER, "namespace": app.project}
    assert spec["source"]["repoURL"] == GITOPS_URL
    assert spec["source"]["path"] == app.gitops_dir
    assert spec["source"]["targetRevision"] == "main"
    automated = spec["syncPolicy"]["automated"]
    assert automated["prune"] is True and automated["selfHeal"] is True


@ids
def test_application_is_allowed_by_its_app_project(apps, app):
    project = apps.named(f"project-{app.project}-appproject", APP_PROJECT_T).inputs["spec"]
    spec = application(apps, app).inputs["spec"]
    assert spec["source"]["repoURL"] in project["sourceRepos"]
    assert spec["destination"] in project["destinations"]


def subscriptions(r: Resource) -> dict[str, str]:
    """Trigger -> notifier of the Application's subscription annotations."""
    prefix = "notifications.argoproj.io/subscribe."
    annotations = r.input("metadata.annotations") or {}
    return dict(k.removeprefix(prefix).rsplit(".", 1) for k in annotations if k.startswith(prefix))


@ids
def test_application_subscribes_to_the_configured_notifier(apps, app):
    subscribed = subscriptions(application(apps, app))
    assert {"on-sync-succeeded", "on-sync-failed"} <= set(subscribed)
    notifications = argocd_values(apps)["notifications"]
    for trigger, notifier in subscribed.items():
        assert f"trigger.{trigger}" in notifications["triggers"], trigger
        assert f"service.webhook.{notifier}" in notifications["notifiers"], notifier


def test_two_apps_never_share_an_application_name(tmp_path_factory):
    """team-a/b-api and team-a-b/api both make `team-a-b-api` in the one Argo CD namespace."""

    def clash(config: dict[str, Any], secrets: dict[str, str]) -> None:
        config["platform"]["projects"].append({"name": "team-a-b", "members": {"admin": ["alice"]}})
        config["apps"] += [
            {"name": "b-api", "project": "team-a", "source": {"repository": "acme-lab/api"}},
            {"name": "api", "project": "team-a-b", "source": {"repository": "acme-lab/api"}},
        ]

    mocks = rejected_or_built(tmp_path_factory, clash, "apps[")
    if mocks is not None:
        names = [r.input("metadata.name") for r in mocks.of_type(APPLICATION_T)]
        assert len(names) == len(set(names)), sorted(names)


# ---- 5. dependencies --------------------------------------------------------------------------


@ids
def test_manifest_files_wait_for_the_build(apps, app):
    job = build_job(apps, app)
    files = [f for path, f in committed(apps, app).items() if path.startswith(app.gitops_dir + "/")]
    assert len(files) >= 3
    for f in files:
        assert job.urn in f.dependencies, f.inputs["file"]


@ids
def test_build_waits_for_its_secrets(apps, app):
    job = build_job(apps, app)
    push = apps.named(f"registry-{app.project}-push-secret", SECRET_T)
    git = part(apps, app, SECRET_T, "git")
    assert push.urn in job.dependencies
    assert git.urn in job.dependencies
    if app.secret_env:
        assert part(apps, app, SECRET_T, "env").urn in job.dependencies


@ids
def test_application_waits_for_the_manifests(apps, app):
    r = application(apps, app)
    for path, f in committed(apps, app).items():
        if path.startswith(app.gitops_dir + "/"):
            assert f.urn in r.dependencies, path
    namespace = apps.named(f"project-{app.project}-namespace", "kubernetes:core/v1:Namespace")
    assert namespace.urn in r.dependencies


# ---- 6. notifications ---------------------------------------------------------------------------


def argocd_values(mocks: RecordingMocks) -> dict[str, Any]:
    return mocks.named("argocd", RELEASE_T).inputs["values"]


@cache
def argocd_chart_defaults() -> dict[str, Any]:
    """The key tree of the pinned argo-cd chart's default values (tests/data)."""
    return chart_keys("argo-cd")


def test_notifications_post_to_the_secret_webhook(apps):
    release = apps.named("argocd", RELEASE_T)
    n = argocd_values(apps)["notifications"]
    assert n["enabled"] is True
    assert n["argocdUrl"] == f"https://argocd.{DOMAIN}"
    assert n["secret"]["items"]["webhook-url"] == f"{SECRET_MARK}-config-mattermost-webhook"
    assert is_secret(release, "values.notifications.secret.items.webhook-url")
    (service,) = n["notifiers"]
    assert service.startswith("service.webhook.")
    notifier = read_yaml(n["notifiers"][service])
    assert notifier["url"] == "$webhook-url"  # read from the notifications secret, not inlined
    assert {"name": "Content-Type", "value": "application/json"} in notifier["headers"]


@pytest.mark.parametrize("event", ["sync-succeeded", "sync-failed"])
def test_notifications_have_a_trigger_and_template_per_event(apps, event):
    n = argocd_values(apps)["notifications"]
    (rule,) = read_yaml(n["triggers"][f"trigger.on-{event}"])
    assert rule["when"]
    for template in rule["send"]:
        body = read_yaml(n["templates"][f"template.{template}"])
        (name,) = body["webhook"]
        assert f"service.webhook.{name}" in n["notifiers"]
        assert body["webhook"][name]["method"] == "POST"
        json.loads(body["webhook"][name]["body"].replace("{{", "").replace("}}", ""))


def test_notifications_keys_are_known_to_the_chart(apps):
    defaults = argocd_chart_defaults()["notifications"]
    n = argocd_values(apps)["notifications"]
    assert set(n) <= set(defaults), set(n) - set(defaults)
    assert set(n["secret"]) <= set(defaults["secret"]), set(n["secret"]) - set(defaults["secret"])
    # Free-form maps in the chart: the keys are ours, the map must be a map there too.
    for key in ("notifiers", "templates", "triggers"):
        assert isinstance(defaults[key], dict), key
    assert isinstance(defaults["secret"]["items"], dict)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory) -> RecordingMocks:
    def no_webhook(config: dict[str, Any], secrets: dict[str, str]) -> None:
        del config["notifications"]
        del secrets["mattermost-webhook"]

    return run_variant(tmp_path_factory, no_webhook)


def test_without_a_webhook_notifications_are_off(quiet):
    assert argocd_values(quiet)["notifications"] == {"enabled": False}
    for app in APPS:
        assert subscriptions(application(quiet, app)) == {}


# ---- 7. outputs ------------------------------------------------------------------------------


def test_apps_output(apps):
    out = apps.outputs["apps"]
    assert set(out) == {a.key for a in APPS}
    for app in APPS:
        entry = out[app.key]
        assert set(entry) == {"image", "url", "application"}
        assert re.fullmatch(rf"{re.escape(REGISTRY)}/{app.project}/{app.name}:[0-9a-f]{{12}}", entry["image"])
        assert entry["url"] == f"https://{app.host}/"
        assert entry["application"] == f"{app.project}-{app.name}"
    assert "apps" not in apps.secret_outputs


# ---- 8. secrets --------------------------------------------------------------------------------


def leaks(mocks: RecordingMocks) -> Iterator[str]:
    for r in mocks.resources:
        for path, value in plain_strings(r.raw_inputs):
            if SECRET_MARK in value or any(s in value for s in mocks.generated_secrets):
                yield f"{r.type} {r.name}: {path}"


def test_no_secret_in_any_committed_file(apps):
    files = apps.of_type(FILE_T)
    assert len(files) == 12
    for f in files:
        assert not f.secret_paths, f.name
        content = f.inputs["content"]
        assert SECRET_MARK not in content, f.inputs["file"]
        assert not any(s in content for s in apps.generated_secrets), f.inputs["file"]


def test_no_secret_in_any_plain_input(apps, quiet):
    assert apps.generated_secrets
    assert list(leaks(apps)) == []
    assert list(leaks(quiet)) == []


# ---- an adopted repository of another owner --------------------------------------------------


def test_adopted_repository_of_another_owner_gets_the_deploy_key(tmp_path_factory):
    """The deploy key goes to the repository git-sync clones, not <github-owner>/<name>."""
    mocks = rejected_or_built(
        tmp_path_factory,
        lambda config, secrets: app_entry(config, "web")["source"].update(repository="other-org/web"),
        "apps[0].source",
    )
    if mocks is None:
        return
    other = dataclasses.replace(WEB, repository="other-org/web")
    assert arg(container(build_job(mocks, other), "git-sync"), "repo") == ["git@github.com:other-org/web.git"]
    deploy = part(mocks, other, DEPLOY_KEY_T, "deploy-key")
    # A provider reference is "<provider urn>::<provider id>".
    provider = next(
        p for p in mocks.of_type(GITHUB_PROVIDER_T) if deploy.provider.rsplit("::", 1)[0] == p.urn
    )
    assert f"{provider.inputs['owner']}/{deploy.inputs['repository']}" == "other-org/web"
    assert is_secret(provider, "token")
    assert list(leaks(mocks)) == []
