"""Restore drills: prove that the newest archive of a host restores, without touching the
services.

For each backed-up service of the host (or one `--service`), the drill:

1. takes the host's newest archive (as `backups` lists them) or the one named, copies it
   here (`docker cp` out of a container never started: automation/backup.py copy_out),
   and reads all of it once, decrypting it as a stream with the stack's age identity (as
   `restore` does: the key stays off the server, no plaintext on disk): age's
   authentication, gzip length and CRC, every tar entry, every file's sha256;
2. restores each of the service's volumes into a scratch volume of its own, through a
   throwaway container of the helper image (the engine image: Alpine, with sh, tar, find and
   sha256sum), never into the service's own volume;
3. checks it there, in the same container: the files the archive lists are all back, and a
   sample of them reads back with the checksums recorded from the archive; for PostgreSQL and
   MySQL, the service's own image starts on the restored data in a throwaway container
   without network, and a query answers (the backup engine copies databases as files while
   they are stopped, so the "dump" that has to load is the data directory);
4. removes the throwaway containers and scratch volumes, whatever happened, and records the
   result per service for Prometheus (components/homelab/drill.py) in node-exporter's
   textfile directory on the host (one container reads the records there and writes them
   back merged).

A damaged archive (a flipped byte, a truncated file) fails at step 1 with the reason; a
missing one fails before. Failures are recorded (success 0; the last verified time stays
what it was) and the command exits 1.

Database facts, from the images' entrypoints (github.com/docker-library postgres
17/alpine3.22/docker-entrypoint.sh and mysql 8.4/docker-entrypoint.sh): with a data
directory present (`$PGDATA/PG_VERSION`, `mysql/` in the datadir) they skip initialisation
and need no password variables; mysql passes arguments starting with `-` to mysqld, so
`--skip-grant-tables` lets the drill query without the root password.
"""

from __future__ import annotations

import dataclasses
import shlex
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from automation.backup import (
    ARCHIVE_NAME,
    ArchiveFile,
    BackupEntry,
    BackupError,
    DockerCli,
    HostBackup,
    Interrupted,
    VolumeContent,
    _message,
    archive_here,
    copy_out,
    host_backup,
    list_archives,
    open_archive,
    read_archive,
    signals_ignored,
    signals_raise,
    volume_stream,
)
from automation.guard import human_age
from components.docker.spec import ContainerSpec, ServiceSpec
from components.homelab import alerting
from components.homelab import drill as metrics
from stacks.config import StackConfig
from stacks.config_base import duration_seconds
from stacks.plan import build_plan

SCRATCH = "/drill"
TEXTFILE_MOUNT = "/textfile"
TEXTFILE_DIR = alerting.TEXTFILE_DIR  # where node-exporter reads *.prom files


class DrillError(RuntimeError):
    """The drill could not run at all (nothing was checked, nothing recorded)."""


@dataclass(frozen=True)
class DrillTarget:
    """One host: its backup set, its services with data, where its textfile directory is."""

    hb: HostBackup
    specs: tuple[ServiceSpec, ...]
    textfile_volume: str | None  # the Docker volume node-exporter reads; None: no metrics

    def services(self, service: str | None) -> list[ServiceSpec]:
        self.hb.select(service)  # unknown service: BackupError naming the ones there are
        return [s for s in self.specs if service is None or s.name == service]


def textfile_volume(config: StackConfig, host: str) -> str | None:
    """The Docker volume of the host's node-exporter mounted at its textfile directory."""
    from components.docker.service import volume_name

    for spec in build_plan(config).on_host(host):
        for c in spec.containers:
            for v in c.volumes:
                if spec.kind == "NodeExporter" and v.path == TEXTFILE_DIR:
                    return volume_name(config.name, spec, v)
    return None


