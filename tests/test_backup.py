"""The backup run per host (offen/docker-volume-backup v2.48.2), as registered under mocks:
derived from the declarations alone, a stop label per host, secrets only as uploaded
`*_FILE` files, archives encrypted to a generated key, targets and failure notifications.

Engine facts the assertions rely on (github.com/offen/docker-volume-backup, tag v2.48.2):
docs/reference/index.md (the variables; `_FILE` for any of them), cmd/backup/config_provider.go
(`_FILE` contents read as is, so no trailing newline), cmd/backup/stop_restart.go (the stop
label must equal BACKUP_STOP_DURING_BACKUP_LABEL), cmd/backup/exec.go (EXEC_LABEL narrows the
containers whose command labels run), cmd/backup/encrypt_archive.go (AGE_PUBLIC_KEYS takes
age1... and ssh- keys, comma-separated).
"""

from __future__ import annotations

import pytest
from harness import (
    EXAMPLES,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    _pem,
    example_run,
    holds_secret_files,
    plain_strings,
    run_program,
    stager_of,
)
from harness import files as harness_files

from components.homelab import backup
from components.homelab.images import IMAGES
from stacks.checks import validate
from stacks.plan import build_plan

CONTAINER = "docker:index/container:Container"
STOP = "docker-volume-backup.stop-during-backup"
DEV = {"hosts": [{"name": "local"}]}
WHOAMI = "traefik/whoami:v1.11.0"
S3 = {
    "endpoint": "minio.lab.example.com:9000",
    "bucket": "lab-backups",
    "path": "homelab",
    "access-key-id-secret": "s3-id",
    "secret-access-key-secret": "s3-key",
}
SSH = {
    "address": "backup@nas.lab.example.com:2222",
    "path": "/volume1/backups",
    "private-key-secret": "nas-key",
}
WEBDAV = {
    "url": "https://dav.lab.example.com",
    "path": "/homelab",
    "username": "lab",
    "password-secret": "dav-pw",
}


def labels(r: Resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in r.inputs.get("labels") or []}


def env(r: Resource) -> dict[str, str]:
    return dict(e.split("=", 1) for e in r.inputs.get("envs") or [])


def uploads(r: Resource) -> dict[str, str]:
    """The files it reads, by path (staged ones included: harness.files)."""
    return harness_files(r)


def on_host(mocks: RecordingMocks, host: str) -> dict[str, Resource]:
    """Containers of one host by alias."""
    return {
        labels(r)["homelab.container"]: r
        for r in mocks.of_type(CONTAINER)
        if labels(r)["homelab.host"] == host
    }


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("keys"))


# ---- the backup set and the stop label come from the declarations ---------------------------


def test_a_custom_service_with_a_volume_is_backed_up_and_labelled(key_dir):
    config = {
        **DEV,
        "custom-services": [{"name": "notes", "image": WHOAMI, "volumes": [{"name": "db", "path": "/db"}]}],
    }
    plan = build_plan(validate(config))
    (spec,) = [s for s in plan.services if s.name == "notes"]
    assert spec.backup_group == "homelab-local"
    mocks = run_program(config, key_dir=key_dir)
    containers = on_host(mocks, "local")
    assert labels(containers["notes"])[STOP] == "homelab-local"
    mounts = containers["backup"].inputs["volumes"]
    assert {
        "volumeName": "homelab_notes_db",
        "containerPath": "/backup/homelab_notes_db",
        "readOnly": True,
    } in mounts


def test_two_hosts_get_different_label_values(key_dir):
    mocks = example_run(EXAMPLES / "multi-host.yaml")
    seen = {}
    for host in ("ops", "apps"):
        containers = on_host(mocks, host)
        value = env(containers["backup"])["BACKUP_STOP_DURING_BACKUP_LABEL"]
        assert value == f"homelab-{host}"
        stopped = {alias for alias, c in containers.items() if STOP in labels(c)}
        assert stopped, host
        assert {labels(containers[a])[STOP] for a in stopped} == {value}
        seen[host] = value
    assert seen["ops"] != seen["apps"]
    # The engine's other label filters are this host's too: no schedule runs another's commands.
    for host in ("ops", "apps"):
        values = env(on_host(mocks, host)["backup"])
        assert (
            values["BACKUP_STOP_DURING_BACKUP_NO_RESTART_LABEL"] == values["EXEC_LABEL"] == f"homelab-{host}"
        )


