"""Secrets: generated, never in plain text anywhere in the registered inputs or the outputs,
no hard-coded credentials, and the Docker socket only where it is needed."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import harness
import pytest
from harness import (
    HOST_KEY,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    example_files,
    example_key_dir,
    example_run,
    example_secrets,
    file_is_secret,
    holds_secret_files,
    load_stack_file,
    plain_strings,
    run_program,
)
from harness import files as harness_files

from components.docker.spec import SecretRef
from stacks.checks import validate
from stacks.plan import build_plan

CONTAINER = "docker:index/container:Container"
PASSWORD = "random:index/randomPassword:RandomPassword"
SOCKET = "/var/run/docker.sock"
CREDENTIAL = re.compile(r"PASSWORD|SECRET|KEY|SALT")

# Every feature that handles a secret at once: all services, backups to S3, SFTP and WebDAV
# with failure notifications, a user certificate, an SSH key, a custom service with a
# generated secret, the alerts' chat webhook.
EVERYTHING = {
    "monitoring": {"alerting": {"receiver": {"url-secret": "chat-webhook"}}},
    "domain": "lab.example.com",
    "hosts": [
        {
            "name": "server",
            "address": "deploy@server.example.com",
            "private-key-secret": "ssh-key",
            "host-key": HOST_KEY,
        }
    ],
    "tls": {"certificates": {"monitoring.lab.example.com": "my-cert"}},
    "backup": {
        "s3": {
            "bucket": "lab-backups",
            "access-key-id-secret": "s3-id",
            "secret-access-key-secret": "s3-key",
        },
        "ssh": {
            "address": "backup@nas.example.com:2222",
            "path": "/srv/backups",
            "private-key-secret": "nas-key",
        },
        "webdav": {"url": "https://dav.example.com", "username": "lab", "password-secret": "dav-password"},
        "notify-url-secret": "backup-webhook",
    },
    "services": {
        "mattermost": {"enabled": True},
        "postgres": {"enabled": True},
        "mysql": {"enabled": True},
        "drupal": {"enabled": True},
        "web": {"enabled": True},
    },
    "custom-services": [
        {
            "name": "app",
            "image": "traefik/whoami:v1.11.0",
            "routes": [{"hostname": "app", "port": 80}],
            "env": {"MODE": "demo"},
            "secrets": [{"name": "api-token", "env": "API_TOKEN"}],
        }
    ],
}

CASES = [(p.name, p) for p in example_files()] + [("everything", EVERYTHING), ("empty", {})]


@pytest.fixture(scope="module", params=CASES, ids=[name for name, _ in CASES])
def case(request, tmp_path_factory) -> tuple[dict, dict, RecordingMocks, Path]:
    _, source = request.param
    if isinstance(source, Path):  # an example: its one run of the session
        config = load_stack_file(source)
        return config, example_secrets(config), example_run(source), example_key_dir(source)
    secrets = example_secrets(source)
    key_dir = tmp_path_factory.mktemp("keys")
    return source, secrets, run_program(source, secrets, key_dir=str(key_dir)), key_dir


def env(container: Resource) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.inputs.get("envs") or [])


def uploads(container: Resource) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(container)


def containers(mocks: RecordingMocks) -> list[Resource]:
    return mocks.of_type(CONTAINER)


def alias(container: Resource) -> str:
    return next(lab["value"] for lab in container.inputs["labels"] if lab["label"] == "homelab.container")


# ---- no secret in plain text -------------------------------------------------------------


def hashed_only(config: dict) -> set[str]:
    """Config keys of the identity users' passwords: they reach no resource, only their
    argon2id hashes do (tests/test_identity.py verifies each hash against its password)."""
    identity = config.get("identity") or {}
    if not identity.get("enabled"):
        return set()
    return {u["password-secret"] for u in identity.get("users") or []}


def test_the_scan_sees_the_secrets(case):
    """The checks below are not vacuous: secret values do reach the unwrapped inputs."""
    config, secrets, mocks, _ = case
    assert mocks.generated_secrets
    everywhere = json.dumps([r.inputs for r in mocks.resources])
    assert mocks.outputs["admin-password"] in everywhere
    for key, value in secrets.items():
        assert (value not in everywhere) if key in hashed_only(config) else (value in everywhere), key


def test_no_generated_secret_outside_a_secret(case):
    _, _, mocks, _ = case
    for r in mocks.resources:
        for path, text in plain_strings(r.raw_inputs):
            leaked = [s for s in mocks.generated_secrets if s in text]
            assert not leaked, f"{r.type} {r.name}: {path} holds a generated secret in plain text"


def test_no_fake_secret_value_outside_a_secret(case):
    _, _, mocks, _ = case
    for r in mocks.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert SECRET_MARK not in text, f"{r.type} {r.name}: {path} holds a secret in plain text"


def test_config_secrets_reach_resources_only_as_secrets(case):
    config, secrets, mocks, _ = case
    for key, value in secrets.items():
        if key in hashed_only(config):
            continue
        holders = [r for r in mocks.resources if value in json.dumps(r.inputs)]
        assert holders, f"config secret {key} is not used"
        for r in holders:
            assert r.secret_paths, f"{r.name} holds {key} but has no secret input"


def test_outputs_hide_secrets(case):
    config, _, mocks, _ = case
    assert mocks.outputs["admin-password"] == harness._fake("password", "admin-password")
    assert "admin-password" in mocks.secret_outputs
    assert mocks.outputs["admin-user"] == validate(config).admin_user
    if "backup-identity" in mocks.outputs:
        assert "backup-identity" in mocks.secret_outputs
        assert mocks.outputs["backup-identity"] in {
            harness._pem("OPENSSH PRIVATE KEY", r.name)
            for r in mocks.of_type("tls:index/privateKey:PrivateKey")
            if r.name == "backup-key"
        }
    for name, value in mocks.outputs.items():
        if name not in mocks.secret_outputs:
            assert SECRET_MARK not in json.dumps(value), f"output {name} shows a secret"


def test_ssh_key_reaches_the_provider_as_a_0600_file(case):
    config, secrets, mocks, key_dir = case
    model = validate(config)
    for h in model.hosts:
        provider = mocks.providers()[f"{h.name}-docker"]
        if not h.private_key_secret:
            assert "-i" not in json.dumps(provider.inputs)
            continue
        key_file = key_dir / f"{h.name}.key"
        assert key_file.read_text().strip() == secrets[h.private_key_secret]
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        assert str(key_file) in provider.inputs["sshOpts"]
        bootstrap = mocks.named(f"{h.name}-bootstrap")
        assert bootstrap.inputs["connection"]["privateKey"] == secrets[h.private_key_secret]
        assert "connection" in bootstrap.secret_paths or "connection.privateKey" in bootstrap.secret_paths


# ---- generated, never hard-coded -----------------------------------------------------------


def test_admin_password_is_generated_and_only_in_secret_files(case):
    _, _, mocks, _ = case
    admin = mocks.named("admin-password", PASSWORD)
    assert admin.inputs["length"] == 26 and admin.inputs["special"] is False
    value = mocks.outputs["admin-password"]
    holders = {alias(c) for c in containers(mocks) if value in json.dumps(c.inputs)}
    assert holders <= {"grafana", "portainer", "grafana-files", "portainer-files"}  # and their stagers
    for c in containers(mocks):
        if alias(c) in ("grafana", "portainer"):
            assert uploads(c)["/run/homelab/admin-password"] == value
            assert file_is_secret(c, "/run/homelab/admin-password")
    grafana = [c for c in containers(mocks) if alias(c) == "grafana"]
    for c in grafana:
        assert env(c)["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/homelab/admin-password"
        assert "GF_SECURITY_ADMIN_PASSWORD" not in env(c)


def test_every_service_secret_is_a_random_password(case):
    config, _, mocks, _ = case
    passwords = {r.name: r for r in mocks.of_type(PASSWORD)}
    for spec in build_plan(validate(config)).services:
        for secret in spec.secrets:
            r = passwords.get(f"{spec.name}-{secret.name}")
            assert r is not None, f"{spec.name}: secret {secret.name} is not a RandomPassword"
            assert r.inputs["length"] == secret.length >= 16


def test_database_passwords_and_salts_are_generated(tmp_path):
    mocks = run_program(EVERYTHING, example_secrets(EVERYTHING), key_dir=str(tmp_path))
    generated = mocks.generated_secrets
    by_alias = {alias(c): c for c in containers(mocks)}
    # Database passwords travel as files (the *_FILE variable names one), the rest as env.
    in_files = {
        "postgres": {"POSTGRES_PASSWORD_FILE": "postgres-password"},
        "mysql": {"MYSQL_PASSWORD_FILE": "mysql-password", "MYSQL_ROOT_PASSWORD_FILE": "mysql-root-password"},
        "mattermost-db": {"POSTGRES_PASSWORD_FILE": "mattermost-db-password"},
        "drupal-db": {"POSTGRES_PASSWORD_FILE": "drupal-db-password"},
    }
    in_env = {
        "mattermost": {
            "MM_FILESETTINGS_PUBLICLINKSALT": "mattermost-public-link-salt",
            "MM_EMAILSETTINGS_INVITESALT": "mattermost-invite-salt",
            "MM_SQLSETTINGS_ATRESTENCRYPTKEY": "mattermost-at-rest-encrypt-key",
        },
        "app": {"API_TOKEN": "app-api-token"},
    }
    seen: list[str] = []
    for container, variables in [*in_files.items(), *in_env.items()]:
        c = by_alias[container]
        if container in in_files:
            assert holds_secret_files(c), container
        else:
            assert any(p.startswith("envs") for p in c.secret_paths), container
        for key, password in variables.items():
            mocks.named(password, PASSWORD)
            value = uploads(c)[env(c)[key]] if container in in_files else env(c)[key]
            assert value in generated, f"{container} {key} is not generated"
            assert value == harness._fake("password", password), f"{container} {key} is not {password}"
            seen.append(value)
    assert len(seen) == len(set(seen)), "every secret is its own RandomPassword"
    # Mattermost reaches its database with that database's password, from its pgpass file.
    db_password = uploads(by_alias["mattermost-db"])["/run/homelab/db-password"]
    mattermost = by_alias["mattermost"]
    assert f"mattermost:{db_password}\n" in uploads(mattermost)[env(mattermost)["PGPASSFILE"]]
    assert db_password not in env(mattermost)["MM_SQLSETTINGS_DATASOURCE"]


def test_no_hard_coded_credential_in_declarations(case):
    config, _, _, _ = case
    for spec in build_plan(validate(config)).services:
        for c in spec.containers:
            for key, value in c.env.items():
                if CREDENTIAL.search(key) and not key.endswith("_FILE"):
                    assert isinstance(value, SecretRef), f"{spec.name}/{c.name}: {key} is hard-coded"


def test_no_hard_coded_credential_in_containers(case):
    _, secrets, mocks, _ = case
    known = mocks.generated_secrets | set(secrets.values())
    for c in containers(mocks):
        for key, value in env(c).items():
            if not CREDENTIAL.search(key):
                continue
            if key.endswith("_FILE"):
                assert value.startswith("/"), f"{c.name}: {key} is not a file path"
                continue
            assert any(s in value for s in known), f"{c.name}: {key}={value!r} is a hard-coded credential"
            assert "envs" in c.secret_paths, f"{c.name}: {key} is not secret"


# ---- Docker socket -------------------------------------------------------------------------


def test_docker_socket_only_where_needed(case):
    _, _, mocks, _ = case
    holders = {}
    for c in containers(mocks):
        for m in c.inputs.get("volumes") or []:
            if m.get("hostPath") in (SOCKET, "/run/docker.sock", "/var/run", "/run"):
                assert m["hostPath"] == SOCKET and m["containerPath"] == SOCKET, c.name
                holders.setdefault(alias(c), []).append(m["readOnly"])
    # Portainer (read-write), and the Docker API proxies of the backup run and cAdvisor.
    proxies = {"backup-docker-api", "cadvisor-docker-api"}
    assert set(holders) <= {"portainer", *proxies}
    assert {"portainer", *proxies} & {alias(c) for c in containers(mocks)} <= set(holders)
    assert all(ro is True for p in proxies for ro in holders.get(p, [])), "the proxies mount it read-only"
