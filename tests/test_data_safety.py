"""Stateful data: retained Docker volumes, every one in its host's Volumerize backup set,
and the backup run's target, schedule and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import (
    EXAMPLES,
    SECRET_MARK,
    RecordingMocks,
    Resource,
    example_files,
    example_secrets,
    load_stack_file,
    plain_strings,
    run_program,
)

from components.docker.service import volume_name
from components.docker.spec import SecretRef
from stacks.checks import validate
from stacks.plan import Plan, build_plan

VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
PASSWORD = "random:index/randomPassword:RandomPassword"
DEV = {"hosts": [{"name": "local"}]}


class Run:
    path: Path | None = None

    def __init__(self, config: dict, secrets: dict, key_dir: str):
        self.config = config
        self.model = validate(config)
        self.plan: Plan = build_plan(self.model)
        self.mocks: RecordingMocks = run_program(config, secrets, key_dir=key_dir)

    def volumes(self) -> dict[str, Resource]:
        """Docker volumes by Docker volume name."""
        out: dict[str, Resource] = {}
        for r in self.mocks.of_type(VOLUME):
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
    return {m["containerPath"]: m for m in mounts(container) if m["containerPath"].startswith("/source/")}


@pytest.fixture(scope="module", params=example_files(), ids=lambda p: p.name)
def example(request, tmp_path_factory) -> Run:
    path: Path = request.param
    config = load_stack_file(path)
    run = Run(config, example_secrets(config), str(tmp_path_factory.mktemp("keys")))
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
    for host, entries in by_host.items():
        volumerize = example.container(host, "volumerize")
        assert volumerize is not None, f"no backup run on host {host}"
        sources = source_mounts(volumerize)
        stop = env(volumerize)["VOLUMERIZE_CONTAINERS"].split()
        for name, owner in entries:
            mount = sources.get(f"/source/{name}")
            assert mount is not None, f"{name} is not mounted in volumerize on {host}"
            assert mount["volumeName"] == name and mount["readOnly"] is True
            assert owner in stop, f"{owner} is not stopped for the backup on {host}"
        # Nothing else: the backup set is exactly this host's stateful volumes.
        assert set(sources) == {f"/source/{n}" for n, _ in entries}
        assert sorted(stop) == sorted({o for _, o in entries})
        assert env(volumerize)["VOLUMERIZE_SOURCE"] == "/source"


def test_owners_in_the_backup_set_are_real_containers(example):
    names = {(r.inputs["name"], r.provider) for r in example.mocks.of_type(CONTAINER)}
    for host in {h for h, _, _ in example.stateful()}:
        volumerize = example.container(host, "volumerize")
        for owner in env(volumerize)["VOLUMERIZE_CONTAINERS"].split():
            assert (owner, volumerize.provider) in names, f"{owner} does not run on {host}"


def test_non_stateful_volumes_are_not_backed_up(example):
    volumes = example.volumes()
    for host, name in example.not_stateful():
        assert volumes[name].retain_on_delete is False, name
        assert volumes[name].protect is False, name
        volumerize = example.container(host, "volumerize")
        if volumerize is not None:
            assert f"/source/{name}" not in source_mounts(volumerize)
            assert name not in {
                m.get("volumeName") for m in mounts(volumerize) if m["containerPath"] != "/volumerize-cache"
            }


@pytest.mark.parametrize(
    "path", [EXAMPLES / "single-host.yaml", EXAMPLES / "multi-host.yaml"], ids=lambda p: p.name
)
def test_mattermost_logs_are_not_backed_up(path, key_dir):
    config = load_stack_file(path)
    run = Run(config, example_secrets(config), key_dir)
    host = run.model.services.mattermost.host or run.model.default_host
    volumerize = run.container(host, "volumerize")
    sources = source_mounts(volumerize)
    assert "/source/homelab_mattermost_data" in sources
    assert "/source/homelab_mattermost_logs" not in sources
    assert run.volumes()["homelab_mattermost_logs"].retain_on_delete is False
    assert run.volumes()["homelab_mattermost_data"].retain_on_delete is True


def test_passphrase_is_a_generated_secret(example):
    for host in {h for h, _, _ in example.stateful()}:
        volumerize = example.container(host, "volumerize")
        (password,) = [
            r for r in example.mocks.of_type(PASSWORD) if r.name == f"volumerize-{host}-passphrase"
        ]
        assert password.inputs["length"] >= 32
        passphrase = env(volumerize)["PASSPHRASE"]
        assert passphrase in example.mocks.generated_secrets
        assert "envs" in volumerize.secret_paths
        assert not [p for p, s in plain_strings(volumerize.raw_inputs) if passphrase in s]
    assert "backup-passphrases" in example.mocks.secret_outputs


def test_schedule_reaches_jobber(example):
    for host in {h for h, _, _ in example.stateful()}:
        volumerize = example.container(host, "volumerize")
        assert env(volumerize)["VOLUMERIZE_JOBBER_TIME"] == example.model.backup.schedule


def test_local_target_is_bind_mounted(example):
    for host in {h for h, _, _ in example.stateful()}:
        volumerize = example.container(host, "volumerize")
        expected = example.model.backup.target or f"{example.model.host(host).root}/backups"
        (backup,) = [m for m in mounts(volumerize) if m["containerPath"] == "/backup"]
        assert backup == {"containerPath": "/backup", "hostPath": expected, "readOnly": False}
        assert env(volumerize)["VOLUMERIZE_TARGET"] == "file:///backup"


EXPECTED_TARGETS = {
    "single-host.yaml": {"server": "/srv/backups/homelab"},  # backup.target
    "multi-host.yaml": {"ops": "/opt/homelab/backups", "apps": "/srv/homelab/backups"},  # <root>/backups
    "Pulumi.dev.yaml": {"local": "/opt/homelab/backups"},
    "platform.yaml": {"local": "/opt/homelab/backups"},
    "apps.yaml": {"local": "/opt/homelab/backups"},
}


def test_example_targets_are_the_documented_directories(example):
    for host, directory in EXPECTED_TARGETS[example.path.name].items():
        (backup,) = [
            m for m in mounts(example.container(host, "volumerize")) if m["containerPath"] == "/backup"
        ]
        assert backup["hostPath"] == directory


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


def test_s3_target(key_dir):
    secrets = {"s3-id": f"{SECRET_MARK}-config-s3-id", "s3-key": f"{SECRET_MARK}-config-s3-key"}
    backup = {
        "target": "s3://bucket/homelab",
        "s3-access-key-id-secret": "s3-id",
        "s3-secret-access-key-secret": "s3-key",
        "schedule": "0 15 2 * * *",
    }
    run = Run({**DEV, "backup": backup}, secrets, key_dir)
    volumerize = run.container("local", "volumerize")
    values = env(volumerize)
    assert values["VOLUMERIZE_TARGET"] == "s3://bucket/homelab"
    assert values["VOLUMERIZE_JOBBER_TIME"] == "0 15 2 * * *"
    assert values["AWS_ACCESS_KEY_ID"] == secrets["s3-id"]
    assert values["AWS_SECRET_ACCESS_KEY"] == secrets["s3-key"]
    assert not [m for m in mounts(volumerize) if m["containerPath"] == "/backup"], "no local target with s3"
    # Secret on the resource, and built from secret references in the declaration.
    assert "envs" in volumerize.secret_paths
    for path, text in plain_strings(volumerize.raw_inputs):
        assert SECRET_MARK not in text, path
        # Env entries only in secret form; the names may be listed (homelab.secret-env label).
        assert not text.startswith("AWS_") or path.startswith("labels"), path
    (spec,) = [s for s in run.plan.services if s.kind == "BackupSchedule"]
    spec_env = spec.containers[0].env
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PASSPHRASE"):
        assert isinstance(spec_env[key], SecretRef), key
    assert not [k for k, v in spec_env.items() if k.startswith("AWS_") and not isinstance(v, SecretRef)]


def test_no_aws_env_without_s3(key_dir):
    run = Run(DEV, {}, key_dir)
    assert not [k for k in env(run.container("local", "volumerize")) if k.startswith("AWS_")]


def test_backup_disabled(key_dir):
    run = Run({**DEV, "backup": {"enabled": False}}, {}, key_dir)
    assert run.container("local", "volumerize") is None
    assert not [r for r in run.mocks.resources if "volumerize" in r.name]
    assert "backup-passphrases" not in run.mocks.outputs
    volumes = run.volumes()
    assert run.stateful()
    for _, name, _ in run.stateful():
        assert volumes[name].retain_on_delete is True, name
