"""A platform that works on a real cluster's first `up`: trust, Harbor users, Harbor's database.

- Both TLS modes give a consistent platform: every client of Harbor (Pulumi's Harbor provider,
  the builds, the nodes, the portal's CA download) trusts exactly what signs Harbor's
  certificate; with ACME nothing private is handed out, with a private CA the same CA is
  handed to every client, and nothing runs `insecure`.
- Pulumi's Harbor provider has no CA setting: the program refuses a private CA the machine
  running Pulumi does not trust (Go's system roots, read as Go reads them), and one that does
  not exist yet.
- Harbor project members are users the program creates (no member references anyone else).
- Harbor's database is the platform's CloudNativePG cluster, created declaratively.
- The smaller defects: the GitOps repository Secret waits for its namespace, the Argo CD admin
  password's mtime is stable, the sync triggers guard operationState.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import subprocess
from functools import cache
from typing import Any

import harness
import jsonschema
import pulumi
import pytest
import yaml
from harness import (
    CONFIG_CA_PEM,
    ROOT,
    RecordingMocks,
    Resource,
    cert_pem,
    example_secrets,
    load_stack_file,
    plain_strings,
    read_yaml,
    run_program,
)

from components.platform import trust
from components.platform.charts import CHARTS, KUBERNETES_VERSION
from components.platform.trust import certificate_bodies, go_system_roots, machine_trusts
from stacks.checks import validate
from stacks.config import ConfigError

SECRET_T = "kubernetes:core/v1:Secret"
CONFIGMAP_T = "kubernetes:core/v1:ConfigMap"
RELEASE_T = "kubernetes:helm.sh/v3:Release"
ISSUER_T = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE_T = "kubernetes:cert-manager.io/v1:Certificate"
COMMAND_T = "command:remote:Command"
HARBOR_PROVIDER_T = "pulumi:providers:harbor"
USER_T = "harbor:index/user:User"
MEMBER_T = "harbor:index/projectMemberUser:ProjectMemberUser"
FILE_T = "github:index/repositoryFile:RepositoryFile"
NS = "idp-system"
HARBOR = "harbor.idp.lab.example.com"
HOMELAB_CA = cert_pem("tls-ca-cert")


def apps_config() -> tuple[dict[str, Any], dict[str, str]]:
    config = load_stack_file(ROOT / "examples" / "apps.yaml")
    return copy.deepcopy(config), dict(example_secrets(config))


def platform_config() -> tuple[dict[str, Any], dict[str, str]]:
    config = load_stack_file(ROOT / "examples" / "platform.yaml")
    return copy.deepcopy(config), dict(example_secrets(config))


NODE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdVbGBox2z5oc1BTI7B11ToThP3+guHB0k5ATqlYG6U"
JUMP_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGBL+9U0aqUhsXFOmbwkK0RUJK+1cIAUmIk24lB3twqn"


def private_ca_apps_config() -> tuple[dict[str, Any], dict[str, str]]:
    """The apps example on the homelab layer's private CA, with two nodes reached over SSH."""
    config, secrets = apps_config()
    config["platform"]["tls"] = {
        "mode": "private-ca",
        "ca": {"source": "homelab"},
        "nodes": [
            {"address": "ubuntu@10.0.0.21", "private-key-secret": "node-key", "host-key": NODE_KEY},
            {
                "address": "admin@10.0.0.22:2222",
                "runtime": "docker",
                "trust-on-first-use": True,
                "proxy": {"address": "jump@bastion.lab.example.com", "host-key": JUMP_KEY},
            },
        ],
    }
    secrets.pop("cloudflare-token")
    secrets["node-key"] = "MOCKSECRET-node-key"
    return config, secrets


@pytest.fixture(scope="module")
def acme() -> RecordingMocks:
    return harness.example_run(ROOT / "examples" / "apps.yaml")  # ACME mode, unchanged


