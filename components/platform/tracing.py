"""Tracing: Jaeger v2 (one all-in-one Deployment, chart jaeger 4.x) with its UI behind the
platform's Gateway or an Ingress, and an OpenTelemetry Collector that receives OTLP from
everything else and forwards traces to Jaeger.

Jaeger v1 (chart 3.x) reached end of life on 2025-12-31. The v2 chart runs the binary with its
built-in all-in-one configuration when `userconfig` is unset: memory storage holding the newest
100,000 traces (`max_traces`, cmd/jaeger/internal/all-in-one.yaml @ v2.20.0), which is what a
small platform's tracing needs; the traces are gone when the pod restarts. The chart's one
Service is named by its fullname and carries OTLP gRPC 4317 and the UI 16686
(charts/jaeger/templates/jaeger/jaeger-service.yaml @ jaeger-4.11.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster
from components.platform.images import JAEGER_CONTRACT, OTEL_COLLECTOR_CONTRACT
from components.platform.routing import Route, route_certificate

JAEGER = "jaeger"
COLLECTOR = "otel-collector"


@dataclass(frozen=True)
class TracingArgs:
    host: str
    route: Route
    cluster_issuer: str = "homelab-ca"
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def jaeger_values(args: TracingArgs) -> dict[str, Any]:
    route = args.route
    jaeger: dict[str, Any] = {
        # The chart's appVersion is 2.19.0; only the newest minor gets fixes (SECURITY.md).
        "image": {"repository": JAEGER_CONTRACT.repository, "tag": JAEGER_CONTRACT.tag_name},
    }
    if route.mode == "gateway":
        # jaeger.httproute (templates/jaeger/jaeger-httproute.yaml @ jaeger-4.11.1): the
        # fullname Service on 16686; it fails to render without parentRefs.
        jaeger["httproute"] = {"enabled": True, "parentRefs": route.parent_refs(), "hostnames": [route.host]}
    else:
        # jaeger.ingress.{ingressClassName,hosts,tls} are read by templates/jaeger/jaeger-ingress.yaml
        jaeger["ingress"] = {
            "enabled": True,
            "ingressClassName": route.ingress_class,
            "pathType": "Prefix",
            "hosts": [route.host],
            "tls": [{"secretName": route.tls_secret, "hosts": [route.host]}],
        }
    return {"fullnameOverride": JAEGER, "jaeger": jaeger}


def collector_values(namespace: str) -> dict[str, Any]:
    image = OTEL_COLLECTOR_CONTRACT
    return {
        "fullnameOverride": COLLECTOR,
        "mode": "deployment",
        # The chart requires an image; the k8s distribution's binary is otelcol-k8s.
        "image": {"repository": image.repository, "tag": image.tag_name},
        "command": {"name": image.runs[0].value.lstrip("/")},
        "config": {
            # `otlp_grpc`: the name of the OTLP gRPC exporter since collector 0.144.0, where
            # `otlp` became a deprecated alias (open-telemetry/opentelemetry-collector CHANGELOG).
            "exporters": {
                "otlp_grpc": {"endpoint": f"{JAEGER}.{namespace}.svc:4317", "tls": {"insecure": True}}
            },
            "service": {
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["memory_limiter", "batch"],
                        "exporters": ["otlp_grpc"],
                    }
                }
            },
        },
    }


class Tracing(pulumi.ComponentResource):
    url: str
    otlp_endpoint: str

    def __init__(
        self,
        name: str,
        args: TracingArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:Tracing", name, None, opts)
        namespace = cluster.args.namespace
        self.certificate = route_certificate(
            f"{name}-certificate", args.route, args.cluster_issuer, cluster, args.depends_on, self
        )
        jaeger = helm_release(
            f"{name}-jaeger",
            "jaeger",
            namespace,
            jaeger_values(args),
            cluster.opts(parent=self, depends_on=[cluster.namespace, *args.depends_on]),
        )
        helm_release(
            f"{name}-collector",
            "opentelemetry-collector",
            namespace,
            collector_values(namespace),
            cluster.opts(parent=self, depends_on=[jaeger]),
        )
        self.url = f"https://{args.host}"
        self.otlp_endpoint = f"http://{COLLECTOR}.{namespace}.svc:4318"
        self.register_outputs({"url": self.url, "otlp_endpoint": self.otlp_endpoint})