def test_stateless_services_are_never_stopped(key_dir):
    config = {
        **DEV,
        "custom-services": [
            {"name": "api", "image": WHOAMI},
            {
                "name": "cache",
                "image": WHOAMI,
                "volumes": [{"name": "tmp", "path": "/tmp", "stateful": False}],
            },
        ],
    }
    containers = on_host(run_program(config, key_dir=key_dir), "local")
    for alias in ("api", "cache", "haproxy", "landing", "cadvisor", "node-exporter", "backup"):
        assert STOP not in labels(containers[alias]), alias
    assert "homelab_cache_tmp" not in str(containers["backup"].inputs["volumes"])


def test_databases_shut_down_cleanly_before_the_archive(key_dir):
    """Databases are stopped (docs/concepts.md), with two minutes for a clean shutdown."""
    config = {
        **DEV,
        "services": {
            "postgres": {"enabled": True},
            "mysql": {"enabled": True},
            "mattermost": {"enabled": True},
        },
    }
    containers = on_host(run_program(config, key_dir=key_dir), "local")
    for alias in ("postgres", "mysql", "mattermost-db"):
        assert containers[alias].inputs["stopTimeout"] == 120, alias
        assert labels(containers[alias])[STOP] == "homelab-local", alias
    assert "stopTimeout" not in containers["grafana"].inputs  # Docker's default elsewhere


# ---- the engine's settings -----------------------------------------------------------------


def test_the_pinned_engine_runs_with_the_schedule_and_retention(key_dir):
    config = {**DEV, "backup": {"schedule": "*/30 1-5 * * MON-FRI", "retention-days": 30}}
    b = on_host(run_program(config, key_dir=key_dir), "local")["backup"]
    assert IMAGES["backup"] == "offen/docker-volume-backup:v2.48.2"
    assert b.inputs["name"] == "homelab-backup"
    values = env(b)
    assert values["BACKUP_CRON_EXPRESSION"] == "*/30 1-5 * * MON-FRI"
    assert values["BACKUP_RETENTION_DAYS"] == "30"
    assert values["BACKUP_FILENAME"] == "homelab-local-%Y-%m-%dT%H-%M-%S.{{ .Extension }}"
    assert values["BACKUP_PRUNING_PREFIX"] == "homelab-local-"  # pruning never touches other files
    # The archive directory only: the Docker API through the engine's proxy, not the socket.
    assert {m["hostPath"] for m in b.inputs["volumes"] if m.get("hostPath")} == {"/opt/homelab/backups"}
    assert values["DOCKER_HOST"] == "tcp://backup-docker-api:2375"


@pytest.mark.parametrize(
    "schedule", ["@daily", "@weekly", "0 4 * * *", "15 */6 1,15 JAN-JUN ?", "0 4 ? * SUN"]
)
def test_schedules_the_engine_accepts(schedule):
    assert validate({"backup": {"schedule": schedule}}).backup.schedule == schedule


def test_keep_every_archive(key_dir):
    b = on_host(run_program({**DEV, "backup": {"retention-days": None}}, key_dir=key_dir), "local")["backup"]
    assert "BACKUP_RETENTION_DAYS" not in env(b)  # the engine's default, -1: no pruning


def test_archives_are_encrypted_to_a_generated_key(key_dir):
    mocks = run_program(DEV, key_dir=key_dir)
    key = mocks.named("backup-key", "tls:index/privateKey:PrivateKey")
    assert key.inputs == {"algorithm": "ED25519"}
    b = on_host(mocks, "local")["backup"]
    assert env(b)["AGE_PUBLIC_KEYS_FILE"] == "/run/homelab/backup-recipients"
    recipient = uploads(b)["/run/homelab/backup-recipients"]
    assert recipient.startswith("ssh-ed25519 ") and recipient == recipient.strip()
    assert mocks.outputs["backup-recipient"] == recipient
    assert mocks.outputs["backup-identity"] == _pem("OPENSSH PRIVATE KEY", "backup-key")
    assert "backup-identity" in mocks.secret_outputs
    # The private key goes nowhere near the host.
    assert not [r for r in mocks.resources if "OPENSSH_PRIVATE_KEY" in str(r.inputs) and r.type == CONTAINER]


def test_your_own_recipients_instead_of_a_generated_key(key_dir):
    mine = [
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        # a whole key (a truncated one is refused: its blob must hold the 32-byte key)
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdVbGBox2z5oc1BTI7B11ToThP3+guHB0k5ATqlYG6U me",
    ]
    mocks = run_program({**DEV, "backup": {"age-recipients": mine}}, key_dir=key_dir)
    assert not [r for r in mocks.resources if r.name == "backup-key"]
    assert "backup-identity" not in mocks.outputs
    b = on_host(mocks, "local")["backup"]
    assert uploads(b)["/run/homelab/backup-recipients"] == ",".join(mine)


