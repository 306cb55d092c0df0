"""For clusters that lack it: cert-manager with the ClusterIssuer the platform's certificates
name: ACME (DNS-01 through Cloudflare, or HTTP-01 through the platform's Gateway or an Ingress)
or a private CA that exists before the platform (given in config, or the homelab layer's).
(The ingress-nginx controller this module also installed is retired: components/platform/
routing.py routes through the Gateway API instead.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource

CA_SECRET = "homelab-ca"
CLOUDFLARE_SECRET = "cloudflare-api-token"


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
    # Where the HTTP-01 solver's route goes: the platform Gateway's HTTP listener (name,
    # namespace), or an Ingress of `ingress_class`.
    gateway: tuple[str, str] | None = None
    ingress_class: str = ""
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. the Gateway API CRDs


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
        elif args.gateway is not None:
            # http01.gatewayHTTPRoute.parentRefs (cert-manager.io_clusterissuers.yaml @ v1.21.1):
            # the solver's HTTPRoute on the Gateway's port-80 listener.
            name, namespace = args.gateway
            solver = {
                "http01": {
                    "gatewayHTTPRoute": {
                        "parentRefs": [{"name": name, "namespace": namespace, "sectionName": "http"}]
                    }
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
        values: dict[str, Any] = {
            "crds": {"enabled": True},
            "clusterResourceNamespace": cluster.args.namespace,
        }
        if args.gateway is not None:
            # The Gateway API integration (HTTP-01 through a Gateway) is off unless the
            # ControllerConfiguration turns it on (gatewayAPI.enabled, pkg/apis/config/controller/
            # v1alpha1/types.go @ v1.21.1; values.yaml `config`), and it needs the Gateway API
            # CRDs installed before the controller starts.
            values["config"] = {
                "apiVersion": "controller.config.cert-manager.io/v1alpha1",
                "kind": "ControllerConfiguration",
                "gatewayAPI": {"enabled": True},
            }
        self.release = helm_release(
            name,
            "cert-manager",
            cluster.args.namespace,
            values,
            cluster.opts(parent=self, depends_on=[cluster.namespace, *args.depends_on]),
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
