"""Identity as code, sign-in through OpenID Connect (issue 24, item 3): Authelia as the stack's
OpenID Connect 1.0 provider, Grafana its client.

The provider's section (signing key, HMAC secret, client digests) is a second configuration
file, secret, owned by Authelia's user alone. Its key paths and values are the ones the JSON
schema Authelia publishes for the pinned version defines (docs/static/schemas/v4.39/json-schema/
configuration.json @ v4.39.20: IdentityProvidersOpenIDConnect, IdentityProvidersOpenIDConnectClient,
IdentityProvidersOpenIDConnectPolicy, JWK and PasswordDigest), written down here as in
tests/test_identity.py because the schema file may not be vendored. The client secret digest is
checked against the one test vector upstream gives (the digest of 'insecure_secret' in
docs/content/integration/openid-connect/clients/grafana/index.md @ v4.39.20).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from harness import file_is_secret, file_owner_and_mode, files, is_stager, plain_strings, run_program
from test_bad_input import assert_rejected
from test_identity import CONFIG, CONTAINER, PASSWORDS, leaves, with_identity

from components.homelab import identity, monitoring

# configuration.json @ v4.39 (see above): each key path of the OIDC file, with the values its
# enum allows (None: a string or boolean without one).
OIDC_KEYS: dict[str, tuple[Any, ...] | None] = {
    "identity_providers.oidc.hmac_secret": None,
    "identity_providers.oidc.jwks[].key_id": None,
    "identity_providers.oidc.jwks[].algorithm": ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                                 "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"),
    "identity_providers.oidc.jwks[].use": ("sig",),
    "identity_providers.oidc.jwks[].key": None,
    "identity_providers.oidc.authorization_policies.*.default_policy": ("one_factor", "two_factor", "deny"),
    "identity_providers.oidc.authorization_policies.*.rules[].policy": ("one_factor", "two_factor", "deny"),
    "identity_providers.oidc.authorization_policies.*.rules[].subject[][]": None,
    "identity_providers.oidc.clients[].client_id": None,
    "identity_providers.oidc.clients[].client_name": None,
    "identity_providers.oidc.clients[].client_secret": None,
    "identity_providers.oidc.clients[].public": None,
    "identity_providers.oidc.clients[].authorization_policy": None,
    "identity_providers.oidc.clients[].require_pkce": None,
    "identity_providers.oidc.clients[].pkce_challenge_method": ("", "plain", "S256"),
    "identity_providers.oidc.clients[].redirect_uris[]": None,
    "identity_providers.oidc.clients[].scopes[]": ("openid", "offline_access", "profile", "email", "address",
                                                   "phone", "groups", "authelia.bearer.authz"),
    "identity_providers.oidc.clients[].response_types[]": (
        "code", "id_token token", "id_token", "token", "code token", "code id_token", "code id_token token"),
    "identity_providers.oidc.clients[].grant_types[]": ("authorization_code", "implicit", "refresh_token",
                                                        "client_credentials",
                                                        "urn:ietf:params:oauth:grant-type:device_code"),
    "identity_providers.oidc.clients[].access_token_signed_response_alg": (
        "", "none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
        "PS256", "PS384", "PS512"),
    "identity_providers.oidc.clients[].userinfo_signed_response_alg": (
        "", "none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
        "PS256", "PS384", "PS512"),
    "identity_providers.oidc.clients[].token_endpoint_auth_method": (
        "", "none", "client_secret_post", "client_secret_basic", "private_key_jwt", "client_secret_jwt"),
}  # fmt: skip
# The patterns of JWK.key and of PasswordDigest (the pbkdf2 branch) in the same schema.
JWK_KEY = re.compile(
    r"^-{5}BEGIN (((RSA|EC) )?(PRIVATE|PUBLIC) KEY|CERTIFICATE)-{5}\n([a-zA-Z0-9\/+]{1,64}\n)+"
    r"([a-zA-Z0-9\/+]{1,64}[=]{0,2})\n-{5}END (((RSA|EC) )?(PRIVATE|PUBLIC) KEY|CERTIFICATE)-{5}\n?$"
)
PBKDF2_DIGEST = re.compile(r"^\$pbkdf2(-sha(224|256|384|512))?\$\d+\$[a-zA-Z0-9\/.]+\$[a-zA-Z0-9\/.]+$")
# Authelia's grafana guide: client_secret '$pbkdf2-sha512$310000$c8p7…' is "The digest of
# 'insecure_secret'".
UPSTREAM_DIGEST = (
    "$pbkdf2-sha512$310000$c8p78n7pUMln0jzvd4aK4Q$JNRBzwAo0ek5qKn50cFzzvE9RXV88h1wJn5KGiHrD0YKtZaR/"
    "nCb2CJPOsKaPK0hjf.9yHxzQGZziziccp6Yng"
)


def schema_path(path: str) -> str:
    """A key path with the policy name (a free map key) as '*'."""
    return re.sub(r"^(identity_providers\.oidc\.authorization_policies)\.[^.]+\.", r"\1.*.", path)


def ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verifies(digest: str, secret: str) -> bool:
    """What Authelia does with a pbkdf2-sha512 digest: derive again from its salt and compare."""
    _, scheme, rounds, salt, raw = digest.split("$")
    assert scheme == "pbkdf2-sha512"
    derived = hashlib.pbkdf2_hmac(
        "sha512", secret.encode(), ab64_decode(salt), int(rounds), len(ab64_decode(raw))
    )
    return derived == ab64_decode(raw)


def container(lab, name: str):
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == name and not is_stager(c)]
    return c


def env_of(c) -> dict[str, str]:
    return dict(e.split("=", 1) for e in c.inputs["envs"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return run_program(CONFIG, PASSWORDS, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def section(lab) -> dict:
    return yaml.safe_load(files(container(lab, "homelab-authelia"))[identity.OIDC_CONFIG])


def test_the_client_secret_digest_is_authelias_form():
    salt = base64.b64encode(ab64_decode("c8p78n7pUMln0jzvd4aK4Q")).decode()
    assert identity.client_secret_digest("insecure_secret", salt) == UPSTREAM_DIGEST
    assert verifies(UPSTREAM_DIGEST, "insecure_secret") and not verifies(UPSTREAM_DIGEST, "insecure_secreT")


def test_the_oidc_section_is_a_secret_file_of_authelias_user(lab):
    authelia = container(lab, "homelab-authelia")
    assert authelia.inputs["command"][-2:] == ["--config", identity.OIDC_CONFIG]
    assert file_is_secret(authelia, identity.OIDC_CONFIG)
    assert file_owner_and_mode(authelia, identity.OIDC_CONFIG) == ("8000", "0400")
    # The main file keeps no part of it (Authelia: a section in one file only).
    assert "identity_providers" not in yaml.safe_load(files(authelia)[identity.CONFIG])


def test_the_oidc_section_validates_against_authelias_schema(lab, section):
    for path, value in leaves(section):
        key = schema_path(path)
        assert key in OIDC_KEYS, f"{path} is not a key of Authelia's configuration schema (v4.39)"
        allowed = OIDC_KEYS[key]
        assert allowed is None or value in allowed, f"{path}: {value!r} is not one of {allowed}"
    oidc = section["identity_providers"]["oidc"]
    # A random alphanumeric string of 64 or more characters (provider.md, hmac_secret).
    (hmac,) = [r for r in lab.resources if r.name == "identity-oidc-hmac"]
    assert hmac.inputs["length"] >= 64 and hmac.inputs["special"] is False
    assert oidc["hmac_secret"] in lab.generated_secrets
    # At least one RSA key with RS256 (provider.md, jwks).
    assert [(k["algorithm"], k["use"]) for k in oidc["jwks"]] == [("RS256", "sig")]
    (client,) = oidc["clients"]
    assert {"client_id", "scopes"} <= set(client)  # the schema's required fields
    assert PBKDF2_DIGEST.match(client["client_secret"])
    assert client["authorization_policy"] in oidc["authorization_policies"]


@pytest.mark.parametrize("traditional", [True, False], ids=["pkcs1", "pkcs8"])
def test_a_real_signing_key_fits_the_schema_pattern(traditional):
    """The mocks return a placeholder key; the real provider's PEM (PKCS#1 from pulumi-tls, or
    PKCS#8) goes through oidc_section unchanged and matches the schema's JWK.key pattern."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    form = (
        serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    )
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode()
    client = identity.OidcClient(
        "grafana", "Grafana", ("https://monitoring.lab.example.com/login/generic_oauth",)
    )
    text = identity.oidc_section((client,), ("admins",), "h" * 64, pem, {"grafana": UPSTREAM_DIGEST})
    (jwk,) = yaml.safe_load(text)["identity_providers"]["oidc"]["jwks"]
    assert jwk["key"] == pem and JWK_KEY.match(jwk["key"])


