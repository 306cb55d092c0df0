"""Issue 12's rules on the config sections that came with issues 9-16 (backups and their
targets, alerting, host keys and jump hosts, platform TLS, data safety and restore drills):
a value ending in a newline, free text that reaches a generated file, an unbounded duration,
a name that collides, a secret reference to a setting: each is one problem with its key
path, before any resource is registered. Each test here failed on the merged code before the
fix that came with it."""

from __future__ import annotations

from typing import Any

import pytest
from harness import HOST_KEY, cli_here
from test_bad_input import PLATFORM, PLATFORM_SECRETS, assert_rejected, custom, problems_of

from stacks.config_base import duration_seconds

AGE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpj6Tcv6KAlrYrgS4aiVp0R4PQZz6gbhBdmR60xRixk"
S3 = {"bucket": "lab-backups", "access-key-id-secret": "s3-id", "secret-access-key-secret": "s3-key"}
S3_SECRETS = {"s3-id": "id", "s3-key": "key"}
SFTP = {"address": "backup@nas.lan", "path": "/srv/backups", "private-key-secret": "nas-key"}
WEBDAV = {"url": "https://dav.example.com", "username": "lab", "password-secret": "dav-password"}
JUMP = {"address": "jump@bastion.example.com", "host-key": HOST_KEY}


def ssh_host(**fields: Any) -> dict[str, Any]:
    return {"name": "server", "address": "deploy@server.example.com", "host-key": HOST_KEY, **fields}


def tls_nodes(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "layers": {"platform": True},
        "platform": {
            **PLATFORM,
            "tls": {"mode": "private-ca", "ca": {"source": "homelab"}, "nodes": list(nodes)},
        },
    }


# ---- values ending in a newline (or holding a line break) --------------------------------------

NEWLINE = [
    ("jump-host", {"hosts": [ssh_host(proxy={**JUMP, "address": "jump@bastion.example.com\n"})]},
     "hosts[0].proxy.address", {}),
    ("host-address-tail", {"hosts": [ssh_host(address="deploy@server.example.com\nx")]},
     "hosts[0].address", {}),
    ("sftp-target", {"backup": {"ssh": {**SFTP, "address": "backup@nas.lan\n"}}}, "backup.ssh.address",
     {"nas-key": "k"}),
    ("sftp-path", {"backup": {"ssh": {**SFTP, "path": "/srv/backups\n"}}}, "backup.ssh.path",
     {"nas-key": "k"}),
    ("backup-directory", {"backup": {"directory": "/srv/backups\n"}}, "backup.directory", {}),
    ("age-recipient", {"backup": {"age-recipients": [AGE_KEY + " me\nAGE_PUBLIC_KEYS=x"]}},
     "backup.age-recipients[0]", {}),
    ("webdav-url", {"backup": {"webdav": {**WEBDAV, "url": "https://dav.example.com/\x01"}}},
     "backup.webdav.url", {"dav-password": "p"}),
    ("webdav-user", {"backup": {"webdav": {**WEBDAV, "username": "lab\n"}}}, "backup.webdav.username",
     {"dav-password": "p"}),
    ("s3-path", {"backup": {"s3": {**S3, "path": "lab\r"}}}, "backup.s3.path", S3_SECRETS),
    ("alert-channel", {"monitoring": {"alerting": {"receiver": {"url-secret": "hook", "channel": "ops\n"}}}},
     "monitoring.alerting.receiver.channel", {"hook": "https://chat.example.com/hooks/x"}),
    ("node", tls_nodes({"address": "ubuntu@10.0.0.21\n"}), "platform.tls.nodes[0].address", PLATFORM_SECRETS),
    ("max-backup-age", {"data": {"max-backup-age": "24h\n"}}, "data.max-backup-age", {}),
    ("drill-interval", {"data": {"restore-drills": {"every": "7d\n"}}}, "data.restore-drills.every", {}),
]  # fmt: skip


