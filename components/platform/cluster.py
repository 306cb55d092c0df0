"""The cluster connection: one Kubernetes provider (kubeconfig secret, path or context) and
the platform namespace. Every platform resource is created with `cluster.opts()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ClusterArgs:
    namespace: str = "idp-system"
    kubeconfig: pulumi.Input[str] | None = None  # content (secret) or a path
    context: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def custom_resource(
    name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A custom resource (AppProject, Cluster, ClusterIssuer...) from its manifest as plain data."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


class KubernetesCluster(pulumi.ComponentResource):
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:platform:KubernetesCluster", name, None, opts)
        self.args = args
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=args.kubeconfig,
            context=args.context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": dict(args.labels)},
            opts=self.opts(),
        )
        self.register_outputs({"namespace": self.namespace.metadata["name"]})

    def opts(self, parent: pulumi.Resource | None = None, **kwargs: object) -> pulumi.ResourceOptions:
        """Options that put a resource on this cluster."""
        return pulumi.ResourceOptions(parent=parent or self, provider=self.provider, **kwargs)  # type: ignore[arg-type]
