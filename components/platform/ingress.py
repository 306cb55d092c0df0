"""For clusters that lack them: ingress-nginx, and cert-manager with the ClusterIssuer the
platform's certificates name: ACME (DNS-01 through Cloudflare, or HTTP-01) or a private CA
that exists before the platform (given in config, or the homelab layer's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource

CA_SECRET = "homelab-ca"
CLOUDFLARE_SECRET = "cloudflare-api-token"


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
class AcmeIssuer:
    """An ACME account and how it proves control of the names (cert-manager ClusterIssuer fields,
    cert-manager deploy/crds/cert-manager.io_clusterissuers.yaml @ v1.21.1)."""

    email: str
    server: str
    solver: Literal["dns01-cloudflare", "http01"] = "dns01-cloudflare"
    # A Cloudflare API token (secret) for dns01-cloudflare.
    cloudflare_api_token: pulumi.Input[str] | None = None
    dns_zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaIssuer:
    """A private CA whose key cert-manager signs with (certificate and key as PEM)."""

    cert_pem: pulumi.Input[str]
    key_pem: pulumi.Input[str]  # secret


@dataclass(frozen=True)
class CertManagerArgs:
    issuer_name: str = "homelab-ca"
    acme: AcmeIssuer | None = None
    ca: CaIssuer | None = None
    ingress_class: str = "nginx"


def issuer_manifest(args: CertManagerArgs) -> dict[str, Any]:
    """The ClusterIssuer the platform's certificates name: ACME, or the private CA."""
    if args.acme is not None:
        acme = args.acme
        solver: dict[str, Any]
        if acme.solver == "dns01-cloudflare":
            solver = {
                "dns01": {
                    "cloudflare": {"apiTokenSecretRef": {"name": CLOUDFLARE_SECRET, "key": "api-token"}}
                }
            }
        else:
            solver = {"http01": {"ingress": {"ingressClassName": args.ingress_class}}}
        if acme.dns_zones:
            solver["selector"] = {"dnsZones": list(acme.dns_zones)}
        spec: dict[str, Any] = {
            "acme": {
                "email": acme.email,
                "server": acme.server,
                "privateKeySecretRef": {"name": f"{args.issuer_name}-account"},
                "solvers": [solver],
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


def certificate_manifest(
    name: str, namespace: str, host: str, secret_name: str, issuer: str
) -> dict[str, Any]:
    """A cert-manager Certificate Pulumi waits for (Ready), so what calls the host over TLS
    (Pulumi's Harbor provider) starts only once the real certificate is served."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            # pulumi-kubernetes' generic await (pulumi/pulumi-kubernetes tests: GenericAwaiter).
            "annotations": {"pulumi.com/waitFor": "condition=Ready", "pulumi.com/timeoutSeconds": "900"},
        },
        "spec": {
            "secretName": secret_name,
            "dnsNames": [host],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
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
        if (args.acme is None) == (args.ca is None):
            raise ValueError("CertManagerArgs: give exactly one of acme and ca")
        # The issuer's secrets must live in cert-manager's "cluster resource namespace": ours.
        values = {"crds": {"enabled": True}, "clusterResourceNamespace": cluster.args.namespace}
        self.release = helm_release(
            name,
            "cert-manager",
            cluster.args.namespace,
            values,
            cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        needs: list[pulumi.Resource] = [self.release]
        in_ns = cluster.opts(parent=self, depends_on=[cluster.namespace])
        if args.ca is not None:
            needs.append(
                k8s.core.v1.Secret(
                    f"{name}-ca-secret",
                    metadata={"name": CA_SECRET, "namespace": cluster.args.namespace},
                    type="kubernetes.io/tls",
                    string_data={
                        "tls.crt": args.ca.cert_pem,
                        "tls.key": pulumi.Output.secret(args.ca.key_pem),
                    },
                    opts=in_ns,
                )
            )
        elif args.acme is not None and args.acme.cloudflare_api_token is not None:
            needs.append(
                k8s.core.v1.Secret(
                    f"{name}-cloudflare-token",
                    metadata={"name": CLOUDFLARE_SECRET, "namespace": cluster.args.namespace},
                    type="Opaque",
                    string_data={"api-token": pulumi.Output.secret(args.acme.cloudflare_api_token)},
                    opts=in_ns,
                )
            )
        self.issuer = custom_resource(
            f"{name}-clusterissuer-{args.issuer_name}",
            issuer_manifest(args),
            cluster.opts(parent=self, depends_on=needs),
        )
        self.register_outputs({})