@pytest.fixture(scope="module")
def private(tmp_path_factory) -> RecordingMocks:
    config, secrets = private_ca_apps_config()
    return run_program(config, secrets, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def platform() -> RecordingMocks:
    return harness.example_run(ROOT / "examples" / "platform.yaml")


def named(mocks: RecordingMocks, type_: str, name: str) -> Resource:
    return mocks.named(name, type_)


def in_ns(mocks: RecordingMocks, type_: str, name: str, namespace: str) -> Resource:
    found = [
        r
        for r in mocks.of_type(type_)
        if r.input("metadata.name") == name and r.input("metadata.namespace") == namespace
    ]
    assert len(found) == 1, f"{len(found)} {type_} {namespace}/{name}"
    return found[0]


def harbor_values(mocks: RecordingMocks) -> dict[str, Any]:
    return named(mocks, RELEASE_T, "harbor").inputs["values"]


def builds(mocks: RecordingMocks) -> list[Resource]:
    return mocks.of_type("kubernetes:batch/v1:Job")


def kaniko_args(job: Resource) -> list[str]:
    (kaniko,) = job.inputs["spec"]["template"]["spec"]["containers"]
    return kaniko["args"]


def depends(mocks: RecordingMocks, resource: Resource, target: Resource) -> bool:
    """Whether `resource` waits for `target`, directly or through what it waits for."""
    by_urn = {r.urn: r for r in mocks.resources}
    todo, seen = list(resource.dependencies), set()
    while todo:
        urn = todo.pop()
        if urn == target.urn:
            return True
        if urn not in seen and urn in by_urn:
            seen.add(urn)
            todo.extend(by_urn[urn].dependencies)
    return False


# ---- 1. both TLS modes are consistent ------------------------------------------------------


def test_acme_mode_issues_publicly_trusted_certificates_through_cloudflare_dns01(acme):
    (issuer,) = acme.of_type(ISSUER_T)
    spec = issuer.inputs["spec"]["acme"]
    assert spec["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert spec["email"] == "admin@lab.example.com"
    (solver,) = spec["solvers"]
    # cert-manager deploy/crds/cert-manager.io_clusterissuers.yaml @ v1.21.1:
    # solvers[].dns01.cloudflare.apiTokenSecretRef {name, key}; solvers[].selector.dnsZones.
    ref = solver["dns01"]["cloudflare"]["apiTokenSecretRef"]
    assert solver["selector"] == {"dnsZones": ["lab.example.com"]}
    token = in_ns(acme, SECRET_T, ref["name"], NS)  # cert-manager's cluster resource namespace
    assert token.inputs["stringData"][ref["key"]] == "MOCKSECRET-config-cloudflare-token"
    assert "stringData" in token.secret_paths
    assert depends(acme, issuer, token)
    values = named(acme, RELEASE_T, "cert-manager").inputs["values"]
    assert values["clusterResourceNamespace"] == NS


def test_acme_mode_hands_no_private_ca_to_any_client(acme):
    assert "caSecretName" not in harbor_values(acme)
    assert not [r for r in acme.of_type(CONFIGMAP_T) if r.input("metadata.name") == "registry-ca"]
    for job in builds(acme):
        assert not [a for a in kaniko_args(job) if a.startswith("--registry-certificate")], job.name
    assert acme.of_type(COMMAND_T) == []
    assert "platform-ca-certificate" not in acme.outputs
    provider = named(acme, HARBOR_PROVIDER_T, "harbor-api")
    assert provider.inputs["url"] == f"https://{HARBOR}"
    assert provider.inputs.get("insecure") in (False, "false")


def test_private_ca_mode_hands_the_same_ca_to_every_client_of_harbor(private):
    (issuer,) = private.of_type(ISSUER_T)
    ca_secret = in_ns(private, SECRET_T, issuer.inputs["spec"]["ca"]["secretName"], NS)
    signer = ca_secret.inputs["stringData"]["tls.crt"]
    assert signer == HOMELAB_CA
    # Harbor's certificate is issued by that issuer.
    certificate = named(private, CERTIFICATE_T, "harbor-certificate")
    assert certificate.input("spec.issuerRef.name") == issuer.input("metadata.name")
    # The portal's CA download.
    values = harbor_values(private)
    portal_ca = in_ns(private, SECRET_T, values["caSecretName"], NS)
    assert portal_ca.inputs["stringData"] == {"ca.crt": signer}  # the certificate, never the key
    # Every build.
    for job in builds(private):
        assert f"--registry-certificate={HARBOR}=/etc/registry-ca/ca.crt" in kaniko_args(job)
    for ns in ("team-a", "team-b"):
        assert in_ns(private, CONFIGMAP_T, "registry-ca", ns).inputs["data"]["ca.crt"] == signer
    # Every node.
    commands = private.of_type(COMMAND_T)
    assert sorted(c.inputs["connection"]["host"] for c in commands) == ["10.0.0.21", "10.0.0.22"]
    for c in commands:
        assert c.inputs["stdin"] == signer
    # Pulumi's Harbor provider verifies (this machine trusts the CA: conftest's bundle).
    provider = named(private, HARBOR_PROVIDER_T, "harbor-api")
    assert provider.inputs.get("insecure") in (False, "false")
    assert provider.inputs["url"] == f"https://{HARBOR}"
    assert private.outputs["platform-ca-certificate"] == signer


def test_nodes_get_the_ca_in_system_trust_and_the_runtimes_registry_directory(private):
    by_host = {c.inputs["connection"]["host"]: c for c in private.of_type(COMMAND_T)}
    containerd, docker = by_host["10.0.0.21"], by_host["10.0.0.22"]
    assert containerd.inputs["connection"]["user"] == "ubuntu"
    assert containerd.inputs["connection"]["privateKey"] == "MOCKSECRET-node-key"
    assert "connection" in containerd.secret_paths or "connection.privateKey" in containerd.secret_paths
    assert int(docker.inputs["connection"]["port"]) == 2222
    assert f"/etc/containerd/certs.d/{HARBOR}" in containerd.inputs["create"]
    assert f"/etc/docker/certs.d/{HARBOR}" in docker.inputs["create"]
    for c in (containerd, docker):
        assert "NAME=homelab-platform-ca\n" in c.inputs["create"]
        assert 'ANCHOR="/usr/local/share/ca-certificates/${NAME}.crt"' in c.inputs["create"]
        assert c.inputs["create"].endswith("node-ca install")
        assert c.inputs["delete"].endswith("node-ca remove")


def test_nodes_are_reached_with_their_pinned_host_key_or_through_their_jump_host(private):
    """Issue 22: the nodes' SSH as the Docker hosts' (host-key, trust-on-first-use, proxy)."""
    by_host = {c.inputs["connection"]["host"]: c.inputs["connection"] for c in private.of_type(COMMAND_T)}
    assert by_host["10.0.0.21"]["hostKey"] == NODE_KEY
    assert "proxy" not in by_host["10.0.0.21"]
    hop = by_host["10.0.0.22"]
    assert "hostKey" not in hop, "trust-on-first-use: opted in"
    assert hop["proxy"]["host"] == "bastion.lab.example.com" and hop["proxy"]["user"] == "jump"
    assert hop["proxy"]["hostKey"] == JUMP_KEY


def test_a_node_without_a_host_key_is_an_error_naming_the_keyscan():
    config, _ = private_ca_apps_config()
    del config["platform"]["tls"]["nodes"][0]["host-key"]
    with pytest.raises(ConfigError) as raised:
        validate(config)
    [(path, message)] = [(p, m) for p, m in raised.value.problems if "nodes" in p]
    assert path == "platform.tls.nodes[0].host-key"
    assert "ssh-keyscan -p 22 10.0.0.21" in message


def test_apps_deploy_only_after_the_nodes_trust_the_registry(private):
    commands = private.of_type(COMMAND_T)
    deployments = [f for f in private.of_type(FILE_T) if f.inputs["file"].endswith("/deployment.yaml")]
    assert len(deployments) == 3
    for deployment in deployments:
        for c in commands:
            assert c.urn in deployment.dependencies, (deployment.name, c.name)


def test_harbor_api_waits_for_harbors_certificate(acme, private):
    for mocks in (acme, private):
        provider = named(mocks, HARBOR_PROVIDER_T, "harbor-api")
        certificate = named(mocks, CERTIFICATE_T, "harbor-certificate")
        assert certificate.urn in provider.dependencies
        # pulumi-kubernetes waits for the Certificate's Ready condition.
        annotations = certificate.input("metadata.annotations")
        assert annotations["pulumi.com/waitFor"] == "condition=Ready"


def cert_manager_objects(mocks: RecordingMocks) -> list[tuple[str, dict[str, Any]]]:
    """Every ClusterIssuer and Certificate the program registers, as the manifest it sends."""
    objects = []
    for r in mocks.of_type(ISSUER_T) + mocks.of_type(CERTIFICATE_T):
        obj = {k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        # Numbers reach the mocks as floats; the schema's integers are whole numbers.
        obj = read_yaml(yaml.safe_dump(obj).replace(".0\n", "\n"))
        objects.append((r.name, obj))
    return objects


def cert_manager_errors(obj: dict[str, Any]) -> list[str]:
    # The CRDs of the pinned chart (cert-manager v1.19.6, derived into tests/data/crds).
    schema = harness.crd_schema("cert-manager.io", obj["kind"], "v1")
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]


def test_issuers_and_certificates_validate_against_cert_managers_crds(acme, private):
    seen = set()
    for mocks in (acme, private):
        for name, obj in cert_manager_objects(mocks):
            assert cert_manager_errors(obj) == [], name
            seen.add((obj["kind"], "acme" in obj["spec"], "ca" in obj["spec"]))
    # Both issuer kinds (ACME with its solver, the private CA) and Harbor's Certificate.
    assert {("ClusterIssuer", True, False), ("ClusterIssuer", False, True)} <= seen
    assert ("Certificate", False, False) in seen


def test_the_crd_check_catches_a_wrong_field(acme):
    """The schemas are strict enough to fail: a misspelt solver key, a Certificate without
    its secretName."""
    (issuer,) = [obj for _, obj in cert_manager_objects(acme) if obj["kind"] == "ClusterIssuer"]
    solver = issuer["spec"]["acme"]["solvers"][0]
    solver["dns01"]["cloudflare"]["apiTokenSecretRef"] = {"key": "token"}  # no name
    assert any("'name' is a required property" in e for e in cert_manager_errors(issuer))
    certificate = next(obj for _, obj in cert_manager_objects(acme) if obj["kind"] == "Certificate")
    del certificate["spec"]["secretName"]
    assert any("'secretName' is a required property" in e for e in cert_manager_errors(certificate))


def test_node_script_passes_shellcheck(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/install-tools.sh installs it)")
    for runtime in ("containerd", "docker"):
        path = tmp_path / f"node-ca-{runtime}.sh"
        path.write_text(trust.node_script(runtime, HARBOR))
        result = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


# ---- 2. the machine running Pulumi must trust a private CA ---------------------------------


def test_machine_trust_reads_what_go_reads(tmp_path):
    ca = "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n"
    other = "-----BEGIN CERTIFICATE-----\nWFla\n-----END CERTIFICATE-----\n"
    first, second = tmp_path / "first.pem", tmp_path / "second.pem"
    first.write_text(other)
    second.write_text(ca)
    empty = str(tmp_path / "none")
    # Only the first readable file of the list counts (root_unix.go: break after one).
    assert go_system_roots({"SSL_CERT_DIR": empty}, [str(first), str(second)], []) == certificate_bodies(
        other
    )
    assert go_system_roots(
        {"SSL_CERT_DIR": empty}, [str(tmp_path / "missing"), str(second), str(first)], []
    ) == certificate_bodies(ca)
    # SSL_CERT_FILE replaces the list; SSL_CERT_DIR is colon-separated and every file counts.
    assert machine_trusts(ca, {"SSL_CERT_FILE": str(second), "SSL_CERT_DIR": empty}, "linux") is True
    assert machine_trusts(ca, {"SSL_CERT_FILE": str(first), "SSL_CERT_DIR": empty}, "linux") is False
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "homelab.crt").write_text(ca)
    env = {"SSL_CERT_FILE": str(first), "SSL_CERT_DIR": f"{empty}:{folder}"}
    assert machine_trusts(ca, env, "linux") is True
    # Where Go asks the operating system, we cannot tell.
    assert machine_trusts(ca, env, "darwin") is None


def untrusting(monkeypatch, tmp_path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(CONFIG_CA_PEM)  # trusts the config CA, not the homelab one
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))


