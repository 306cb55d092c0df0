"""The backup before an upgrade: run the program twice, with the old and the new image tag of
a stateful service, and check what orders the backup before the container's replacement.

Under mocks there is no engine to replace anything, so the test checks the three facts the
engine acts on: the container's `image` changed (the Docker provider replaces a container
whose image changes: kreuzwerker/terraform-provider-docker v4.5.0, `ForceNew: true`), the
backup command's `triggers` changed (pulumi-command v1.2.1: `replaceOnChanges`, so its
`create` runs again), and the container depends on the command (so the engine replaces the
container only after the command's new `create` succeeded).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from harness import RecordingMocks, Resource, run_program

from components.docker.spec import ContainerSpec, ServiceSpec, Volume
from components.homelab.preupgrade import PreUpgradeBackupArgs

LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
CONTAINER = "docker:index/container:Container"
OLD, NEW = "mysql:8.4.5", "mysql:8.4.6"


def run(tmp_path_factory: pytest.TempPathFactory, config: dict) -> RecordingMocks:
    """The program with MySQL on (it is off by default) and `config` over it."""
    services = {"mysql": {"enabled": True, **config.get("services", {}).get("mysql", {})}}
    config = {**config, "services": {**config.get("services", {}), **services}}
    return run_program(config, key_dir=str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordingMocks, RecordingMocks]:
    old = run(tmp_path_factory, {"services": {"mysql": {"image": OLD}}})
    new = run(tmp_path_factory, {"services": {"mysql": {"image": NEW}}})
    return old, new


def backup_of(mocks: RecordingMocks, service: str, type_: str = LOCAL) -> Resource:
    return mocks.named(f"{service}-pre-upgrade-backup-run", type_)


def test_the_new_tag_changes_the_container_image_and_the_backup_trigger(twice) -> None:
    old, new = twice
    old_container, new_container = old.containers()["homelab-mysql"], new.containers()["homelab-mysql"]
    # The container's image (the pulled image's id) changes: the provider replaces it.
    assert old_container.inputs["image"] != new_container.inputs["image"]
    old_run, new_run = backup_of(old, "mysql"), backup_of(new, "mysql")
    assert old_run.inputs["triggers"][0] == OLD
    assert new_run.inputs["triggers"][0] == NEW
    assert old_run.inputs["triggers"] != new_run.inputs["triggers"]
    # Same script: only the trigger moves.
    assert old_run.inputs["create"] == new_run.inputs["create"]


def test_the_container_is_replaced_only_after_the_backup(twice) -> None:
    for mocks in twice:
        container = mocks.containers()["homelab-mysql"]
        command = backup_of(mocks, "mysql")
        assert command.urn in container.dependencies
        # ...and the backup does not wait for the container (no cycle).
        assert container.urn not in command.dependencies


def test_an_unchanged_tag_keeps_the_trigger(tmp_path_factory, twice) -> None:
    _, new = twice
    again = run(tmp_path_factory, {"services": {"mysql": {"image": NEW}}})
    assert backup_of(again, "mysql").inputs["triggers"] == backup_of(new, "mysql").inputs["triggers"]


def test_every_stateful_service_has_one_and_stateless_ones_none(twice) -> None:
    _, mocks = twice
    runs = {r.name.removesuffix("-pre-upgrade-backup-run") for r in mocks.of_type(LOCAL)}
    assert {"mysql", "grafana", "portainer", "prometheus"} <= runs
    assert "landing" not in runs and "proxy" not in runs
    assert not any(n.startswith("backup") or n.startswith("volumerize") for n in runs)
    landing = mocks.containers()["homelab-landing"]
    assert not any("pre-upgrade" in d for d in landing.dependencies)


def test_the_archive_names_are_a_stack_output(twice) -> None:
    _, mocks = twice
    assert set(mocks.outputs["pre-upgrade-backups"]) >= {"mysql", "grafana"}


def test_it_can_be_turned_off(tmp_path_factory) -> None:
    mocks = run(tmp_path_factory, {"data": {"pre-upgrade-backup": False}})
    assert mocks.of_type(LOCAL) == []
    assert "pre-upgrade-backups" not in mocks.outputs


def test_no_backup_schedule_no_pre_upgrade_backup(tmp_path_factory) -> None:
    mocks = run(tmp_path_factory, {"backup": {"enabled": False}})
    assert mocks.of_type(LOCAL) == []


def test_a_remote_host_runs_it_over_ssh_after_the_bootstrap(tmp_path_factory) -> None:
    config = {
        "hosts": [
            {
                "name": "nas",
                "address": "ops@nas.example.com:2222",
                "private-key-secret": "nas-key",
                # examples/multi-host.yaml's key: SSH hosts are pinned (or trusted on first use).
                "host-key": "ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIP6hHlu5IdVLl4IW6LjetCmGc8zPr9AvbCq3iH33KyjN",
            }
        ],
    }
    config["services"] = {"mysql": {"enabled": True}}
    mocks = run_program(config, {"nas-key": "MOCKSECRET-key"}, key_dir=str(tmp_path_factory.mktemp("k")))
    command = backup_of(mocks, "mysql", REMOTE)
    assert command.inputs["connection"]["host"] == "nas.example.com"
    assert command.inputs["connection"]["port"] == 2222
    assert command.inputs["connection"]["user"] == "ops"
    assert any(p.startswith("connection") for p in command.secret_paths)  # the key stays secret
    bootstrap = mocks.named("nas-bootstrap", REMOTE)
    assert bootstrap.urn in command.dependencies
    # The bootstrap's connection, pinned host key and jump host included.
    assert command.inputs["connection"] == bootstrap.inputs["connection"]


# ---- the script itself ----------------------------------------------------------------------

SPEC = ServiceSpec(
    name="mysql",
    kind="MySQL",
    host="local",
    containers=(ContainerSpec("mysql", NEW, volumes=(Volume("mysql-data", "/var/lib/mysql"),)),),
)
ARGS = PreUpgradeBackupArgs(SPEC, "homelab", "homelab-backup", "homelab-local-", encrypted=True)


def test_the_script_passes_shellcheck(tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    script = tmp_path / "pre-upgrade.sh"
    script.write_text(ARGS.script())
    result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def fake_docker(tmp_path: Path, existing: set[str], backup_exit: int = 0) -> Path:
    """A `docker` on PATH that knows some containers and logs every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    docker = bin_dir / "docker"
    known = " ".join(sorted(existing))
    docker.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'if [ "$1 $2" = "container inspect" ]; then\n'
        f'  for c in {known}; do [ "$c" = "$3" ] && exit 0; done\n'
        "  exit 1\n"
        "fi\n"
        f'if [ "$1" = exec ]; then echo "engine log line"; exit {backup_exit}; fi\n'
        "exit 0\n"
    )
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def run_script(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", ARGS.script()], capture_output=True, text=True, env=env)


def test_the_script_runs_the_engine_and_prints_the_archive_name(tmp_path: Path) -> None:
    bin_dir = fake_docker(tmp_path, {"homelab-mysql", "homelab-backup"})
    result = run_script(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("pre-upgrade backup of mysql: archive homelab-local-pre-upgrade-mysql-20")
    assert line.endswith(".tar.gz.age")
    name = line.rsplit(" ", 1)[1].removesuffix(".age")
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[-1] == f"exec -e BACKUP_FILENAME={name} homelab-backup backup"
    assert "engine log line" in result.stderr  # the engine's log goes to stderr, not the output


def test_a_failed_backup_fails_the_command_so_the_container_stays(tmp_path: Path) -> None:
    bin_dir = fake_docker(tmp_path, {"homelab-mysql", "homelab-backup"}, backup_exit=1)
    result = run_script(tmp_path, bin_dir)
    assert result.returncode == 1
    assert "pre-upgrade backup of mysql failed: the container is not replaced" in result.stderr


@pytest.mark.parametrize(
    ("existing", "said"),
    [
        (set(), "skipped, no container yet (nothing to back up)"),
        ({"homelab-mysql"}, "skipped, no backup container yet"),
    ],
)
def test_nothing_to_back_up_yet_is_not_an_error(tmp_path: Path, existing: set[str], said: str) -> None:
    bin_dir = fake_docker(tmp_path, existing)
    result = run_script(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pre-upgrade backup of mysql: {said}"
    assert "exec" not in (tmp_path / "calls").read_text()


# ---- against a real Docker engine: `docker exec -e` names the engine's archive ----------------

from test_drill import image  # noqa: E402,F401  (the busybox image fixture)

FAKE_ENGINE = (
    '#!/bin/sh\n: > "/archive/$BACKUP_FILENAME"\necho "Created backup of /backup at /tmp/$BACKUP_FILENAME"\n'
)


def test_the_script_runs_the_engine_in_the_backup_container(image: str, tmp_path: Path) -> None:  # noqa: F811
    import uuid

    prefix = f"t16-{uuid.uuid4().hex[:8]}"
    archive_dir = tmp_path / "archives"
    archive_dir.mkdir()
    engine = tmp_path / "backup"
    engine.write_text(FAKE_ENGINE)
    engine.chmod(0o755)
    args = PreUpgradeBackupArgs(SPEC, prefix, f"{prefix}-backup", f"{prefix}-local-", encrypted=False)
    names = [f"{prefix}-mysql", f"{prefix}-backup"]
    try:
        subprocess.run(
            ["docker", "run", "-d", "--network", "none", "--name", names[0], image, "sleep", "600"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "docker", "run", "-d", "--network", "none", "--name", names[1],
                "-v", f"{engine}:/bin/backup:ro", "-v", f"{archive_dir}:/archive",
                "-e", "BACKUP_FILENAME=scheduled-%Y.tar.gz", image, "sleep", "600",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        result = subprocess.run(["sh", "-c", args.script()], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        name = result.stdout.strip().rsplit(" ", 1)[1]
        assert name.startswith(f"{prefix}-local-pre-upgrade-mysql-") and name.endswith(".tar.gz")
        # The run's own name reached the engine (over the schedule's BACKUP_FILENAME).
        assert [p.name for p in archive_dir.iterdir()] == [name]
        assert f"Created backup of /backup at /tmp/{name}" in result.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
