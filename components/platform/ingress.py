"""For clusters that lack them: ingress-nginx, and cert-manager with the ClusterIssuer the
platform's ingresses name (a private CA by default, ACME by config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource

CA_SECRET = "homelab-ca"


@dataclass(frozen=True)
class IngressControllerArgs:
    ingress_class: str = "nginx"


class IngressController(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        args: IngressControllerArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:IngressController", name, None, opts)
        values = {
            "controller": {
                "ingressClassResource": {"name": args.ingress_class, "default": False},
                "ingressClass": args.ingress_class,
                "service": {"type": "LoadBalancer"},
            }
        }
        self.release = helm_release(
            name,
            "ingress-nginx",
            cluster.args.namespace,
            values,
            cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        self.register_outputs({})


@dataclass(frozen=True)
class CertManagerArgs:
    issuer_name: str = "homelab-ca"
    issuer: Literal["self-signed", "acme"] = "self-signed"
    acme_email: str | None = None
    acme_server: str = "https://acme-v02.api.letsencrypt.org/directory"
    ingress_class: str = "nginx"
    ca_common_name: str = "Homelab Platform CA"


def issuer_manifests(args: CertManagerArgs, namespace: str) -> list[dict[str, Any]]:
    """The cert-manager objects behind the issuer the platform's ingresses name."""
    if args.issuer == "acme":
        return [
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "ClusterIssuer",
                "metadata": {"name": args.issuer_name},
                "spec": {
                    "acme": {
                        "email": args.acme_email,
                        "server": args.acme_server,
                        "privateKeySecretRef": {"name": f"{args.issuer_name}-account"},
                        "solvers": [{"http01": {"ingress": {"ingressClassName": args.ingress_class}}}],
                    }
                },
            }
        ]
    bootstrap = f"{args.issuer_name}-selfsigned"
    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": bootstrap},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": CA_SECRET, "namespace": namespace},
            "spec": {
                "isCA": True,
                "commonName": args.ca_common_name,
                "secretName": CA_SECRET,
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": bootstrap, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": args.issuer_name},
            "spec": {"ca": {"secretName": CA_SECRET}},
        },
    ]


class CertManager(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        args: CertManagerArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:CertManager", name, None, opts)
        # The CA's secret must live in cert-manager's "cluster resource namespace": ours.
        values = {"crds": {"enabled": True}, "clusterResourceNamespace": cluster.args.namespace}
        self.release = helm_release(
            name,
            "cert-manager",
            cluster.args.namespace,
            values,
            cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        previous: list[pulumi.Resource] = [self.release]
        for manifest in issuer_manifests(args, cluster.args.namespace):
            resource = custom_resource(
                f"{name}-{manifest['kind'].lower()}-{manifest['metadata']['name']}",
                manifest,
                cluster.opts(parent=self, depends_on=previous),
            )
            previous = [resource]
        self.issuer = previous[0]
        self.register_outputs({})
