"""Restore drills on a real Docker engine, through the CLI (`python -m automation drill`), and
the metrics they leave for Prometheus.

Images cannot be pulled here, so the helper containers run the session's busybox image
(tests/engine.py: made with `docker import` from Debian's static busybox, `busybox-static`,
installed by .ci/run and scripts/install-tools.sh), as the restore tests do. Archives are
written in the backup engine's format (offen/docker-volume-backup v2.48.2,
cmd/backup/archive.go: a tar.gz of `/backup/<volume>/...`) and encrypted with Debian's `age`
to an ssh-ed25519 key, as the engine does with AGE_PUBLIC_KEYS
(cmd/backup/encrypt_archive.go).

The database checks need the services' own images (postgres, mysql), which cannot be pulled
here: they are checked against a recording docker instead (the commands, the waiting, the
failures), at the end of this file.

Every name starts with `t16-` and a random suffix: other people use the same engine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine import ssh_age_key
from harness import ROOT, cli_here, cli_process

from automation import drill as drills
from automation.backup import BackupError, DockerCli, read_archive
from components.docker.spec import ContainerSpec, Volume
from components.homelab import drill as metrics
from stacks.config import parse


def docker(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def image(busybox_image: str) -> str:
    """The session's busybox image (tests/engine.py); the drills also need `age`."""
    if shutil.which("age") is None:
        pytest.skip("the age tool is not installed (apt install age)")
    return busybox_image


# ---- a stack with two backed-up services, archives in a directory -----------------------------

SERVICES = {"notes": ("data", "/data"), "ledger": ("db", "/var/lib/db")}


@dataclass
class Lab:
    prefix: str
    image: str
    stack_file: Path
    archives: Path
    key: Path
    recipient: str
    textfile: str  # a volume standing in for node-exporter's textfile directory

    def volume(self, service: str) -> str:
        return f"{self.prefix}_{service}_{SERVICES[service][0]}".replace("-", "_")

    def config(self) -> Any:
        document = yaml.safe_load(self.stack_file.read_text())["config"]
        return parse({k.removeprefix("homelab:"): v for k, v in document.items()})

    def target(self) -> drills.DrillTarget:
        """Host local's drill target, with the lab's volume as node-exporter's textfile
        directory (the lab's stack runs no node-exporter)."""
        found = drills.drill_target(self.config(), "local")
        return drills.DrillTarget(found.hb, found.specs, self.textfile)

    def leftovers(self) -> list[str]:
        """Drill containers and volumes of this lab still on the engine."""
        found = []
        for kind in ("ps", "volume ls"):
            listed = docker(
                *kind.split(),
                "-a" if kind == "ps" else "-q",
                "--filter",
                "label=homelab.drill=true",
                "--format",
                "{{.Names}}" if kind == "ps" else "{{.Name}}",
            )
            found += [n for n in listed.stdout.decode().split() if n.startswith(self.prefix)]
        return found


@contextlib.contextmanager
def new_lab(image: str, tmp_path: Path) -> Iterator[Lab]:
    prefix = f"t16-{uuid.uuid4().hex[:8]}"
    archives = tmp_path / "archives"
    archives.mkdir()
    key_file = tmp_path / "backup.key"
    recipient = ssh_age_key(key_file)
    off = {"enabled": False}
    config = {
        "homelab:name": prefix,
        "homelab:hosts": [{"name": "local", "address": "local", "root": str(tmp_path)}],
        "homelab:tls": {"enabled": False},
        # The engine image cannot be pulled here: the lab's image stands in as the helper.
        "homelab:backup": {"directory": str(archives), "image": image},
        "homelab:services": {
            name: off
            for name in (
                "portainer",
                "prometheus",
                "grafana",
                "cadvisor",
                "node-exporter",
                "mysql",
                "landing",
            )
        },
        "homelab:custom-services": [
            {"name": name, "image": image, "volumes": [{"name": vol, "path": path}]}
            for name, (vol, path) in SERVICES.items()
        ],
    }
    stack_file = tmp_path / "Pulumi.t16.yaml"
    stack_file.write_text(yaml.safe_dump({"config": config}))
    textfile = f"{prefix}-textfile"
    docker("volume", "create", textfile)
    lab = Lab(prefix, image, stack_file, archives, key_file, recipient, textfile)
    try:
        yield lab
    finally:
        docker("volume", "rm", "-f", textfile, check=False)


@pytest.fixture
def lab(image: str, tmp_path: Path) -> Iterator[Lab]:
    with new_lab(image, tmp_path) as lab:
        yield lab


FILES = {
    "notes": {
        "hello.txt": b"hello\n",
        "blob.bin": os.urandom(200_000),
        "dir/inner/deep.txt": b"deep\n",
        "empty": b"",
        "ümlaut €.txt": b"non-ASCII name\n",
        "with space.txt": b"space\n",
    },
    "ledger": {f"base/{i:04d}": bytes([i % 256]) * (i * 37 % 4096) for i in range(40)},
}


