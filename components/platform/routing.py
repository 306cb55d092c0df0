"""How requests reach the platform's UIs and the apps: a Gateway API Gateway (the default) or
plain Ingresses of an existing class.

ingress-nginx is retired (kubernetes/ingress-nginx README.md @ dbb11b92ddb7: best-effort
maintenance until March 2026, then no releases or security fixes), so the platform no longer
installs it and sets no `nginx.ingress.kubernetes.io/*` annotation.

Gateway mode: one Gateway (gateway.networking.k8s.io/v1, standard channel) in the platform's
namespace with an HTTP listener on port 80 (it redirects to HTTPS, and cert-manager's HTTP-01
solver attaches its route there) and one HTTPS listener per routed host, each terminating TLS
with the Secret a cert-manager Certificate writes (the program creates each Certificate itself
and waits for it, so no gateway-shim annotation is involved). The charts attach their own
HTTPRoutes to those listeners: argo-cd `server.httproute`, harbor `expose.type: route`, jaeger
`jaeger.httproute`; an app's HTTPRoute is a manifest in the GitOps repository.

On a bare cluster (kind, k3s with its bundled Traefik off) the platform installs Envoy Gateway
(envoyproxy/gateway v1.9: Gateway API v1.6.1, Kubernetes 1.33-1.36, end of life 2027-02-14,
site/content/en/news/releases/matrix.md @ v1.9.0) and a GatewayClass for its controller
(`gateway.envoyproxy.io/gatewayclass-controller`, charts/gateway-helm/values.tmpl.yaml). The
Envoy proxy's Service type comes from an `EnvoyProxy` the Gateway names in
`spec.infrastructure.parametersRef` (site/content/en/latest/tasks/operations/
customize-envoyproxy.md @ v1.9.0): NodePort by default, which every cluster can serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource

GATEWAY_API = "gateway.networking.k8s.io"
ENVOY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
HTTP_LISTENER = "http"
# Envoy's route timeout is 15 s unless a route says otherwise (envoyproxy/gateway
# internal/gatewayapi/route.go @ v1.9.0 follows Envoy's `timeout` default); an image layer pushed
# to Harbor takes longer than that.
HARBOR_PUSH_TIMEOUT = "3600s"


def listener_name(key: str) -> str:
    """The HTTPS listener of a routed host: `https-<key>`, a valid section name."""
    name = "https-" + re.sub(r"[^a-z0-9-]", "-", key.lower())
    return name[:63].rstrip("-")


@dataclass(frozen=True)
class Route:
    """Where one host is served: its HTTPS listener on the platform's Gateway, or an Ingress."""

    mode: Literal["gateway", "ingress"]
    key: str  # names the listener and the TLS Secret
    host: str
    gateway: str = "platform"  # gateway mode: the Gateway's name and namespace
    namespace: str = ""
    ingress_class: str = ""  # ingress mode

    @property
    def listener(self) -> str:
        return listener_name(self.key)

    @property
    def tls_secret(self) -> str:
        return f"{self.key}-tls"

    def parent_refs(self) -> list[dict[str, str]]:
        return [
            {
                "group": GATEWAY_API,
                "kind": "Gateway",
                "name": self.gateway,
                "namespace": self.namespace,
                "sectionName": self.listener,
            }
        ]


@dataclass(frozen=True)
class Listener:
    """An HTTPS listener: its host, its TLS Secret, and the namespace routes may attach from."""

    route: Route
    route_namespace: str  # "" : the Gateway's own namespace


@dataclass(frozen=True)
class GatewayArgs:
    name: str
    class_name: str
    install: bool  # install Envoy Gateway and the GatewayClass
    service_type: str = "NodePort"
    listeners: tuple[Listener, ...] = ()
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def gateway_manifest(args: GatewayArgs, namespace: str, proxy: str | None) -> dict[str, Any]:
    listeners: list[dict[str, Any]] = [
        {
            "name": HTTP_LISTENER,
            "protocol": "HTTP",
            "port": 80,
            # cert-manager's HTTP-01 solver route lives in the platform's namespace.
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
    ]
    for listener in args.listeners:
        route = listener.route
        allowed: dict[str, Any] = {"from": "Same"}
        if listener.route_namespace and listener.route_namespace != namespace:
            allowed = {
                "from": "Selector",
                "selector": {"matchLabels": {"kubernetes.io/metadata.name": listener.route_namespace}},
            }
        listeners.append(
            {
                "name": route.listener,
                "protocol": "HTTPS",
                "port": 443,
                "hostname": route.host,
                "tls": {
                    "mode": "Terminate",
                    "certificateRefs": [{"kind": "Secret", "name": route.tls_secret}],
                },
                "allowedRoutes": {"namespaces": allowed},
            }
        )
    spec: dict[str, Any] = {"gatewayClassName": args.class_name, "listeners": listeners}
    if proxy is not None:
        spec["infrastructure"] = {
            "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": proxy}
        }
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "Gateway",
        # Accepted: the controller took the Gateway (Programmed waits for an address, which a
        # LoadBalancer Service on a cluster without a load balancer never gets).
        "metadata": {
            "name": args.name,
            "namespace": namespace,
            "annotations": {"pulumi.com/waitFor": "condition=Accepted"},
        },
        "spec": spec,
    }


