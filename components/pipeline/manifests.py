"""The Kubernetes manifests of an app, as plain data: what goes into the GitOps repository.

Pure functions, no Pulumi: the build job, the app's Deployment/Service/Ingress/ConfigMap and
its Argo CD Application are all rendered here so tests can validate them with the real
Kubernetes schemas and the Argo CD CRD.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from components.pipeline.images import GIT_SYNC, KANIKO

if TYPE_CHECKING:
    from components.platform.routing import Route

IN_CLUSTER = "https://kubernetes.default.svc"
REGISTRY_PULL_SECRET = "registry-pull"
REGISTRY_PUSH_SECRET = "registry-push"
# A build may run this long; Pulumi's wait for the Job must cover it (see `build_timeout`).
BUILD_DEADLINE_SECONDS = 3600
# git-sync publishes the checkout as a symlink (--link); kaniko would copy the link itself
# (kaniko#1513), so the build reads a real copy of the tree.
GIT_LINK = "/workspace/src"
BUILD_CONTEXT = "/workspace/context"


def build_timeout(deadline_seconds: int = BUILD_DEADLINE_SECONDS) -> str:
    """Pulumi's create/update timeout of a build Job: the Job's deadline plus time to schedule."""
    return f"{(deadline_seconds + 600) // 60}m"


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"

    def spec(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class BuildSpec:
    """What a build depends on; its hash names the Job and tags the image."""

    app: str
    project: str
    repo_ssh_url: str
    ref: str
    dockerfile_path: str  # path in the source, or "Dockerfile" for an inline one
    dockerfile_inline: str | None
    context: str
    build_args: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        payload = {
            "repo": self.repo_ssh_url,
            "ref": self.ref,
            "dockerfile": self.dockerfile_inline
            if self.dockerfile_inline is not None
            else self.dockerfile_path,
            "inline": self.dockerfile_inline is not None,
            "context": self.context,
            "build_args": dict(sorted(self.build_args.items())),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def tag(self) -> str:
        return self.digest()[:12]

    @property
    def job_name(self) -> str:
        """`build-<app>-<tag>`, at most 63 characters: a long app name is cut, never the tag."""
        room = 63 - len("build--") - len(self.tag)
        return f"build-{self.app[:room].rstrip('-')}-{self.tag}"


def image_ref(registry: str, b: BuildSpec) -> str:
    return f"{registry}/{b.project}/{b.app}:{b.tag}"


def build_job(
    b: BuildSpec,
    registry: str,
    git_secret: str,
    dockerfile_configmap: str | None,
    registry_ca_configmap: str | None = None,
) -> dict[str, Any]:
    """git-sync fetches the source at the ref, a copy step turns its symlink into a real tree,
    and kaniko builds that tree and pushes over TLS with the push robot."""
    sub = "" if b.context in (".", "") else "/" + b.context.strip("/")
    dockerfile = "/dockerfile/Dockerfile" if dockerfile_configmap else f"{BUILD_CONTEXT}/{b.dockerfile_path}"
    args = [
        f"--context=dir://{BUILD_CONTEXT}{sub}",
        f"--dockerfile={dockerfile}",
        f"--destination={image_ref(registry, b)}",
        "--cache=true",
        f"--cache-repo={registry}/{b.project}/{b.app}-cache",
        "--snapshot-mode=redo",
        *(f"--build-arg={k}={v}" for k, v in sorted(b.build_args.items())),
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "emptyDir": {}},
        {"name": "git-secret", "secret": {"secretName": git_secret, "defaultMode": 0o400}},
        {
            "name": "registry",
            "secret": {
                "secretName": REGISTRY_PUSH_SECRET,
                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
            },
        },
    ]
    mounts = [
        {"name": "workspace", "mountPath": "/workspace"},
        {"name": "registry", "mountPath": "/kaniko/.docker", "readOnly": True},
    ]
    if dockerfile_configmap:
        volumes.append({"name": "dockerfile", "configMap": {"name": dockerfile_configmap}})
        mounts.append({"name": "dockerfile", "mountPath": "/dockerfile", "readOnly": True})
    if registry_ca_configmap:
        # TLS to Harbor, verified against the platform's private CA (never --skip-tls-verify).
        volumes.append({"name": "registry-ca", "configMap": {"name": registry_ca_configmap}})
        mounts.append({"name": "registry-ca", "mountPath": "/etc/registry-ca", "readOnly": True})
        args.append(f"--registry-certificate={registry}=/etc/registry-ca/ca.crt")
    no_escalation = {"allowPrivilegeEscalation": False, "privileged": False}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": b.job_name,
            "namespace": b.project,
            "labels": {"app.kubernetes.io/name": b.app, "homelab.build": b.tag},
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": BUILD_DEADLINE_SECONDS,
            # No ttlSecondsAfterFinished: the TTL controller would delete the finished Job, a
            # later `pulumi refresh` would then drop it from the state, and the next `up` would
            # build the same commit again. The Job stays until a new build (a new hash, a new
            # name) replaces it.
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": b.app, "homelab.build": b.tag}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "initContainers": [
                        {
                            "name": "git-sync",
                            "image": GIT_SYNC,
                            "args": [
                                f"--repo={b.repo_ssh_url}",
                                f"--ref={b.ref}",
                                "--root=/workspace/git",
                                f"--link={GIT_LINK}",
                                "--one-time",
                                "--depth=1",
                                "--ssh-key-file=/etc/git-secret/ssh",
                                "--ssh-known-hosts=true",
                                "--ssh-known-hosts-file=/etc/git-secret/known_hosts",
                            ],
                            "volumeMounts": [
                                {"name": "workspace", "mountPath": "/workspace"},
                                {"name": "git-secret", "mountPath": "/etc/git-secret", "readOnly": True},
                            ],
                            "securityContext": {
                                **no_escalation,
                                "runAsNonRoot": True,
                                "runAsUser": 65533,
                                "runAsGroup": 65533,
                            },
                            "resources": Resources("50m", "64Mi", "500m", "256Mi").spec(),
                        },
                        {
                            # A real directory for kaniko: the files the link points at, copied
                            # (symlinks inside the tree stay symlinks).
                            "name": "context",
                            "image": GIT_SYNC,
                            "command": ["cp", "-a", f"{GIT_LINK}/.", BUILD_CONTEXT],
                            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                            "securityContext": {
                                **no_escalation,
                                "runAsNonRoot": True,
                                "runAsUser": 65533,
                                "runAsGroup": 65533,
                            },
                            "resources": Resources("50m", "64Mi", "500m", "256Mi").spec(),
                        },
                    ],
                    "securityContext": {"fsGroup": 65533},
                    "containers": [
                        {
                            "name": "kaniko",
                            "image": KANIKO,
                            "args": args,
                            "volumeMounts": mounts,
                            # kaniko unpacks images as root in its own container; never privileged.
                            "securityContext": no_escalation,
                            "resources": Resources("500m", "1Gi", "2", "4Gi").spec(),
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


@dataclass(frozen=True)
class AppSpec:
    name: str
    project: str
    image: str
    host: str
    port: int = 8080
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()  # names of keys in the app's Secret
    files: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    health_path: str = "/"
    cluster_issuer: str = "homelab-ca"
    # Gateway mode: an HTTPRoute on the app's listener of the platform's Gateway (which holds the
    # TLS Secret); ingress mode: an Ingress of the class, its certificate from cert-manager's
    # ingress-shim (`cert-manager.io/cluster-issuer`, not specific to any controller).
    route: Route | None = None
    run_as_root: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/part-of": self.project}

    @property
    def secret_name(self) -> str:
        return f"{self.name}-env"

    @property
    def configmap_name(self) -> str:
        return f"{self.name}-files"


def file_key(path: str) -> str:
    """The ConfigMap key of an app file: its path with every other character as '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.strip("/"))


