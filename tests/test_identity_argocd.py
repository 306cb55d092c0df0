"""Argo CD of the platform layer signs in through the homelab's identity provider (issue 24,
items 3 and 5): Authelia gets an `argocd` client whose redirect URI is Argo CD's routed
`/auth/callback`; Argo CD gets `oidc.config` (OIDCConfig's keys, argoproj/argo-cd
util/settings/settings.go @ v3.4.4) with the client secret in argocd-secret, Dex off; and the
project roles' groups are the identity groups, matched against the same token's claims.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from harness import (
    ROOT,
    SECRET_MARK,
    example_secrets,
    files,
    is_stager,
    load_stack_file,
    plain_strings,
    run_program,
)
from test_bad_input import assert_rejected
from test_identity_oidc import verifies
from test_platform_charts import chart_defaults, release, unknown_keys

from components.homelab import identity
from components.platform.argocd import OIDC_SECRET_KEY

CONTAINER = "docker:index/container:Container"
APP_PROJECT = "kubernetes:argoproj.io/v1alpha1:AppProject"
IDENTITY = {
    "enabled": True,
    "groups": ["admins", "team-a", "auditors"],
    "users": [
        {"name": "alice", "email": "alice@lab.example.com", "groups": ["admins", "team-a"],
         "password-secret": "alice-password"},
    ],
}  # fmt: skip


def platform_with_identity(github_sso: bool = False, **oidc: Any) -> tuple[dict[str, Any], dict[str, str]]:
    config = copy.deepcopy(load_stack_file(ROOT / "examples" / "platform.yaml"))
    secrets = dict(example_secrets(config))
    config["identity"] = {**IDENTITY, **({"oidc": oidc} if oidc else {})}
    del config["proxy"]  # the example serves Prometheus open; here it is behind sign-in
    secrets["alice-password"] = f"{SECRET_MARK}-alice"
    if not github_sso:
        del config["platform"]["components"]["argocd"]["sso"]
        secrets.pop("github-oauth-secret", None)
    return config, secrets


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    config, secrets = platform_with_identity()
    return run_program(config, secrets, key_dir=str(tmp_path_factory.mktemp("keys")))


def authelia_section(lab) -> dict:
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-authelia" and not is_stager(c)]
    return yaml.safe_load(files(c)[identity.OIDC_CONFIG])["identity_providers"]["oidc"]


def test_authelia_gets_an_argocd_client_at_its_callback(lab):
    clients = {c["client_id"]: c for c in authelia_section(lab)["clients"]}
    assert clients["argocd"]["redirect_uris"] == ["https://argocd.idp.lab.example.com/auth/callback"]
    assert "profile" in clients["argocd"]["scopes"]  # preferred_username: the logins the roles name


def test_argocd_reads_oidc_config_and_its_secret_from_argocd_secret(lab):
    values = release(lab, "argocd").inputs["values"]
    assert values["dex"]["enabled"] is False  # oidc.config wins anyway (IssuerURL): no idle Dex
    assert "dex.config" not in values["configs"]["cm"]
    config = yaml.safe_load(values["configs"]["cm"]["oidc.config"])
    assert config["issuer"] == "https://auth.lab.example.com"
    assert config["clientID"] == "argocd"
    assert config["clientSecret"] == f"${OIDC_SECRET_KEY}"
    assert config["requestedScopes"] == ["openid", "profile", "email", "groups"]
    assert config["enablePKCEAuthentication"] is True
    # The homelab CA signed the portal's certificate: Argo CD trusts it for the token calls.
    assert config["rootCA"].startswith("-----BEGIN CERTIFICATE-----")
    # OIDCConfig's own keys only (util/settings/settings.go @ v3.4.4, the struct's json tags).
    known = {"name", "issuer", "clientID", "clientSecret", "cliClientID", "enableUserInfoGroups",
             "userInfoPath", "userInfoCacheExpiration", "requestedScopes", "requestedIDTokenClaims",
             "logoutURL", "rootCA", "enablePKCEAuthentication", "domainHint", "azure",
             "refreshTokenThreshold"}  # fmt: skip
    assert set(config) <= known
    # The secret Authelia verifies against its digest; in argocd-secret, never in plain text.
    secret = values["configs"]["secret"]["extra"][OIDC_SECRET_KEY]
    (client,) = [c for c in authelia_section(lab)["clients"] if c["client_id"] == "argocd"]
    assert verifies(client["client_secret"], secret)
    for r in lab.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert secret not in text, (r.name, path)
    assert unknown_keys(values, chart_defaults("argo-cd"), "argo-cd") == []


def test_project_roles_take_the_identity_groups(lab):
    (project,) = [p for p in lab.of_type(APP_PROJECT) if p.input("metadata.name") == "team-a"]
    roles = {r["name"]: r["groups"] for r in project.inputs["spec"]["roles"]}
    assert "team-a" in roles["developer"] and "auditors" in roles["viewer"]


def test_github_sign_in_is_kept_unless_identity_names_argocd(tmp_path):
    config, secrets = platform_with_identity(github_sso=True)
    lab = run_program(config, secrets, key_dir=str(tmp_path))
    assert [c["client_id"] for c in authelia_section(lab)["clients"]] == ["grafana"]
    values = release(lab, "argocd").inputs["values"]
    assert "oidc.config" not in values["configs"]["cm"] and values["dex"]["enabled"] is True


def test_both_sign_ins_at_once_is_named():
    config, secrets = platform_with_identity(github_sso=True, argocd={})
    assert_rejected(config, "identity.oidc.argocd", "use one or the other", secrets)


def test_argocd_can_keep_its_local_admin_only(tmp_path):
    config, secrets = platform_with_identity(argocd={"enabled": False})
    lab = run_program(config, secrets, key_dir=str(tmp_path))
    values = release(lab, "argocd").inputs["values"]
    assert "oidc.config" not in values["configs"]["cm"]
    assert values["configs"]["cm"]["admin.enabled"] is True  # break-glass: argocd-admin-password


def test_the_argocd_cli_gets_a_public_client_with_pkce_and_no_secret(lab):
    from test_identity_oidc import OIDC_KEYS, leaves, schema_path

    section = authelia_section(lab)
    clients = {c["client_id"]: c for c in section["clients"]}
    cli = clients["argocd-cli"]
    assert cli["public"] is True and "client_secret" not in cli
    assert cli["token_endpoint_auth_method"] == "none" and cli["require_pkce"] is True
    assert cli["redirect_uris"] == ["http://localhost:8085/auth/callback"]
    assert cli["grant_types"] == ["authorization_code", "refresh_token"] and "offline_access" in cli["scopes"]
    assert cli["authorization_policy"] in section["authorization_policies"]
    # Every key and value of the section, both clients, is one Authelia's schema allows.
    for path, value in leaves({"identity_providers": {"oidc": section}}):
        allowed = OIDC_KEYS[schema_path(path)]
        assert allowed is None or value in allowed, f"{path}: {value!r}"
    values = release(lab, "argocd").inputs["values"]
    assert yaml.safe_load(values["configs"]["cm"]["oidc.config"])["cliClientID"] == "argocd-cli"


def test_the_identity_admin_groups_administer_argocd(lab):
    values = release(lab, "argocd").inputs["values"]
    assert values["configs"]["rbac"]["policy.csv"] == "g, admins, role:admin\n"
    assert values["configs"]["rbac"]["policy.default"] == ""  # nobody else gets a global role
    assert unknown_keys(values, chart_defaults("argo-cd"), "argo-cd") == []


def test_with_github_sign_in_no_group_is_made_admin(tmp_path):
    config, secrets = platform_with_identity(github_sso=True)
    values = release(run_program(config, secrets, key_dir=str(tmp_path)), "argocd").inputs["values"]
    assert "policy.csv" not in values["configs"]["rbac"]