def test_a_homelab_ca_this_machine_does_not_trust_stops_the_harbor_provider(monkeypatch, tmp_path):
    untrusting(monkeypatch, tmp_path)
    config, secrets = platform_config()
    error, mocks = harness.run_invalid(config, secrets, str(tmp_path))
    assert "Install the CA on the machine running Pulumi" in str(error)
    assert "homelab layer" in str(error)
    # The provider was never configured, so no Harbor object was attempted.
    assert not [r for r in mocks.resources if r.type.startswith("harbor:")]
    assert mocks.of_type(HARBOR_PROVIDER_T) == []


def test_a_ca_that_does_not_exist_yet_stops_the_harbor_provider():
    """On the first run the homelab CA is unknown at preview: the provider must not start."""
    from stacks.platform import PlatformCa, harbor_api_url

    async def run() -> str:
        loop = asyncio.get_running_loop()
        value: asyncio.Future[Any] = loop.create_future()
        value.set_result(None)
        known: asyncio.Future[bool] = loop.create_future()
        known.set_result(False)
        secret: asyncio.Future[bool] = loop.create_future()
        secret.set_result(False)
        unknown = pulumi.Output(set(), value, known, secret)
        url = harbor_api_url(f"https://{HARBOR}", PlatformCa(unknown, None, "the homelab layer made"))
        return await url.future()  # type: ignore[return-value]

    # A loop of its own: the Pulumi mocks of the other tests keep using the current one.
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(pulumi.RunError, match="does not exist yet.*layers.platform off first"):
            loop.run_until_complete(run())
    finally:
        loop.close()