def https_redirect_manifest(gateway: str, namespace: str) -> dict[str, Any]:
    """Every plain-HTTP request is redirected to HTTPS (RequestRedirect, Gateway API v1); the
    HTTP-01 solver's more specific path match wins over this catch-all."""
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"{gateway}-https-redirect", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": gateway, "sectionName": HTTP_LISTENER}],
            "rules": [
                {
                    "filters": [
                        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
                    ]
                }
            ],
        },
    }


def envoy_proxy_manifest(name: str, namespace: str, service_type: str) -> dict[str, Any]:
    """The Envoy proxy's Service type (envoyproxy/gateway api/v1alpha1/envoyproxy_types.go @
    v1.9.0: spec.provider.kubernetes.envoyService.type)."""
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyProxy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": {"type": "Kubernetes", "kubernetes": {"envoyService": {"type": service_type}}}},
    }


def gateway_class_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name, "annotations": {"pulumi.com/waitFor": "condition=Accepted"}},
        "spec": {"controllerName": ENVOY_CONTROLLER},
    }


def harbor_timeout_manifest(route_name: str, namespace: str) -> dict[str, Any]:
    """A longer request timeout for Harbor's route, so large image layers can be pushed
    (BackendTrafficPolicy spec.targetRefs and spec.timeout.http.requestTimeout, envoyproxy/gateway
    api/v1alpha1 policy_helpers.go, shared_types.go, timeout_types.go @ v1.9.0)."""
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": f"{route_name}-timeout", "namespace": namespace},
        "spec": {
            "targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": route_name}],
            "timeout": {"http": {"requestTimeout": HARBOR_PUSH_TIMEOUT}},
        },
    }


def route_certificate(
    name: str,
    route: Route,
    issuer: str,
    cluster: KubernetesCluster,
    depends_on: list[pulumi.Resource],
    parent: pulumi.Resource | None = None,
) -> pulumi.Resource:
    """The route's TLS Secret, written by a cert-manager Certificate the program waits for
    (components/platform/ingress.py `certificate_manifest`): the same in both modes, so no
    Ingress or Gateway needs cert-manager's shim annotations. It comes after the namespace and
    `depends_on` (the issuer, and the Gateway that answers HTTP-01)."""
    from components.platform.ingress import certificate_manifest

    manifest = certificate_manifest(route.key, cluster.args.namespace, route.host, route.tls_secret, issuer)
    opts = cluster.opts(parent=parent, depends_on=[cluster.namespace, *depends_on])
    return custom_resource(name, manifest, opts)


class PlatformGateway(pulumi.ComponentResource):
    """Envoy Gateway and its GatewayClass (when installed here), and the platform's Gateway."""

    gateway: pulumi.Resource
    ready: list[pulumi.Resource]  # what a route needs before it can attach

    def __init__(
        self,
        name: str,
        args: GatewayArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:Gateway", name, None, opts)
        namespace = cluster.args.namespace
        self.installed = args.install
        needs: list[pulumi.Resource] = [cluster.namespace, *args.depends_on]
        proxy = None
        self.release: pulumi.Resource | None = None
        if args.install:
            # The chart brings Envoy Gateway's CRDs and the Gateway API CRDs (`crds.enabled`,
            # charts/gateway-helm/values.tmpl.yaml @ v1.9.0).
            self.release = helm_release(
                f"{name}-envoy-gateway",
                "envoy-gateway",
                namespace,
                {},
                cluster.opts(parent=self, depends_on=needs),
            )
            proxy = f"{args.name}-proxy"
            envoy_proxy = custom_resource(
                f"{name}-envoy-proxy",
                envoy_proxy_manifest(proxy, namespace, args.service_type),
                cluster.opts(parent=self, depends_on=[self.release]),
            )
            gateway_class = custom_resource(
                f"{name}-class",
                gateway_class_manifest(args.class_name),
                cluster.opts(parent=self, depends_on=[self.release]),
            )
            needs = [*needs, envoy_proxy, gateway_class]
        self.gateway = custom_resource(
            f"{name}-gateway",
            gateway_manifest(args, namespace, proxy),
            cluster.opts(parent=self, depends_on=needs),
        )
        redirect = custom_resource(
            f"{name}-https-redirect",
            https_redirect_manifest(args.name, namespace),
            cluster.opts(parent=self, depends_on=[self.gateway]),
        )
        self.ready = [self.gateway, redirect]
        self.register_outputs({})