@pytest.mark.parametrize(("config", "path", "secrets"), [n[1:] for n in NEWLINE], ids=[n[0] for n in NEWLINE])
def test_a_value_with_a_line_break_is_rejected(config, path, secrets):
    problems = problems_of(config, secrets)
    assert [p for p, _ in problems] == [path], problems


def test_a_backup_directory_with_a_comma_is_rejected():
    """The directory reaches `docker run --mount type=bind,source=DIR,...` (the restore's helper)."""
    assert_rejected({"backup": {"directory": "/srv/a,b"}}, "backup.directory", "commas")


def test_the_s3_endpoint_port_is_in_range():
    config = {"backup": {"s3": {**S3, "endpoint": "minio.lan:99999"}}}
    assert_rejected(config, "backup.s3.endpoint", "out of range", S3_SECRETS)


def test_a_cron_schedule_is_read_as_its_fields():
    """Whitespace around the fields is not part of them: the schedule reaches the engine as
    five fields separated by one space."""
    from stacks.config import parse

    assert parse({"backup": {"schedule": " 0  4 * * *\n"}}).backup.schedule == "0 4 * * *"


@pytest.mark.parametrize(
    "certificate",
    [
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",  # "hello": no DER
        "-----BEGIN CERTIFICATE-----\nMGNvbmZpZy1jYQ==\n-----END CERTIFICATE-----\nrm -rf /\n",
        "-----BEGIN CERTIFICATE-----\nMGNvbmZpZy1jYQ==\x00\n-----END CERTIFICATE-----\n",
    ],
    ids=["not-base64", "not-der", "trailing-text", "control-character"],
)
def test_a_private_ca_certificate_is_pem_blocks_only(certificate):
    config = {
        "layers": {"platform": True},
        "platform": {**PLATFORM, "tls": {"mode": "private-ca", "ca": {"certificate": certificate},
                                         "nodes-trust-ca": True}},
    }  # fmt: skip
    problems = problems_of(config, PLATFORM_SECRETS)
    assert [p for p, _ in problems] == ["platform.tls.ca.certificate"], problems


@pytest.mark.parametrize("email", ["alice", "alice@example.com\n", "al ice@example.com", "alice@localhost"])
def test_harbor_user_emails_follow_the_acme_email_rule(email):
    config = {
        "layers": {"platform": True},
        "platform": {**PLATFORM, "components": {"harbor": {"user-emails": {"alice": email}}}},
    }
    assert_rejected(
        config, "platform.components.harbor.user-emails.alice", "e-mail address", PLATFORM_SECRETS
    )


# ---- durations: bounded as Prometheus bounds them ----------------------------------------------


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"monitoring": {"alerting": {"group-wait": "300y"}}}, "monitoring.alerting.group-wait"),
        ({"monitoring": {"alerting": {"thresholds": {"target-down-for": "1s1s"}}}},
         "monitoring.alerting.thresholds.target-down-for"),
        ({"data": {"max-backup-age": "0s"}}, "data.max-backup-age"),
        ({"data": {"restore-drills": {"max-age": "300y"}}}, "data.restore-drills.max-age"),
        ({"data": {"restore-drills": {"hosts": {"local": "1d1d"}}}}, "data.restore-drills.hosts.local"),
    ],
)  # fmt: skip
def test_the_new_durations_are_bounded_and_well_formed(config, path):
    problems = problems_of(config)
    assert [p for p, _ in problems] == [path], problems


def test_duration_seconds_reads_a_duration_as_the_validator_does():
    """One parser: the guard and the drills read data.max-backup-age / restore-drills as the
    config check accepted them (no unicode digits, units from the largest down)."""
    assert duration_seconds("1d12h") == 36 * 3600
    for bad in ("12h1d", "٣s", "1s1s", "300y"):
        with pytest.raises(ValueError):
            duration_seconds(bad)


# ---- names that collide with what the tool runs beside the services ----------------------------


def test_a_custom_service_cannot_take_the_restore_helpers_container_name():
    assert_rejected({"custom-services": [custom("restore")]}, "custom-services[0].name", "reserved")