# ---- 3. Harbor identities -------------------------------------------------------------------


def test_every_harbor_member_is_a_user_the_program_creates(platform):
    users = {u.inputs["username"]: u for u in platform.of_type(USER_T)}
    members = platform.of_type(MEMBER_T)
    assert len(members) == 6  # team-a: alice, bob, carol, dave; team-b: erin, alice
    for member in members:
        user = users.get(member.inputs["userName"])
        assert user is not None, f"{member.name}: {member.inputs['userName']} is nobody the program creates"
        assert user.urn in member.dependencies, member.name
    # One user per login, even when the login is in two projects.
    assert sorted(users) == ["alice", "bob", "carol", "dave", "erin"]


def test_harbor_users_can_be_created_on_the_first_up(platform):
    # Harbor starts in db_auth mode, where local users can be created; no ConfigAuth claims to
    # enforce it (the provider never sends auth_mode=db_auth: issue 22).
    assert platform.of_type("harbor:index/configAuth:ConfigAuth") == []
    release = platform.named("harbor", RELEASE_T)
    for user in platform.of_type(USER_T):
        assert release.urn in user.dependencies
        assert user.inputs["email"] == f"{user.inputs['username']}@users.noreply.github.com"
        assert len(user.inputs["comment"]) <= 30  # Harbor's limit (user.go @ v2.15.1)
        assert "password" in user.secret_paths
        generator = platform.named(
            f"harbor-user-{user.inputs['username']}-password", "random:index/randomPassword:RandomPassword"
        )
        # Harbor's policy: 8-128 characters with an upper- and lower-case letter and a digit.
        assert 8 <= generator.inputs["length"] <= 128
        assert generator.inputs["minUpper"] >= 1 and generator.inputs["minLower"] >= 1
        assert generator.inputs["minNumeric"] >= 1
        assert user.inputs["password"] == harness._fake("password", generator.name)