def drill_target(config: StackConfig, host: str) -> DrillTarget:
    hb = host_backup(config, host)
    backed = {e.service for e in hb.entries}
    specs = tuple(s for s in build_plan(config).on_host(host) if s.name in backed)
    return DrillTarget(hb, specs, textfile_volume(config, host))


# ---- results --------------------------------------------------------------------------------


@dataclass
class ServiceResult:
    service: str
    ok: bool
    lines: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.lines.append(message)


@dataclass
class DrillReport:
    host: str
    archive: str | None
    results: list[ServiceResult]
    recorded: str = ""  # where the metrics went, or why not

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def render(self) -> str:
        lines = [f"restore drill on host {self.host}, archive {self.archive or '(none)'}:"]
        for r in self.results:
            lines.append(f"  {r.service}: {'PASSED' if r.ok else 'FAILED'}")
            lines += [f"    {line}" for line in r.lines]
        passed = sum(r.ok for r in self.results)
        lines.append(f"{passed}/{len(self.results)} service(s) passed")
        if self.recorded:
            lines.append(self.recorded)
        return "\n".join(lines) + "\n"


# ---- the archive's content -------------------------------------------------------------------


def sample_checksums(content: VolumeContent, size: int) -> tuple[int, dict[str, str]]:
    """(regular files of a volume in the archive, sha256 of an evenly spread sample of them),
    from what read_archive(..., digests=True) took in its one pass."""
    names = sorted(content.digests)
    if len(names) <= size:
        chosen = names
    else:
        step = len(names) / size
        chosen = [names[int(i * step)] for i in range(size)]
    return content.files, {name: content.digests[name] for name in chosen}


# ---- the engine side: scratch volumes and throwaway containers ------------------------------


@dataclass
class Scratch:
    """The throwaway resources of one drill, removed at the end whatever happened."""

    docker: DockerCli
    image: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    volumes: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def volume(self, prefix: str, volume: str) -> str:
        name = f"{prefix}-drill-{self.token}-{volume}"
        self.docker.text(["volume", "create", "--label", "homelab.drill=true", name], f"creating {name}")
        self.volumes.append(name)
        return name

    def helper(self, name: str, mount: str, script: str, *extra: str) -> list[str]:
        """A one-shot container named `name`: named so that cleanup removes it even when the
        drill was stopped while it ran (it would hold its volume, which could not go)."""
        self.containers.append(name)
        run = ["run", "--rm", "--name", name, "--network", "none", "--user", "0:0"]
        run += ["--label", "homelab.drill=true"]
        return [*run, *extra, "--mount", mount, "--entrypoint", "sh", self.image, "-c", script]

    def cleanup(self) -> list[str]:
        problems = []
        if self.containers:  # one call for all: over SSH each call is a round trip
            result = self.docker.run(["rm", "-f", "-v", *self.containers])
            if result.returncode != 0:
                left = [
                    line
                    for line in result.stderr.decode(errors="replace").splitlines()
                    if line.strip() and "No such container" not in line
                ]
                if left:
                    names = ", ".join(self.containers)
                    problems.append(f"could not remove containers ({names}): {'; '.join(left)}")
        for name in self.volumes:
            result = self.docker.run(["volume", "rm", "-f", name])
            if result.returncode != 0:
                problems.append(f"could not remove volume {name}: {_message(result.stderr)}")
        return problems


