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

CONTRACTS = {"otel-collector": OTEL_COLLECTOR_CONTRACT}
