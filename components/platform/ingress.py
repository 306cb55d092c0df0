"""For clusters that lack them: ingress-nginx, and cert-manager with the ClusterIssuer the
platform's ingresses name (a private CA by default, ACME by config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.homelab.tls import CertificateAuthority, CertificateAuthorityArgs
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


def issuer_manifest(args: CertManagerArgs) -> dict[str, Any]:
    """The ClusterIssuer the platform's ingresses name: our own CA, or ACME."""
    if args.issuer == "acme":
        spec: dict[str, Any] = {
            "acme": {
                "email": args.acme_email,
                "server": args.acme_server,
                "privateKeySecretRef": {"name": f"{args.issuer_name}-account"},
                "solvers": [{"http01": {"ingress": {"ingressClassName": args.ingress_class}}}],
            }
        }
    else:
        spec = {"ca": {"secretName": CA_SECRET}}
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": args.issuer_name},
        "spec": spec,
    }


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
        needs: list[pulumi.Resource] = [self.release]
        self.ca_cert_pem: pulumi.Output[str] | None = None
        if args.issuer == "self-signed":
            # Our own CA (pulumi-tls), so Pulumi knows its certificate: builds trust it when
            # they push to Harbor, and users can fetch it from the stack outputs.
            ca = CertificateAuthority(
                f"{name}-ca",
                CertificateAuthorityArgs(args.ca_common_name, hosts=(), validity_days=3650),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ca_cert_pem = ca.ca_cert_pem
            needs.append(
                k8s.core.v1.Secret(
                    f"{name}-ca-secret",
                    metadata={"name": CA_SECRET, "namespace": cluster.args.namespace},
                    type="kubernetes.io/tls",
                    string_data={"tls.crt": ca.ca_cert_pem, "tls.key": ca.ca_key_pem},
                    opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
                )
            )
        self.issuer = custom_resource(
            f"{name}-clusterissuer-{args.issuer_name}",
            issuer_manifest(args),
            cluster.opts(parent=self, depends_on=needs),
        )
        self.register_outputs({})
