"""The platform layer's Helm charts: pinned from the one table, on the cluster's provider, with
the values that matter (secrets kept secret, TLS everywhere), every value a key the chart
knows, explicit dependencies, and components that can be switched off."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from harness import (
    ROOT,
    _fake,
    chart_keys,
    example_run,
    example_secrets,
    load_stack_file,
    plain_strings,
    run_program,
)

from components.platform.charts import CHARTS

RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
HARBOR_PROVIDER = "pulumi:providers:harbor"
NAMESPACE = "idp-system"
DOMAIN = "idp.lab.example.com"

# Release name -> key of the CHARTS table.
RELEASES = {
    "argocd": "argo-cd",
    "harbor": "harbor",
    "postgres-operator": "cloudnative-pg",
    "tracing-jaeger": "jaeger",
    "tracing-collector": "opentelemetry-collector",
    "gateway-envoy-gateway": "envoy-gateway",
    "cert-manager": "cert-manager",
}
PINNED = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")


def platform_config() -> dict[str, Any]:
    return load_stack_file(ROOT / "examples" / "platform.yaml")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return example_run(ROOT / "examples" / "platform.yaml")


def release(mocks, name: str):
    return mocks.named(name, RELEASE)


def depends_on(mocks, resource, target) -> bool:
    """Whether `resource` waits for `target`, directly or through its other dependencies."""
    by_urn = {r.urn: r for r in mocks.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn == target.urn:
            return True
        if urn not in seen and urn in by_urn:
            seen.add(urn)
            todo.extend(by_urn[urn].dependencies)
    return False


# ---- 1. charts, versions, provider, namespace ---------------------------------------


def test_every_release_is_registered_once_and_every_chart_is_used(platform):
    assert sorted(r.name for r in platform.of_type(RELEASE)) == sorted(RELEASES)
    assert set(RELEASES.values()) == set(CHARTS)


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_is_the_pinned_chart_of_the_table_on_the_cluster(platform, name):
    chart = CHARTS[RELEASES[name]]
    r = release(platform, name)
    if chart.repo.startswith("oci://"):  # an OCI chart is named by its reference alone
        assert r.inputs["chart"] == chart.repo and "repositoryOpts" not in r.inputs
    else:
        assert r.inputs["chart"] == chart.name
        assert r.inputs["repositoryOpts"]["repo"] == chart.repo
    assert r.inputs["version"] == chart.version
    # An exact version: no range, no wildcard, no `latest`.
    assert PINNED.match(r.inputs["version"]), r.inputs["version"]
    assert r.inputs["namespace"] == NAMESPACE
    provider = platform.named("platform-k8s", K8S_PROVIDER)
    assert r.provider is not None and r.provider.startswith(provider.urn + "::"), r.provider


def test_chart_table_versions_are_all_exact():
    for key, chart in CHARTS.items():
        assert PINNED.match(chart.version), f"{key}: {chart.version!r} is not an exact version"
        assert chart.repo.startswith(("https://", "oci://")), f"{key}: {chart.repo}"
        if chart.repo.startswith("oci://"):
            assert chart.repo.endswith("/" + chart.name), f"{key}: the reference ends with the chart"


# ---- 2. values that matter ----------------------------------------------------------


def test_argocd_admin_password_is_the_bcrypt_hash_and_values_are_secret(platform):
    r = release(platform, "argocd")
    assert "values" in r.secret_paths
    password = platform.named("argocd-admin-password", "random:index/randomPassword:RandomPassword")
    secret = r.inputs["values"]["configs"]["secret"]
    assert secret["argocdServerAdminPassword"] == "$2a$10$" + _fake("bcrypt", password.name)
    # The webhook secret is set, and is the generated one.
    assert secret["githubSecret"] == _fake("password", "argocd-webhook-secret")
    # Neither appears in any input outside a secret marker.
    for res in platform.resources:
        for path, text in plain_strings(res.raw_inputs):
            assert secret["argocdServerAdminPassword"] not in text, (res.name, path)
            assert secret["githubSecret"] not in text, (res.name, path)


GATEWAY_T = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
CERTIFICATE_T = "kubernetes:cert-manager.io/v1:Certificate"


def listener(platform, host: str) -> dict[str, Any]:
    (gateway,) = platform.of_type(GATEWAY_T)
    (found,) = [entry for entry in gateway.inputs["spec"]["listeners"] if entry.get("hostname") == host]
    return found


def test_argocd_is_routed_through_its_gateway_listener_with_tls_ending_there(platform):
    """Issue 22: no ingress-nginx; the chart's HTTPRoute on the Gateway's Argo CD listener. TLS
    ends at the Gateway, so the server serves plain HTTP inside the cluster (server.insecure)."""
    values = release(platform, "argocd").inputs["values"]
    assert "ingress" not in values["server"]
    route = values["server"]["httproute"]
    host = f"argocd.{DOMAIN}"
    assert route["enabled"] is True and route["hostnames"] == [host]
    (parent,) = route["parentRefs"]
    entry = listener(platform, host)
    assert parent["sectionName"] == entry["name"] and parent["namespace"] == NAMESPACE
    assert values["configs"]["params"] == {"server.insecure": True}
    certificate = platform.named("argocd-certificate", CERTIFICATE_T)
    assert certificate.input("spec.dnsNames") == [host]
    assert entry["tls"]["certificateRefs"] == [
        {"kind": "Secret", "name": certificate.input("spec.secretName")}
    ]
    for path, _ in plain_strings(values):
        assert "nginx" not in path, path


def test_argocd_dex_github_connector_reads_the_client_secret_from_argocd_secret(platform):
    values = release(platform, "argocd").inputs["values"]
    assert values["dex"]["enabled"] is True
    dex = yaml.safe_load(values["configs"]["cm"]["dex.config"])
    (connector,) = dex["connectors"]
    assert connector["type"] == "github"
    assert connector["config"]["clientID"] == "Iv1.0123456789abcdef"
    assert connector["config"]["clientSecret"] == "$dex.github.clientSecret"
    assert connector["config"]["orgs"] == [{"name": "acme-lab"}]
    client_secret = example_secrets(platform_config())["github-oauth-secret"]
    assert values["configs"]["secret"]["extra"]["dex.github.clientSecret"] == client_secret
    # The value itself is only ever inside a secret input.
    for res in platform.resources:
        for path, text in plain_strings(res.raw_inputs):
            assert client_secret not in text, (res.name, path)


def test_harbor_values(platform):
    values = release(platform, "harbor").inputs["values"]
    assert values["persistence"]["enabled"] is True
    assert values["persistence"]["persistentVolumeClaim"]["registry"]["size"] == "100Gi"
    assert values["trivy"]["enabled"] is True
    # The chart's HTTPRoute (expose.type route) on the Gateway's Harbor listener.
    assert values["expose"]["type"] == "route"
    assert values["expose"]["route"]["hosts"] == [f"harbor.{DOMAIN}"]
    (parent,) = values["expose"]["route"]["parentRefs"]
    assert parent["sectionName"] == listener(platform, f"harbor.{DOMAIN}")["name"]
    assert "ingress" not in values["expose"]
    # Harbor's certificate is a Certificate of its own (Pulumi waits for it), not a shim's.
    certificate = platform.named("harbor-certificate", "kubernetes:cert-manager.io/v1:Certificate")
    assert certificate.input("spec.issuerRef") == {
        "name": "homelab-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert certificate.input("spec.dnsNames") == [f"harbor.{DOMAIN}"]
    assert values["expose"]["tls"]["secret"]["secretName"] == certificate.input("spec.secretName")
    assert values["expose"]["tls"]["enabled"] is True
    assert values["externalURL"] == f"https://harbor.{DOMAIN}"


def test_harbor_admin_password_and_secret_key_come_from_kubernetes_secrets(platform):
    values = release(platform, "harbor").inputs["values"]
    assert "harborAdminPassword" not in values
    assert "secretKey" not in values

    admin = platform.named("harbor-harbor-admin", "kubernetes:core/v1:Secret")
    assert values["existingSecretAdminPassword"] == admin.inputs["metadata"]["name"]
    key = values.get("existingSecretAdminPasswordKey", "HARBOR_ADMIN_PASSWORD")
    assert admin.inputs["stringData"][key] == _fake("password", "harbor-admin-password")
    assert "stringData" in admin.secret_paths
    assert admin.inputs["metadata"]["namespace"] == NAMESPACE

    secret_key = platform.named("harbor-harbor-secret-key", "kubernetes:core/v1:Secret")
    assert values["existingSecretSecretKey"] == secret_key.inputs["metadata"]["name"]
    # The chart reads the key `secretKey` of that Secret; Harbor wants exactly 16 characters.
    assert secret_key.inputs["stringData"]["secretKey"] == _fake("password", "harbor-secret-key")
    assert "stringData" in secret_key.secret_paths
    generator = platform.named("harbor-secret-key", "random:index/randomPassword:RandomPassword")
    assert generator.inputs["length"] == 16

    # The release waits for both Secrets.
    r = release(platform, "harbor")
    assert admin.urn in r.dependencies and secret_key.urn in r.dependencies


def test_jaeger_v2_ui_is_routed_with_tls_and_the_collector_sends_to_its_service(platform):
    values = release(platform, "tracing-jaeger").inputs["values"]
    host = f"tracing.{DOMAIN}"
    route = values["jaeger"]["httproute"]
    assert route["enabled"] is True and route["hostnames"] == [host]
    assert route["parentRefs"][0]["sectionName"] == listener(platform, host)["name"]
    # Jaeger v2: the image the contract pins, no v1 keys (allInOne, agent, collector, query).
    assert values["jaeger"]["image"] == {"repository": "jaegertracing/jaeger", "tag": "2.20.0"}
    assert set(values) == {"fullnameOverride", "jaeger"}
    # The v2 chart has one Service, named by the fullname (OTLP gRPC on 4317); `otlp_grpc` is the
    # exporter's current name (`otlp` is a deprecated alias since collector 0.144.0).
    config = release(platform, "tracing-collector").inputs["values"]["config"]
    assert config["exporters"] == {
        "otlp_grpc": {
            "endpoint": f"{values['fullnameOverride']}.{NAMESPACE}.svc:4317",
            "tls": {"insecure": True},
        }
    }
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc"]


def test_cnpg_cluster(platform):
    cluster = platform.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster")
    spec = cluster.inputs["spec"]
    assert spec["instances"] == 2
    assert spec["storage"]["size"] == "20Gi"
    secret = platform.named("postgres-owner", "kubernetes:core/v1:Secret")
    assert secret.inputs["type"] == "kubernetes.io/basic-auth"
    assert "stringData" in secret.secret_paths
    assert spec["bootstrap"]["initdb"]["secret"]["name"] == secret.inputs["metadata"]["name"]
    assert spec["bootstrap"]["initdb"]["owner"] == secret.inputs["stringData"]["username"]
    assert cluster.inputs["metadata"]["namespace"] == NAMESPACE
    assert cluster.retain_on_delete is True


def test_harbor_api_provider_uses_the_generated_admin_password_as_a_secret(platform):
    provider = platform.named("harbor-api", HARBOR_PROVIDER)
    assert provider.inputs["url"] == f"https://harbor.{DOMAIN}"
    assert provider.inputs["username"] == "admin"
    assert provider.inputs["password"] == _fake("password", "harbor-admin-password")
    assert "password" in provider.secret_paths


def test_harbor_api_provider_verifies_the_certificate(platform):
    provider = platform.named("harbor-api", HARBOR_PROVIDER)
    assert provider.inputs.get("insecure") in (False, "false")


def test_harbor_certificate_check_can_be_turned_off_explicitly(tmp_path):
    config = load_stack_file(ROOT / "examples" / "platform.yaml")
    config["platform"]["components"]["harbor"]["verify-tls"] = False
    mocks = run_program(config, example_secrets(config), key_dir=str(tmp_path))
    assert mocks.named("harbor-api", HARBOR_PROVIDER).inputs.get("insecure") in (True, "true")


# ---- 3. every value we set is a key the chart knows ---------------------------------

# Maps whose keys the chart passes through as they are: the map itself must be a known key,
# what is inside is not checked.
FREE_FORM_LEAVES = {
    # Kubernetes metadata maps, free-form in every chart.
    "annotations",
    "labels",
}
FREE_FORM: dict[str, set[tuple[str, ...]]] = {
    "argo-cd": {
        ("configs", "cm"),  # "Any values you put under .configs.cm are passed to argocd-cm"
        ("configs", "secret", "extra"),  # "additional secrets to be added to argocd-secret"
    },
    "harbor": set(),
    "cloudnative-pg": set(),
}


def value_paths(
    values: dict[str, Any], chart: str, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every path we set: leaves, lists and free-form maps (not descended into)."""
    for key, value in values.items():
        path = (*prefix, key)
        free = key in FREE_FORM_LEAVES or path in FREE_FORM[chart]
        if isinstance(value, dict) and value and not free:
            yield from value_paths(value, chart, path)
        else:
            yield path


