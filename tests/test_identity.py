"""Identity as code, first part (issue 24): Authelia as a homelab service, the users and groups of
`homelab:identity`, passwords hashed with argon2id on the operator's machine.

The generated configuration.yml and users_database.yml use only keys, and values, that the JSON
schemas Authelia publishes for the pinned version define (docs/static/schemas/v4.39/
json-schema/configuration.json and user-database.json, authelia/authelia @ 1b524f7f4bbf, tag
v4.39.20). The schema files themselves are not vendored: fetched files may only enter the
repository through the steering repository's shared/ folder. So the facts the program relies on
are written down here, each read in those files: a new key fails this test until it is read
there too. Every hash verifies against its password with argon2; no password or hash is in
plain text in any input; each wrong identity config is one problem with its key path.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from argon2 import PasswordHasher
from harness import (
    HOST_KEY,
    SECRET_MARK,
    file_is_secret,
    file_owner_and_mode,
    files,
    is_stager,
    plain_strings,
    run_program,
)
from test_bad_input import assert_rejected, problems_of

from components.homelab import identity

CONTAINER = "docker:index/container:Container"
PASSWORDS = {
    "alice-password": f"{SECRET_MARK}-alice-correct-horse",
    "bob-password": f"{SECRET_MARK}-bob-battery",
}
IDENTITY = {
    "enabled": True,
    "groups": ["admins", "family"],
    "users": [
        {"name": "alice", "display-name": "Alice", "email": "alice@lab.example.com", "groups": ["admins"],
         "password-secret": "alice-password"},
        {"name": "bob", "email": "bob@lab.example.com", "groups": ["family"],
         "password-secret": "bob-password"},
    ],
}  # fmt: skip
CONFIG = {"domain": "lab.example.com", "identity": IDENTITY}


# configuration.json @ v4.39 (see above): every key path the program writes ("[]": an item of a
# list), with the values its enum allows where it has one (None: a string, integer or boolean).
CONFIG_KEYS: dict[str, tuple[Any, ...] | None] = {
    "theme": ("auto", "light", "dark", "grey", "oled"),
    "server.address": None,
    "log.level": ("error", "warn", "info", "debug", "trace"),
    "totp.issuer": None,
    "authentication_backend.password_reset.disable": None,
    "authentication_backend.file.path": None,
    "authentication_backend.file.watch": None,
    "authentication_backend.file.password.algorithm": ("argon2", "sha2crypt", "pbkdf2", "bcrypt", "scrypt"),
    "authentication_backend.file.password.argon2.variant": ("argon2id", "argon2i", "argon2d"),
    "authentication_backend.file.password.argon2.iterations": None,
    "authentication_backend.file.password.argon2.memory": None,
    "authentication_backend.file.password.argon2.parallelism": None,
    "authentication_backend.file.password.argon2.key_length": None,
    "authentication_backend.file.password.argon2.salt_length": None,
    "access_control.default_policy": ("deny", "one_factor", "two_factor"),
    "access_control.rules[].domain[]": None,
    "access_control.rules[].policy": ("bypass", "deny", "one_factor", "two_factor"),
    "access_control.rules[].subject[][]": None,
    "session.cookies[].domain": None,
    "session.cookies[].authelia_url": None,
    "storage.local.path": None,
    "notifier.filesystem.filename": None,
    "telemetry.metrics.enabled": None,
    "telemetry.metrics.address": None,
}
# user-database.json @ v4.39: `users` by name; each user's details ("required": password and
# displayname, "additionalProperties": false).
USER_KEYS = {"password", "displayname", "email", "groups", "disabled"}
USER_REQUIRED = {"password", "displayname"}


def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """(key path, value) of every scalar in a document, list items as "[]"."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v, f"{path}[]")]
    return [(path, value)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return run_program(CONFIG, PASSWORDS, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def authelia(lab):
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-authelia" and not is_stager(c)]
    return c


def test_authelia_runs_pinned_routed_and_backed_up(lab, authelia):
    labels = {item["label"]: item["value"] for item in authelia.inputs["labels"]}
    assert labels["homelab.service"] == "authelia"
    assert lab.outputs["urls"]["authelia"] == "https://auth.lab.example.com/"
    # The OpenID Connect section (Grafana is a client) is a second, secret file.
    assert authelia.inputs["command"] == ["--config", identity.CONFIG, "--config", identity.OIDC_CONFIG]
    env = dict(e.split("=", 1) for e in authelia.inputs["envs"])
    assert (env["PUID"], env["PGID"]) == ("8000", "8000")
    # Its data (SQLite) is a stateful volume, so it is retained and backed up.
    (data,) = [v for v in authelia.inputs["volumes"] if v.get("containerPath") == identity.DATA]
    assert data["volumeName"] == "homelab_authelia_data"
    assert labels.get("docker-volume-backup.stop-during-backup")
    assert authelia.inputs["healthcheck"]["tests"] == [
        "CMD",
        "wget",
        "-q",
        "--spider",
        "http://127.0.0.1:9091/api/health",
    ]


def test_the_configuration_validates_against_authelias_schema(authelia):
    config = yaml.safe_load(files(authelia)[identity.CONFIG])
    for path, value in leaves(config):
        assert path in CONFIG_KEYS, f"{path} is not a key of Authelia's configuration schema (v4.39)"
        allowed = CONFIG_KEYS[path]
        assert allowed is None or value in allowed, f"{path}: {value!r} is not one of {allowed}"
    assert config["session"]["cookies"] == [
        {"domain": "lab.example.com", "authelia_url": "https://auth.lab.example.com/"}
    ]
    # One rule per name behind forward auth: the admin tools for the admins with two factors,
    # the landing page for any user; every other name is denied.
    assert config["access_control"] == {
        "default_policy": "deny",
        "rules": [
            {"domain": ["metrics.lab.example.com"], "policy": "two_factor", "subject": [["group:admins"]]},
            {"domain": ["alerts.lab.example.com"], "policy": "two_factor", "subject": [["group:admins"]]},
            {"domain": ["home.lab.example.com"], "policy": "one_factor"},
        ],
    }
    # No secret in the file: they are *_FILE variables, each a file of uid 8000 alone.
    env = dict(e.split("=", 1) for e in authelia.inputs["envs"])
    for key in ("SESSION_SECRET", "STORAGE_ENCRYPTION_KEY", "IDENTITY_VALIDATION_RESET_PASSWORD_JWT_SECRET"):
        path = env[f"AUTHELIA_{key}_FILE"]
        assert file_is_secret(authelia, path) and file_owner_and_mode(authelia, path) == ("8000", "0400")
        assert len(files(authelia)[path]) >= 20  # the storage key must have 20 characters or more


def test_the_users_file_validates_and_each_hash_verifies(authelia):
    text = files(authelia)[identity.USERS]
    assert file_is_secret(authelia, identity.USERS)
    assert file_owner_and_mode(authelia, identity.USERS) == ("8000", "0400")
    document = yaml.safe_load(text)
    assert list(document) == ["users"]
    users = document["users"]
    for details in users.values():
        assert USER_REQUIRED <= set(details) <= USER_KEYS
    assert sorted(users) == ["alice", "bob"]
    assert users["alice"]["groups"] == ["admins"] and users["alice"]["displayname"] == "Alice"
    assert users["bob"]["displayname"] == "bob" and users["bob"]["email"] == "bob@lab.example.com"
    hasher = PasswordHasher()
    for name, key in (("alice", "alice-password"), ("bob", "bob-password")):
        digest = users[name]["password"]
        assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert hasher.verify(digest, PASSWORDS[key])
    assert users["alice"]["password"] != users["bob"]["password"]


def test_no_password_or_hash_in_plain_text_anywhere(lab, authelia):
    text = files(authelia)[identity.USERS]
    hashes = [u["password"] for u in yaml.safe_load(text)["users"].values()]
    for r in lab.resources:
        for path, value in plain_strings(r.raw_inputs):
            for secret in [*PASSWORDS.values(), *hashes]:
                assert secret not in value, f"{r.name}: {path}"


def test_a_hash_changes_only_with_its_password():
    salt = "c2FsdHNhbHRzYWx0c2FsdA=="  # 16 bytes
    first = identity.password_hash("correct horse", salt)
    assert identity.password_hash("correct horse", salt) == first
    assert identity.password_hash("correct horsf", salt) != first


def with_identity(**changes: Any) -> dict[str, Any]:
    return {"domain": "lab.example.com", "identity": {**IDENTITY, **changes}}


def user(i: int, **changes: Any) -> list[dict[str, Any]]:
    users = [dict(u) for u in IDENTITY["users"]]
    users[i].update(changes)
    return users


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        (
            with_identity(users=user(1, groups=["friends"])),
            "identity.users[1].groups[0]",
            "unknown group 'friends'",
        ),
        (
            with_identity(users=user(1, email="ALICE@lab.example.com")),
            "identity.users[1].email",
            "also the e-mail",
        ),
        (with_identity(users=user(1, name="alice")), "identity.users[1].name", "also users[0]"),
        (with_identity(users=user(0, groups=["family"])), "identity.users", "nobody could administer"),
        (with_identity(**{"admin-groups": ["root"]}), "identity.admin-groups[0]", "unknown group 'root'"),
        ({**with_identity(), "tls": {"enabled": False}}, "identity.enabled", "needs HTTPS"),
        ({"identity": IDENTITY}, "domain", "has no dot"),
    ],
    ids=[
        "unknown-group",
        "same-email",
        "same-name",
        "no-admin",
        "unknown-admin-group",
        "no-tls",
        "localhost",
    ],
)
def test_bad_identity_config_is_named(config, path, fragment):
    assert_rejected(config, path, fragment, PASSWORDS)


