"""Every Helm chart of the platform: repository, chart name and pinned version, in one table;
the Kubernetes version the manifests target; and the support window of each (SUPPORT)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pulumi

from components.contracts import Seen
from components.lifecycle import Product, Window

if TYPE_CHECKING:
    import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    repo: str
    name: str
    version: str


# Each version is a tag in the chart's repository (named beside it); argo-cd, harbor and
# cloudnative-pg are pinned on purpose (their default values are checked in the tests).
# jaeger 3.x installed Jaeger v1, which ended 2025-12-31 (SUPPORT below); 4.x installs Jaeger v2.
CHARTS: dict[str, Chart] = {
    # argoproj/argo-helm tag argo-cd-10.1.1 (Argo CD v3.4.4)
    "argo-cd": Chart("https://argoproj.github.io/argo-helm", "argo-cd", "10.1.1"),
    # goharbor/harbor-helm tag v1.19.1 (Harbor 2.15.1)
    "harbor": Chart("https://helm.goharbor.io", "harbor", "1.19.1"),
    # cloudnative-pg/charts tag cloudnative-pg-v0.29.0 (operator 1.30.0)
    "cloudnative-pg": Chart("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.29.0"),
    # jaegertracing/helm-charts tag jaeger-4.11.1, the newest 4.x chart (Jaeger v2, appVersion
    # 2.19.0; the platform names the 2.20.0 image itself: components/platform/images.py)
    "jaeger": Chart("https://jaegertracing.github.io/helm-charts", "jaeger", "4.11.1"),
    # open-telemetry/opentelemetry-helm-charts tag opentelemetry-collector-0.158.2, the newest of
    # the 0.158 line (0.158.3 was never published; appVersion 0.153.0)
    "opentelemetry-collector": Chart(
        "https://open-telemetry.github.io/opentelemetry-helm-charts", "opentelemetry-collector", "0.158.2"
    ),
    # envoyproxy/gateway tag v1.9.0 (the chart's version is the release's; published only as an
    # OCI chart: site/content/en/latest/install/install-helm.md @ v1.9.0). Replaces ingress-nginx,
    # retired in March 2026 (components/platform/routing.py).
    "envoy-gateway": Chart("oci://docker.io/envoyproxy/gateway-helm", "gateway-helm", "v1.9.0"),
    # cert-manager/cert-manager tag v1.21.1, the newest of the v1.21 line (chart version = tag);
    # 1.19 ended 2026-07-08 and 1.20 ends with the release of 1.22 (see SUPPORT). From the OCI
    # registry the project recommends: "We recommend using the OCI Helm chart for any recent
    # version of cert-manager" (cert-manager/website content/docs/installation/helm.md @
    # 776e5dba5651; the https repository is updated hours later).
    "cert-manager": Chart("oci://quay.io/jetstack/charts/cert-manager", "cert-manager", "v1.21.1"),
}

# The Kubernetes minor the manifests are validated for (the config's default): one that every
# pinned chart and operator supports. kubernetes/website data/releases/releases.yaml @
# df272d38ff6c: 1.35 ends 2027-02-28. cloudnative-pg 1.30 supports 1.34-1.36
# (docs/src/supported_releases.md @ 0c0a73677e92), Argo CD 3.4 is tested on 1.32-1.35
# (docs/operator-manual/tested-kubernetes-versions.md), cert-manager 1.21 supports 1.33-1.36.
KUBERNETES_VERSION = "1.35"


def helm_release(
    name: str,
    chart: str,
    namespace: pulumi.Input[str],
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    deleted: str | None = None,
) -> k8s.helm.v3.Release:
    """A Helm release of a chart from the table, pinned, waiting for its resources.

    `deleted` is a YAML values file whose `null`s delete chart defaults: the SDKs drop a None
    in `values` before it reaches the engine, a values file reaches Helm as written
    (pulumi-kubernetes v4.30 and later, 4.34.2 pinned: "Delete a Chart Default Value",
    pulumi/registry#10773, pulumi/pulumi-kubernetes#4306)."""
    import pulumi_kubernetes as k8s

    c = CHARTS[chart]
    # An OCI chart is named by its reference; a repository chart by name and repository.
    oci = c.repo.startswith("oci://")
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=c.repo if oci else c.name,
        version=c.version,
        repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=c.repo),
        namespace=namespace,
        values=values,
        value_yaml_files=[pulumi.StringAsset(deleted)] if deleted else None,
        atomic=True,
        cleanup_on_fail=True,
        max_history=5,
        timeout=900,
        opts=opts,
    )