def engine_archive(
    lab: Lab, name: str, encrypt: bool = True, volumes: tuple[str, ...] = ("notes", "ledger")
) -> Path:
    """An archive as the engine writes it: /backup, then /backup/<volume>/..., gzip, then age."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ["/backup", *(f"/backup/{lab.volume(s)}" for s in volumes)]:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for service in volumes:
            for path, data in sorted(FILES[service].items()):
                parent = f"/backup/{lab.volume(service)}"
                for part in Path(path).parents[:-1][::-1]:
                    info = tarfile.TarInfo(f"{parent}/{part}")
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    if info.name not in tar.getnames():
                        tar.addfile(info)
                info = tarfile.TarInfo(f"{parent}/{path}")
                info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
    plain = lab.archives / f"{name}.tar.gz"
    plain.write_bytes(gzip.compress(buffer.getvalue()))
    if not encrypt:
        return plain
    recipients = lab.archives.parent / "recipients.txt"
    recipients.write_text(lab.recipient + "\n")
    out = plain.with_name(plain.name + ".age")
    subprocess.run(["age", "-R", str(recipients), "-o", str(out), str(plain)], check=True, timeout=60)
    plain.unlink()
    return out


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def cli(
    lab: Lab, *args: str, identity: bool = True, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """`drill --host local` on the lab: in this process (the CLI's `main`; the docker CLI it
    runs is the real one), or, with `process`, as the command `python -m automation`."""
    argv = ["drill", "--host", "local", "--file", str(lab.stack_file), "--helper-image", lab.image]
    argv += [*(["--identity", str(lab.key)] if identity else []), *args]
    return cli_process(*argv) if process else cli_here(*argv)


@contextlib.contextmanager
def textfile_container(lab: Lab) -> Iterator[str]:
    """A container (created, never started) with the lab's textfile volume at /t: `docker cp`
    reads and writes the volume through it without running anything."""
    created = docker("create", "--network", "none", "-v", f"{lab.textfile}:/t", lab.image, "true")
    container = created.stdout.decode().strip()
    try:
        yield container
    finally:
        docker("rm", "-f", container, check=False)


def textfile(lab: Lab) -> str:
    """The drill records in the lab's textfile volume ("" when there are none)."""
    with textfile_container(lab) as container:
        copied = docker("cp", f"{container}:/t/{metrics.TEXTFILE}", "-", check=False)
    if copied.returncode != 0:
        assert b"Could not find the file" in copied.stderr, copied.stderr
        return ""
    with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as tar:
        content = tar.extractfile(metrics.TEXTFILE)
        assert content is not None
        return content.read().decode()


def seed_textfile(lab: Lab, text: str) -> None:
    """Put drill records into the lab's textfile volume as a drill leaves them (root, 0644)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(metrics.TEXTFILE)
        info.size, info.mode = len(text.encode()), 0o644
        tar.addfile(info, io.BytesIO(text.encode()))
    with textfile_container(lab) as container:
        docker("cp", "-a", "-", f"{container}:/t", input=buffer.getvalue())


def drill_with_metrics(lab: Lab, now: float, **options: Any) -> tuple[drills.DrillReport, str]:
    """The drill as the CLI runs it, with the lab's volume as node-exporter's textfile directory."""
    target = lab.target()
    out = io.StringIO()
    report = drills.run_drill(
        target,
        DockerCli(target.hb.docker_host),
        out,
        image=lab.image,
        identity=lab.key,
        now=lambda: now,
        **options,
    )
    return report, out.getvalue()


# ---- through the CLI ---------------------------------------------------------------------------


def test_a_good_archive_passes(lab: Lab) -> None:
    engine_archive(lab, f"{lab.prefix}-local-2026-11-20T04-00-00")
    newest = engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    os.utime(newest, (2_000_000_000, 2_000_000_000))
    result = cli(lab, process=True)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"restore drill on host local, archive {newest.name}:" in out
    assert "  notes: PASSED\n" in out and "  ledger: PASSED\n" in out
    assert f"    {lab.volume('notes')}: 6 file(s) listed and restored; 6 sampled checksum(s) match\n" in out
    # 40 files, 8 of them checksummed (the default sample).
    assert f"    {lab.volume('ledger')}: 40 file(s) listed and restored; 8 sampled checksum(s) match\n" in out
    assert "2/2 service(s) passed" in out
    # No node-exporter with a textfile directory in this stack: it says so.
    assert "metrics not recorded: no node-exporter with a textfile directory on host local" in out
    assert lab.leftovers() == []


def test_one_service(lab: Lab) -> None:
    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    result = cli(lab, "--service", "notes", "--sample", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notes: PASSED" in result.stdout and "ledger" not in result.stdout
    assert "6 file(s) listed and restored; 2 sampled checksum(s) match" in result.stdout


def test_the_drill_reads_the_archive_twice(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: once to check it and take every file's checksum, once to refill the scratch
    volume (it was five: decrypt to a file, gzip CRC, tar, names, checksums, refill)."""
    from automation import backup as backups

    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    reads: list[str] = []
    stream = backups.ArchiveFile.stream

    def counted(self: backups.ArchiveFile):  # type: ignore[no-untyped-def]
        reads.append(self.name)
        return stream(self)

    monkeypatch.setattr(backups.ArchiveFile, "stream", counted)
    result = cli(lab, "--service", "ledger")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger: PASSED" in result.stdout
    assert len(reads) == 2, reads