def test_a_metrics_job_cannot_take_the_certificate_probes_job():
    """Prometheus refuses two scrape configs of one job name; the blackbox exporter's certificate
    probes are the job `tls-certificates`."""
    service = custom("tls-certificates", metrics=[{"port": 80}], routes=[{"hostname": "who", "port": 80}])
    assert_rejected(
        {"custom-services": [service]}, "custom-services[0].metrics[0]", "services.blackbox-exporter"
    )


def test_without_the_blackbox_exporter_the_job_name_is_free(tmp_path):
    from harness import run_program

    service = custom("tls-certificates", metrics=[{"port": 80}])
    config = {"services": {"blackbox-exporter": {"enabled": False}}, "custom-services": [service]}
    run_program(config, key_dir=str(tmp_path))


# ---- secret references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"backup": {"s3": {**S3, "access-key-id-secret": "domain"}}}, "backup.s3.access-key-id-secret"),
        ({"backup": {"notify-url-secret": "name"}}, "backup.notify-url-secret"),
        ({"monitoring": {"alerting": {"receiver": {"url-secret": "domain"}}}},
         "monitoring.alerting.receiver.url-secret"),
        ({"hosts": [ssh_host(proxy={**JUMP, "private-key-secret": "name"})]},
         "hosts[0].proxy.private-key-secret"),
    ],
)  # fmt: skip
def test_a_new_secret_reference_to_a_setting_blames_the_reference(config, path):
    secrets = {"s3-key": "k"} if "s3" in config.get("backup", {}) else {}
    problems = problems_of(config, secrets)
    assert [p for p, _ in problems] == [path], problems
    assert "is a setting of this stack" in problems[0][1]


# ---- the new commands' CLI hygiene --------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "1001", "many"])
def test_drill_sample_is_bounded_like_the_setting(value):
    ran = cli_here("drill", "--host", "local", "--sample", value)
    code, out = ran.returncode, ran.stdout
    assert code == 64 and out == ""
    assert "--sample" in ran.stderr


@pytest.mark.parametrize("which", ["--due", "--rules"])
@pytest.mark.parametrize(
    "option",
    [("--service", "grafana"), ("--service", ""), ("--archive", "")],
    ids=["service", "empty", "archive"],
)
def test_drill_due_or_rules_with_a_service_is_an_error_on_stderr(which, option):
    """An empty --archive '' is given too: it was ignored, and --due went on to drill."""
    ran = cli_here("drill", which, *option)
    code, out, err = ran.returncode, ran.stdout, ran.stderr
    assert (code, out) == (1, "")
    assert "no --service, --archive or --sample" in err


def test_backup_errors_are_on_stderr():
    ran = cli_here("backups", "--host", "nowhere")
    code, out, err = ran.returncode, ran.stdout, ran.stderr
    assert code == 1 and out == ""
    assert "unknown host 'nowhere'" in err


@pytest.mark.parametrize("second", ["ubuntu@NODE-1.lan", "ubuntu@node-1.lan."], ids=["case", "trailing-dot"])
def test_a_node_listed_twice_is_found_however_its_name_is_spelled(second):
    node = {"host-key": HOST_KEY}
    config = tls_nodes({**node, "address": "ubuntu@node-1.lan"}, {**node, "address": second})
    problems = problems_of(config, PLATFORM_SECRETS)
    assert [(p, m) for p, m in problems if "twice" in m] == [
        ("platform.tls.nodes[1].address", "node 'node-1.lan' is listed twice")
    ], problems


@pytest.mark.parametrize(
    "server", ["https://[::1]:99999/dir", "https://acme.example.com:0/dir", "https://x:/d"]
)
def test_an_acme_server_with_no_usable_port_is_refused(server):
    acme = {"email": "ops@example.com", "solver": "http01", "server": server}
    config = {"layers": {"platform": True}, "platform": {**PLATFORM, "tls": {"mode": "acme", "acme": acme}}}
    problems = problems_of(config, PLATFORM_SECRETS)
    assert [p for p, _ in problems] == ["platform.tls.acme.server"], problems