def test_a_plain_text_password_is_refused():
    users = user(0)
    users[0]["password"] = "hunter2"
    del users[0]["password-secret"]
    assert_rejected(with_identity(users=users), "identity.users[0]", "a password in plain text", PASSWORDS)


def test_a_password_secret_that_is_not_set_is_named(tmp_path):
    from harness import run_invalid

    error, mocks = run_invalid(CONFIG, {"alice-password": PASSWORDS["alice-password"]})
    assert "identity.users[1].password-secret" in str(error) and "bob-password" in str(error)
    assert mocks.resources == []


@pytest.mark.parametrize(
    ("rules", "path", "fragment"),
    [
        (
            {"metrics": {"policy": "two-factor", "groups": ["ops"]}},
            "identity.forward-auth.metrics.groups[0]",
            "unknown group 'ops'",
        ),
        (
            {"monitoring": {"policy": "one-factor"}},
            "identity.forward-auth.monitoring",
            "has a login of its own",
        ),
        (
            {"nowhere": {"policy": "one-factor"}},
            "identity.forward-auth.nowhere",
            "no service is routed at nowhere.lab",
        ),
        (
            {"home": {"policy": "public", "groups": ["family"]}},
            "identity.forward-auth.home.groups",
            "a public route has no groups",
        ),
    ],
    ids=["unknown-group", "own-login", "not-routed", "public-with-groups"],
)
def test_bad_forward_auth_rules_are_named(rules, path, fragment):
    assert_rejected(with_identity(**{"forward-auth": rules}), path, fragment, PASSWORDS)


