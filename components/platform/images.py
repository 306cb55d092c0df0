"""Images the platform layer names itself (the charts pin the rest), each with its contract."""

from components.contracts import ClusterImageContract, Fact, Seen, User

_RELEASES = "open-telemetry/opentelemetry-collector-releases"
_K8S_DOCKERFILE = Seen(_RELEASES, "distributions/otelcol-k8s/Dockerfile", "v0.153.0")

# Tag v0.153.0: the appVersion of chart opentelemetry-collector-0.158.2 (its Chart.yaml); no
# v0.153.x patch release exists. goreleaser publishes otel/opentelemetry-collector-k8s:<version>.
OTEL_COLLECTOR_CONTRACT = ClusterImageContract(
    image="otel/opentelemetry-collector-k8s:0.153.0",
    tag=Seen(_RELEASES, "distributions/otelcol-k8s/.goreleaser.yaml", "v0.153.0"),
    # ARG USER_UID=10001 ... USER ${USER_UID}:${USER_GID}
    user=Fact(User("10001", 10001), _K8S_DOCKERFILE),
    # FROM scratch: the binary and a CA bundle only
    shell=Fact(False, _K8S_DOCKERFILE),
    # ENTRYPOINT ["/otelcol-k8s"]; its components (manifest.yaml): otlpreceiver, otlpexporter,
    # batchprocessor, memorylimiterprocessor, healthcheckextension
    runs=(Fact("/otelcol-k8s", _K8S_DOCKERFILE),),
)

_JAEGER = "jaegertracing/jaeger"
_JAEGER_DOCKERFILE = Seen(_JAEGER, "cmd/jaeger/Dockerfile", "v2.20.0")

# Tag v2.20.0, the newest Jaeger release seen (2026-07-19): the project supports only its last
# minor (SECURITY.md @ 8498073ff809), and the jaeger 4.11.1 chart's appVersion is 2.19.0, so the
# platform names the image itself. scripts/utils/compute-tags.sh tags a release vM.N.P as M.N.P
# (build-all-in-one-image.sh pushes the `jaeger` binary's image to Docker Hub and quay.io).
JAEGER_CONTRACT = ClusterImageContract(
    image="jaegertracing/jaeger:2.20.0",
    tag=Seen(_JAEGER, "scripts/utils/compute-tags.sh", "v2.20.0"),
    # ARG USER_UID=10001 ... USER ${USER_UID}; the chart's podSecurityContext runs it as 10001 too
    user=Fact(User("10001", 10001), _JAEGER_DOCKERFILE),
    # FROM $base_image: scripts/build/docker/base/Dockerfile, an Alpine base
    shell=Fact(True, Seen(_JAEGER, "scripts/build/docker/base/Dockerfile", "v2.20.0")),
    # ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]; without --config, the built-in all-in-one config
    runs=(Fact("/cmd/jaeger/jaeger-linux", _JAEGER_DOCKERFILE),),
)

CONTRACTS = {"otel-collector": OTEL_COLLECTOR_CONTRACT, "jaeger": JAEGER_CONTRACT}