def unknown_keys(values: dict[str, Any], defaults: dict[str, Any], chart: str) -> list[str]:
    """Our value paths the chart's default values do not have (dotted; keys may hold dots)."""
    unknown = []
    for path in value_paths(values, chart):
        node: Any = defaults
        for key in path:
            if not isinstance(node, dict) or key not in node:
                unknown.append(".".join(path))
                break
            node = node[key]
    return unknown


# argo-cd's `configs.params` is passed through to argocd-cmd-params-cm ("You can customize
# parameters by adding parameters here", values.yaml @ argo-cd-10.1.1): its keys are Argo CD's
# parameters (argoproj/argo-cd docs/operator-manual/argocd-cmd-params-cm.yaml @ v3.4.4).
ARGOCD_PARAMS = {"server.insecure": "str"}


# harbor's top-level `caBundleSecretName` is a commented default (`# caBundleSecretName: ""`,
# values.yaml @ harbor-helm v1.19.1) that the templates read (templates/core/core-dpl.yaml,
# templates/_helpers.tpl `harbor.caBundleVolume` @ v1.19.1): absent from the key tree.
HARBOR_COMMENTED = {"caBundleSecretName": "str"}


def chart_defaults(chart: str) -> dict[str, Any]:
    # The key tree of the pinned version's values (tests/data, scripts/derive_test_data.py).
    keys = copy.deepcopy(chart_keys(chart))
    if chart == "argo-cd":
        keys["configs"]["params"].update(ARGOCD_PARAMS)
    if chart == "harbor":
        keys.update(HARBOR_COMMENTED)
    return keys


