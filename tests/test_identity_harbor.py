"""Harbor of the platform layer signs in through the homelab's identity provider, when
`identity.oidc.harbor` says so (issue 24, items 3 and 5): Authelia gets a `harbor` client as
its harbor guide (v4.39.20) writes it (redirect `/c/oidc/callback`, no PKCE, refresh tokens);
Harbor gets auth mode oidc_auth through the provider's ConfigAuth, keeps no local users, and
gives each project's identity groups their role as OIDC group members.
"""

from __future__ import annotations

import pytest
from harness import is_secret, plain_strings, provider_schema, run_program
from test_bad_input import assert_rejected
from test_identity_argocd import authelia_section, platform_with_identity
from test_identity_oidc import verifies
from test_platform_charts import chart_defaults, release, unknown_keys

from components.platform.access import HARBOR_ROLES
from components.platform.harbor import OIDC_CA_SECRET

CONFIG_AUTH = "harbor:index/configAuth:ConfigAuth"
GROUP_MEMBER = "harbor:index/projectMemberGroup:ProjectMemberGroup"
USER = "harbor:index/user:User"
USER_MEMBER = "harbor:index/projectMemberUser:ProjectMemberUser"
SECRET = "kubernetes:core/v1:Secret"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    config, secrets = platform_with_identity(harbor={})
    config["identity"]["admin-groups"] = ["admins", "team-a"]
    return run_program(config, secrets, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_authelia_gets_a_harbor_client_as_its_guide_writes_it(lab):
    (client,) = [c for c in authelia_section(lab)["clients"] if c["client_id"] == "harbor"]
    assert client["redirect_uris"] == ["https://harbor.idp.lab.example.com/c/oidc/callback"]
    assert client["require_pkce"] is False and client["pkce_challenge_method"] == ""
    assert set(client["scopes"]) == {"openid", "offline_access", "profile", "groups", "email"}
    assert client["grant_types"] == ["authorization_code", "refresh_token"]
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    others = [c for c in authelia_section(lab)["clients"] if c["client_id"] == "argocd"]
    assert others and others[0]["require_pkce"] is True  # the others keep PKCE


def test_harbor_signs_in_through_the_provider_and_keeps_no_local_users(lab):
    (auth,) = lab.of_type(CONFIG_AUTH)
    inputs = auth.inputs
    assert inputs["authMode"] == "oidc_auth"
    assert inputs["oidcEndpoint"] == "https://auth.lab.example.com"
    assert inputs["oidcClientId"] == "harbor"
    assert inputs["oidcScope"] == "openid,profile,email,groups,offline_access"
    assert inputs["oidcGroupsClaim"] == "groups" and inputs["oidcUserClaim"] == "preferred_username"
    assert inputs["oidcAdminGroup"] == "admins"  # one group: the first admin group
    assert inputs["oidcVerifyCert"] is True and inputs["oidcAutoOnboard"] is True
    # The provider's inputs only (pulumi-harbor v3.10.21's schema).
    known = set(provider_schema("harbor")["resources"][CONFIG_AUTH]["inputProperties"])
    assert set(inputs) <= known, set(inputs) - known
    # The secret Authelia verifies against its digest, kept a secret.
    (client,) = [c for c in authelia_section(lab)["clients"] if c["client_id"] == "harbor"]
    assert verifies(client["client_secret"], inputs["oidcClientSecret"])
    assert is_secret(auth, "oidcClientSecret")
    for r in lab.resources:
        if r.type != CONFIG_AUTH:
            for path, text in plain_strings(r.raw_inputs):
                assert inputs["oidcClientSecret"] not in text, (r.name, path)
    # oidc_auth cannot be set while local users exist: none is made, none is a member.
    assert lab.of_type(USER) == [] and lab.of_type(USER_MEMBER) == []
    assert "harbor-user-passwords" not in lab.outputs


def test_project_groups_are_harbor_members_after_the_switch(lab):
    members = {(m.inputs["groupName"], m.inputs["role"]) for m in lab.of_type(GROUP_MEMBER)}
    # examples/platform.yaml: team-a's groups developer team-a, viewer auditors; team-b's viewer auditors.
    assert members == {("team-a", HARBOR_ROLES["developer"]), ("auditors", HARBOR_ROLES["viewer"])}
    assert len(lab.of_type(GROUP_MEMBER)) == 3
    (auth,) = lab.of_type(CONFIG_AUTH)
    for m in lab.of_type(GROUP_MEMBER):
        assert m.inputs["type"] == "oidc"
        assert auth.urn in m.dependencies, m.name  # after Harbor signs in through the provider
        known = set(provider_schema("harbor")["resources"][GROUP_MEMBER]["inputProperties"])
        assert set(m.inputs) <= known


def test_harbor_core_trusts_the_stack_ca_that_signed_the_sign_in_page(lab):
    values = release(lab, "harbor").inputs["values"]
    assert values["caBundleSecretName"] == OIDC_CA_SECRET
    (secret,) = [s for s in lab.of_type(SECRET) if s.input("metadata.name") == OIDC_CA_SECRET]
    assert secret.inputs["stringData"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert unknown_keys(values, chart_defaults("harbor"), "harbor") == []


def test_without_identity_oidc_harbor_it_keeps_local_users(tmp_path):
    config, secrets = platform_with_identity()
    lab = run_program(config, secrets, key_dir=str(tmp_path))
    assert lab.of_type(CONFIG_AUTH) == [] and lab.of_type(GROUP_MEMBER) == []
    assert lab.of_type(USER) and lab.of_type(USER_MEMBER)
    assert "harbor" not in [c["client_id"] for c in authelia_section(lab)["clients"]]
    assert "caBundleSecretName" not in release(lab, "harbor").inputs["values"]


def test_identity_oidc_harbor_without_a_harbor_is_named():
    config, secrets = platform_with_identity(harbor={})
    config["platform"]["components"]["harbor"]["enabled"] = False
    assert_rejected(config, "identity.oidc.harbor", "the platform layer runs no Harbor", secrets)
