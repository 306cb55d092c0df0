"""A project's registry access: two Harbor robot accounts with the least they need (push for
builds, pull for the namespace), and their docker-config Secrets in the project namespace.
No admin credential reaches the pipeline."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumiverse_harbor as harbor

from components.pipeline.manifests import REGISTRY_PULL_SECRET, REGISTRY_PUSH_SECRET

ROBOT_ACTIONS = {"push": ("pull", "push"), "pull": ("pull",)}


def dockerconfigjson(registry: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}})


REGISTRY_CA_CONFIGMAP = "registry-ca"


@dataclass(frozen=True)
class RegistryArgs:
    project: str
    registry_host: str
    namespace: pulumi.Resource  # the project's Namespace, created by the platform layer
    # The private CA that signed Harbor's certificate (None: a publicly trusted one).
    ca_cert_pem: pulumi.Input[str] | None = None


class ProjectRegistry(pulumi.ComponentResource):
    """Push and pull robots of one Harbor project, as Kubernetes Secrets in its namespace."""

    def __init__(
        self,
        name: str,
        args: RegistryArgs,
        harbor_provider: harbor.Provider,
        k8s_opts: pulumi.ResourceOptions,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:pipeline:ProjectRegistry", name, None, opts)
        self.secrets: dict[str, k8s.core.v1.Secret] = {}
        # Everything a build in the namespace needs from the registry side.
        self.ready: list[pulumi.Resource] = []
        for purpose, secret_name in (("push", REGISTRY_PUSH_SECRET), ("pull", REGISTRY_PULL_SECRET)):
            password = random.RandomPassword(
                f"{name}-{purpose}-robot-secret",
                length=32,
                special=False,
                min_upper=1,
                min_lower=1,
                min_numeric=1,
                opts=pulumi.ResourceOptions(parent=self),
            )
            robot = harbor.RobotAccount(
                f"{name}-{purpose}-robot",
                name=f"{args.project}-{purpose}",
                description=f"{purpose} robot of project {args.project} (managed by Pulumi)",
                level="project",
                secret=password.result,
                permissions=[
                    harbor.RobotAccountPermissionArgs(
                        kind="project",
                        namespace=args.project,
                        accesses=[
                            harbor.RobotAccountPermissionAccessArgs(action=action, resource="repository")
                            for action in ROBOT_ACTIONS[purpose]
                        ],
                    )
                ],
                opts=pulumi.ResourceOptions(parent=self, provider=harbor_provider),
            )
            config = pulumi.Output.all(robot.full_name, password.result).apply(
                lambda parts: dockerconfigjson(args.registry_host, parts[0], parts[1])
            )
            self.secrets[purpose] = k8s.core.v1.Secret(
                f"{name}-{purpose}-secret",
                metadata={"name": secret_name, "namespace": args.project},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": pulumi.Output.secret(config)},  # type: ignore[arg-type]
                opts=pulumi.ResourceOptions.merge(
                    k8s_opts, pulumi.ResourceOptions(parent=self, depends_on=[args.namespace])
                ),
            )
        if args.ca_cert_pem is not None:
            # Builds verify Harbor's certificate against this CA (kaniko --registry-certificate).
            self.ca = k8s.core.v1.ConfigMap(
                f"{name}-ca",
                metadata={"name": REGISTRY_CA_CONFIGMAP, "namespace": args.project},
                data={"ca.crt": args.ca_cert_pem},
                opts=pulumi.ResourceOptions.merge(
                    k8s_opts, pulumi.ResourceOptions(parent=self, depends_on=[args.namespace])
                ),
            )
            self.ready.append(self.ca)
        self.ready.extend(self.secrets.values())
        self.register_outputs({})