@pytest.mark.parametrize(
    ("name", "chart"), [("argocd", "argo-cd"), ("harbor", "harbor"), ("postgres-operator", "cloudnative-pg")]
)
def test_every_value_is_a_key_the_chart_knows(platform, name, chart):
    values = release(platform, name).inputs["values"]
    assert list(value_paths(values, chart)), "no values checked"
    assert unknown_keys(values, chart_defaults(chart), chart) == []


def test_key_checker_catches_a_misspelled_key(platform):
    defaults = chart_defaults("argo-cd")
    good = copy.deepcopy(release(platform, "argocd").inputs["values"])
    assert unknown_keys(good, defaults, "argo-cd") == []

    bad = copy.deepcopy(good)
    bad["server"]["httproute"]["hostname"] = bad["server"]["httproute"].pop("hostnames")
    bad["configs"]["secret"]["githubSecrett"] = "x"
    bad["configs"]["params"] = {"server.insecur": True}
    bad["server"]["httproute"]["anotations"] = {"a": "b"}
    assert sorted(unknown_keys(bad, defaults, "argo-cd")) == [
        "configs.params.server.insecur",
        "configs.secret.githubSecrett",
        "server.httproute.anotations.a",
        "server.httproute.hostname",
    ]
    # Inside a free-form map anything goes, but the map itself must be known.
    free = {"configs": {"cm": {"anything.at.all": "x"}}, "server": {"ingress": {"annotations": {"x/y": "z"}}}}
    assert unknown_keys(free, defaults, "argo-cd") == []
    assert unknown_keys({"configs": {"cmm": {"url": "x"}}}, defaults, "argo-cd") == ["configs.cmm.url"]
    # A misspelled top-level key of another chart, and a leaf set where the chart has a map.
    harbor = chart_defaults("harbor")
    assert unknown_keys({"externalUrl": "https://x"}, harbor, "harbor") == ["externalUrl"]
    assert unknown_keys({"trivy": {"enabled": {"x": 1}}}, harbor, "harbor") == ["trivy.enabled.x"]