def test_encryption_off(key_dir):
    mocks = run_program({**DEV, "backup": {"encryption": "none"}}, key_dir=key_dir)
    b = on_host(mocks, "local")["backup"]
    assert not [k for k in env(b) if k.startswith(("AGE_", "GPG_"))]
    assert (
        not [r for r in mocks.resources if r.name == "backup-key"] and "backup-identity" not in mocks.outputs
    )


# ---- remote targets and notifications: secrets only as files ------------------------------------

SECRETS = {
    "s3-id": f"{SECRET_MARK}-s3-id",
    "s3-key": f"{SECRET_MARK}-s3-key",
    "nas-key": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET_MARK}-nas\n-----END OPENSSH PRIVATE KEY-----\n",
    "dav-pw": f"{SECRET_MARK}-dav",
    "hook": f"https://chat.lab.example.com/hooks/{SECRET_MARK}token",
}


@pytest.fixture(scope="module")
def remote(key_dir) -> Resource:
    config = {**DEV, "backup": {"s3": S3, "ssh": SSH, "webdav": WEBDAV, "notify-url-secret": "hook"}}
    return on_host(run_program(config, SECRETS, key_dir=key_dir), "local")["backup"]


def test_remote_targets(remote):
    values = env(remote)
    assert values["AWS_ENDPOINT"] == "minio.lab.example.com:9000"
    assert values["AWS_ENDPOINT_PROTO"] == "https"
    assert values["AWS_S3_BUCKET_NAME"] == "lab-backups" and values["AWS_S3_PATH"] == "homelab"
    assert (values["SSH_HOST_NAME"], values["SSH_PORT"], values["SSH_USER"]) == (
        "nas.lab.example.com",
        "2222",
        "backup",
    )
    assert values["SSH_REMOTE_PATH"] == "/volume1/backups"
    assert values["WEBDAV_URL"] == "https://dav.lab.example.com" and values["WEBDAV_PATH"] == "/homelab"
    assert values["WEBDAV_USERNAME"] == "lab"
    assert values["BACKUP_ARCHIVE"] == "/archive"  # and a local copy too


def test_secrets_reach_the_engine_only_as_files(remote):
    values, files = env(remote), uploads(remote)
    expected = {
        "AWS_ACCESS_KEY_ID_FILE": SECRETS["s3-id"],
        "AWS_SECRET_ACCESS_KEY_FILE": SECRETS["s3-key"],
        "WEBDAV_PASSWORD_FILE": SECRETS["dav-pw"],
        # A Mattermost incoming webhook, in the engine's (shoutrrr's) form.
        "NOTIFICATION_URLS_FILE": f"mattermost://chat.lab.example.com/{SECRET_MARK}token",
    }
    for key, content in expected.items():
        assert files[values[key]] == content, key  # exactly: the engine does not trim
    assert files[values["SSH_IDENTITY_FILE"]] == SECRETS["nas-key"]
    assert values["NOTIFICATION_LEVEL"] == "error"
    assert holds_secret_files(remote)
    for holder in (remote, stager_of(remote)):
        for path, text in plain_strings(holder.raw_inputs):
            assert SECRET_MARK not in text, path
    assert not [k for k in values if k in ("AWS_SECRET_ACCESS_KEY", "WEBDAV_PASSWORD", "NOTIFICATION_URLS")]
    assert "homelab.secret-env" not in labels(remote)


def test_remote_only(key_dir):
    config = {**DEV, "backup": {"local": False, "s3": S3}}
    secrets = {k: SECRETS[k] for k in ("s3-id", "s3-key")}
    b = on_host(run_program(config, secrets, key_dir=key_dir), "local")["backup"]
    assert "BACKUP_ARCHIVE" not in env(b)
    assert not [m for m in b.inputs["volumes"] if m.get("containerPath") == "/archive"]


@pytest.mark.parametrize(
    ("url", "engine_url"),
    [
        ("https://chat.lab.example.com/hooks/abc123", "mattermost://chat.lab.example.com/abc123"),
        ("http://chat.lan:8065/hooks/abc123/", "mattermost://chat.lan:8065/abc123?disabletls=yes"),
        ("https://hooks.example.com/backup/failed", "generic+https://hooks.example.com/backup/failed"),
        ("https://chat.example.com/mm/hooks/abc123", "generic+https://chat.example.com/mm/hooks/abc123"),
        (
            "generic://hooks.example.com/backup?template=json",
            "generic://hooks.example.com/backup?template=json",
        ),
        (
            "smtp://u:p@mail.example.com:587/?from=a@example.com&to=b@example.com\n",
            "smtp://u:p@mail.example.com:587/?from=a@example.com&to=b@example.com",
        ),
    ],
)
def test_notification_urls(url, engine_url):
    assert backup.notification_url(url) == engine_url
