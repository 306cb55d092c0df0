"""Routing of the platform's UIs (issue 22): the Gateway API by default, Envoy Gateway installed
on a bare cluster with a Service type that works on kind and k3s, an existing GatewayClass when
the cluster has one, plain Ingresses of an existing class otherwise; ingress-nginx refused; every
Gateway API and Envoy Gateway object valid against its published schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from custom_resources import schema_errors
from harness import (
    ROOT,
    RecordingMocks,
    chart_keys,
    example_run,
    example_secrets,
    load_stack_file,
    plain_strings,
    run_program,
)

from stacks.checks import validate
from stacks.config import ConfigError

EXAMPLE = ROOT / "examples" / "platform.yaml"
RELEASE = "kubernetes:helm.sh/v3:Release"
GROUPS = ("kubernetes:gateway.networking.k8s.io/", "kubernetes:gateway.envoyproxy.io/")
NAMESPACE = "idp-system"


def config() -> dict[str, Any]:
    return copy.deepcopy(load_stack_file(EXAMPLE))


def run(tmp_path, change) -> RecordingMocks:  # type: ignore[no-untyped-def]
    c = config()
    change(c["platform"])
    return run_program(c, example_secrets(c), key_dir=str(tmp_path))


def manifest(r: Any) -> dict[str, Any]:
    return {k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in r.inputs}


def gateway_objects(mocks: RecordingMocks) -> list[Any]:
    return [r for r in mocks.resources if r.type.startswith(GROUPS)]


@pytest.fixture(scope="module")
def platform() -> RecordingMocks:
    return example_run(EXAMPLE)


def test_a_bare_cluster_gets_envoy_gateway_its_class_and_a_nodeport_proxy(platform):
    release = platform.named("gateway-envoy-gateway", RELEASE)
    assert release.inputs["chart"] == "oci://docker.io/envoyproxy/gateway-helm"
    kinds = sorted(r.inputs["kind"] for r in gateway_objects(platform))
    assert kinds == ["BackendTrafficPolicy", "EnvoyProxy", "Gateway", "GatewayClass", "HTTPRoute"]
    (klass,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "GatewayClass"]
    assert klass.input("spec.controllerName") == "gateway.envoyproxy.io/gatewayclass-controller"
    (proxy,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "EnvoyProxy"]
    # NodePort: kind has no load balancer, and an address that never comes stalls the first up.
    assert proxy.input("spec.provider.kubernetes.envoyService.type") == "NodePort"
    (gateway,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "Gateway"]
    assert gateway.input("spec.gatewayClassName") == klass.input("metadata.name") == "homelab"
    assert gateway.input("spec.infrastructure.parametersRef.name") == proxy.input("metadata.name")
    assert release.urn in klass.dependencies and klass.urn in gateway.dependencies
    names = [entry["name"] for entry in gateway.inputs["spec"]["listeners"]]
    assert names == ["http", "https-argocd", "https-harbor", "https-tracing"]
    # Plain HTTP is redirected to HTTPS.
    (redirect,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "HTTPRoute"]
    (rule,) = redirect.inputs["spec"]["rules"]
    assert rule["filters"][0]["requestRedirect"] == {"scheme": "https", "statusCode": 301}
    # Harbor's uploads outlast Envoy's 15 s default route timeout.
    (policy,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "BackendTrafficPolicy"]
    assert policy.input("spec.targetRefs")[0]["name"] == "harbor-route"
    assert policy.input("spec.timeout.http.requestTimeout") == "3600s"


def test_every_gateway_object_is_valid_against_its_published_schema(platform):
    objects = gateway_objects(platform)
    assert schema_errors([manifest(r) for r in objects]) == [None] * len(objects)


def test_the_schema_check_catches_a_wrong_value(platform):
    (proxy,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "EnvoyProxy"]
    bad = copy.deepcopy(manifest(proxy))
    bad["spec"]["provider"]["kubernetes"]["envoyService"]["type"] = "NodePorts"
    (gateway,) = [r for r in gateway_objects(platform) if r.inputs["kind"] == "Gateway"]
    worse = copy.deepcopy(manifest(gateway))
    worse["spec"]["listeners"][1]["port"] = "443"
    errors = schema_errors([bad, worse])
    assert errors[0] is not None and "allowed values" in errors[0]
    assert errors[1] is not None and "integer" in errors[1]


def test_nothing_the_platform_registers_names_ingress_nginx(platform):
    for r in platform.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert "nginx.ingress.kubernetes.io" not in text and "ingress-nginx" not in text, (r.name, path)
    assert not [r for r in platform.of_type(RELEASE) if "ingress-nginx" in str(r.inputs["chart"])]


def test_an_existing_gateway_class_is_used_as_it_is(tmp_path):
    def existing(p: dict[str, Any]) -> None:
        p["routing"] = {"mode": "gateway", "gateway": {"install": False, "class-name": "traefik"}}

    mocks = run(tmp_path, existing)
    assert not [r for r in mocks.of_type(RELEASE) if "gateway-helm" in str(r.inputs["chart"])]
    kinds = sorted(r.inputs["kind"] for r in gateway_objects(mocks))
    assert kinds == ["Gateway", "HTTPRoute"], "no class, proxy or Envoy policy of ours"
    (gateway,) = [r for r in gateway_objects(mocks) if r.inputs["kind"] == "Gateway"]
    assert gateway.input("spec.gatewayClassName") == "traefik"
    assert "infrastructure" not in gateway.inputs["spec"]


def platform_release_files() -> Any:
    return example_run(EXAMPLE).named("harbor", RELEASE).inputs.get("valueYamlFiles")


def test_ingress_mode_uses_the_class_and_no_controller_annotation(tmp_path):
    def ingress(p: dict[str, Any]) -> None:
        p["routing"] = {"mode": "ingress"}
        p["ingress-class"] = "traefik"

    mocks = run(tmp_path, ingress)
    assert gateway_objects(mocks) == []
    argocd = mocks.named("argocd", RELEASE).inputs["values"]["server"]
    assert argocd["ingress"]["ingressClassName"] == "traefik" and "httproute" not in argocd
    assert argocd["ingress"]["extraTls"] == [
        {"hosts": ["argocd.idp.lab.example.com"], "secretName": "argocd-tls"}
    ]
    release = mocks.named("harbor", RELEASE)
    harbor = release.inputs["values"]["expose"]
    assert harbor["type"] == "ingress" and harbor["ingress"]["className"] == "traefik"
    # The chart's own default annotations (ingress-nginx's) are deleted with a values file of
    # nulls: `values` cannot carry a null past the SDK (a real helm template showed them).
    (asset,) = release.inputs["valueYamlFiles"]
    deleted = yaml.safe_load(asset.text)["expose"]["ingress"]["annotations"]
    defaults = chart_keys("harbor")["expose"]["ingress"]["annotations"]
    assert set(deleted) == set(defaults) and set(deleted.values()) == {None}
    # gateway mode deletes nothing
    assert platform_release_files() is None
    jaeger = mocks.named("tracing-jaeger", RELEASE).inputs["values"]["jaeger"]
    assert jaeger["ingress"]["ingressClassName"] == "traefik" and "httproute" not in jaeger
    for r in mocks.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert "nginx.ingress.kubernetes.io" not in text, (r.name, path)
    # ACME's HTTP-01 would answer through an Ingress of that class.
    issuer = mocks.of_type("kubernetes:cert-manager.io/v1:ClusterIssuer")[0]
    assert "acme" not in issuer.inputs["spec"]  # the example signs with its private CA


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda p: p["components"].update({"ingress-nginx": {"enabled": True}}),
            "platform.components.ingress-nginx.enabled",
            "ingress-nginx is retired",
        ),
        (
            lambda p: p.update({"routing": {"mode": "ingress"}}),
            "platform.ingress-class",
            "needs the IngressClass",
        ),
        (
            lambda p: p.update({"ingress-class": "nginx"}),
            "platform.ingress-class",
            "only used with routing.mode",
        ),
    ],
    ids=["ingress-nginx", "ingress-without-class", "class-in-gateway-mode"],
)
def test_routing_mistakes_are_clear_errors(change, path, words):
    c = config()
    change(c["platform"])
    with pytest.raises(ConfigError) as raised:
        validate(c)
    [(where, message)] = [(p, m) for p, m in raised.value.problems if p == path]
    assert words in message


def test_a_bad_service_type_is_named_by_its_key():
    c = config()
    c["platform"]["routing"]["gateway"]["service-type"] = "Ingress"
    with pytest.raises(ConfigError) as raised:
        validate(c)
    assert [p for p, _ in raised.value.problems] == ["platform.routing.gateway.service-type"]
