"""The CrossGuard policy pack: the rules over every shipped example, each rule on small fixtures
(props shaped as the engine passes them: camelCase keys, secrets wrapped), the volume label
that stands in for `retain_on_delete`, the CrossGuard policies built from the rules, and the
pack's files.

Never builds a `PolicyPack` (that starts a policy server and blocks); `build_policies()` is safe.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import harness
import jsonschema
import pytest
import yaml
from harness import ROOT, Resource, example_files, run_program
from pulumi.runtime import rpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.adapter import to_res, wrap_secrets
from policies.pack import build_policies
from policies.rules import RULES, Res, SecretValue, evaluate, labels, plain, uploads

POLICIES = ROOT / "policies"
DOCS = ROOT / "docs" / "policies.md"

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
RELEASE = "kubernetes:helm.sh/v3:Release"
REPOSITORY = "github:index/repository:Repository"
REPOSITORY_FILE = "github:index/repositoryFile:RepositoryFile"
WEBHOOK = "github:index/repositoryWebhook:RepositoryWebhook"
BRANCH_PROTECTION = "github:index/branchProtection:BranchProtection"
HARBOR_PROJECT = "harbor:index/project:Project"
ROBOT = "harbor:index/robotAccount:RobotAccount"

HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
CRT_LIST = "/usr/local/etc/haproxy/crt-list.txt"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"


# ---- harness resources as the rules' input ---------------------------------------------


def wrap_markers(value: Any) -> Any:
    """The engine's secret markers (still in the harness' raw inputs) as `SecretValue`."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SecretValue(wrap_markers(value.get("value")))
        return {k: wrap_markers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wrap_markers(v) for v in value]
    return value


def provider_urn(reference: str | None) -> str:
    """'<urn>::<id>' -> '<urn>' (what CrossGuard gives as the provider's URN)."""
    return (reference or "").rsplit("::", 1)[0]


def as_res(resource: Resource) -> Res:
    return Res(
        type=resource.type,
        name=resource.name,
        props=wrap_markers(resource.raw_inputs),
        urn=resource.urn,
        protect=resource.protect,
        provider=provider_urn(resource.provider),
        dependencies=tuple(resource.dependencies),
    )


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> Callable[[Path], list[Resource]]:
    """Each example runs once per module."""
    cache: dict[Path, list[Resource]] = {}

    def get(path: Path) -> list[Resource]:
        if path not in cache:
            cache[path] = list(harness.example_run(path).resources)
        return cache[path]

    return get


EXAMPLES = pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)


@EXAMPLES
def test_every_example_passes_every_rule(path, example_run):
    resources = [as_res(r) for r in example_run(path)]
    assert resources
    violations = {rule: messages for rule, messages in evaluate(resources).items() if messages}
    assert violations == {}


def test_the_examples_give_every_rule_something_to_check(example_run):
    """The zero-violation runs above are not vacuous: the examples hold what the rules read."""
    everything = [as_res(r) for path in example_files() for r in example_run(path)]

    def has(type_: str, predicate: Callable[[Res], bool] = lambda r: True) -> bool:
        return any(r.type == type_ and predicate(r) for r in everything)

    def upload(name: str) -> Callable[[Res], bool]:
        return lambda r: name in uploads(r)

    assert has(VOLUME, lambda r: labels(r).get("homelab.stateful") == "true")
    assert has(CONTAINER, lambda r: labels(r).get("homelab.role") == "backup")
    assert has(CONTAINER, lambda r: "homelab.metrics" in labels(r))
    assert has(CONTAINER, upload(HAPROXY_CFG))
    assert has(CONTAINER, upload(PROMETHEUS_YML))
    assert has(CONTAINER, lambda r: bool(r.props.get("ports")))
    # admin-sign-in: an admin tool behind forward auth (single-host), one with its own login,
    # and ones served open on purpose (multi-host).
    for how in ("forward-auth", "own-login", "open-by-config"):
        assert has(CONTAINER, lambda r, how=how: labels(r).get("homelab.sign-in") == how), how
    assert has(JOB)
    assert has(RELEASE)
    assert has(REPOSITORY)
    assert has(REPOSITORY_FILE)
    assert has(WEBHOOK)
    assert has(BRANCH_PROTECTION)
    assert has(HARBOR_PROJECT)
    assert has(ROBOT)


# ---- fixtures for single rules -----------------------------------------------------------


def provider(host: str) -> str:
    return f"urn:pulumi:dev::homelab::homelab:docker:DockerHost$pulumi:providers:docker::{host}-docker"


def label_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"label": k, "value": v} for k, v in values.items()]


def container(
    alias: str, *, host: str = "a", extra_labels: dict[str, str] | None = None, **props: Any
) -> Res:
    values = {"homelab.container": alias, "homelab.host": host, **(extra_labels or {})}
    return Res(
        CONTAINER,
        f"{alias}-{host}",
        {
            "name": f"homelab-{alias}",
            "image": "sha256:" + "a" * 64,
            "labels": label_list(values),
            **props,
        },
        urn=f"urn:pulumi:dev::homelab::{CONTAINER}::{alias}-{host}",
        provider=provider(host),
    )


def admin_tool(sign_in: str, route: str = "metrics.lab.example.com") -> Res:
    """A Prometheus container as the program labels an admin tool."""
    labels = {"homelab.admin-tool": "true", "homelab.sign-in": sign_in, "homelab.routes": route}
    return container("prometheus", extra_labels=labels)


def proxy_asking_for(*names: str) -> Res:
    """A proxy whose haproxy.cfg sends `names` through forward auth."""
    cfg = (
        "frontend https\n    mode http\n"
        f"    acl signed_in_route req.hdr(host),field(1,:),lower -m str {' '.join(names)}\n"
        "    http-request lua.forward-auth http://authelia:9091/api/authz/forward-auth if signed_in_route\n"
    )
    return container("haproxy", uploads=[{"file": "/usr/local/etc/haproxy/haproxy.cfg", "content": cfg}])


def haproxy_with_tcp(acl: str | None, ip: str | None = "192.168.1.10") -> Res:
    """A proxy with one database frontend on 5432: `acl` its source networks (None: no guard)."""
    guard = (
        f"    acl allowed_source src {acl}\n    tcp-request connection reject unless allowed_source\n"
        if acl is not None
        else ""
    )
    cfg = f"frontend tcp_5432\n    mode tcp\n    bind :5432\n{guard}    default_backend be_postgres_5432\n"
    port = {"internal": 5432, "external": 5432, "protocol": "tcp", **({"ip": ip} if ip else {})}
    return container(
        "haproxy",
        uploads=[{"file": "/usr/local/etc/haproxy/haproxy.cfg", "content": cfg}],
        ports=[port],
    )


def socket(read_only: bool = True, host_path: str = "/var/run/docker.sock") -> dict[str, Any]:
    return {"hostPath": host_path, "containerPath": "/var/run/docker.sock", "readOnly": read_only}


def k8s_container(name: str = "app", image: str = "ghcr.io/acme/app:1.2.3", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True},
        **extra,
    }


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers or (k8s_container(),)), **extra}
    if init:
        spec["initContainers"] = list(init)
    return spec


def job(spec: dict[str, Any], name: str = "build") -> Res:
    return Res(
        JOB,
        name,
        {"kind": "Job", "metadata": {"name": name}, "spec": {"template": {"spec": spec}}},
        urn=f"urn:pulumi:dev::homelab::{JOB}::{name}",
    )


def deployment(spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "template": {"spec": spec}},
    }


def service(type_: str, name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "ports": [{"port": 80}]},
    }