def ingress_annotations(cluster_issuer: str, **extra: str) -> dict[str, str]:
    """cert-manager's ingress-shim issues the TLS secret named in the ingress."""
    return {"cert-manager.io/cluster-issuer": cluster_issuer, **extra}


# ---- support windows (issue 21) ---------------------------------------------------------------

_K8S = Seen("kubernetes/website", "data/releases/releases.yaml", "df272d38ff6c")
_CERT_MANAGER = Seen("cert-manager/website", "content/docs/releases/README.md", "c17bb3c8530d")
_OTEL = Seen("open-telemetry/opentelemetry-collector", "VERSIONING.md", "71f0462d5460")
_OTEL_POLICY = (
    "No support window for 0.x releases: the long-term rules apply 'starting on v1' (VERSIONING.md); "
    "a release every two weeks."
)
_CNPG = Seen("cloudnative-pg/cloudnative-pg", "docs/src/supported_releases.md", "0c0a73677e92")


SUPPORT: dict[str, Product] = {
    "kubernetes": Product(
        name="kubernetes",
        policy="Each minor is supported about fourteen months: twelve standard, then two of "
        "maintenance mode, ending on the 28th (kubernetes/website content/en/releases/"
        "patch-releases.md @ 00501bc51cd2).",
        windows=(
            Window("1.33", date(2026, 6, 28), _K8S, "1.33.10"),
            Window("1.34", date(2026, 10, 27), _K8S, "1.34.9"),
            Window("1.35", date(2027, 2, 28), _K8S, "1.35.9"),
            Window("1.36", date(2027, 6, 28), _K8S, "1.36.4"),
            Window("1.37", date(2027, 10, 28), _K8S, "1.37.1"),
        ),
        names=("kubernetes",),
    ),
    "argo-cd": Product(
        name="argo-cd",
        policy="Argo CD supports its three most recent minor versions (argoproj/argo-cd "
        "SECURITY.md); a minor is released each quarter. Chart 10.1 installs Argo CD 3.4.",
        windows=(
            Window(
                "10.1",
                None,
                Seen("argoproj/argo-cd", "SECURITY.md", "abe9a37fbea7"),
                "10.1.1",
                "Argo CD 3.4: no date published; supported until 3.7 is released (about February "
                "2027 by the cadence)",
            ),
        ),
        names=("chart:argo-cd",),
    ),
    "harbor": Product(
        name="harbor",
        policy="Harbor maintains its three most recent minor releases, about nine months each "
        "(goharbor/harbor RELEASES.md @ c83f2d114f5b). Chart 1.19 installs Harbor 2.15.",
        windows=(
            Window(
                "1.19",
                None,
                Seen("goharbor/harbor", "RELEASES.md", "c83f2d114f5b"),
                "1.19.1",
                "Harbor 2.15: no date published; one of the three newest minors (no v2.16 tag seen)",
            ),
        ),
        names=("chart:harbor",),
    ),
    "cloudnative-pg": Product(
        name="cloudnative-pg",
        policy="Each minor is supported until three months after the next minor's release "
        "(a minor every three months). Chart 0.29 installs operator 1.30.",
        windows=(
            Window(
                "0.29",
                date(2026, 12, 31),
                _CNPG,
                "0.29.0",
                "operator 1.30: end of life '~ Dec 2026' (the month's last day)",
            ),
        ),
        names=("chart:cloudnative-pg",),
    ),
    "jaeger": Product(
        name="jaeger",
        policy="Jaeger v1 reached end of life on 2025-12-31; v2 gives 'community support only for "
        "last minor version' (jaegertracing/jaeger SECURITY.md @ 8498073ff809). Chart 3.x installs "
        "Jaeger v1, chart 4.x Jaeger v2 (marked experimental by its README).",
        windows=(
            Window(
                "3.4",
                date(2025, 12, 31),
                Seen("jaegertracing/jaeger", "cmd/internal/flags/service.go", "v1.76.0"),
                "3.4.1",
                "Jaeger v1: 'December 31st, 2025'",
            ),
            Window(
                "4.11",
                None,
                Seen("jaegertracing/jaeger", "SECURITY.md", "8498073ff809"),
                "4.11.1",
                "no date published: only Jaeger's newest minor is supported (2.20, the image pinned)",
            ),
        ),
        names=("chart:jaeger",),
    ),
    "jaeger-image": Product(
        name="jaeger-image",
        policy="Only the newest minor of Jaeger v2 is supported (jaegertracing/jaeger SECURITY.md).",
        windows=(
            Window(
                "2.20",
                None,
                Seen("jaegertracing/jaeger", "SECURITY.md", "8498073ff809"),
                "2.20.0",
                "no date published: supported until 2.21 is released",
            ),
        ),
        names=("jaegertracing/jaeger",),
    ),
    "opentelemetry-collector": Product(
        name="opentelemetry-collector",
        policy=_OTEL_POLICY,
        windows=(Window("0.158", None, _OTEL, "0.158.2", "no end published"),),
        names=("chart:opentelemetry-collector",),
    ),
    "otel-collector": Product(
        name="otel-collector",
        policy=_OTEL_POLICY,
        windows=(Window("0.153", None, _OTEL, "0.153.0", "no end published"),),
        names=("otel/opentelemetry-collector-k8s",),
    ),
    "ingress-nginx": Product(
        name="ingress-nginx",
        policy="Retired: 'Best-effort maintenance will continue until March 2026', then no "
        "releases or security fixes (kubernetes/ingress-nginx README.md @ dbb11b92ddb7).",
        windows=(
            Window(
                "4.14",
                date(2026, 3, 31),
                Seen("kubernetes/ingress-nginx", "README.md", "dbb11b92ddb7"),
                "4.14.5",
                "retired: the last releases were 2026-03-19/20",
            ),
        ),
        names=("chart:ingress-nginx",),
    ),
    "envoy-gateway": Product(
        name="envoy-gateway",
        policy="A minor release every quarter, each supported for about six months "
        "(envoyproxy/gateway site/content/en/news/releases/matrix.md, its End of Life column).",
        windows=(
            Window(
                "1.9",
                date(2027, 2, 14),
                Seen("envoyproxy/gateway", "site/content/en/news/releases/matrix.md", "v1.9.0"),
                "v1.9.0",
                "Gateway API v1.6.1; Kubernetes 1.33-1.36",
            ),
        ),
        names=("chart:gateway-helm",),
    ),
    "cert-manager": Product(
        name="cert-manager",
        policy="Each release is supported at least until the release of the second one after it; "
        "only the last patch of a branch is supported.",
        windows=(
            Window("1.19", date(2026, 7, 8), _CERT_MANAGER, "v1.19.6"),
            Window(
                "1.20",
                None,
                _CERT_MANAGER,
                "v1.20.3",
                "no date published: until the release of 1.22 (planned about November 2026)",
            ),
            Window("1.21", None, _CERT_MANAGER, "v1.21.1", "no date published: until the release of 1.23"),
        ),
        names=("chart:cert-manager",),
    ),
}
