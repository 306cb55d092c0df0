"""Images the platform layer names itself (the charts pin the rest), each with its contract."""

from components.contracts import ImageContract

_RELEASES = "open-telemetry/opentelemetry-collector-releases"
_K8S_DIST = f"{_RELEASES} distributions/otelcol-k8s"

# open-telemetry/opentelemetry-collector-releases: tag v0.153.0, the appVersion of chart
# opentelemetry-collector-0.158.2 (its Chart.yaml); no v0.153.x patch release exists.
OTEL_COLLECTOR_CONTRACT = ImageContract(
    image="otel/opentelemetry-collector-k8s:0.153.0",
    user="10001:10001",
    shell=None,
    binaries=("/otelcol-k8s",),
    config_paths=(),  # the chart mounts its own config
    verified={
        "tag": f"{_RELEASES} tag v0.153.0; distributions/otelcol-k8s/.goreleaser.yaml image_templates "
        "otel/opentelemetry-collector-k8s:{{ .Version }}",
        "user": f"{_K8S_DIST}/Dockerfile @ v0.153.0: USER ${{USER_UID}}:${{USER_GID}} (10001)",
        "shell": f"{_K8S_DIST}/Dockerfile @ v0.153.0: FROM scratch, only the binary and CA bundle",
        "/otelcol-k8s": f"{_K8S_DIST}/Dockerfile @ v0.153.0: ENTRYPOINT",
        "components": f"{_K8S_DIST}/manifest.yaml @ v0.153.0: otlpreceiver, otlpexporter, "
        "batchprocessor, memorylimiterprocessor, healthcheckextension",
    },
)

CONTRACTS = {"otel-collector": OTEL_COLLECTOR_CONTRACT}