def committed(file: str, *documents: dict[str, Any]) -> Res:
    """Manifests committed to the GitOps repository."""
    return Res(
        REPOSITORY_FILE,
        f"gitops-{file.replace('/', '-')}",
        {
            "repository": "gitops",
            "branch": "main",
            "file": file,
            "content": yaml.safe_dump_all(documents),
            "commitMessage": "manifests",
        },
    )


def repository(name: str = "gitops", **props: Any) -> Res:
    return Res(REPOSITORY, f"{name}-repository", {"name": name, **props}, urn=repo_urn(name))


def repo_urn(name: str) -> str:
    return f"urn:pulumi:dev::homelab::{REPOSITORY}::{name}-repository"


def webhook(
    url: str = "https://argocd.lab.example.com/api/webhook",
    secret: str | None = "s3cret",
    insecure: Any = False,
    repo: str = "gitops",
    secret_config: bool = True,
) -> Res:
    configuration: dict[str, Any] = {"url": url, "contentType": "json", "insecureSsl": insecure}
    if secret is not None:
        configuration["secret"] = secret
    return Res(
        WEBHOOK,
        f"{repo}-webhook",
        {
            "repository": repo,
            "events": ["push"],
            "active": True,
            "configuration": SecretValue(configuration) if secret_config else configuration,
        },
        dependencies=(repo_urn(repo),),
    )


def branch_protection(repo: str = "gitops", **props: Any) -> Res:
    return Res(
        BRANCH_PROTECTION,
        f"{repo}-branch-protection",
        {
            "repositoryId": f"R_node_{repo}",
            "pattern": "main",
            "allowsForcePushes": False,
            "allowsDeletions": False,
            **props,
        },
        dependencies=(repo_urn(repo),),
    )


def robot(
    level: str = "project",
    namespace: str = "team-a",
    accesses: tuple[tuple[str, str], ...] = (("pull", "repository"), ("push", "repository")),
) -> Res:
    return Res(
        ROBOT,
        "push-robot",
        {
            "name": "team-a-push",
            "level": level,
            "secret": SecretValue("robot-secret"),
            "permissions": [
                {
                    "kind": "project",
                    "namespace": namespace,
                    "accesses": [{"action": a, "resource": r} for a, r in accesses],
                }
            ],
        },
    )


def release(version: str | None) -> Res:
    props: dict[str, Any] = {
        "chart": "cert-manager",
        "repositoryOpts": {"repo": "https://charts.jetstack.io"},
    }
    if version is not None:
        props["version"] = version
    return Res(RELEASE, "cert-manager", props)


def volume(
    name: str, host: str = "a", safety: str | None = "retain", stateful: bool = True, protect: bool = False
) -> Res:
    values = {"homelab.host": host, "homelab.stateful": "true" if stateful else "false"}
    if safety is not None:
        values["homelab.data-safety"] = safety
    return Res(
        VOLUME,
        f"{name}-{host}",
        {"name": name, "labels": label_list(values)},
        protect=protect,
        provider=provider(host),
    )


def backup(host: str = "a", *volumes: str) -> Res:
    mounts = [{"volumeName": v, "containerPath": f"/backup/{v}", "readOnly": True} for v in volumes]
    return container(
        "backup",
        host=host,
        extra_labels={"homelab.role": "backup"},
        volumes=[*mounts, socket(read_only=False)],
        envs=[f"BACKUP_STOP_DURING_BACKUP_LABEL=homelab-{host}", "BACKUP_SOURCES=/backup"],
    )


def writer(volume_name: str, host: str = "a", stop: str | None = "homelab-a", read_only: bool = False) -> Res:
    """A service container that mounts `volume_name` (stopped during backups with `stop`)."""
    extra = {"docker-volume-backup.stop-during-backup": stop} if stop is not None else {}
    mount = {"volumeName": volume_name, "containerPath": "/data", "readOnly": read_only}
    return container("db", host=host, extra_labels=extra, volumes=[mount])


def haproxy(
    routed: tuple[str, ...] = ("home.lab.example.com",),
    certified: tuple[str, ...] | None = None,
    redirect: bool = True,
    uploaded: tuple[str, ...] | None = None,
    host: str = "a",
) -> Res:
    certified = routed if certified is None else certified
    uploaded = certified if uploaded is None else uploaded
    redirect_line = "    http-request redirect scheme https code 301 unless { ssl_fc }\n" if redirect else ""
    rules = "".join(
        f"    use_backend be_{i} if {{ req.hdr(host),field(1,:),lower -m str {fqdn} }}\n"
        for i, fqdn in enumerate(routed)
    )
    backends = "".join(
        f"backend be_{i}\n    mode http\n    server s{i} s{i}:80\n\n" for i in range(len(routed))
    )
    cfg = (
        "global\n    maxconn 4000\n\n"
        "frontend http\n    mode http\n    bind :80\n" + redirect_line + "\n"
        f"frontend https\n    mode http\n    bind :443 ssl crt-list {CRT_LIST}\n" + rules + "\n" + backends
    )
    crt_list = "".join(f"/certs/{fqdn}.pem {fqdn}\n" for fqdn in certified)
    files = [
        {"file": HAPROXY_CFG, "content": cfg},
        {"file": CRT_LIST, "content": crt_list},
        *({"file": f"/certs/{fqdn}.pem", "content": SecretValue(f"PEM {fqdn}")} for fqdn in uploaded),
    ]
    return container(
        "haproxy",
        host=host,
        uploads=files,
        ports=[{"internal": 80, "external": 80, "protocol": "tcp"}, {"internal": 443, "external": 443}],
    )


def prometheus(scraped: dict[str, str], host: str = "a") -> Res:
    """A Prometheus container whose scrape config has job -> host."""
    document = {
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": job_name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{job_name}:9100"], "labels": {"host": on}}],
            }
            for job_name, on in scraped.items()
        ],
    }
    return container(
        "prometheus", host=host, uploads=[{"file": PROMETHEUS_YML, "content": yaml.safe_dump(document)}]
    )


def publishing(alias: str, port: int, host: str = "a", protocol: str = "tcp") -> Res:
    return container(alias, host=host, ports=[{"internal": 80, "external": port, "protocol": protocol}])


# stateful-changes-guarded: a database container writing its volume, its image, its backup.
DB_IMAGE = "mysql:8.4.6"


def image_res(ref: str = DB_IMAGE) -> Res:
    return Res(
        REMOTE_IMAGE, f"a-image-{ref}", {"name": ref}, urn=f"urn:pulumi:dev::homelab::{REMOTE_IMAGE}::{ref}"
    )


def pre_upgrade_run(triggers: list[str], type_: str = "command:local:Command") -> Res:
    name = "mysql-pre-upgrade-backup-run"
    return Res(
        type_, name, {"create": "...", "triggers": triggers}, urn=f"urn:pulumi:dev::homelab::{type_}::{name}"
    )


def db_writer(*deps: Res, read_only: bool = False, service: str = "mysql") -> Res:
    c = container(
        "mysql",
        extra_labels={"homelab.service": service},
        volumes=[
            {"volumeName": "homelab_mysql_data", "containerPath": "/var/lib/mysql", "readOnly": read_only}
        ],
    )
    return dataclasses.replace(c, dependencies=tuple(d.urn for d in deps))


def guarded(*extra: Res, runs: list[Res] | None = None, **writer: Any) -> list[Res]:
    image = image_res()
    runs = [pre_upgrade_run([DB_IMAGE, "f" * 64])] if runs is None else runs
    return [volume("homelab_mysql_data"), image, *runs, db_writer(image, *runs, **writer), *extra]