@pytest.mark.parametrize(
    ("damage", "encrypt", "says"),
    [
        (flip_byte, False, "is not a readable backup archive"),
        (truncate, False, "is not a readable backup archive"),
        # issue 27: a damaged archive is told apart from a wrong key
        (flip_byte, True, "is damaged or truncated"),
        (truncate, True, "is damaged or truncated"),
    ],
    ids=["flipped-byte", "truncated", "flipped-byte-encrypted", "truncated-encrypted"],
)
def test_a_damaged_archive_fails_with_the_reason(lab: Lab, damage: Any, encrypt: bool, says: str) -> None:
    archive = engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00", encrypt=encrypt)
    damage(archive)
    result = cli(lab, "--archive", archive.name)  # fetched by name (the newest: see above)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  notes: FAILED\n" in result.stdout and "  ledger: FAILED\n" in result.stdout
    assert f"    {archive.name} {says}" in result.stdout
    assert "0/2 service(s) passed" in result.stdout
    assert "Traceback" not in result.stderr
    assert lab.leftovers() == []


def test_no_archive_fails(lab: Lab) -> None:
    result = cli(lab)
    assert result.returncode == 1
    assert f"    no archive in {lab.archives} on host local: no backup to restore" in result.stdout
    assert "restore drill on host local, archive (none):" in result.stdout


def test_a_missing_named_archive_fails(lab: Lab) -> None:
    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    result = cli(lab, "--archive", f"{lab.prefix}-local-1999-01-01T00-00-00.tar.gz.age")
    assert result.returncode == 1
    assert (
        f"    no archive {lab.prefix}-local-1999-01-01T00-00-00.tar.gz.age in {lab.archives}" in result.stdout
    )


@pytest.mark.parametrize("archive", ["/nonexistent/x.tar.gz", "backups/", ""])
def test_a_mistyped_archive_path_is_refused_and_records_nothing(lab: Lab, archive: str) -> None:
    """Neither a file here nor an archive's name: refused like `restore` refuses it, not a
    failed drill in the metrics (that would raise RestoreNotVerified for a typo)."""
    with pytest.raises(drills.DrillError) as refused:
        drill_with_metrics(lab, 2_000_000_000.0, archive=archive)
    assert f"{archive}: no such file here, and not the name of an archive; nothing was checked" in str(
        refused.value
    )
    assert textfile(lab) == "" and lab.leftovers() == []


def test_an_archive_without_a_service_fails_that_service(lab: Lab) -> None:
    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00", volumes=("notes",))
    result = cli(lab)
    assert result.returncode == 1
    assert "  notes: PASSED" in result.stdout
    assert f"  ledger: FAILED\n    the archive does not hold {lab.volume('ledger')}" in result.stdout


