"""Tracing: Jaeger (all-in-one) with its UI behind the ingress, and an OpenTelemetry Collector
that receives OTLP from everything else and forwards traces to Jaeger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.platform.charts import helm_release, ingress_annotations
from components.platform.cluster import KubernetesCluster
from components.platform.images import OTEL_COLLECTOR_CONTRACT

JAEGER = "jaeger"
COLLECTOR = "otel-collector"


@dataclass(frozen=True)
class TracingArgs:
    host: str
    ingress_class: str = "nginx"
    cluster_issuer: str = "homelab-ca"
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def jaeger_values(args: TracingArgs) -> dict[str, Any]:
    # allInOne.ingress.{ingressClassName,hosts,tls} are read by the chart's template
    # (jaegertracing/helm-charts charts/jaeger/templates/allinone-ing.yaml @ jaeger-3.4.1) though
    # its values.yaml lists only enabled/annotations/labels/pathType under allInOne.ingress.
    return {
        "fullnameOverride": JAEGER,
        "provisionDataStore": {"cassandra": False},
        "storage": {"type": "memory"},
        "agent": {"enabled": False},
        "collector": {"enabled": False},
        "query": {"enabled": False},
        "allInOne": {
            "enabled": True,
            "ingress": {
                "enabled": True,
                "ingressClassName": args.ingress_class,
                "annotations": ingress_annotations(args.cluster_issuer),
                "hosts": [args.host],
                "tls": [{"secretName": "jaeger-tls", "hosts": [args.host]}],
            },
        },
    }


def collector_values(namespace: str) -> dict[str, Any]:
    image = OTEL_COLLECTOR_CONTRACT
    return {
        "fullnameOverride": COLLECTOR,
        "mode": "deployment",
        # The chart requires an image; the k8s distribution's binary is otelcol-k8s.
        "image": {"repository": image.repository, "tag": image.tag_name},
        "command": {"name": image.runs[0].value.lstrip("/")},
        "config": {
            "exporters": {
                "otlp": {"endpoint": f"{JAEGER}-collector.{namespace}.svc:4317", "tls": {"insecure": True}}
            },
            "service": {
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["memory_limiter", "batch"],
                        "exporters": ["otlp"],
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