def app_manifests(a: AppSpec) -> dict[str, dict[str, Any]]:
    """File name -> manifest, for apps/<project>/<app>/ in the GitOps repository."""
    meta = {"name": a.name, "namespace": a.project, "labels": a.labels}
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(a.env.items())]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": a.secret_name, "key": k}}}
        for k in sorted(a.secret_env)
    ]
    probe = {"httpGet": {"path": a.health_path, "port": "http"}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": a.name,
        "image": a.image,
        "ports": [{"name": "http", "containerPort": a.port}],
        "env": env,
        "readinessProbe": {**probe, "initialDelaySeconds": 5},
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "failureThreshold": 6},
        "resources": a.resources.spec(),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    pod: dict[str, Any] = {"imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}], "containers": [container]}
    if not a.run_as_root:
        pod["securityContext"] = {"runAsNonRoot": True}
    out: dict[str, dict[str, Any]] = {}
    if a.files:
        out["configmap.yaml"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**meta, "name": a.configmap_name},
            "data": {file_key(path): content for path, content in sorted(a.files.items())},
        }
        container["volumeMounts"] = [
            {"name": "files", "mountPath": path, "subPath": file_key(path), "readOnly": True}
            for path in sorted(a.files)
        ]
        pod["volumes"] = [{"name": "files", "configMap": {"name": a.configmap_name}}]
    out["deployment.yaml"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": a.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": a.name}},
            "template": {"metadata": {"labels": a.labels}, "spec": pod},
        },
    }
    out["service.yaml"] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": a.name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    route = a.route
    if route is not None and route.mode == "gateway":
        out["httproute.yaml"] = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": meta,
            "spec": {
                "parentRefs": route.parent_refs(),
                "hostnames": [a.host],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [{"name": a.name, "port": 80}],
                    }
                ],
            },
        }
        return out
    out["ingress.yaml"] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**meta, "annotations": {"cert-manager.io/cluster-issuer": a.cluster_issuer}},
        "spec": {
            "ingressClassName": route.ingress_class if route is not None else "",
            "tls": [{"hosts": [a.host], "secretName": f"{a.name}-tls"}],
            "rules": [
                {
                    "host": a.host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": a.name, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    return out


def to_yaml(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def application(
    app: str, project: str, namespace: str, repo_url: str, branch: str, notifier: str | None = None
) -> dict[str, Any]:
    """The Argo CD Application: the app's path in the GitOps repo into the project namespace."""
    annotations = {}
    if notifier:
        for trigger in ("on-sync-succeeded", "on-sync-failed", "on-health-degraded"):
            annotations[f"notifications.argoproj.io/subscribe.{trigger}.{notifier}"] = ""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": f"{project}-{app}", "namespace": namespace, "annotations": annotations},
        "spec": {
            "project": project,
            "source": {"repoURL": repo_url, "path": f"apps/{project}/{app}", "targetRevision": branch},
            "destination": {"server": IN_CLUSTER, "namespace": project},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=false"],
            },
        },
    }
