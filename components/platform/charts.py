"""Every Helm chart of the platform: repository, chart name and pinned version, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    repo: str
    name: str
    version: str


# Each version is a tag in the chart's repository (named beside it); argo-cd, harbor and
# cloudnative-pg are pinned on purpose (their default values are checked in the tests).
# jaeger stays on the 3.x line: 4.x (Jaeger v2) renames the all-in-one keys used here.
CHARTS: dict[str, Chart] = {
    # argoproj/argo-helm tag argo-cd-10.1.1 (Argo CD v3.4.4)
    "argo-cd": Chart("https://argoproj.github.io/argo-helm", "argo-cd", "10.1.1"),
    # goharbor/harbor-helm tag v1.19.1 (Harbor 2.15.1)
    "harbor": Chart("https://helm.goharbor.io", "harbor", "1.19.1"),
    # cloudnative-pg/charts tag cloudnative-pg-v0.29.0 (operator 1.30.0)
    "cloudnative-pg": Chart("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.29.0"),
    # jaegertracing/helm-charts tag jaeger-3.4.1, the last of the 3.x line (Jaeger 1.53.0)
    "jaeger": Chart("https://jaegertracing.github.io/helm-charts", "jaeger", "3.4.1"),
    # open-telemetry/opentelemetry-helm-charts tag opentelemetry-collector-0.158.2, the newest of
    # the 0.158 line (0.158.3 was never published; appVersion 0.153.0)
    "opentelemetry-collector": Chart(
        "https://open-telemetry.github.io/opentelemetry-helm-charts", "opentelemetry-collector", "0.158.2"
    ),
    # kubernetes/ingress-nginx tag helm-chart-4.14.5, the newest of the 4.14 line (controller 1.14.5)
    "ingress-nginx": Chart("https://kubernetes.github.io/ingress-nginx", "ingress-nginx", "4.14.5"),
    # cert-manager/cert-manager tag v1.19.6, the newest of the v1.19 line (chart version = tag)
    "cert-manager": Chart("https://charts.jetstack.io", "cert-manager", "v1.19.6"),
}


def helm_release(
    name: str,
    chart: str,
    namespace: pulumi.Input[str],
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm release of a chart from the table, pinned, waiting for its resources."""
    c = CHARTS[chart]
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=c.name,
        version=c.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=c.repo),
        namespace=namespace,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        max_history=5,
        timeout=900,
        opts=opts,
    )


def ingress_annotations(cluster_issuer: str, **extra: str) -> dict[str, str]:
    """cert-manager's ingress-shim issues the TLS secret named in the ingress."""
    return {"cert-manager.io/cluster-issuer": cluster_issuer, **extra}