def restore_and_check(
    scratch: Scratch,
    plain: ArchiveFile | Path,
    entry: BackupEntry,
    content: VolumeContent,
    target: str,
    sample: int,
) -> str:
    """Fill the scratch volume `target` with `entry`'s files from the archive, and check them
    there: the files are all back, and the sample reads back with the archive's checksums.
    One helper container does both (one container start per volume: over SSH each costs a
    round trip or more)."""
    count, sums = sample_checksums(content, sample)
    # Exit 3: the files did not go in. Then the count, and the sample's checksums (a file
    # sha256sum cannot open prints no line: it shows as a mismatch).
    script = f"tar -xf - -C {SCRATCH} || exit 3; cd {SCRATCH} && find . -type f | wc -l"
    if sums:
        script += " && { sha256sum -- " + " ".join(shlex.quote(n) for n in sorted(sums)) + " || true; }"
    args = scratch.helper(f"{target}-fill", f"type=volume,source={target},target={SCRATCH}", script, "-i")
    with tempfile.TemporaryFile() as printed:
        code, stderr = scratch.docker.feed(
            args, lambda sink: volume_stream(plain, entry.volume, sink), stdout=printed
        )
        printed.seek(0)
        text = printed.read().decode(errors="replace")
    if code == 3:
        raise BackupError(f"restoring {entry.volume} into a scratch volume failed: {_message(stderr)}")
    if code != 0:
        raise BackupError(f"reading back {entry.volume} failed: {_message(stderr)}")
    first, *rest = text.strip().splitlines() or ["0"]
    restored = int(first.strip()) if first.strip().isdigit() else -1
    if restored != count:
        raise BackupError(f"{entry.volume}: the archive lists {count} file(s), {restored} came back")
    found = {}
    for line in rest:
        digest, _, name = line.partition("  ")
        found[name.removeprefix("./")] = digest
    bad = sorted(n for n, digest in sums.items() if found.get(n) != digest)
    if bad:
        raise BackupError(f"{entry.volume}: checksum mismatch after restore: {', '.join(bad[:5])}")
    return f"{entry.volume}: {count} file(s) listed and restored; {len(sums)} sampled checksum(s) match"