def cnpg_cluster(annotations: dict[str, str] | None = None, protect: bool = False, dbr: bool = False) -> Res:
    metadata: dict[str, Any] = {"name": "platform-db", "namespace": "idp-system"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return Res(
        "kubernetes:postgresql.cnpg.io/v1:Cluster",
        "postgres-cluster",
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": metadata, "spec": {}},
        protect=protect,
        delete_before_replace=dbr,
    )


# ---- the cases ---------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    rule: str
    resources: list[Res]
    config: dict[str, Any] = field(default_factory=dict)
    # What a bad case's message names, and the word telling how to fix it (None: a good case).
    what: str | None = None
    fix: str | None = None

    def run(self) -> list[str]:
        return evaluate(self.resources, {self.rule: self.config})[self.rule]


GOOD_POD = pod(k8s_container(), init=(k8s_container("init", "busybox:1.37.0"),))

BAD: list[Case] = [
    # pinned-images
    Case(
        "job-init-latest",
        "pinned-images",
        [job(pod(k8s_container(), init=(k8s_container("init", "busybox:latest"),)))],
        what="latest",
        fix="pin",
    ),
    Case(
        "job-init-untagged",
        "pinned-images",
        [job(pod(k8s_container(), init=(k8s_container("init", "busybox"),)))],
        what="no tag",
        fix="pin",
    ),
    Case(
        "committed-deployment-latest",
        "pinned-images",
        [committed("apps/web/deployment.yaml", deployment(pod(k8s_container(image="nginx:latest"))))],
        what="nginx:latest",
        fix="pin",
    ),
    Case(
        "committed-deployment-untagged",
        "pinned-images",
        [committed("apps/web/deployment.yaml", deployment(pod(k8s_container(image="ghcr.io/acme/web"))))],
        what="no tag",
        fix="pin",
    ),
    Case(
        "remote-image-latest",
        "pinned-images",
        [Res(REMOTE_IMAGE, "img", {"name": "nginx:latest"})],
        what="latest",
        fix="pin",
    ),
    # docker-privileges
    Case(
        "privileged",
        "docker-privileges",
        [container("app", privileged=True)],
        what="privileged",
        fix="capability",
    ),
    Case(
        "socket-not-allowlisted",
        "docker-privileges",
        [container("traefik", volumes=[socket()])],
        what="Docker socket",
        fix="docker-socket-allowlist",
    ),
    Case(
        "backup-engine-with-the-raw-socket",
        "docker-privileges",
        [container("backup", volumes=[socket(read_only=False)])],
        what="Docker socket",
        fix="docker-socket-allowlist",
    ),
    Case(
        "containerd-socket-not-allowlisted",
        "docker-privileges",
        [container("app", volumes=[socket(host_path="/run/containerd/containerd.sock")])],
        what="Docker socket",
        fix="docker-socket-allowlist",
    ),
    Case(
        "socket-read-write-cadvisor",
        "docker-privileges",
        [container("cadvisor", volumes=[socket(read_only=False)])],
        what="Docker socket",
        fix="read-only",
    ),
    Case(
        "socket-read-write-where-config-allows-ro",
        "docker-privileges",
        [container("traefik", volumes=[socket(read_only=False)])],
        config={"docker-socket-allowlist": {"traefik": "ro"}},
        what="Docker socket",
        fix="read-only",
    ),
    # bounded-logs
    Case("logs-default-driver", "bounded-logs", [container("app")], what="logs", fix="max-size"),
    Case(
        "logs-json-file-unbounded",
        "bounded-logs",
        [container("app", logDriver="json-file", logOpts={"max-file": "3"})],
        what="without bound",
        fix="max-size",
    ),
    # least-privilege
    Case(
        "nnp-missing",
        "least-privilege",
        [container("app", capabilities={"drops": ["ALL"]})],
        what="gain privileges",
        fix="no-new-privileges",
    ),
    Case(
        "caps-not-dropped",
        "least-privilege",
        [container("app", securityOpts=["no-new-privileges=true"])],
        what="default capabilities",
        fix="drop ALL",
    ),
    Case(
        "cap-sys-admin",
        "least-privilege",
        [
            container(
                "app",
                securityOpts=["no-new-privileges=true"],
                capabilities={"drops": ["ALL"], "adds": ["SYS_ADMIN"]},
            )
        ],
        what="SYS_ADMIN",
        fix="capability-allowlist",
    ),
    # tcp-sources
    Case(
        "tcp-frontend-any-source",
        "tcp-sources",
        [haproxy_with_tcp(None)],
        what="every source",
        fix="allow-from",
    ),
    Case(
        "tcp-frontend-world",
        "tcp-sources",
        [haproxy_with_tcp("0.0.0.0/0")],
        what="0.0.0.0/0",
        fix="allow-from",
    ),
    Case(
        "tcp-frontend-every-interface",
        "tcp-sources",
        [haproxy_with_tcp("192.168.1.0/24", ip=None)],
        what="every interface",
        fix="bind-address",
    ),
    # admin-sign-in
    Case(
        "admin-tool-open",
        "admin-sign-in",
        [admin_tool("none"), proxy_asking_for("home.lab.example.com")],
        what="metrics.lab.example.com",
        fix="proxy.without-sign-in",
    ),
    Case(
        "admin-tool-claims-forward-auth",
        "admin-sign-in",
        [admin_tool("forward-auth"), proxy_asking_for("home.lab.example.com")],
        what="metrics.lab.example.com",
        fix="no proxy asks",
    ),
    # secret-env
    Case(
        "docker-plain-password",
        "secret-env",
        [container("app", envs=["LOG_LEVEL=info", "DB_PASSWORD=hunter2"])],
        what="DB_PASSWORD",
        fix="secret",
    ),
    Case(
        "k8s-literal-value",
        "secret-env",
        [job(pod(k8s_container(env=[{"name": "API_TOKEN", "value": "abc123"}])))],
        what="API_TOKEN",
        fix="secretKeyRef",
    ),
    Case(
        "token-in-url",
        "secret-env",
        [container("app", envs=["OAUTH_TOKEN_URL=https://auth.example.com/token?token=abc123"])],
        what="OAUTH_TOKEN_URL",
        fix="secret",
    ),
    Case(
        "credentials-in-url",
        "secret-env",
        [container("app", envs=["API_TOKEN_URL=https://bot:hunter2@api.example.com/"])],
        what="API_TOKEN_URL",
        fix="secret",
    ),
    Case(
        "custom-name-pattern",
        "secret-env",
        [container("app", envs=["SMTP_CREDENTIAL=hunter2"])],
        config={"name-pattern": "CREDENTIAL"},
        what="SMTP_CREDENTIAL",
        fix="secret",
    ),
    # kubernetes-workloads
    Case(
        "no-requests",
        "kubernetes-workloads",
        [job(pod({**k8s_container(), "resources": {"limits": {"memory": "1Gi"}}}))],
        what="requests",
        fix="needs",
    ),
    Case(
        "no-memory-limit",
        "kubernetes-workloads",
        [job(pod({**k8s_container(), "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}))],
        what="memory limit",
        fix="needs",
    ),
    Case(
        "root-container",
        "kubernetes-workloads",
        [job(pod({**k8s_container(), "securityContext": {}}))],
        what="root",
        fix="runAsNonRoot",
    ),
    Case(
        "host-path",
        "kubernetes-workloads",
        [job(pod(k8s_container(), volumes=[{"name": "host", "hostPath": {"path": "/srv"}}]))],
        what="hostPath",
        fix="PVC",
    ),
    Case(
        "committed-load-balancer",
        "kubernetes-workloads",
        [committed("apps/web/service.yaml", service("LoadBalancer"))],
        what="LoadBalancer",
        fix="ingress",
    ),
    Case(
        "node-port-service",
        "kubernetes-workloads",
        [Res(SERVICE, "web", {"metadata": {"name": "web"}, "spec": {"type": "NodePort"}})],
        what="NodePort",
        fix="ingress",
    ),
    Case(
        "k8s-privileged",
        "kubernetes-workloads",
        [job(pod(k8s_container(securityContext={"runAsNonRoot": True, "privileged": True})))],
        what="privileged",
        fix="capabilit",
    ),
    # github-settings
    Case(
        "public-repository",
        "github-settings",
        [repository(visibility="public")],
        what="public",
        fix="private",
    ),
    Case(
        "private-false",
        "github-settings",
        [repository(private=False)],
        what="public",
        fix="public-repositories",
    ),
    Case(
        "webhook-no-secret",
        "github-settings",
        [webhook(secret=None, secret_config=False)],
        what="secret",
        fix="configuration.secret",
    ),
    Case("webhook-insecure-ssl", "github-settings", [webhook(insecure=True)], what="TLS", fix="false"),
    Case("webhook-insecure-ssl-string", "github-settings", [webhook(insecure="1")], what="TLS", fix="false"),
    Case(
        "webhook-http",
        "github-settings",
        [webhook(url="http://argocd.lab.example.com/api/webhook")],
        what="plain http",
        fix="https",
    ),
    # harbor-settings
    Case(
        "public-project",
        "harbor-settings",
        [Res(HARBOR_PROJECT, "p", {"name": "team-a", "public": True})],
        what="public",
        fix="public false",
    ),
    Case("system-robot", "harbor-settings", [robot(level="system")], what="system-level", fix="one project"),
    Case(
        "robot-every-project",
        "harbor-settings",
        [robot(namespace="*")],
        what="every project",
        fix="one project",
    ),
    Case(
        "admin-robot",
        "harbor-settings",
        [robot(accesses=(("*", "*"),))],
        what="robot may",
        fix="pull/push",
    ),
    Case(
        "robot-deletes",
        "harbor-settings",
        [robot(accesses=(("delete", "repository"),))],
        what="delete",
        fix="pull/push",
    ),
    # helm-pinned
    *(
        Case(f"helm-{label}", "helm-pinned", [release(version)], what="not pinned", fix="exact version")
        for label, version in (
            ("range-x", "10.x"),
            ("empty", ""),
            ("gte", ">=1.0"),
            ("none", None),
            ("caret", "^1.2.3"),
        )
    ),
    # volumes-backed-up
    Case(
        "volume-deleted-with-stack",
        "volumes-backed-up",
        [volume("homelab_db", safety="delete"), backup("a", "homelab_db")],
        what="deleted with the stack",
        fix="retain_on_delete",
    ),
    Case(
        "volume-without-label",
        "volumes-backed-up",
        [volume("homelab_db", safety=None), backup("a", "homelab_db")],
        what="deleted with the stack",
        fix="retain_on_delete",
    ),
    Case(
        "volume-not-backed-up",
        "volumes-backed-up",
        [volume("homelab_db"), backup("a", "homelab_other")],
        what="no backup set",
        fix="enable backups",
    ),
    Case(
        "volume-backed-up-on-another-host",
        "volumes-backed-up",
        [volume("homelab_db", host="a"), backup("b", "homelab_db")],
        what="no backup set",
        fix="enable backups",
    ),
    Case(
        "writer-not-stopped-during-backup",
        "volumes-backed-up",
        [volume("homelab_db"), backup("a", "homelab_db"), writer("homelab_db", stop=None)],
        what="not stopped during its host's backup",
        fix="docker-volume-backup.stop-during-backup=homelab-a",
    ),
    Case(
        "writer-stopped-by-another-hosts-schedule",
        "volumes-backed-up",
        [volume("homelab_db"), backup("a", "homelab_db"), writer("homelab_db", stop="homelab-b")],
        what="not stopped during its host's backup",
        fix="docker-volume-backup.stop-during-backup=homelab-a",
    ),
    Case(
        "pvc-not-kept",
        "volumes-backed-up",
        [Res(PVC, "data", {"metadata": {"name": "data"}, "spec": {}})],
        what="PVC",
        fix="protect",
    ),
    # tls-routes
    Case(
        "routed-without-certificate",
        "tls-routes",
        [
            haproxy(
                routed=("home.lab.example.com", "grafana.lab.example.com"),
                certified=("home.lab.example.com",),
            )
        ],
        what="grafana.lab.example.com",
        fix="certificate",
    ),
    Case("no-http-redirect", "tls-routes", [haproxy(redirect=False)], what="HTTP", fix="redirect"),
    Case(
        "certificate-not-uploaded",
        "tls-routes",
        [haproxy(uploaded=())],
        what="home.lab.example.com",
        fix="uploaded",
    ),
    # host-ports
    Case(
        "same-port-same-host",
        "host-ports",
        [publishing("web", 8080), publishing("api", 8080)],
        what="8080",
        fix="another",
    ),
    # metrics-scraped
    Case(
        "metrics-job-not-scraped",
        "metrics-scraped",
        [prometheus({"node-exporter": "a"}), container("app", extra_labels={"homelab.metrics": "app"})],
        what="app",
        fix="enable",
    ),
    Case(
        "metrics-job-scraped-for-another-host",
        "metrics-scraped",
        [prometheus({"app": "a"}), container("app", host="b", extra_labels={"homelab.metrics": "app"})],
        what="host b",
        fix="enable",
    ),
    # gitops-branch-protected
    Case(
        "argocd-webhook-without-branch-protection",
        "gitops-branch-protected",
        [repository(), webhook()],
        what="not protected",
        fix="no force pushes",
    ),
    Case(
        "branch-protection-allows-force-pushes",
        "gitops-branch-protected",
        [repository(), webhook(), branch_protection(allowsForcePushes=True)],
        what="not protected",
        fix="no force pushes",
    ),
    # stateful-changes-guarded
    Case(
        "writer-without-pre-upgrade-backup",
        "stateful-changes-guarded",
        guarded(runs=[]),
        what="mysql-a",
        fix="pre-upgrade-backup",
    ),
    Case(
        "pre-upgrade-backup-not-keyed-on-image",
        "stateful-changes-guarded",
        guarded(runs=[pre_upgrade_run(["mysql:8.4.5"])]),
        what="not keyed on its image",
        fix="triggers",
    ),
    Case(
        "volume-deleted-before-replace",
        "stateful-changes-guarded",
        [*guarded()[1:], dataclasses.replace(volume("homelab_mysql_data"), delete_before_replace=True)],
        what="deleteBeforeReplace",
        fix="before a replacement exists",
    ),
    Case(
        "cnpg-cluster-not-retained",
        "stateful-changes-guarded",
        [cnpg_cluster()],
        what="CloudNativePG",
        fix="retain",
    ),
    Case(
        "cnpg-cluster-delete-before-replace",
        "stateful-changes-guarded",
        [cnpg_cluster({"homelab.data-safety": "retain"}, dbr=True)],
        what="deleteBeforeReplace",
        fix="replacement",
    ),
]

GOOD: list[Case] = [
    # least-privilege
    Case(
        "confined",
        "least-privilege",
        [
            container(
                "db",
                securityOpts=["no-new-privileges=true"],
                capabilities={"drops": ["ALL"], "adds": ["CHOWN", "SETUID"]},
            )
        ],
    ),
    Case(
        "allowlisted",
        "least-privilege",
        [container("vpn", capabilities={"drops": ["ALL"], "adds": ["NET_ADMIN"]})],
        config={"capability-allowlist": {"vpn": ["NET_ADMIN"]}, "new-privileges-allowlist": ["vpn"]},
    ),
    # tcp-sources
    Case("tcp-frontend-lan-only", "tcp-sources", [haproxy_with_tcp("192.168.1.0/24 10.8.0.0/24")]),
    # bounded-logs
    Case("logs-local", "bounded-logs", [container("app", logDriver="local", logOpts={"max-size": "20m"})]),
    Case("logs-local-defaults", "bounded-logs", [container("app", logDriver="local")]),
    Case(
        "logs-json-file-bounded",
        "bounded-logs",
        [container("app", logDriver="json-file", logOpts={"max-size": "10m", "max-file": "3"})],
    ),
    # pinned-images
    Case("job-pinned", "pinned-images", [job(GOOD_POD)]),
    Case(
        "job-digest",
        "pinned-images",
        [job(pod(k8s_container(image="ghcr.io/acme/app@sha256:" + "0" * 64)))],
    ),
    Case(
        "registry-port-and-tag",
        "pinned-images",
        [job(pod(k8s_container(image="registry.lab:5000/team/app:1.0.0")))],
    ),
    Case(
        "committed-deployment-pinned",
        "pinned-images",
        [committed("apps/web/deployment.yaml", deployment(GOOD_POD))],
    ),
    Case("docker-image-id", "pinned-images", [container("app")]),
    Case("remote-image-tagged", "pinned-images", [Res(REMOTE_IMAGE, "img", {"name": "nginx:1.27.0-alpine"})]),
    # docker-privileges
    Case("cadvisor-ro", "docker-privileges", [container("cadvisor", volumes=[socket()])]),
    Case("portainer-rw", "docker-privileges", [container("portainer", volumes=[socket(read_only=False)])]),
    Case(
        "allowlisted-by-config",
        "docker-privileges",
        [container("traefik", volumes=[socket()])],
        config={"docker-socket-allowlist": {"traefik": "ro"}},
    ),
    Case(
        "other-host-paths",
        "docker-privileges",
        [container("app", volumes=[{"hostPath": "/srv/app", "containerPath": "/data"}])],
    ),
    # admin-sign-in
    Case(
        "admin-tool-forward-auth",
        "admin-sign-in",
        [admin_tool("forward-auth"), proxy_asking_for("home.lab.example.com", "metrics.lab.example.com")],
    ),
    Case("admin-tool-own-login", "admin-sign-in", [admin_tool("own-login")]),
    Case("admin-tool-open-by-config", "admin-sign-in", [admin_tool("open-by-config")]),
    # secret-env
    Case(
        "docker-secret-entries",
        "secret-env",
        [
            container(
                "app", envs=["LOG_LEVEL=info", SecretValue("DB_PASSWORD=hunter2"), "DB_PASSWORD_FILE=/run/s"]
            )
        ],
    ),
    Case("docker-secret-list", "secret-env", [container("app", envs=SecretValue(["DB_PASSWORD=hunter2"]))]),
    Case("docker-empty-value", "secret-env", [container("app", envs=["DB_PASSWORD="])]),
    # A file reference named like a credential: Tailscale's TS_AUTHKEY=file:<path>.
    Case(
        "docker-key-file-reference",
        "secret-env",
        [container("app", envs=["TS_AUTHKEY=file:/run/homelab/key"])],
    ),
    # An endpoint named like a credential: the OAuth token URL Grafana calls.
    Case(
        "docker-token-endpoint",
        "secret-env",
        [container("app", envs=["OAUTH_TOKEN_URL=https://auth.example.com/api/oidc/token"])],
    ),
    Case(
        "k8s-secret-key-ref",
        "secret-env",
        [
            job(
                pod(
                    k8s_container(
                        env=[
                            {
                                "name": "API_TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}},
                            },
                            {"name": "LOG_LEVEL", "value": "info"},
                        ]
                    )
                )
            )
        ],
    ),
    # kubernetes-workloads
    Case("complete-job", "kubernetes-workloads", [job(GOOD_POD)]),
    Case(
        "pod-level-non-root",
        "kubernetes-workloads",
        [job(pod({**k8s_container(), "securityContext": {}}, securityContext={"runAsNonRoot": True}))],
    ),
    Case(
        "kaniko-may-run-as-root",
        "kubernetes-workloads",
        [job(pod({**k8s_container("kaniko"), "securityContext": {}}))],
    ),
    Case(
        "root-allowlisted-by-config",
        "kubernetes-workloads",
        [job(pod({**k8s_container("legacy"), "securityContext": {}}))],
        config={"run-as-root-allowlist": ["legacy"]},
    ),
    Case(
        "committed-cluster-ip",
        "kubernetes-workloads",
        [committed("apps/web/service.yaml", service("ClusterIP"))],
    ),
    Case(
        "committed-deployment-complete",
        "kubernetes-workloads",
        [committed("apps/web/deployment.yaml", deployment(GOOD_POD), service("ClusterIP"))],
    ),
    Case(
        "exposed-service-allowlisted",
        "kubernetes-workloads",
        [committed("apps/web/service.yaml", service("LoadBalancer", "ingress"))],
        config={"exposed-service-allowlist": ["ingress"]},
    ),
    # github-settings
    Case("private-repository", "github-settings", [repository(visibility="private")]),
    Case(
        "public-repository-allowlisted",
        "github-settings",
        [repository("docs", visibility="public")],
        config={"public-repositories": ["docs"]},
    ),
    Case("webhook-complete", "github-settings", [webhook()]),
    # harbor-settings
    Case(
        "private-project", "harbor-settings", [Res(HARBOR_PROJECT, "p", {"name": "team-a", "public": False})]
    ),
    Case("project-robot", "harbor-settings", [robot()]),
    # helm-pinned
    Case("helm-exact", "helm-pinned", [release("1.19.4")]),
    Case("helm-exact-v", "helm-pinned", [release("v1.19.4")]),
    # volumes-backed-up
    Case("volume-retained-backed-up", "volumes-backed-up", [volume("homelab_db"), backup("a", "homelab_db")]),
    Case(
        "writer-stopped-during-backup",
        "volumes-backed-up",
        [volume("homelab_db"), backup("a", "homelab_db"), writer("homelab_db")],
    ),
    Case(
        "reader-need-not-stop",
        "volumes-backed-up",
        [volume("homelab_db"), backup("a", "homelab_db"), writer("homelab_db", stop=None, read_only=True)],
    ),
    Case(
        "volume-protect-label",
        "volumes-backed-up",
        [volume("homelab_db", safety="protect"), backup("a", "homelab_db")],
    ),
    Case(
        "volume-protected-option",
        "volumes-backed-up",
        [volume("homelab_db", safety="delete", protect=True), backup("a", "homelab_db")],
    ),
    Case("stateless-volume", "volumes-backed-up", [volume("homelab_cache", safety=None, stateful=False)]),
    Case(
        "pvc-kept",
        "volumes-backed-up",
        [
            Res(
                PVC,
                "data",
                {"metadata": {"name": "data", "annotations": {"helm.sh/resource-policy": "keep"}}},
            )
        ],
    ),
    Case(
        "pvc-protected", "volumes-backed-up", [Res(PVC, "data", {"metadata": {"name": "data"}}, protect=True)]
    ),
    # tls-routes
    Case("tls-complete", "tls-routes", [haproxy(routed=("home.lab.example.com", "grafana.lab.example.com"))]),
    Case(
        "tls-off",
        "tls-routes",
        [container("haproxy", uploads=[{"file": HAPROXY_CFG, "content": "frontend http\n    bind :80\n"}])],
    ),
    Case("tls-config-secret", "tls-routes", [haproxy()]),
    # host-ports
    Case(
        "same-port-other-host",
        "host-ports",
        [publishing("web", 8080, host="a"), publishing("api", 8080, host="b")],
    ),
    Case(
        "same-port-other-protocol",
        "host-ports",
        [publishing("dns", 53), publishing("dns-udp", 53, protocol="udp")],
    ),
    Case("different-ports", "host-ports", [publishing("web", 8080), publishing("api", 8081)]),
    # metrics-scraped
    Case(
        "metrics-scraped",
        "metrics-scraped",
        [prometheus({"app": "b"}), container("app", host="b", extra_labels={"homelab.metrics": "app"})],
    ),
    Case("no-prometheus", "metrics-scraped", [container("app", extra_labels={"homelab.metrics": "app"})]),
    # gitops-branch-protected
    Case("branch-protected", "gitops-branch-protected", [repository(), webhook(), branch_protection()]),
    Case(
        "other-webhook-needs-no-protection",
        "gitops-branch-protected",
        [repository("site"), webhook(url="https://ci.lab.example.com/hooks/github", repo="site")],
    ),
    # stateful-changes-guarded
    Case("writer-after-keyed-pre-upgrade-backup", "stateful-changes-guarded", guarded()),
    Case(
        "remote-pre-upgrade-backup",
        "stateful-changes-guarded",
        guarded(runs=[pre_upgrade_run([DB_IMAGE], "command:remote:Command")]),
    ),
    Case("read-only-mount-is-no-writer", "stateful-changes-guarded", guarded(runs=[], read_only=True)),
    Case(
        "service-listed-without-pre-upgrade-backup",
        "stateful-changes-guarded",
        guarded(runs=[]),
        config={"services-without-pre-upgrade-backup": ["mysql"]},
    ),
    Case(
        "cnpg-cluster-retained", "stateful-changes-guarded", [cnpg_cluster({"homelab.data-safety": "retain"})]
    ),
    Case("cnpg-cluster-protected", "stateful-changes-guarded", [cnpg_cluster(protect=True)]),
]


def test_every_rule_has_bad_and_good_cases():
    names = {rule.name for rule in RULES}
    assert len(names) == 17
    assert {c.rule for c in BAD} == names
    assert {c.rule for c in GOOD} == names
    assert len({c.id for c in BAD + GOOD}) == len(BAD) + len(GOOD)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_rule_fires_on_bad_fixture(case: Case):
    messages = case.run()
    assert case.what is not None
    assert any(case.what.lower() in m.lower() for m in messages), messages


@pytest.mark.parametrize(
    "case",
    [c for c in BAD],
    ids=lambda c: c.id,
)
def test_bad_fixture_message_says_how_to_fix(case: Case):
    messages = [m for m in case.run() if case.what and case.what.lower() in m.lower()]
    assert messages
    assert case.fix is not None
    assert all(case.fix.lower() in m.lower() for m in messages), messages


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_rule_silent_on_good_fixture(case: Case):
    assert case.run() == []


def test_messages_name_the_resource():
    """A resource rule's message starts with the resource's name, so the report is findable."""
    for case in BAD:
        rule = next(r for r in RULES if r.name == case.rule)
        if rule.stack:
            continue
        for message in case.run():
            assert any(message.startswith(r.name) for r in case.resources), message


# ---- gaps that were found in the rules (regression tests) -----------------------------------


def test_docker_socket_under_run_is_caught():
    messages = evaluate([container("traefik", volumes=[socket(host_path="/run/docker.sock")])])
    assert messages["docker-privileges"]


def test_a_bind_in_mounts_is_checked_like_one_in_volumes(example_run):
    """A bind with mount propagation is registered in `mounts`, not `volumes`: node-exporter's
    `/` (which holds the sockets) is allowed read-only, and nothing else is."""
    import copy

    resources = [as_res(r) for r in example_run(harness.EXAMPLES / "single-host.yaml")]
    node = next(
        r for r in resources if r.type == CONTAINER and labels(r).get("homelab.container") == "node-exporter"
    )
    others = [r for r in resources if r is not node]

    def with_mounts(res: Res, change: Callable[[list[dict[str, Any]]], None]) -> Res:
        props = copy.deepcopy(res.props)
        change(props["mounts"] if "mounts" in props else props.setdefault("mounts", []))
        return dataclasses.replace(res, props=props)

    writable = with_mounts(node, lambda ms: ms[0].update(readOnly=False))
    assert evaluate([*others, writable])["docker-privileges"] == [
        f"{node.name}: may mount / (it holds the Docker socket) only read-only"
    ]
    unlisted = evaluate(
        resources, {"docker-privileges": {"docker-socket-allowlist": {"node-exporter": None}}}
    )
    assert [m.split(";")[0] for m in unlisted["docker-privileges"]] == [
        f"{node.name}: mounts / (it holds the Docker socket)"
    ]
    proxy = next(
        r for r in resources if r.type == CONTAINER and labels(r).get("homelab.container") == "haproxy"
    )
    socket_bind = {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}
    bound = with_mounts(proxy, lambda ms: ms.append(socket_bind))
    [message] = evaluate([*[r for r in resources if r is not proxy], bound])["docker-privileges"]
    assert message.startswith(f"{proxy.name}: mounts the Docker socket; only ")


@EXAMPLES
def test_with_the_secret_markers_stripped_the_labels_keep_secret_env_quiet(path, example_run):
    """CrossGuard may hand the rules props without secret markers (pulumi_policy strips them):
    then each container's `homelab.secret-env` label alone says which env entries are secret.
    On every example's real resources it names all of them; a plain one added still fires."""
    stripped = [dataclasses.replace(r, props=plain(r.props)) for r in map(as_res, example_run(path))]
    assert evaluate(stripped)["secret-env"] == []
    with_env = [
        r for r in stripped if r.type == CONTAINER and any("=" in str(e) for e in r.props.get("envs") or [])
    ]
    assert with_env
    target = with_env[0]
    added = dataclasses.replace(
        target, props={**target.props, "envs": [*target.props["envs"], "SMTP_PASSWORD=hunter2"]}
    )
    messages = evaluate([added if r is target else r for r in stripped])["secret-env"]
    assert messages == [
        f"{target.name}: env SMTP_PASSWORD is a plain value; pass it as a secret (or a *_FILE)"
    ]


def test_tcp_sources_reads_the_stagers_config_and_the_proxys_ports(example_run):
    """The real shape: haproxy.cfg is in the stager's uploads, the ports on the proxy it stages
    for (`served`). A database port published on every interface is caught there."""
    resources = [as_res(r) for r in example_run(harness.EXAMPLES / "single-host.yaml")]
    proxy = next(
        r for r in resources if r.type == CONTAINER and labels(r).get("homelab.container") == "haproxy"
    )
    assert not any(str(k).endswith("haproxy.cfg") for k in uploads(proxy))  # it is staged
    ports = [{k: v for k, v in p.items() if k != "ip"} for p in plain(proxy.props)["ports"]]
    everywhere = dataclasses.replace(proxy, props={**proxy.props, "ports": ports})
    messages = evaluate([everywhere if r is proxy else r for r in resources])["tcp-sources"]
    assert len(messages) == 2 and all(m.startswith(f"{proxy.name}: ") for m in messages), messages


def edited_stage(resources: list[Res], stager: str, suffix: str, edit: Callable[[str], str]) -> list[Res]:
    """`resources` with the file ending in `suffix` that the stager named `stager` stages edited:
    the program's real shape, where a service's files are in its stager's uploads."""
    out = []
    for r in resources:
        if r.name == stager:
            items = []
            for item in plain(r.props)["uploads"]:
                if str(item["file"]).endswith(suffix):
                    changed = edit(item["content"])
                    assert changed != item["content"], f"{suffix}: the edit changed nothing"
                    item = {**item, "content": changed}
                items.append(item)
            r = dataclasses.replace(r, props={**r.props, "uploads": items})
        out.append(r)
    return out


@pytest.mark.parametrize(
    ("rule", "stager", "suffix", "edit", "says"),
    [
        (
            "metrics-scraped",
            "prometheus-files",
            "prometheus.yml",
            lambda text: text.replace('job_name: "cadvisor"', 'job_name: "cadvisor-old"'),
            "cadvisor",
        ),
        (
            "admin-sign-in",
            "haproxy-server-haproxy-files",
            "haproxy.cfg",
            lambda text: text.replace(" metrics.lab.example.com whoami", " whoami"),
            "metrics.lab.example.com",
        ),
        (
            "tls-routes",
            "haproxy-server-haproxy-files",
            "haproxy.cfg",
            lambda text: text.replace("http-request redirect scheme https code 301", "# no redirect"),
            "HTTP does not redirect",
        ),
        (
            "tls-routes",
            "haproxy-server-haproxy-files",
            "crt-list.txt",
            lambda text: "\n".join(line for line in text.splitlines() if "mattermost." not in line) + "\n",
            "mattermost.lab.example.com",
        ),
    ],
    ids=["metrics-job-dropped", "admin-route-not-signed-in", "no-redirect", "crt-list-line-dropped"],
)
def test_the_rules_that_read_files_fire_on_the_stagers_files(example_run, rule, stager, suffix, edit, says):
    """The fixtures keep files in a container's own uploads; the program stages them. Each rule
    that reads a file fires on an edit of the staged one too."""
    resources = [as_res(r) for r in example_run(harness.EXAMPLES / "single-host.yaml")]
    assert evaluate(resources)[rule] == []
    messages = evaluate(edited_stage(resources, stager, suffix, edit))[rule]
    assert any(says in m for m in messages), messages
    assert not any(m.startswith(f"{stager}:") for m in messages), "name the service, not its stager"


def test_committed_yml_manifest_is_checked():
    bad = committed("apps/web/deployment.yml", deployment(pod(k8s_container(image="nginx:latest"))))
    assert evaluate([bad])["pinned-images"]


def test_branch_protection_of_another_repository_does_not_count():
    resources = [repository(), repository("site"), webhook(), branch_protection("site")]
    assert evaluate(resources)["gitops-branch-protected"]


# ---- the volume label stands in for the resource options ---------------------------------


def check_volume_options(resources: list[Resource]) -> int:
    checked = 0
    for v in resources:
        if v.type != VOLUME:
            continue
        safety = {item["label"]: item["value"] for item in v.inputs.get("labels") or []}.get(
            "homelab.data-safety"
        )
        if safety == "retain":
            assert v.retain_on_delete, v.name
        elif safety == "protect":
            assert v.protect, v.name
        elif safety == "delete":
            assert not v.retain_on_delete, v.name
            assert not v.protect, v.name
        else:
            assert safety is None, f"{v.name}: unknown homelab.data-safety {safety!r}"
            continue
        checked += 1
    return checked


@EXAMPLES
def test_volume_label_matches_resource_options(path, example_run):
    assert check_volume_options(example_run(path)) > 0


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("keys"))


def test_delete_on_destroy_labels_volumes_delete_and_the_rule_fires(key_dir):
    mocks = run_program(
        {"hosts": [{"name": "local"}], "data": {"delete-on-destroy": True}}, {}, key_dir=key_dir
    )
    assert check_volume_options(mocks.resources) > 0
    stateful = [
        r
        for r in mocks.of_type(VOLUME)
        if {"label": "homelab.stateful", "value": "true"} in r.inputs["labels"]
    ]
    assert stateful
    for v in stateful:
        assert {"label": "homelab.data-safety", "value": "delete"} in v.inputs["labels"]
        assert not v.retain_on_delete
    messages = evaluate([as_res(r) for r in mocks.resources])["volumes-backed-up"]
    flagged = {m.split(":", 1)[0] for m in messages if "deleted with the stack" in m}
    assert flagged == {v.name for v in stateful}
    assert all("retain_on_delete" in m for m in messages)


def test_protect_labels_volumes_protect_and_the_rule_is_silent(key_dir):
    mocks = run_program({"hosts": [{"name": "local"}], "data": {"protect": True}}, {}, key_dir=key_dir)
    assert check_volume_options(mocks.resources) > 0
    assert evaluate([as_res(r) for r in mocks.resources])["volumes-backed-up"] == []


# ---- the CrossGuard policies ----------------------------------------------------------------


def test_one_policy_per_rule():
    policies = build_policies()
    assert [p.name for p in policies] == [r.name for r in RULES]
    for policy, rule in zip(policies, RULES, strict=True):
        expected = StackValidationPolicy if rule.stack else ResourceValidationPolicy
        assert type(policy) is expected, rule.name
        assert policy.description == rule.description
        # No level of its own: the pack's mandatory default applies, the pack config may lower it.
        assert policy.enforcement_level is None, rule.name
        if rule.config_schema:
            assert policy.config_schema is not None
            assert policy.config_schema.properties == rule.config_schema
        else:
            assert policy.config_schema is None


def test_pack_default_is_mandatory():
    """Read, never run: `policies/__main__.py` builds the pack with a mandatory default."""
    tree = ast.parse((POLICIES / "__main__.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "PolicyPack"
    ]
    assert len(calls) == 1
    keywords = {k.arg: ast.unparse(k.value) for k in calls[0].keywords}
    assert keywords["enforcement_level"] == "EnforcementLevel.MANDATORY"
    assert keywords["policies"] == "build_policies()"


def policy(name: str) -> Any:
    return next(p for p in build_policies() if p.name == name)


class FakeArgs:
    """What CrossGuard hands a resource policy (only the attributes the adapter reads)."""

    def __init__(self, res: Res, config: dict[str, Any] | None = None):
        self.resource_type = res.type
        self.props = res.props
        self.urn = res.urn
        self.name = res.name
        self.opts = SimpleNamespace(protect=res.protect)
        self.provider = SimpleNamespace(urn=res.provider) if res.provider else None
        self._config = config or {}

    def get_config(self) -> dict[str, Any]:
        return self._config


def validate(name: str, args: Any) -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    policy(name).validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_resource_policy_reports_through_the_callback():
    traefik = container("traefik", volumes=[socket()])
    reported = validate("docker-privileges", FakeArgs(traefik))
    assert len(reported) == 1
    message, urn = reported[0]
    assert "docker-socket-allowlist" in message
    assert urn == traefik.urn


def test_resource_policy_honours_the_config_allowlist():
    traefik = container("traefik", volumes=[socket()])
    assert (
        validate("docker-privileges", FakeArgs(traefik, {"docker-socket-allowlist": {"traefik": "ro"}})) == []
    )
    rw = container("traefik", volumes=[socket(read_only=False)])
    reported = validate("docker-privileges", FakeArgs(rw, {"docker-socket-allowlist": {"traefik": "ro"}}))
    assert [m for m, _ in reported if "read-only" in m]


def test_resource_policy_sees_pulumi_policy_secrets_as_secret_values():
    app = container("app", envs=[Secret("DB_PASSWORD=hunter2"), "LOG_LEVEL=info"])
    assert validate("secret-env", FakeArgs(app)) == []
    plain_env = container("app", envs=["DB_PASSWORD=hunter2"])
    assert len(validate("secret-env", FakeArgs(plain_env))) == 1


def stack_args(resources: list[Res], config: dict[str, Any] | None = None) -> Any:
    fakes = [
        SimpleNamespace(
            resource_type=r.type,
            props=r.props,
            urn=r.urn,
            name=r.name,
            opts=SimpleNamespace(protect=r.protect),
            provider=SimpleNamespace(urn=r.provider) if r.provider else None,
            dependencies=[SimpleNamespace(urn=d) for d in r.dependencies],
        )
        for r in resources
    ]
    return SimpleNamespace(resources=fakes, get_config=lambda: config or {})


def test_stack_policy_reports_through_the_callback():
    clash = [publishing("web", 8080), publishing("api", 8080)]
    reported = validate("host-ports", stack_args(clash))
    assert len(reported) == 1
    assert "8080" in reported[0][0]
    assert reported[0][1] is None
    apart = [publishing("web", 8080, host="a"), publishing("api", 8080, host="b")]
    assert validate("host-ports", stack_args(apart)) == []


def test_stack_policy_sees_protect_and_providers():
    retained = [volume("homelab_db", safety="delete", protect=True), backup("a", "homelab_db")]
    assert validate("volumes-backed-up", stack_args(retained)) == []
    other_host = [volume("homelab_db", host="a"), backup("b", "homelab_db")]
    assert [m for m, _ in validate("volumes-backed-up", stack_args(other_host)) if "no backup set" in m]


def test_wrap_secrets_turns_pulumi_policy_secrets_into_secret_values():
    value = {"a": Secret("x"), "b": [Secret({"c": Secret(1)}), 2], "d": {"e": "plain"}}
    assert wrap_secrets(value) == {
        "a": SecretValue("x"),
        "b": [SecretValue({"c": SecretValue(1)}), 2],
        "d": {"e": "plain"},
    }


def test_to_res_reads_protect_provider_and_dependencies():
    args = stack_args([volume("homelab_db", protect=True)]).resources[0]
    args.dependencies = [SimpleNamespace(urn="urn:a"), SimpleNamespace(urn="urn:b")]
    res = to_res(args)
    assert res.protect is True
    assert res.provider == provider("a")
    assert res.dependencies == ("urn:a", "urn:b")


# ---- the policies as CrossGuard really calls them -----------------------------------------
# pulumi_policy's Analyze/AnalyzeStack (policy.py:997, 1049) deserialize the engine's props with
# proxy_secrets=False (secret markers stripped) and wrap them in unknown-checking proxies
# (Mapping/Sequence, not dict/list). These tests build the arguments the same way.

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def engine_props(raw: dict[str, Any]) -> Any:
    return unknown_checking_proxy(deserialize_properties(raw))


def engine_options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def engine_violations(resources: list[Resource]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    policy_resources = [
        PolicyResource(
            r.type,
            engine_props(r.raw_inputs),
            r.urn,
            r.name,
            engine_options(r.protect),
            PolicyProviderResource("pulumi:providers:docker", {}, provider_urn(r.provider), "p")
            if r.provider
            else None,
            None,
            [],
            {},
        )
        for r in resources
    ]
    # As pulumi_policy's analyzer does (policy.py, `analyze_stack`): dependencies by URN.
    by_urn = {p.urn: p for p in policy_resources}
    for r, p in zip(resources, policy_resources, strict=True):
        p.dependencies.extend(by_urn[u] for u in r.dependencies if u in by_urn)
    for p in build_policies():
        reported: list[str] = []

        def report(message: str, urn: str | None = None, into: list[str] = reported) -> None:
            into.append(message)

        if isinstance(p, StackValidationPolicy):
            p.validate(StackValidationArgs(policy_resources, {}), report)
        else:
            for r in policy_resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, r.provider, {})
                p.validate(args, report)
        if reported:
            out[p.name] = reported
    return out


@EXAMPLES
def test_every_example_passes_the_pack_as_crossguard_calls_it(path, example_run):
    assert engine_violations(example_run(path)) == {}


def test_engine_shaped_job_is_checked():
    bad = job(pod(k8s_container(), init=(k8s_container("init", "busybox:latest"),)))
    args = ResourceValidationArgs(JOB, engine_props(bad.props), bad.urn, bad.name, OPTIONS, None, {})
    assert validate("pinned-images", args)


def test_engine_shaped_unknown_unrelated_prop_does_not_skip_the_policy():
    traefik = container("traefik", volumes=[socket()])
    props = engine_props({**traefik.props, "image": UNKNOWN_STRING_VALUE})
    args = ResourceValidationArgs(CONTAINER, props, traefik.urn, traefik.name, OPTIONS, None, {})
    assert validate("docker-privileges", args)


# ---- documentation and pack files -----------------------------------------------------------


def test_docs_list_every_rule():
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", DOCS.read_text(), re.M))
    assert documented == {r.name for r in RULES}


def test_docs_example_config_fits_the_policies():
    block = re.search(r"```json\n(.*?)```", DOCS.read_text(), re.S)
    assert block
    config = json.loads(block.group(1))
    by_name = {p.name: p for p in build_policies()}
    levels = {level.value for level in EnforcementLevel}
    for name, value in config.items():
        assert name in by_name, name
        if isinstance(value, str):
            assert value in levels
            continue
        schema = by_name[name].config_schema
        assert schema is not None, name
        assert set(value) <= set(schema.properties), name
        jsonschema.validate(value, {"type": "object", "properties": schema.properties})


def test_policy_pack_runs_on_python():
    document = yaml.safe_load((POLICIES / "PulumiPolicy.yaml").read_text())
    runtime = document["runtime"]
    name = runtime["name"] if isinstance(runtime, dict) else runtime
    assert name == "python"
    assert document.get("description")


def test_policy_requirements_pin_pulumi_policy():
    lines = [
        line.split("#", 1)[0].strip()
        for line in (POLICIES / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    pins = [line for line in lines if re.match(r"pulumi[-_]policy\b", line, re.I)]
    assert len(pins) == 1
    assert re.fullmatch(r"pulumi[-_]policy==\d+\.\d+\.\d+", pins[0], re.I), pins[0]
    import pulumi_policy.version as installed

    assert pins[0].split("==")[1] == installed.VERSION


# ---- stateful-changes-guarded against the program ------------------------------------------


def test_the_examples_hold_what_the_guard_rule_reads(example_run):
    everything = [r for path in example_files() for r in example_run(path)]
    runs = [r for r in everything if r.type == "command:local:Command" or r.type == "command:remote:Command"]
    assert any(r.name.endswith("-pre-upgrade-backup-run") for r in runs)
    clusters = [r for r in everything if r.type == "kubernetes:postgresql.cnpg.io/v1:Cluster"]
    assert clusters
    for cluster in clusters:
        # The annotation says what the option says (the pack cannot see the option).
        assert cluster.retain_on_delete is True
        assert cluster.inputs["metadata"]["annotations"]["homelab.data-safety"] == "retain"


def test_turning_the_pre_upgrade_backup_off_is_reported(tmp_path):
    config = {"data": {"pre-upgrade-backup": False}, "services": {"mysql": {"enabled": True}}}
    mocks = run_program(config, key_dir=str(tmp_path))
    messages = evaluate([as_res(r) for r in mocks.resources])["stateful-changes-guarded"]
    assert any(m.startswith("mysql: writes homelab_mysql_data but is not ordered after") for m in messages)
    assert not any(m.startswith("landing") for m in messages)