def test_forward_auth_rules_set_each_routes_policy(tmp_path):
    rules = {"home": {"policy": "public"}, "metrics": {"policy": "one-factor", "groups": ["family"]}}
    lab = run_program(with_identity(**{"forward-auth": rules}), PASSWORDS, key_dir=str(tmp_path))
    (authelia,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-authelia"]
    config = yaml.safe_load(files(authelia)[identity.CONFIG])
    assert config["access_control"]["rules"] == [
        {"domain": ["metrics.lab.example.com"], "policy": "one_factor", "subject": [["group:family"]]},
        {"domain": ["alerts.lab.example.com"], "policy": "two_factor", "subject": [["group:admins"]]},
    ]
    (proxy,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-haproxy"]
    cfg = files(proxy)["/usr/local/etc/haproxy/haproxy.cfg"]
    acl = "acl signed_in_route req.hdr(host),field(1,:),lower -m str "
    assert acl + "alerts.lab.example.com metrics.lab.example.com\n" in cfg


def test_forward_auth_needs_the_identity_provider_on_the_routes_host():
    config = with_identity()
    config["hosts"] = [
        {"name": "local"},
        {"name": "b", "address": "deploy@b.example.com", "host-key": HOST_KEY},
    ]
    config["identity"] = {**config["identity"], "host": "b"}
    problems = problems_of(config, PASSWORDS)
    paths = {path for path, message in problems if "forward auth reaches it on its own host only" in message}
    # Every route behind sign-in on the other host, each at its own key.
    assert paths == {
        "services.prometheus.hostname",
        "services.alertmanager.hostname",
        "services.landing.hostname",
    }


def test_an_unknown_identity_host_is_named():
    assert_rejected(with_identity(host="nowhere"), "identity.host", "unknown host 'nowhere'", PASSWORDS)


def test_a_user_without_an_email_is_named():
    users = user(1)
    del users[1]["email"]
    assert problems_of(with_identity(users=users), PASSWORDS) == [
        ("identity.users[1].email", "Field required")
    ]


def test_prometheus_scrapes_and_probes_pass_by_the_sign_in(lab):
    """Prometheus scrapes the containers on the stack network, never a name behind forward auth;
    the blackbox exporter's certificate probes only complete a TLS handshake (prober: tcp),
    which HAProxy answers before any sign-in."""
    (prometheus,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-prometheus"]
    document = yaml.safe_load(files(prometheus)["/etc/prometheus/prometheus.yml"])
    protected = {"metrics.lab.example.com", "alerts.lab.example.com", "home.lab.example.com"}
    scraped = [
        target
        for job in document["scrape_configs"]
        if job.get("metrics_path") != "/probe"
        for group in job.get("static_configs") or []
        for target in group["targets"]
    ]
    assert scraped and not [t for t in scraped if t.split(":")[0] in protected]
    (blackbox,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-blackbox-exporter"]
    modules = yaml.safe_load(files(blackbox)["/etc/blackbox_exporter/config.yml"])["modules"]
    assert {m["prober"] for m in modules.values()} == {"tcp"}