def database_kind(c: ContainerSpec) -> str | None:
    repository = c.image.split("@", 1)[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
    if repository in ("postgres", "postgis") or "POSTGRES_USER" in c.env:
        return "postgres"
    if repository in ("mysql", "mariadb") or "MYSQL_DATABASE" in c.env:
        return "mysql"
    return None


def _plain_env(c: ContainerSpec, key: str, default: str) -> str:
    value = c.env.get(key, default)
    return value if isinstance(value, str) else default


Sleep = Callable[[float], None]


def check_database(
    scratch: Scratch,
    prefix: str,
    c: ContainerSpec,
    mounts: dict[str, str],  # container path -> scratch volume
    timeout: float = 180.0,
    sleep: Sleep = time.sleep,
) -> str:
    """The service's own image starts on the restored data, and a query answers."""
    kind = database_kind(c)
    name = f"{prefix}-drill-{scratch.token}-{c.name}"
    args = ["run", "-d", "--name", name, "--network", "none", "--label", "homelab.drill=true"]
    for path, volume in sorted(mounts.items()):
        args += ["--mount", f"type=volume,source={volume},target={path}"]
    if kind == "postgres":
        user = _plain_env(c, "POSTGRES_USER", "postgres")
        database = _plain_env(c, "POSTGRES_DB", user)
        if "PGDATA" in c.env:
            args += ["-e", f"PGDATA={_plain_env(c, 'PGDATA', '')}"]
        args.append(c.image)
        ready = ["exec", name, "pg_isready", "-q", "-U", user, "-d", database]
        query = [
            "exec", name, "psql", "-U", user, "-d", database, "-tAc",
            "select count(*) from information_schema.tables "
            "where table_schema not in ('pg_catalog', 'information_schema')",
        ]  # fmt: skip
        what = f"PostgreSQL answered on database {database}"
    else:
        database = _plain_env(c, "MYSQL_DATABASE", "mysql")
        args += [c.image, "--skip-grant-tables"]
        ready = ["exec", name, "mysqladmin", "ping", "--silent"]
        query = [
            "exec", name, "mysql", "-uroot", "-N", "-B", "-e",
            "select count(*) from information_schema.tables "
            "where table_schema not in ('mysql', 'information_schema', 'performance_schema', 'sys')",
        ]  # fmt: skip
        what = "MySQL answered"
    scratch.containers.append(name)  # before: a run that created it and then failed leaves it
    scratch.docker.text(args, f"starting {c.image} on the restored data")
    waited = 0.0
    while scratch.docker.run(ready).returncode != 0:
        state = scratch.docker.run(["inspect", "-f", "{{.State.Running}}", name])
        if state.stdout.decode().strip() != "true":
            logs = scratch.docker.run(["logs", "--tail", "5", name])
            raise BackupError(
                f"{c.image} did not start on the restored data: {_message(logs.stderr or logs.stdout)}"
            )
        if waited >= timeout:
            raise BackupError(f"{c.image} was not ready on the restored data after {timeout:.0f}s")
        sleep(2.0)
        waited += 2.0
    tables = scratch.docker.text(query, f"querying the restored {kind} data").strip()
    if not tables.isdigit():
        raise BackupError(f"the query on the restored {kind} data answered {tables!r}")
    return f"{what}: {tables} table(s)"


# ---- metrics ---------------------------------------------------------------------------------


_RUN = ("run", "--rm", "--network", "none", "--user", "0:0")
_PATH = f"{TEXTFILE_MOUNT}/{metrics.TEXTFILE}"


def read_states(target: DrillTarget, docker: DockerCli, image: str) -> dict[str, metrics.DrillState] | None:
    """The host's drill records (None: the host has no textfile directory)."""
    if target.textfile_volume is None:
        return None
    mount = f"type=volume,source={target.textfile_volume},target={TEXTFILE_MOUNT}"
    script = f"cat {_PATH} 2>/dev/null || true"
    args = [*_RUN, "--mount", mount, "--entrypoint", "sh", image, "-c", script]
    return metrics.parse_textfile(docker.text(args, "reading the drill records"))


_END = "--- homelab drill: end ---"  # what a helper prints between its answer and its question


def record(
    target: DrillTarget, docker: DockerCli, image: str, results: list[ServiceResult], now: float
) -> str:
    """Merge this drill's results into the host's textfile; say where they went. One helper
    container reads the records there, is sent the merged ones, and writes them."""
    volume = target.textfile_volume
    if volume is None:
        return f"metrics not recorded: no node-exporter with a textfile directory on host {target.hb.host}"
    mount = f"type=volume,source={volume},target={TEXTFILE_MOUNT}"
    path = _PATH
    # Written beside, then renamed: node-exporter never reads half a file; nothing sent (the
    # merge failed here): nothing written.
    script = (
        f'cat {path} 2>/dev/null; echo "{_END}"; '
        f"cat > {path}.$$ && [ -s {path}.$$ ] && chmod 0644 {path}.$$ && mv {path}.$$ {path}; "
        f"status=$?; rm -f {path}.$$; exit $status"
    )
    args = [*_RUN, "-i", "--mount", mount, "--entrypoint", "sh", image, "-c", script]

    def merged(lines: list[str]) -> bytes:
        states = metrics.parse_textfile("\n".join(lines))
        for r in results:
            before = states.get(r.service)
            verified = now if r.ok else (before.last_verified if before else None)
            states[r.service] = metrics.DrillState(r.service, r.ok, now, verified)
        return metrics.render_textfile(states.values()).encode()

    code, stderr, read = docker.exchange(args, _END, merged)
    if read is None or code != 0:
        return f"metrics NOT recorded in {volume}: {_message(stderr)}{docker.ssh_said()}"
    return f"metrics recorded in {volume}/{metrics.TEXTFILE}"


# ---- the drill -------------------------------------------------------------------------------


def fetch_archive(
    hb: HostBackup, docker: DockerCli, image: str, archive: str | None, workdir: Path
) -> tuple[str | None, Path | None]:
    """The archive to drill, copied to `workdir`: `archive` (a name in the host's backup
    directory), or the newest there (as `backups` lists them); (None, None) when there is
    none. A named archive is copied without listing; on a local engine it is read where it
    is (automation/backup.py archive_here), else copied with `docker cp` out of a container
    never started (copy_out)."""
    if archive is not None and not ARCHIVE_NAME.fullmatch(archive):
        raise BackupError(f"{archive}: no such file here, and not the name of an archive")
    if archive is None:
        newest = list_archives(hb, docker, image)
        if not newest:
            return None, None
        archive = newest[0].name
    here = archive_here(hb, archive)
    if here is not None:
        return archive, here
    local = workdir / archive
    copy_out(hb, docker, image, archive, local)
    return archive, local


def _need_identity(name: str, identity: Path | None) -> None:
    if name.endswith(".age") and identity is None:
        raise DrillError(
            f"{name} is encrypted: give --identity FILE (pulumi stack output "
            "backup-identity --show-secrets > backup.key); nothing was checked"
        )


def run_drill(
    target: DrillTarget,
    docker: DockerCli,
    out: TextIO,
    service: str | None = None,
    archive: str | None = None,
    identity: Path | None = None,
    image: str | None = None,
    sample: int = 8,
    now: Callable[[], float] = time.time,
    sleep: Sleep = time.sleep,
    db_timeout: float = 180.0,
) -> DrillReport:
    hb = target.hb
    helper = image or hb.image
    specs = target.services(service)
    results = {s.name: ServiceResult(s.name, True) for s in specs}
    report = DrillReport(hb.host, archive, list(results.values()))

    def fail_all(message: str) -> None:
        for r in results.values():
            r.fail(message)

    local = Path(archive).expanduser() if archive is not None else None
    here = local is not None and local.is_file()  # an archive on this machine
    # A path mistyped is no failed drill: refused before anything runs or is recorded.
    if archive is not None and not here and not ARCHIVE_NAME.fullmatch(archive):
        raise DrillError(f"{archive}: no such file here, and not the name of an archive; nothing was checked")

    scratch = Scratch(docker, helper)
    interrupted = False
    try:
        with signals_raise(), tempfile.TemporaryDirectory(prefix="homelab-drill-") as tmp:
            if here:
                path: Path | None = local
            else:
                if archive is not None:
                    _need_identity(archive, identity)  # before copying anything
                try:
                    report.archive, path = fetch_archive(hb, docker, helper, archive, Path(tmp))
                except BackupError as error:
                    path = None
                    fail_all(str(error))
                else:
                    if report.archive is None:
                        fail_all(f"no archive in {hb.directory} on host {hb.host}: no backup to restore")
            if path is not None:
                _need_identity(path.name, identity)
                try:
                    plain = open_archive(path, identity)
                    contents = read_archive(plain, digests=True)
                except BackupError as error:
                    fail_all(str(error).replace("; nothing was changed", ""))
                else:
                    for spec in specs:
                        _drill_service(
                            spec, hb, scratch, plain, contents, results[spec.name], sample, sleep, db_timeout
                        )
    except (KeyboardInterrupt, Interrupted):  # SIGINT, SIGTERM (a timer's timeout)
        interrupted = True
    finally:
        with signals_ignored():
            problems = scratch.cleanup()
        for problem in problems:
            out.write(f"warning: {problem}\n")
    if interrupted:
        left = "" if problems else "; its scratch volumes and helper containers were removed"
        raise BackupError(f"the drill of host {hb.host} was interrupted: no result recorded{left}")
    report.recorded = record(target, docker, helper, report.results, now())
    out.write(report.render())
    return report


def _drill_service(
    spec: ServiceSpec,
    hb: HostBackup,
    scratch: Scratch,
    plain: ArchiveFile | Path,
    contents: Mapping[str, VolumeContent],
    result: ServiceResult,
    sample: int,
    sleep: Sleep,
    db_timeout: float,
) -> None:
    entries = {e.volume: e for e in hb.entries if e.service == spec.name}
    missing = sorted(v for v in entries if v not in contents)
    if missing:
        result.fail(f"the archive does not hold {', '.join(missing)}")
        return
    try:
        restored: dict[str, str] = {}
        for volume, entry in sorted(entries.items()):
            restored[volume] = scratch.volume(hb.prefix, volume)
            result.lines.append(
                restore_and_check(scratch, plain, entry, contents[volume], restored[volume], sample)
            )
        for c in spec.containers:
            if database_kind(c) is None:
                continue
            from components.docker.service import volume_name

            mounts = {
                v.path: restored[volume_name(hb.prefix, spec, v)]
                for v in c.volumes
                if v.stateful and volume_name(hb.prefix, spec, v) in restored
            }
            if mounts:
                c = dataclasses.replace(c, image=hb.image_on_host(c.image))  # a bundle's: by tag
                result.lines.append(check_database(scratch, hb.prefix, c, mounts, db_timeout, sleep))
    except BackupError as error:
        result.fail(str(error))


def drill(
    config: StackConfig,
    host: str,
    out: TextIO,
    docker: DockerCli | None = None,
    **options: object,
) -> DrillReport:
    target = drill_target(config, host)
    options.setdefault("sample", config.data.restore_drills.sample)
    if docker is not None:
        return run_drill(target, docker, out, **options)  # type: ignore[arg-type]
    with DockerCli.for_host(target.hb) as own:
        return run_drill(target, own, out, **options)  # type: ignore[arg-type]


# ---- on a schedule: which hosts are due ------------------------------------------------------

SLACK = 3600.0  # a daily timer at a fixed hour still finds a weekly drill due on the 7th day


@dataclass(frozen=True)
class Due:
    host: str
    due: bool
    why: str


def due(config: StackConfig, target: DrillTarget, docker: DockerCli, image: str, now: float) -> Due:
    """Whether the host's last drill is older than its interval (`data.restore-drills`): its
    records read from the host (one helper container), then `verdict`."""
    try:
        states = read_states(target, docker, image)
    except BackupError as error:
        return Due(target.hb.host, True, f"its drill records cannot be read ({error})")
    return verdict(config, target, states, now)


def verdict(
    config: StackConfig, target: DrillTarget, states: Mapping[str, metrics.DrillState] | None, now: float
) -> Due:
    """`due`'s answer from the host's drill records as read (None: no textfile directory)."""
    drills = config.data.restore_drills
    every = drills.hosts.get(target.hb.host, drills.every)
    interval = duration_seconds(every)
    host = target.hb.host
    if states is None:
        return Due(host, True, "no textfile directory on the host to tell when it was last drilled")
    runs = [states[s.name].last_run for s in target.specs if s.name in states]
    if len(runs) < len(target.specs):
        return Due(host, True, "a service there was never drilled")
    age = now - min(runs)
    if age >= interval - SLACK:
        return Due(host, True, f"last drilled {human_age(age)} ago (every {every})")
    return Due(host, False, f"last drilled {human_age(age)} ago; next in {human_age(interval - age)}")


def drill_due(
    config: StackConfig,
    out: TextIO,
    identity: Path | None = None,
    image: str | None = None,
    now: Callable[[], float] = time.time,
) -> bool:
    """Drill every host whose interval has passed; True when every drill that ran passed."""
    ok = True
    for h in config.hosts:
        try:
            target = drill_target(config, h.name)
        except BackupError as error:
            out.write(f"host {h.name}: skipped ({error})\n")
            continue
        with DockerCli.for_host(target.hb) as docker:
            helper = image or target.hb.image
            when = due(config, target, docker, helper, now())
            out.write(f"host {h.name}: {'due' if when.due else 'not due'}, {when.why}\n")
            if when.due:
                report = run_drill(
                    target, docker, out, identity=identity, image=image,
                    sample=config.data.restore_drills.sample, now=now,
                )  # fmt: skip
                ok = ok and report.ok
    return ok
