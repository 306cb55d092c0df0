"""Stateful data: retained Docker volumes, every one in its host's backup set (mounted
read-only in that host's offen/docker-volume-backup container, its writers stopped by that
host's schedule), and where the archives go. The engine's settings: tests/test_backup.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import (
    EXAMPLES,
    RecordingMocks,
    Resource,
    example_files,
    example_run,
    example_secrets,
    load_stack_file,
    run_program,
)

from components.docker.service import volume_name
from stacks.checks import validate
from stacks.plan import Plan, build_plan

VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
DEV = {"hosts": [{"name": "local"}]}


class Run:
    path: Path | None = None

    def __init__(self, config: dict, secrets: dict, key_dir: str, mocks: RecordingMocks | None = None):
        self.config = config
        self.model = validate(config)
        self.plan: Plan = build_plan(self.model)
        self.mocks: RecordingMocks = mocks or run_program(config, secrets, key_dir=key_dir)

    def volumes(self) -> dict[str, Resource]:
        """Docker volumes by Docker volume name (but the staged-file volumes, which each host of a
        service that runs everywhere, like the proxy, has under the same name)."""
        out: dict[str, Resource] = {}
        for r in self.mocks.of_type(VOLUME):
            if re.search(r"_files_\d+$", r.inputs["name"]):
                continue
            assert r.inputs["name"] not in out, f"two volumes named {r.inputs['name']}"
            out[r.inputs["name"]] = r
        return out

    def container(self, host: str, alias: str) -> Resource | None:
        found = [
            r
            for r in self.mocks.of_type(CONTAINER)
            if {"label": "homelab.host", "value": host} in r.inputs["labels"]
            and {"label": "homelab.container", "value": alias} in r.inputs["labels"]
        ]
        assert len(found) <= 1
        return found[0] if found else None

    def stateful(self) -> list[tuple[str, str, str]]:
        """(host, Docker volume name, owning container name) of every stateful volume."""
        prefix = self.model.name
        return [
            (spec.host, volume_name(prefix, spec, volume), f"{prefix}-{container.name}")
            for spec in self.plan.services
            for container, volume in spec.stateful_volumes
        ]

    def not_stateful(self) -> list[tuple[str, str]]:
        prefix = self.model.name
        return [
            (spec.host, volume_name(prefix, spec, v))
            for spec in self.plan.services
            for c in spec.containers
            for v in c.volumes
            if not v.stateful
        ]


def env(container: Resource) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.inputs.get("envs") or [])


def mounts(container: Resource) -> list[dict]:
    return container.inputs.get("volumes") or []


def source_mounts(container: Resource) -> dict[str, dict]:
    return {m["containerPath"]: m for m in mounts(container) if m["containerPath"].startswith("/backup/")}


def labels(resource: Resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


STOP = "docker-volume-backup.stop-during-backup"


@pytest.fixture(scope="module", params=example_files(), ids=lambda p: p.name)
def example(request, tmp_path_factory) -> Run:
    path: Path = request.param
    config = load_stack_file(path)
    run = Run(config, example_secrets(config), "", example_run(path))
    run.path = path
    return run


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("keys"))


# ---- every example ----------------------------------------------------------------------


def test_examples_have_stateful_volumes(example):
    assert len(example.stateful()) >= 3


def test_stateful_volumes_are_retained_not_protected(example):
    volumes = example.volumes()
    for host, name, _ in example.stateful():
        assert name in volumes, f"stateful volume {name} is not registered"
        r = volumes[name]
        assert r.retain_on_delete is True, name
        assert r.protect is False, name
        assert r.provider and f"::{host}-docker::" in r.provider, f"{name} is not on host {host}"


def test_stateful_volumes_are_backed_up_by_their_host(example):
    by_host: dict[str, list[tuple[str, str]]] = {}
    for host, name, owner in example.stateful():
        by_host.setdefault(host, []).append((name, owner))
    assert by_host
    containers = example.mocks.containers()
    for host, entries in by_host.items():
        backup = example.container(host, "backup")
        assert backup is not None, f"no backup run on host {host}"
        sources = source_mounts(backup)
        group = env(backup)["BACKUP_STOP_DURING_BACKUP_LABEL"]
        for name, owner in entries:
            mount = sources.get(f"/backup/{name}")
            assert mount is not None, f"{name} is not mounted in the backup run on {host}"
            assert mount["volumeName"] == name and mount["readOnly"] is True
            assert labels(containers[owner]).get(STOP) == group, (
                f"{owner} is not stopped for the backup on {host}"
            )
        # Nothing else: the backup set is exactly this host's stateful volumes.
        assert set(sources) == {f"/backup/{n}" for n, _ in entries}
        assert env(backup)["BACKUP_SOURCES"] == "/backup"


def test_only_the_writers_of_stateful_volumes_are_stopped(example):
    """Stateless services (and the backup run itself) never carry the stop label."""
    owners = {(host, owner) for host, _, owner in example.stateful()}
    for c in example.mocks.of_type(CONTAINER):
        name, host = c.inputs["name"], labels(c)["homelab.host"]
        if (host, name) in owners:
            assert labels(c)[STOP] == f"{example.model.name}-{host}", name
        else:
            assert STOP not in labels(c), f"{name} has no stateful volume but would be stopped"


def test_non_stateful_volumes_are_not_backed_up(example):
    volumes = example.volumes()
    for host, name in example.not_stateful():
        assert volumes[name].retain_on_delete is False, name
        assert volumes[name].protect is False, name
        backup = example.container(host, "backup")
        if backup is not None:
            assert name not in {m.get("volumeName") for m in source_mounts(backup).values()}


@pytest.mark.parametrize(
    "path", [EXAMPLES / "single-host.yaml", EXAMPLES / "multi-host.yaml"], ids=lambda p: p.name
)
def test_mattermost_logs_are_not_backed_up(path, key_dir):
    config = load_stack_file(path)
    run = Run(config, example_secrets(config), key_dir)
    host = run.model.services.mattermost.host or run.model.default_host
    sources = source_mounts(run.container(host, "backup"))
    assert "/backup/homelab_mattermost_data" in sources
    assert "/backup/homelab_mattermost_logs" not in sources
    assert run.volumes()["homelab_mattermost_logs"].retain_on_delete is False
    assert run.volumes()["homelab_mattermost_data"].retain_on_delete is True


def test_schedule_reaches_the_engine(example):
    for host in {h for h, _, _ in example.stateful()}:
        backup = example.container(host, "backup")
        assert env(backup)["BACKUP_CRON_EXPRESSION"] == example.model.backup.schedule
        assert env(backup)["BACKUP_RETENTION_DAYS"] == str(example.model.backup.retention_days)


def test_host_directory_is_bind_mounted(example):
    for host in {h for h, _, _ in example.stateful()}:
        backup = example.container(host, "backup")
        expected = example.model.backup.directory or f"{example.model.host(host).root}/backups"
        (archive,) = [m for m in mounts(backup) if m["containerPath"] == "/archive"]
        assert archive == {"containerPath": "/archive", "hostPath": expected, "readOnly": False}
        assert env(backup)["BACKUP_ARCHIVE"] == "/archive"


EXPECTED_TARGETS = {
    "single-host.yaml": {"server": "/srv/backups/homelab"},  # backup.directory
    "multi-host.yaml": {"ops": "/opt/homelab/backups", "apps": "/srv/homelab/backups"},  # <root>/backups
    "Pulumi.dev.yaml": {"local": "/opt/homelab/backups"},
    "platform.yaml": {"local": "/opt/homelab/backups"},
    "apps.yaml": {"local": "/opt/homelab/backups"},
}


def test_example_targets_are_the_documented_directories(example):
    for host, directory in EXPECTED_TARGETS[example.path.name].items():
        (archive,) = [
            m for m in mounts(example.container(host, "backup")) if m["containerPath"] == "/archive"
        ]
        assert archive["hostPath"] == directory


# ---- options ---------------------------------------------------------------------------


def test_protect_sets_protect_on_stateful_volumes_only(key_dir):
    run = Run({**DEV, "data": {"protect": True}}, {}, key_dir)
    volumes = run.volumes()
    for _, name, _ in run.stateful():
        assert volumes[name].protect is True and volumes[name].retain_on_delete is True, name
    for _, name in run.not_stateful():
        assert volumes[name].protect is False, name


def test_delete_on_destroy_turns_retain_off(key_dir):
    run = Run({**DEV, "data": {"delete-on-destroy": True}}, {}, key_dir)
    volumes = run.volumes()
    assert run.stateful()
    for _, name, _ in run.stateful():
        assert volumes[name].retain_on_delete is False and volumes[name].protect is False, name


def test_backup_disabled(key_dir):
    run = Run({**DEV, "backup": {"enabled": False}}, {}, key_dir)
    assert run.container("local", "backup") is None
    # The engine's image is still pulled: it stages the other containers' files.
    assert not [r for r in run.mocks.resources if "backup" in r.name and not r.type.endswith("RemoteImage")]
    assert "backup-identity" not in run.mocks.outputs
    assert not [c for c in run.mocks.containers().values() if STOP in labels(c)]
    volumes = run.volumes()
    assert run.stateful()
    for _, name, _ in run.stateful():
        assert volumes[name].retain_on_delete is True, name