# ---- 4. explicit dependencies -------------------------------------------------------


def test_app_projects_depend_on_the_argocd_release(platform):
    argocd = release(platform, "argocd")
    projects = platform.of_type("kubernetes:argoproj.io/v1alpha1:AppProject")
    assert sorted(r.name for r in projects) == ["project-team-a-appproject", "project-team-b-appproject"]
    for project in projects:
        assert argocd.urn in project.dependencies, project.name


def test_cnpg_cluster_depends_on_the_operator_and_its_secret(platform):
    cluster = platform.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster")
    assert release(platform, "postgres-operator").urn in cluster.dependencies
    assert platform.named("postgres-owner", "kubernetes:core/v1:Secret").urn in cluster.dependencies


def test_cert_manager_issuer_chain_depends_on_the_cert_manager_release(platform):
    cert_manager = release(platform, "cert-manager")
    chain = [r for r in platform.resources if r.type.startswith("kubernetes:cert-manager.io/")]
    # One Certificate per routed host (Argo CD, Harbor, Jaeger), and the issuer.
    assert sorted(r.inputs["kind"] for r in chain) == ["Certificate"] * 3 + ["ClusterIssuer"]
    (issuer,) = [r for r in chain if r.inputs["kind"] == "ClusterIssuer"]
    # The issuer waits for the release (its CRDs come with the chart) and for the CA's Secret.
    assert cert_manager.urn in issuer.dependencies
    ca_secret = platform.named("cert-manager-ca-secret", "kubernetes:core/v1:Secret")
    assert ca_secret.urn in issuer.dependencies