def test_grafana_signs_in_through_authelia(lab, section):
    grafana = container(lab, "homelab-grafana")
    env = env_of(grafana)
    issuer = "https://auth.lab.example.com/"
    assert env["GF_AUTH_GENERIC_OAUTH_ENABLED"] == "true"
    assert env["GF_AUTH_GENERIC_OAUTH_CLIENT_ID"] == "grafana"
    assert env["GF_AUTH_GENERIC_OAUTH_AUTH_URL"] == issuer + "api/oidc/authorization"
    assert env["GF_AUTH_GENERIC_OAUTH_TOKEN_URL"] == issuer + "api/oidc/token"
    assert env["GF_AUTH_GENERIC_OAUTH_API_URL"] == issuer + "api/oidc/userinfo"
    assert env["GF_AUTH_GENERIC_OAUTH_USE_PKCE"] == "true"
    assert env["GF_AUTH_GENERIC_OAUTH_AUTH_STYLE"] == "InHeader"  # client_secret_basic
    assert (
        env["GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"]
        == "(contains(groups[*], 'admins')) && 'Admin' || 'Viewer'"
    )
    # The client secret: a file of Grafana's user alone, never a variable.
    assert "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET" not in env
    path = env["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET__FILE"]
    assert file_is_secret(grafana, path) and file_owner_and_mode(grafana, path) == ("472", "0400")
    # Authelia holds only its digest, which the delivered secret verifies against.
    (client,) = section["identity_providers"]["oidc"]["clients"]
    secret = files(grafana)[path]
    assert client["client_secret"] != secret and verifies(client["client_secret"], secret)
    # The token calls trust the stack's CA, the one that signed the portal's certificate.
    ca = env["GF_AUTH_GENERIC_OAUTH_TLS_CLIENT_CA"]
    assert files(grafana)[ca].startswith("-----BEGIN CERTIFICATE-----")
    # The local admin stays: the way in when Authelia is down.
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" in env and "GF_AUTH_DISABLE_LOGIN_FORM" not in env