def test_harbor_user_passwords_are_a_secret_output(platform):
    assert "harbor-user-passwords" in platform.secret_outputs
    passwords = platform.outputs["harbor-user-passwords"]
    assert sorted(passwords) == ["alice", "bob", "carol", "dave", "erin"]
    assert passwords["alice"] == harness._fake("password", "harbor-user-alice-password")


def test_harbor_user_email_can_be_given(tmp_path):
    config, secrets = platform_config()
    config["platform"]["components"]["harbor"]["user-emails"] = {"alice": "alice@acme.example"}
    mocks = run_program(config, secrets, key_dir=str(tmp_path))
    emails = {u.inputs["username"]: u.inputs["email"] for u in mocks.of_type(USER_T)}
    assert emails["alice"] == "alice@acme.example"
    assert emails["bob"] == "bob@users.noreply.github.com"


# ---- 4. Harbor's database on the platform PostgreSQL ----------------------------------------


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    return harness.crd_schema("postgresql.cnpg.io", kind, "v1")


def test_harbor_uses_the_cloudnativepg_cluster(platform):
    cluster = named(platform, "kubernetes:postgresql.cnpg.io/v1:Cluster", "postgres-cluster")
    database = named(platform, "kubernetes:postgresql.cnpg.io/v1:Database", "postgres-database-harbor")
    credentials = in_ns(platform, SECRET_T, "harbor-database", NS)
    external = harbor_values(platform)["database"]
    assert external["type"] == "external"
    ext = external["external"]
    assert ext["host"] == f"platform-db-rw.{NS}.svc"
    assert ext["existingSecret"] == "harbor-database"
    assert ext["coreDatabase"] == database.input("spec.name") == "harbor"
    assert ext["username"] == database.input("spec.owner") == credentials.inputs["stringData"]["username"]
    assert ext["sslmode"] == "require"
    assert "password" not in ext  # from the Secret's `password` key
    assert credentials.inputs["type"] == "kubernetes.io/basic-auth"
    assert "stringData" in credentials.secret_paths
    # The role is managed by the Cluster, its password from that Secret.
    (role,) = cluster.inputs["spec"]["managed"]["roles"]
    assert role == {
        "name": "harbor",
        "ensure": "present",
        "login": True,
        "passwordSecret": {"name": "harbor-database"},
    }
    assert database.input("spec.cluster.name") == cluster.input("metadata.name")
    assert database.input("spec.databaseReclaimPolicy") == "retain" and database.retain_on_delete
    # Harbor waits for its database; the database for the cluster.
    release = named(platform, RELEASE_T, "harbor")
    assert database.urn in release.dependencies and credentials.urn in release.dependencies
    assert cluster.urn in database.dependencies
    # No internal database volume any more.
    assert "database" not in harbor_values(platform)["persistence"]["persistentVolumeClaim"]