@pytest.mark.parametrize("name", ["argocd", "harbor", "tracing-jaeger"])
def test_routed_releases_wait_for_the_gateway_and_issuer(platform, name):
    r = release(platform, name)
    (gateway,) = platform.of_type(GATEWAY_T)
    assert depends_on(platform, r, gateway)
    assert depends_on(platform, gateway, release(platform, "gateway-envoy-gateway"))
    issuer = platform.named(
        "cert-manager-clusterissuer-homelab-ca", "kubernetes:cert-manager.io/v1:ClusterIssuer"
    )
    # The issuer the ingresses name, not only the bootstrap one.
    assert issuer.inputs["metadata"]["name"] == "homelab-ca"
    assert depends_on(platform, r, issuer)


def test_harbor_api_provider_depends_on_the_harbor_release(platform):
    provider = platform.named("harbor-api", HARBOR_PROVIDER)
    assert release(platform, "harbor").urn in provider.dependencies
    # Registry objects go through that provider.
    for project in platform.of_type("harbor:index/project:Project"):
        assert project.provider is not None and project.provider.startswith(provider.urn + "::")


# ---- 5. outputs ---------------------------------------------------------------------


def test_platform_outputs(platform):
    out = platform.outputs["platform"]
    assert out["argocd-url"] == f"https://argocd.{DOMAIN}"
    assert out["harbor-url"] == f"https://harbor.{DOMAIN}"
    assert out["tracing-url"] == f"https://tracing.{DOMAIN}"
    assert out["registry-host"] == f"harbor.{DOMAIN}"
    assert "platform" not in platform.secret_outputs
    for name in ("argocd-admin-password", "harbor-admin-password"):
        assert name in platform.secret_outputs
        assert platform.outputs[name] in platform.generated_secrets
    assert platform.outputs["argocd-admin-password"] == _fake("password", "argocd-admin-password")
    assert platform.outputs["harbor-admin-password"] == _fake("password", "harbor-admin-password")


# ---- 6. components switched off ----------------------------------------------------


def test_disabled_harbor_and_tracing_register_nothing_of_theirs(tmp_path):
    config = platform_config()
    components = config["platform"]["components"]
    components["harbor"] = {**components["harbor"], "enabled": False}
    components["tracing"] = {**components["tracing"], "enabled": False}
    mocks = run_program(config, example_secrets(config), key_dir=str(tmp_path))

    releases = {r.name for r in mocks.of_type(RELEASE)}
    assert releases == set(RELEASES) - {"harbor", "tracing-jaeger", "tracing-collector"}
    assert not [r for r in mocks.of_type(RELEASE) if r.inputs["chart"] in ("harbor", "jaeger")]
    assert not mocks.of_type(HARBOR_PROVIDER)
    assert not [r for r in mocks.resources if r.type.startswith("harbor:")]
    assert not [r for r in mocks.resources if r.name.startswith("harbor")]
    out = mocks.outputs["platform"]
    assert "harbor-url" not in out and "registry-host" not in out and "tracing-url" not in out
    assert "harbor-admin-password" not in mocks.outputs
    # The rest of the platform is still there.
    assert out["argocd-url"] == f"https://argocd.{DOMAIN}"
    assert len(mocks.of_type("kubernetes:argoproj.io/v1alpha1:AppProject")) == 2