def test_each_redirect_uri_is_a_routed_host_the_network_resolves(lab, section):
    proxy = container(lab, "homelab-haproxy")
    cfg = files(proxy)["/usr/local/etc/haproxy/haproxy.cfg"]
    (network,) = proxy.inputs["networksAdvanced"]
    for client in section["identity_providers"]["oidc"]["clients"]:
        for uri in client["redirect_uris"]:
            parts = urlsplit(uri)
            assert parts.scheme == "https" and parts.hostname in cfg
    assert urlsplit(client["redirect_uris"][0]).path == "/login/generic_oauth"  # Grafana's callback
    # Grafana reaches the token endpoint at the portal's name: the proxy answers for it on the
    # stack network (an alias), so no DNS outside is needed.
    assert {"auth.lab.example.com", "monitoring.lab.example.com"} <= set(network["aliases"])
    assert network["aliases"][0] == "haproxy"


def test_admins_need_two_factors_and_groups_can_narrow_a_client(tmp_path):
    client = identity.OidcClient("grafana", "Grafana", ("https://m.example.com/cb",))
    assert identity.authorization_policy(client, ("admins",)) == {
        "default_policy": "one_factor",
        "rules": [{"policy": "two_factor", "subject": [["group:admins"]]}],
    }
    oidc = {"grafana": {"groups": ["family"]}}
    lab = run_program(with_identity(oidc=oidc), PASSWORDS, key_dir=str(tmp_path))
    section = yaml.safe_load(files(container(lab, "homelab-authelia"))[identity.OIDC_CONFIG])
    assert section["identity_providers"]["oidc"]["authorization_policies"]["grafana"] == {
        "default_policy": "deny",
        "rules": [
            {"policy": "two_factor", "subject": [["group:admins"]]},
            {"policy": "one_factor", "subject": [["group:family"]]},
        ],
    }