def test_cnpg_objects_validate_against_their_crds(platform):
    for kind, name in (("Cluster", "postgres-cluster"), ("Database", "postgres-database-harbor")):
        r = named(platform, f"kubernetes:postgresql.cnpg.io/v1:{kind}", name)
        obj = {k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        obj = read_yaml(yaml.safe_dump(obj).replace(".0\n", "\n"))
        errors = [e.message for e in jsonschema.Draft7Validator(crd_schema(kind)).iter_errors(obj)]
        assert errors == [], (name, errors)


def test_without_postgres_harbor_keeps_its_internal_database(tmp_path):
    config, secrets = platform_config()
    config["platform"]["components"]["postgres"] = {"enabled": False}
    mocks = run_program(config, secrets, key_dir=str(tmp_path))
    values = harbor_values(mocks)
    assert "database" not in values
    assert "database" in values["persistence"]["persistentVolumeClaim"]


# ---- 5. the smaller defects ------------------------------------------------------------------


def test_gitops_repository_secret_waits_for_its_namespace(platform):
    secret = named(platform, SECRET_T, "gitops-argocd-repository")
    namespace = named(platform, "kubernetes:core/v1:Namespace", "platform-namespace")
    assert secret.input("metadata.namespace") == namespace.input("metadata.name")
    assert namespace.urn in secret.dependencies


def test_argocd_admin_password_mtime_is_fixed_in_state(platform):
    values = named(platform, RELEASE_T, "argocd").inputs["values"]
    mtime = named(platform, "time:index/static:Static", "argocd-admin-password-mtime")
    # Set (the chart renders `now` when it is empty) and from state, not from the clock.
    assert values["configs"]["secret"]["argocdServerAdminPasswordMtime"] == "2026-01-02T03:04:05Z"
    # It is renewed only with the password.
    assert mtime.inputs["triggers"]["password"] == harness._fake("password", "argocd-admin-password")
    assert "triggers" in mtime.secret_paths or "triggers.password" in mtime.secret_paths


def test_sync_triggers_guard_operation_state(acme):
    values = named(acme, RELEASE_T, "argocd").inputs["values"]["notifications"]
    for name in ("trigger.on-sync-succeeded", "trigger.on-sync-failed"):
        (rule,) = read_yaml(values["triggers"][name])
        assert rule["when"].startswith("app.status.operationState != nil and "), rule
        assert rule["oncePer"] == "app.status.operationState?.syncResult?.revision"


def test_harbor_portal_offers_the_ca_only_with_a_private_ca(platform, acme):
    assert harbor_values(platform)["caSecretName"] == "harbor-ca"
    assert "caSecretName" not in harbor_values(acme)


@pytest.mark.parametrize("variant", ["acme", "private"])
def test_secrets_and_configmaps_of_both_modes_validate_strictly(request, variant):
    import kubernetes_validate

    mocks = request.getfixturevalue(variant)
    objects = mocks.of_type(SECRET_T) + mocks.of_type(CONFIGMAP_T)
    assert objects
    for r in objects:
        kind = "Secret" if r.type == SECRET_T else "ConfigMap"
        obj = {"apiVersion": "v1", "kind": kind, **{k: v for k, v in r.inputs.items() if k != "apiVersion"}}
        obj.pop("kind", None)
        obj["kind"] = kind
        kubernetes_validate.validate(obj, f"{KUBERNETES_VERSION}.0", strict=True)


def test_no_secret_in_plain_inputs_of_the_private_variant(private):
    secrets = ["MOCKSECRET-node-key", *private.generated_secrets]
    for r in private.resources:
        for path, text in plain_strings(r.raw_inputs):
            for secret in secrets:
                assert secret not in text, (r.name, path)


# ---- 6. chart pins ----------------------------------------------------------------------------

# Each a tag of the chart's repository (components/platform/charts.py names it).
VERIFIED_CHARTS = {
    "argo-cd": "10.1.1",  # argoproj/argo-helm argo-cd-10.1.1
    "harbor": "1.19.1",  # goharbor/harbor-helm v1.19.1
    "cloudnative-pg": "0.29.0",  # cloudnative-pg/charts cloudnative-pg-v0.29.0
    "jaeger": "4.11.1",  # jaegertracing/helm-charts jaeger-4.11.1 (Jaeger v2; v1 ended 2025-12-31)
    "opentelemetry-collector": "0.158.2",  # opentelemetry-helm-charts: 0.158.3 was never published
    "envoy-gateway": "v1.9.0",  # envoyproxy/gateway v1.9.0 (ingress-nginx is retired)
    "cert-manager": "v1.21.1",  # cert-manager/cert-manager v1.21.1 (1.19 ended 2026-07-08)
}


def test_chart_pins_are_the_verified_versions():
    assert {name: chart.version for name, chart in CHARTS.items()} == VERIFIED_CHARTS


def test_chart_table_names_a_source_beside_each_pin():
    lines = (ROOT / "components" / "platform" / "charts.py").read_text().splitlines()
    for name, chart in CHARTS.items():
        line = next(i for i, text in enumerate(lines) if f'"{name}": Chart(' in text)
        comment = []
        while lines[line - 1].strip().startswith("#"):
            line -= 1
            comment.insert(0, lines[line].strip())
        text = " ".join(comment)
        assert "tag" in text and chart.version.lstrip("v") in text, (name, text)