def test_an_encrypted_archive_without_the_identity_is_an_error_not_a_result(lab: Lab) -> None:
    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    result = cli(lab, identity=False)
    assert result.returncode == 1
    assert "is encrypted: give --identity FILE" in result.stderr
    assert "PASSED" not in result.stdout and "FAILED" not in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_an_interrupted_drill_removes_its_scratch_volumes_and_helpers(
    lab: Lab, tmp_path: Path, signum: int
) -> None:
    """Stopped while a helper fills a scratch volume (a timer's timeout sends SIGTERM): the
    helper and the scratch volumes are removed, nothing is recorded, and it says so."""
    engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    filling = tmp_path / "filling"
    # The fill helper gets, instead of the archive, a stdin that never ends (a FIFO opened for
    # reading and writing): it waits in tar.
    fifo = tmp_path / "never-ends"
    os.mkfifo(fifo)
    real = shutil.which("docker")
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *" run "*-fill*) touch {filling}; exec {real} "$@" 0<>{fifo};; esac\n'
        f'exec {real} "$@"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    argv = ["drill", "--host", "local", "--file", str(lab.stack_file), "--helper-image", lab.image]
    argv += ["--identity", str(lab.key)]
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    process = subprocess.Popen(
        [sys.executable, "-m", "automation", *argv],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            if filling.exists() and docker("ps", "-q", "--filter", "name=-fill$").stdout.strip():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the fill helper did not start")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, stdout + stderr
    assert "the drill of host local was interrupted: no result recorded" in stderr, stderr
    assert "its scratch volumes and helper containers were removed" in stderr
    assert "Traceback" not in stderr
    assert lab.leftovers() == []


def test_a_missing_backup_directory_fails_the_drill(lab: Lab) -> None:
    shutil.rmtree(lab.archives)
    result = cli(lab)
    assert result.returncode == 1
    assert f"    listing {lab.archives} on local failed: " in result.stdout
    assert "restore drill on host local, archive (none):" in result.stdout
    assert lab.leftovers() == []


# ---- the metrics -------------------------------------------------------------------------------


def values(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


GOOD = "local-2026-11-24T04-00-00"  # the archive that passes `verified`'s drill


@dataclass
class Verified:
    """A drill with metrics that passed: its report, what it said, the records it left."""

    lab: Lab
    report: drills.DrillReport
    out: str
    textfile: str


@pytest.fixture(scope="module")
def verified(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Verified]:
    """One drill of a good archive at 1_900_000_000, with the lab's volume as node-exporter's
    textfile directory, once per module (per xdist worker). Tests read it; those that go on
    from it (a later drill of a damaged archive) take a lab of their own with the same
    archive and these records (`after_the_good_drill`): a drill never changes its archive,
    and its records are all the next drill reads."""
    with new_lab(image, tmp_path_factory.mktemp("verified")) as lab:
        engine_archive(lab, f"{lab.prefix}-{GOOD}")
        report, out = drill_with_metrics(lab, 1_900_000_000)
        yield Verified(lab, report, out, textfile(lab))


def after_the_good_drill(lab: Lab, verified: Verified) -> Path:
    """`lab` as `verified`'s lab was after its drill: the good archive, the drill's records."""
    assert verified.report.ok, verified.out
    good = engine_archive(lab, f"{lab.prefix}-{GOOD}")
    seed_textfile(lab, verified.textfile)
    return good


def test_the_metric_says_whether_restores_are_verified(lab: Lab, verified: Verified) -> None:
    assert verified.report.ok, verified.out
    assert f"metrics recorded in {verified.lab.textfile}/{metrics.TEXTFILE}" in verified.out
    first = values(verified.textfile)
    assert first == {
        f'{metrics.SUCCESS}{{service="ledger"}}': 1,
        f'{metrics.SUCCESS}{{service="notes"}}': 1,
        f'{metrics.VERIFIED}{{service="ledger"}}': 1_900_000_000,
        f'{metrics.VERIFIED}{{service="notes"}}': 1_900_000_000,
        f'{metrics.LAST_RUN}{{service="ledger"}}': 1_900_000_000,
        f'{metrics.LAST_RUN}{{service="notes"}}': 1_900_000_000,
    }
    # A newer, damaged archive: the drill fails, success drops to 0, and the last verified
    # restore stays the one before (its age is what the alert watches).
    good = after_the_good_drill(lab, verified)
    bad = engine_archive(lab, f"{lab.prefix}-local-2026-11-25T04-00-00")
    os.utime(good, (1_000_000_000, 1_000_000_000))
    flip_byte(bad)
    report, out = drill_with_metrics(lab, 1_900_086_400)
    assert not report.ok
    second = values(textfile(lab))
    assert second[f'{metrics.SUCCESS}{{service="notes"}}'] == 0
    assert second[f'{metrics.VERIFIED}{{service="notes"}}'] == 1_900_000_000
    assert second[f'{metrics.LAST_RUN}{{service="notes"}}'] == 1_900_086_400
    # One service drilled again: the other keeps its record.
    report, out = drill_with_metrics(lab, 1_900_090_000, service="ledger", archive=good.name)
    assert report.ok, out
    third = values(textfile(lab))
    assert third[f'{metrics.SUCCESS}{{service="ledger"}}'] == 1
    assert third[f'{metrics.VERIFIED}{{service="ledger"}}'] == 1_900_090_000
    assert third[f'{metrics.SUCCESS}{{service="notes"}}'] == 0
    assert third[f'{metrics.LAST_RUN}{{service="notes"}}'] == 1_900_086_400


def test_the_metric_of_a_missing_archive_is_a_failure(lab: Lab) -> None:
    report, out = drill_with_metrics(lab, 1_900_000_000)
    assert not report.ok
    recorded = textfile(lab)
    assert values(recorded)[f'{metrics.SUCCESS}{{service="notes"}}'] == 0
    assert f'{metrics.VERIFIED}{{service="notes"}}' not in recorded


def test_a_merge_that_fails_leaves_the_records_as_they_were(
    lab: Lab, verified: Verified, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records are read and written by one container: when the merge fails here, it is
    sent nothing, and writes nothing."""
    seed_textfile(lab, verified.textfile)
    target = lab.target()

    def broken(states: Any) -> str:
        raise RuntimeError("no merge")

    monkeypatch.setattr(metrics, "render_textfile", broken)
    results = [drills.ServiceResult("notes", False)]
    with pytest.raises(RuntimeError, match="no merge"):
        drills.record(target, DockerCli(target.hb.docker_host), lab.image, results, 1_900_100_000)
    assert textfile(lab) == verified.textfile
    assert lab.leftovers() == []


def test_the_textfile_passes_promtool(verified: Verified) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    assert verified.textfile
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=verified.textfile, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- where the textfile directory is -------------------------------------------------------------


# ---- the database checks, against a recording docker ---------------------------------------------


class RecordingDocker(DockerCli):
    """Answers `docker` calls from a script of (prefix of the arguments -> exit code, stdout)."""

    def __init__(self, answers: list[tuple[tuple[str, ...], int, str]]) -> None:
        super().__init__("unix:///nowhere")
        self.answers = answers
        self.calls: list[list[str]] = []

    def run(self, args: Any, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
        self.calls.append(list(args))
        for i, (prefix, code, text) in enumerate(self.answers):
            if tuple(args[: len(prefix)]) == prefix:
                if len(prefix) > 1 and prefix[0] == "exec" and code != 0:
                    self.answers.pop(i)  # a failing readiness probe answers once
                return subprocess.CompletedProcess(args, code, text.encode(), b"log line\n" if code else b"")
        return subprocess.CompletedProcess(args, 0, b"", b"")


POSTGRES = ContainerSpec(
    "db",
    "postgres:17.6-alpine",
    env={
        "POSTGRES_USER": "mattermost",
        "POSTGRES_DB": "mattermost",
        "PGDATA": "/var/lib/postgresql/data/pgdata",
    },
    volumes=(Volume("db-data", "/var/lib/postgresql/data"),),
)
MYSQL = ContainerSpec(
    "mysql", "mysql:8.4.6", env={"MYSQL_DATABASE": "kodi"}, volumes=(Volume("mysql-data", "/var/lib/mysql"),)
)


def test_postgres_starts_on_the_restored_data_and_answers() -> None:
    name = "homelab-drill-t-db"
    docker_ = RecordingDocker(
        [
            (("exec", name, "pg_isready"), 1, ""),
            (("inspect",), 0, "true\n"),
            (("exec", name, "psql"), 0, "12\n"),
        ]
    )
    scratch = drills.Scratch(docker_, "helper:1", token="t")
    said = drills.check_database(
        scratch, "homelab", POSTGRES, {"/var/lib/postgresql/data": "scratch-db"}, sleep=lambda s: None
    )
    assert said == "PostgreSQL answered on database mattermost: 12 table(s)"
    run = docker_.calls[0]
    assert run[:6] == ["run", "-d", "--name", name, "--network", "none"]
    assert "--mount" in run and "type=volume,source=scratch-db,target=/var/lib/postgresql/data" in run
    assert run[-3:] == ["-e", "PGDATA=/var/lib/postgresql/data/pgdata", "postgres:17.6-alpine"]
    assert not any("PASSWORD" in a for a in run)  # the data exists: no password needed
    assert docker_.calls[1] == ["exec", name, "pg_isready", "-q", "-U", "mattermost", "-d", "mattermost"]
    assert docker_.calls[-1][:8] == ["exec", name, "psql", "-U", "mattermost", "-d", "mattermost", "-tAc"]
    assert scratch.containers == [name]  # removed by the cleanup


def test_mysql_runs_without_grant_tables_and_answers() -> None:
    docker_ = RecordingDocker([(("exec", "homelab-drill-t-mysql", "mysql"), 0, "7\n")])
    scratch = drills.Scratch(docker_, "helper:1", token="t")
    said = drills.check_database(
        scratch, "homelab", MYSQL, {"/var/lib/mysql": "scratch-m"}, sleep=lambda s: None
    )
    assert said == "MySQL answered: 7 table(s)"
    assert docker_.calls[0][-2:] == ["mysql:8.4.6", "--skip-grant-tables"]
    assert docker_.calls[1] == ["exec", "homelab-drill-t-mysql", "mysqladmin", "ping", "--silent"]


def test_a_database_that_does_not_start_fails_with_its_log() -> None:
    docker_ = RecordingDocker(
        [
            (("exec",), 1, ""),
            (("inspect",), 0, "false\n"),
            (("logs",), 0, "FATAL: database files are incompatible with server\n"),
        ]
    )
    scratch = drills.Scratch(docker_, "helper:1", token="t")
    with pytest.raises(
        BackupError,
        match="did not start on the restored data: FATAL: database files are incompatible",
    ):
        drills.check_database(
            scratch, "homelab", POSTGRES, {"/var/lib/postgresql/data": "v"}, sleep=lambda s: None
        )


def test_a_database_container_that_fails_to_start_is_left_to_the_cleanup() -> None:
    """`docker run -d` can create the container and then fail to start it (or be stopped in
    between): its name is known to the cleanup before the run, so it goes with its volume."""
    name = "homelab-drill-t-db"
    docker_ = RecordingDocker([(("run",), 125, "")])
    scratch = drills.Scratch(docker_, "helper:1", token="t")
    with pytest.raises(BackupError, match="starting postgres:17.6-alpine on the restored data failed"):
        drills.check_database(
            scratch, "homelab", POSTGRES, {"/var/lib/postgresql/data": "v"}, sleep=lambda s: None
        )
    assert scratch.containers == [name]


def test_a_database_that_never_gets_ready_times_out() -> None:
    class NeverReady(RecordingDocker):
        def run(self, args: Any, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
            self.calls.append(list(args))
            if args[0] == "exec":
                return subprocess.CompletedProcess(args, 1, b"", b"")
            return subprocess.CompletedProcess(args, 0, b"true\n", b"")

    scratch = drills.Scratch(NeverReady([]), "helper:1", token="t")
    with pytest.raises(BackupError, match="was not ready on the restored data after 10s"):
        drills.check_database(
            scratch, "homelab", MYSQL, {"/var/lib/mysql": "v"}, timeout=10, sleep=lambda s: None
        )


def test_a_query_that_does_not_answer_a_number_fails() -> None:
    docker_ = RecordingDocker([(("exec", "homelab-drill-t-mysql", "mysql"), 0, "ERROR 1049\n")])
    with pytest.raises(BackupError, match="the query on the restored mysql data answered 'ERROR 1049'"):
        drills.check_database(
            drills.Scratch(docker_, "h", token="t"),
            "homelab",
            MYSQL,
            {"/var/lib/mysql": "v"},
            sleep=lambda s: None,
        )


# ---- restore and check in one helper container, against a scripted docker ------------------------


class ScriptedFeed(DockerCli):
    """`feed` answers from a script: it takes the tar the drill streams in (kept), then prints
    `printed` and exits `code` with `said` on stderr."""

    def __init__(self, code: int, printed: str, said: bytes = b"") -> None:
        super().__init__("unix:///nowhere")
        self.code, self.printed, self.said = code, printed, said
        self.fed: list[tuple[list[str], bytes]] = []

    def feed(self, args: Any, write: Any, stdout: Any = None) -> tuple[int, bytes]:
        sink = io.BytesIO()
        write(sink)
        self.fed.append((list(args), sink.getvalue()))
        if stdout is not None:
            stdout.write(self.printed.encode())
        return self.code, self.said


def plain_archive(tmp_path: Path) -> tuple[Path, Any]:
    """A plain archive with two files in volume v, and its backup entry."""
    from components.homelab.backup import BackupEntry

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("a.txt", b"alpha\n"), ("b.txt", b"beta\n")):
            info = tarfile.TarInfo(f"/backup/v/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "plain.tar"
    path.write_bytes(buffer.getvalue())
    return path, BackupEntry("v", "c", "s")


A_SUM = hashlib.sha256(b"alpha\n").hexdigest()
B_SUM = hashlib.sha256(b"beta\n").hexdigest()


def test_restore_and_check_is_one_helper_container(tmp_path: Path) -> None:
    path, entry = plain_archive(tmp_path)
    printed = f"2\n{A_SUM}  ./a.txt\n{B_SUM}  ./b.txt\n"
    docker_ = ScriptedFeed(0, printed)
    said = drills.restore_and_check(
        drills.Scratch(docker_, "helper:1", token="t"),
        path,
        entry,
        read_archive(path, digests=True)[entry.volume],
        "scratch",
        8,
    )
    assert said == "v: 2 file(s) listed and restored; 2 sampled checksum(s) match"
    [(args, streamed)] = docker_.fed  # one container: the files go in, then are read back
    script = args[-1]
    assert script.startswith("tar -xf - -C /drill || exit 3; cd /drill && find . -type f | wc -l")
    assert "sha256sum -- a.txt b.txt" in script
    assert "type=volume,source=scratch,target=/drill" in args
    # Named after its volume, and left to the cleanup if the drill stops while it runs.
    assert args[args.index("--name") + 1] == "scratch-fill"
    with tarfile.open(fileobj=io.BytesIO(streamed)) as tar:
        assert tar.getnames() == ["a.txt", "b.txt"]  # relative to the volume


def test_the_cleanup_removes_a_helper_still_running_and_its_volume(image: str) -> None:
    """A drill stopped while a helper fills its scratch volume: the helper is removed and the
    volume with it (a running helper held the volume, and `volume rm` failed on it)."""
    scratch = drills.Scratch(DockerCli(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")), image)
    volume = scratch.volume(f"t16-{uuid.uuid4().hex[:8]}", "data")
    args = scratch.helper(f"{volume}-fill", f"type=volume,source={volume},target=/drill", "sleep 60")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    running = subprocess.Popen(scratch.docker.base + args, **quiet)
    try:
        for _ in range(100):
            if docker("ps", "-q", "--filter", f"name=^{volume}-fill$").stdout.strip():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the helper did not start")
        assert scratch.cleanup() == []
        assert docker("ps", "-aq", "--filter", f"name=^{volume}-fill$").stdout.strip() == b""
        assert docker("volume", "inspect", volume, check=False).returncode != 0
    finally:
        running.kill()
        running.wait(timeout=30)
        docker("rm", "-f", f"{volume}-fill", check=False)
        docker("volume", "rm", "-f", volume, check=False)


@pytest.mark.parametrize(
    ("code", "printed", "says"),
    [
        (3, "", "restoring v into a scratch volume failed: tar: write error"),
        (1, "", "reading back v failed: tar: write error"),
        (0, "1\n", "v: the archive lists 2 file(s), 1 came back"),
        (0, "", "v: the archive lists 2 file(s), 0 came back"),
        (0, f"2\n{'0' * 64}  ./a.txt\n{B_SUM}  ./b.txt\n", "checksum mismatch after restore: a.txt"),
        # sha256sum could not open a.txt: no line for it.
        (0, f"2\n{B_SUM}  ./b.txt\n", "checksum mismatch after restore: a.txt"),
    ],
    ids=["not-restored", "not-read-back", "fewer-files", "nothing-printed", "wrong-checksum", "unreadable"],
)
def test_restore_and_check_failures(tmp_path: Path, code: int, printed: str, says: str) -> None:
    path, entry = plain_archive(tmp_path)
    docker_ = ScriptedFeed(code, printed, b"tar: write error\n")
    with pytest.raises(BackupError) as error:
        drills.restore_and_check(
            drills.Scratch(docker_, "helper:1", token="t"),
            path,
            entry,
            read_archive(path, digests=True)[entry.volume],
            "scratch",
            8,
        )
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("container", "kind"),
    [(POSTGRES, "postgres"), (MYSQL, "mysql"), (ContainerSpec("g", "grafana/grafana:12.1.1"), None)],
)
def test_database_kind(container: ContainerSpec, kind: str | None) -> None:
    assert drills.database_kind(container) == kind


# ---- the guard's ledger: the newest archive of the host ---------------------------------------


def test_the_guard_learns_the_last_backup_from_the_hosts_archives(lab: Lab) -> None:
    from automation.guard import StatefulChange, judge
    from automation.ledger import ArchiveLedger

    old = engine_archive(lab, f"{lab.prefix}-local-2026-11-20T04-00-00")
    new = engine_archive(lab, f"{lab.prefix}-local-pre-upgrade-notes-2026-11-25T04-00-00")
    os.utime(old, (1_900_000_000, 1_900_000_000))
    os.utime(new, (1_900_050_000, 1_900_050_000))
    ledger = ArchiveLedger(lab.config())
    assert ledger.newest_backup("local", "notes") == 1_900_050_000
    assert ledger.newest_backup("local", "ledger") == 1_900_050_000
    assert ledger.newest_backup("local", "frontend") is None  # holds no data here

    change = StatefulChange(
        "urn",
        "docker:index/container:Container",
        "notes",
        "replace",
        "container",
        "notes",
        "local",
        ("image",),
    )
    fresh = judge([change], ledger=ledger, max_age=86400, now=1_900_060_000).verdicts[0]
    assert fresh.allowed and fresh.reason == "backup 2h 46m old (limit 1d 0h)"
    stale = judge([change], ledger=ledger, max_age=3600, now=1_900_060_000).verdicts[0]
    assert not stale.allowed


def test_the_ledger_says_why_it_cannot_answer(lab: Lab) -> None:
    from automation.ledger import ArchiveLedger

    shutil.rmtree(lab.archives)
    with pytest.raises(BackupError, match=f"listing {lab.archives} on local failed"):
        ArchiveLedger(lab.config()).newest_backup("local", "notes")


# ---- on a schedule: --due -----------------------------------------------------------------------


def test_due_drills_a_host_once_per_interval(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drills, "textfile_volume", lambda config, host: lab.textfile)
    reads: list[str] = []
    read_states = drills.read_states

    def counted(target: Any, docker_: Any, image: str) -> Any:
        reads.append(target.hb.host)
        return read_states(target, docker_, image)

    monkeypatch.setattr(drills, "read_states", counted)
    engine_archive(lab, f"{lab.prefix}-local-2026-11-24T04-00-00")
    config = lab.config()
    day = 86400.0
    start = 1_900_000_000.0

    out = io.StringIO()
    assert drills.drill_due(config, out, lab.key, lab.image, now=lambda: start)
    assert "host local: due, a service there was never drilled\n" in out.getvalue()
    assert "2/2 service(s) passed" in out.getvalue()
    assert f"metrics recorded in {lab.textfile}" in out.getvalue()
    assert reads == ["local"]  # read to decide; the drill's records are merged into those

    out = io.StringIO()
    assert drills.drill_due(config, out, lab.key, lab.image, now=lambda: start + day)
    assert out.getvalue() == "host local: not due, last drilled 1d 0h ago; next in 6d 0h\n"

    # The verdicts that follow, from these records read once (`due` reads them, then asks
    # `verdict`), without drilling again: a drill that is due runs (above).
    target = lab.target()
    states = drills.read_states(target, DockerCli(target.hb.docker_host), lab.image)
    # A daily timer at the same hour finds the weekly drill due on the 7th day.
    verdict = drills.verdict(config, target, states, start + 7 * day - 600)
    assert (verdict.due, verdict.why) == (True, "last drilled 6d 23h ago (every 7d)")

    # Per host: another interval.
    daily = config.model_copy(
        update={
            "data": config.data.model_copy(
                update={
                    "restore_drills": config.data.restore_drills.model_copy(update={"hosts": {"local": "1d"}})
                }
            )
        }
    )
    verdict = drills.verdict(daily, target, states, start + day + 3600)
    assert (verdict.due, verdict.why) == (True, "last drilled 1d 1h ago (every 1d)")
    verdict = drills.verdict(daily, target, states, start + 0.5 * day)
    assert (verdict.due, verdict.why) == (False, "last drilled 12h 0m ago; next in 12h 0m")


def test_due_when_the_records_cannot_be_read_drills(lab: Lab) -> None:
    """An engine that does not answer: the drill is due, and says why (not a traceback)."""
    verdict = drills.due(lab.config(), lab.target(), DockerCli("unix:///nonexistent.sock"), lab.image, 0.0)
    assert verdict.host == "local" and verdict.due
    assert verdict.why.startswith("its drill records cannot be read (reading the drill records failed: ")


def test_due_without_a_textfile_directory_always_drills(lab: Lab) -> None:
    # The lab's stack has no node-exporter: nowhere to keep records, so a drill is always due
    # (and a due drill runs: test_due_drills_a_host_once_per_interval).
    config = lab.config()
    target = drills.drill_target(config, "local")
    assert target.textfile_volume is None
    verdict = drills.due(config, target, DockerCli(target.hb.docker_host), lab.image, 1_900_000_000)
    assert verdict == drills.Due(
        "local", True, "no textfile directory on the host to tell when it was last drilled"
    )


def test_drill_needs_a_host_or_due() -> None:
    from automation import cli as cli_module

    with pytest.raises(cli_module.UsageError):
        cli_module._parser().parse_args(["drill"])
    with pytest.raises(cli_module.UsageError):
        cli_module._parser().parse_args(["drill", "--host", "a", "--due"])


def test_drill_intervals_name_known_hosts() -> None:
    from stacks.checks import validate
    from stacks.config import ConfigError

    with pytest.raises(ConfigError) as error:
        validate({"data": {"restore-drills": {"hosts": {"nas": "1d"}}}})
    assert ("data.restore-drills.hosts.nas", "unknown host 'nas' (hosts: local)") in error.value.problems
    with pytest.raises(ConfigError, match=r"data.restore-drills.every: 'weekly' is not a duration"):
        validate({"data": {"restore-drills": {"every": "weekly"}}})


def test_the_cli_parses_due() -> None:
    from automation import cli as cli_module

    args = cli_module._parser().parse_args(["drill", "--due", "--identity", "k"])
    assert args.due and args.host is None and args.identity == Path("k")
    args = cli_module._parser().parse_args(["drill", "--host", "nas", "--service", "mysql"])
    assert not args.due and args.host == "nas" and args.service == "mysql"


def test_the_drill_finds_node_exporters_textfile_volume() -> None:
    """The alerting layer gives node-exporter a textfile directory on each host with a
    backup run (components/homelab/alerting.py); the drill writes into that volume."""
    config = parse({"hosts": [{"name": "nas"}]})
    assert drills.textfile_volume(config, "nas") == "homelab_node_exporter_nas_textfile"
    without_prometheus = parse({"hosts": [{"name": "nas"}], "services": {"prometheus": {"enabled": False}}})
    assert drills.textfile_volume(without_prometheus, "nas") is None


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated", "missing"])
def test_each_failure_is_in_the_metric(lab: Lab, verified: Verified, damage: str) -> None:
    good = after_the_good_drill(lab, verified)  # a drill passed at 1_900_000_000
    if damage == "missing":
        good.unlink()
    else:
        (flip_byte if damage == "flipped-byte" else truncate)(good)
    report, out = drill_with_metrics(lab, 1_900_003_600)
    assert not report.ok
    # age encryption is authenticated: a flipped or missing byte does not decrypt.
    reason = {"flipped-byte": "is damaged or truncated", "truncated": "is damaged or truncated"}
    assert reason.get(damage, f"no archive in {lab.archives} on host local") in out
    after = values(textfile(lab))
    for service in ("notes", "ledger"):
        assert after[f'{metrics.SUCCESS}{{service="{service}"}}'] == 0
        assert after[f'{metrics.LAST_RUN}{{service="{service}"}}'] == 1_900_003_600
        assert after[f'{metrics.VERIFIED}{{service="{service}"}}'] == 1_900_000_000