def test_grafana_can_keep_its_own_login_only(tmp_path):
    lab = run_program(with_identity(oidc={"grafana": {"enabled": False}}), PASSWORDS, key_dir=str(tmp_path))
    authelia = container(lab, "homelab-authelia")
    assert identity.OIDC_CONFIG not in authelia.inputs["command"]
    assert not [k for k in env_of(container(lab, "homelab-grafana")) if k.startswith("GF_AUTH_GENERIC_OAUTH")]
    assert not [r for r in lab.resources if r.name.startswith("identity-oidc")]


def test_no_client_secret_digest_or_key_in_plain_text(lab, section):
    grafana = container(lab, "homelab-grafana")
    oidc = section["identity_providers"]["oidc"]
    (client,) = oidc["clients"]
    secret = files(grafana)[env_of(grafana)["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET__FILE"]]
    body = oidc["jwks"][0]["key"].splitlines()[1]
    sensitive = [secret, client["client_secret"], oidc["hmac_secret"], body]
    for r in lab.resources:
        for path, value in plain_strings(r.raw_inputs):
            for text in sensitive:
                assert text not in value, f"{r.name}: {path}"
    for name, value in lab.outputs.items():
        if name not in lab.secret_outputs:
            for text in sensitive:
                assert text not in str(value), f"output {name}"


def test_the_role_mapping_names_every_admin_group():
    assert monitoring.role_attribute_path(("admins", "ops")) == (
        "(contains(groups[*], 'admins') || contains(groups[*], 'ops')) && 'Admin' || 'Viewer'"
    )


@pytest.mark.parametrize(
    ("oidc", "path", "fragment"),
    [
        ({"portainer": {}}, "identity.oidc.portainer", "settings API"),
        ({"mattermost": {}}, "identity.oidc.mattermost", "Team Edition has no OpenID Connect"),
        ({"drupal": {}}, "identity.oidc.drupal", "no OpenID Connect module"),
        ({"wiki": {}}, "identity.oidc.wiki", "no service 'wiki'"),
        ({"grafana": {"groups": ["ops"]}}, "identity.oidc.grafana.groups[0]", "unknown group 'ops'"),
    ],
    ids=["portainer", "mattermost", "drupal", "unknown", "unknown-group"],
)
def test_bad_oidc_config_is_named(oidc, path, fragment):
    assert_rejected(with_identity(oidc=oidc), path, fragment, PASSWORDS)


def test_a_client_for_a_service_that_is_off_is_named():
    config = {**with_identity(oidc={"grafana": {}}), "services": {"grafana": {"enabled": False}}}
    assert_rejected(config, "identity.oidc.grafana", "not enabled and routed", PASSWORDS)


def test_kubectl_signs_in_through_a_kubernetes_client_when_named(tmp_path):
    lab = run_program(
        with_identity(oidc={"kubernetes": {"groups": ["admins"]}}), PASSWORDS, key_dir=str(tmp_path)
    )
    section = yaml.safe_load(files(container(lab, "homelab-authelia"))[identity.OIDC_CONFIG])
    clients = {c["client_id"]: c for c in section["identity_providers"]["oidc"]["clients"]}
    kube = clients["kubernetes"]
    assert kube["redirect_uris"] == ["http://localhost:8000", "http://localhost:18000"]  # kubelogin's ports
    assert kube["token_endpoint_auth_method"] == "client_secret_basic"
    # Its secret is a secret stack output for kubelogin, and verifies against the digest.
    assert "kubernetes-oidc-client-secret" in lab.secret_outputs
    assert verifies(kube["client_secret"], lab.outputs["kubernetes-oidc-client-secret"])
    # Not there unless named.
    assert "kubernetes" not in {
        c["client_id"]
        for c in yaml.safe_load(
            files(container(run_program(CONFIG, PASSWORDS, key_dir=str(tmp_path / "b")), "homelab-authelia"))[
                identity.OIDC_CONFIG
            ]
        )["identity_providers"]["oidc"]["clients"]
    }
