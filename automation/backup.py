"""Backups of one host from the command line: run one now, list the archives, restore.

- `backup`: the engine's own manual trigger, `docker exec <stack>-backup backup`
  (offen/docker-volume-backup v2.48.2: docs/how-tos/manual-trigger.md). It runs with the
  container's configuration, so it stops the same containers, writes to the same targets and
  exits non-zero when the run fails (cmd/backup/main.go and command.go, `must`).
- `backups`: the archives in the host's backup directory, newest first, with age and size.
- `restore`: the engine documents restoring by hand (docs/how-tos/restore-volumes-from-backup.md):
  stop the containers using the volume, replace its content with the archive's, start them.
  This does that for every stateful volume of the host (or of one `--service`), and refuses
  before anything changes when the archive cannot be decrypted or read, when a volume is
  missing, or when a container using a volume cannot be stopped.

The archive format is the engine's (cmd/backup/archive.go at v2.48.2): a tar.gz whose entries
are named by their full path in the backup container, `/backup/<docker volume>/...`, as each
volume is mounted there; with encryption the whole file is encrypted with age to the
configured recipients and named `<file>.age` (cmd/backup/encrypt_archive.go).

Decryption happens here, on the operator's machine, with the `age` tool and the identity the
stack exported (`backup-identity`): the private key never goes to the server. The archive is
decrypted as a stream each time it is read (ArchiveFile: no plaintext on disk). A restore
reads it once (`scan`): its files are staged beside each volume's old data while the services
run, and the services are stopped only when every volume is staged and the archive checked
to its end (age's authentication, gzip's CRC, the tar); they are down for the swap alone
(renames). Staging is done by this machine's tar next to the volume's `_data` (HostStager: a
local engine, as root) or by a throwaway container of a helper image (HelperStager; default
image: the engine image, which is Alpine-based and has sh and tar; its Dockerfile at v2.48.2
is `FROM alpine:3.24`; Alpine's busybox also carries the df and stat the probe uses:
alpinelinux/aports main/busybox/busyboxconfig sets CONFIG_DF, CONFIG_STAT and
CONFIG_FEATURE_STAT_FORMAT, and 0001-df-use-f_frsize-instead-of-f_bsize-for-correct-sizes.patch
fixes df's sizes) that reads a tar of the volumes on stdin, with numeric owners.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TextIO

from automation.guard import human_age
from automation.transport import DialStdioBridge, dial_command, key_dir_from_env
from components.docker.host import HostArgs, SshTarget
from components.docker.reference import as_found_on_host
from components.homelab import backup as engine
from components.homelab.backup import BackupEntry, backup_set
from components.homelab.images import IMAGES
from stacks.config import StackConfig
from stacks.plan import backup_directory, build_plan

RESTORE_MOUNT = "/restore"
ARCHIVE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # fullmatch; as the engine names them (no shell)
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup operation failed or refused; the message says what to do."""


# ---- what the config says about one host -----------------------------------------------


@dataclass(frozen=True)
class HostBackup:
    """One host's backup set and where its archives are, from the config alone."""

    host: str
    docker_host: str
    prefix: str  # the stack name: containers are <prefix>-<name>
    entries: tuple[BackupEntry, ...]
    directory: str | None  # archives on the host; None when backup.local is off
    image: str  # the engine image: the default helper image (as found on the host)
    # An SSH host: the ssh command its Docker provider runs (automation/transport.py).
    dial: tuple[str, ...] | None = None
    # The host's images came from a release bundle: found by name:tag, not by digest.
    images_from_bundle: bool = False

    def image_on_host(self, ref: str) -> str:
        """The name the image `ref` answers to on this host (components/docker/reference.py)."""
        return as_found_on_host(ref, self.images_from_bundle)

    @property
    def container(self) -> str:
        return f"{self.prefix}-{engine.CONTAINER}"

    @property
    def archive_prefix(self) -> str:
        return engine.archive_prefix(self.prefix, self.host)

    def select(self, service: str | None) -> tuple[BackupEntry, ...]:
        if service is None:
            return self.entries
        chosen = tuple(e for e in self.entries if e.service == service)
        if not chosen:
            known = sorted({e.service for e in self.entries})
            raise BackupError(
                f"service {service!r} has no stateful volume on host {self.host!r} "
                f"(services with one: {', '.join(known)})"
            )
        return chosen


def host_backup(config: StackConfig, host: str, stack: str = "", key_dir: str | None = None) -> HostBackup:
    """`stack` and `key_dir` say where the program keeps this stack's ssh files (the pinned
    known_hosts, the key files, the shared connection) for an SSH host."""
    names = [h.name for h in config.hosts]
    if host not in names:
        raise BackupError(f"unknown host {host!r} (hosts: {', '.join(names)})")
    if not config.backup.enabled:
        raise BackupError("backups are off in this stack (backup.enabled: false)")
    entries = tuple(backup_set(build_plan(config).on_host(host), config.name))
    if not entries:
        raise BackupError(f"host {host!r} has no stateful volumes")
    h = config.host(host)
    ssh = h.ssh
    return HostBackup(
        host=host,
        docker_host=HostArgs(host, SshTarget(*ssh) if ssh else None).docker_host,
        prefix=config.name,
        entries=entries,
        directory=backup_directory(config, host),
        image=as_found_on_host(config.backup.image or IMAGES["backup"], h.images_from_bundle),
        dial=_dial(config, host, stack, key_dir),
        images_from_bundle=h.images_from_bundle,
    )


def _dial(config: StackConfig, host: str, stack: str, key_dir: str | None) -> tuple[str, ...] | None:
    try:
        command = dial_command(config, host, key_dir or key_dir_from_env(), stack)
    except ValueError as error:  # no host key and no trust on first use, a bad key directory
        raise BackupError(f"host {host!r}: {error}") from None
    return tuple(command) if command else None


# ---- the docker CLI ---------------------------------------------------------------------


class DockerCli:
    """`docker -H <host> ...`; output as bytes, errors as `BackupError` where asked.

    `dial`: for an SSH host, the Docker provider's own ssh command (automation/transport.py);
    the CLI then talks to the engine through it (pinned host key, jump host), opened on the
    first call and closed with `close()` or when the process exits.
    """

    def __init__(self, docker_host: str, binary: str = "docker", dial: Sequence[str] | None = None) -> None:
        self.binary, self.docker_host = binary, docker_host
        self._dial = list(dial) if dial else None
        self._bridge: DialStdioBridge | None = None
        self._url: str | None = None

    @classmethod
    def for_host(cls, hb: HostBackup) -> DockerCli:
        return cls(hb.docker_host, dial=hb.dial)

    @property
    def base(self) -> list[str]:
        if self._dial is not None and self._url is None:
            self._bridge = DialStdioBridge(self._dial)
            self._url = self._bridge.__enter__()
            atexit.register(self.close)
        return [self.binary, "-H", self._url or self.docker_host]

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.__exit__(None, None, None)
            self._bridge, self._url = None, None
            atexit.unregister(self.close)

    def __enter__(self) -> DockerCli:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()  # an SSH host's bridge: its thread and socket folder go with the call

    def run(self, args: Sequence[str], stdout: IO[bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [*self.base, *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
            )
        except FileNotFoundError:
            raise BackupError(f"the docker CLI ({self.base[0]}) is not installed") from None

    def text(self, args: Sequence[str], what: str) -> str:
        result = self.run(args)
        if result.returncode != 0:
            raise BackupError(f"{what} failed: {_message(result.stderr)}{self.ssh_said()}")
        return result.stdout.decode()

    def ssh_said(self) -> str:
        """What ssh reported on the way to an SSH host (a refused host key, say), if anything."""
        if self._bridge is None or not self._bridge.stderr:
            return ""
        return f" (ssh: {_message(self._bridge.stderr[-1])})"

    def feed(
        self, args: Sequence[str], write: Callable[[IO[bytes]], None], stdout: IO[bytes] | None = None
    ) -> tuple[int, bytes]:
        """Run `docker args` with `write` producing its stdin (feed_process); (exit code, stderr)."""
        try:
            return feed_process([*self.base, *args], write, stdout)
        except FileNotFoundError:
            raise BackupError(f"the docker CLI ({self.base[0]}) is not installed") from None

    def read(self, args: Sequence[str], consume: Callable[[IO[bytes]], None]) -> tuple[int, bytes]:
        """Run `docker args` with `consume` reading what it prints; (exit code, stderr). When
        `consume` raises, the command is ended and the error raised once it has."""
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [*self.base, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
            )
            assert process.stdout is not None
            try:
                consume(process.stdout)
            except BaseException:
                process.kill()
                raise
            finally:
                process.stdout.close()
                code = process.wait()
            stderr.seek(0)
            return code, stderr.read()

    def exchange(
        self,
        args: Sequence[str],
        marker: str,
        reply: Callable[[list[str]], bytes],
        rest: IO[bytes] | None = None,
    ) -> tuple[int, bytes, list[str] | None]:
        """Run `docker args` and hold a short exchange with it: read what it prints up to a
        line `marker`, send `reply(those lines)` on its stdin, then end its stdin, and copy
        what it prints after that to `rest` (or nowhere). One container where a question and
        its answer would take two. (exit code, stderr, the lines before the marker; None when
        it ended before printing the marker: nothing was sent). When `reply` raises, nothing
        is sent and the error is raised once the container has ended."""
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [*self.base, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
            assert process.stdin is not None and process.stdout is not None
            lines: list[str] = []
            marked = False
            failure: BaseException | None = None
            try:
                for raw in iter(process.stdout.readline, b""):
                    line = raw.decode(errors="replace").rstrip("\n")
                    if line == marker:
                        marked = True
                        break
                    lines.append(line)
                if marked:
                    try:
                        answer = reply(lines)
                    except BaseException as error:  # noqa: BLE001 - raised below, once it has ended
                        failure = error
                    else:
                        with contextlib.suppress(BrokenPipeError):
                            process.stdin.write(answer)
            finally:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
                sink = rest if rest is not None and failure is None else None
                for chunk in iter(lambda: process.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                    if sink is not None:
                        sink.write(chunk)
                code = process.wait()
            if failure is not None:
                raise failure
            stderr.seek(0)
            return code, stderr.read(), lines if marked else None


def _message(stderr: bytes | str | None, code: int | None = None) -> str:
    """The last lines a command printed on stderr; with nothing there, its exit code and what
    that usually means (a container or docker CLI killed, the engine gone)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        return " / ".join(lines[-3:])
    if code is None:
        return "no message"
    hint = "killed" if code in (137, -9) else "ended"
    return (
        f"exit code {code}, no message: the helper container or the docker CLI was {hint}, or the "
        "Docker engine went away (check `docker info` on the host)"
    )


# ---- backup now ---------------------------------------------------------------------------


def run_backup(hb: HostBackup, docker: DockerCli, out: TextIO) -> None:
    """One run of the host's schedule now, with the container's own configuration."""
    result = docker.run(["exec", hb.container, "backup"])
    out.write(result.stdout.decode(errors="replace"))
    if result.returncode != 0:
        raise BackupError(
            f"the backup run on host {hb.host!r} failed: {_message(result.stderr or result.stdout)}"
        )


# ---- list ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    name: str
    size: int
    mtime: int

    def age(self, now: float) -> str:
        return human_age(now - self.mtime)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _helper(hb: HostBackup, image: str | None, mount: str, *command: str) -> list[str]:
    """A throwaway container of the helper image: no network, root, the given mount."""
    run = ["run", "--rm", "--network", "none", "--user", "0:0", "--mount", mount]
    return [*run, "--entrypoint", "sh", image or hb.image, "-c", *command]


def _archive_mount(hb: HostBackup) -> str:
    if hb.directory is None:
        raise BackupError(
            f"host {hb.host!r} keeps no archives (backup.local is off): fetch one from your "
            "remote target and pass its path to --archive"
        )
    # --mount, not -v: a missing directory is an error instead of a new empty one.
    return f"type=bind,source={hb.directory},target=/archive,readonly"


def listing_script(hb: HostBackup) -> str:
    """A helper's script that prints the host's archives, a line each (size, mtime, name)."""
    return (
        f'cd /archive && for f in {hb.archive_prefix}*; do [ -f "$f" ] && stat -c "%s %Y %n" "$f"; done; true'
    )


def parse_listing(lines: Iterable[str]) -> list[Archive]:
    """The archives a `listing_script` printed, newest first."""
    archives = []
    for line in lines:
        size, mtime, name = line.split(" ", 2)
        archives.append(Archive(name, int(size), int(mtime)))
    return sorted(archives, key=lambda a: (a.mtime, a.name), reverse=True)


def list_archives(hb: HostBackup, docker: DockerCli, image: str | None = None) -> list[Archive]:
    """The host's archives (names starting with its prefix), newest first."""
    args = _helper(hb, image, _archive_mount(hb), listing_script(hb))
    return parse_listing(docker.text(args, f"listing {hb.directory} on {hb.host}").splitlines())


def render_archives(hb: HostBackup, archives: list[Archive], now: float | None = None) -> str:
    now = time.time() if now is None else now
    if not archives:
        return f"no archives in {hb.directory} on host {hb.host}\n"
    width = max(len(a.name) for a in archives)
    lines = [f"{'archive':<{width}}  {'age':>8}  {'size':>10}"]
    lines += [f"{a.name:<{width}}  {a.age(now):>8}  {human_size(a.size):>10}" for a in archives]
    return "\n".join(lines) + f"\n{len(archives)} archive(s) in {hb.directory} on host {hb.host}\n"


# ---- restore: read and check the archive --------------------------------------------------


@dataclass
class VolumeContent:
    """What the archive holds for one volume."""

    files: int = 0
    size: int = 0
    root: tarfile.TarInfo | None = None  # the volume's own directory entry
    # With read_archive(..., digests=True): sha256 of each regular file, by path in the volume.
    digests: dict[str, str] = field(default_factory=dict)


SOURCES_DIR = engine.SOURCES.strip("/")


def _parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _volume_of(member: tarfile.TarInfo) -> tuple[str, list[str]] | None:
    """(volume, path inside it) of an entry under /backup/<volume>; None for /backup itself."""
    parts = _parts(member.name)
    if ".." in parts:
        raise BackupError(f"unsafe entry {member.name!r} in the archive")
    if parts == [SOURCES_DIR]:
        return None
    if len(parts) < 2 or parts[0] != SOURCES_DIR:
        raise BackupError(
            f"entry {member.name!r} is outside {engine.SOURCES}: not an archive of this backup engine"
        )
    return parts[1], parts[2:]


class ArchiveUnreadableError(BackupError):
    """age could not decrypt the archive (a key it is not encrypted to, or a damaged file)."""


@dataclass(frozen=True)
class ArchiveFile:
    """An archive on this machine: a plain tar(.gz), or one encrypted with age and decrypted
    as a stream each time it is read, so that no plaintext copy is ever written to disk. age's
    payload is STREAM in 64 KiB ChaCha20-Poly1305 chunks, the last one flagged (FiloSottile's
    age-encryption npm package, dist/stream.js: chunkSize 64 * 1024, "Last chunk flag"): each
    chunk is authenticated before it is written out and a cut file fails at its end, so
    whoever reads to the end, and checks age's exit code, has read only what was encrypted
    (tests/test_restore_decrypt.py: flipped byte, truncated, header only)."""

    path: Path
    identity: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @contextlib.contextmanager
    def stream(self) -> Iterator[IO[bytes]]:
        if not self.name.endswith(".age"):
            with self.path.open("rb") as f:
                yield f
            return
        age = shutil.which("age")
        if age is None or self.identity is None:
            raise BackupError(f"{self.name}: decrypting needs the age tool and --identity")
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [age, "--decrypt", "--identity", str(self.identity), str(self.path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            assert process.stdout is not None
            try:
                yield process.stdout
                while process.stdout.read(CHUNK):  # to age's end: the last chunk is checked there
                    pass
            except BaseException:
                process.stdout.close()  # a reader that stops early: age ends on the closed pipe
                code = process.wait()
                stderr.seek(0)
                said = stderr.read()
                if code not in (0, -signal.SIGPIPE) and said.strip():
                    raise self._failed(said) from None  # age's reason, not its consequence
                raise
            process.stdout.close()
            code = process.wait()
            stderr.seek(0)
            if code != 0:
                raise self._failed(stderr.read())

    def _failed(self, stderr: bytes) -> ArchiveUnreadableError:
        said = _message(stderr)
        # age (filippo.io/age, 1.1.1 seen here) tells a key that opens no stanza of the header
        # ("no identity matched any of the recipients") from a payload or header that does not
        # authenticate or parse: the second is a damaged or truncated file, whatever the key.
        if "no identity matched" in said:
            return ArchiveUnreadableError(
                f"{self.name} is not encrypted to the key in {self.identity} (age: {said}): give the "
                "identity this stack exported (pulumi stack output backup-identity); nothing was changed"
            )
        return ArchiveUnreadableError(
            f"{self.name} is damaged or truncated: it does not decrypt and authenticate with "
            f"{self.identity} (age: {said}); take another archive (python -m automation backups "
            "--host H); nothing was changed"
        )


@contextlib.contextmanager
def _open_tar(archive: ArchiveFile | Path) -> Iterator[tarfile.TarFile]:
    """The archive's tar, read as a stream in one pass; gunzipped when it is gzip, and then read
    to the gzip end, where the length and CRC are checked."""
    source = archive if isinstance(archive, ArchiveFile) else ArchiveFile(Path(archive))
    with source.stream() as raw:
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var,arg-type]
        gz = gzip.GzipFile(fileobj=buffered, mode="rb") if buffered.peek(2)[:2] == b"\x1f\x8b" else None
        with tarfile.open(fileobj=gz or buffered, mode="r|") as tar:
            yield tar
        if gz is not None:
            while gz.read(CHUNK):
                pass


@contextlib.contextmanager
def _reading(path: ArchiveFile | Path) -> Iterator[None]:
    """The errors of a pass over the archive, as messages that say what to do. A sink that
    stopped reading (BrokenPipeError) is left to the caller: its exit code says why."""
    try:
        yield
    except (ArchiveUnreadableError, BrokenPipeError):
        raise
    except BackupError as error:
        raise BackupError(f"{path.name}: {error}; nothing was changed") from None
    except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile) as error:
        raise BackupError(
            f"{path.name} is not a readable backup archive ({error}); nothing was changed"
        ) from None


def _account(volumes: dict[str, VolumeContent], member: tarfile.TarInfo) -> tuple[str, list[str]] | None:
    """Count `member` in its volume's content; (volume, path in it), None for /backup itself."""
    where = _volume_of(member)
    if where is None:
        return None
    content = volumes.setdefault(where[0], VolumeContent())
    if member.islnk():
        target = _volume_of(tarfile.TarInfo(member.linkname))
        if target is None or target[0] != where[0]:
            raise BackupError(f"hard link {member.name!r} points outside its volume")
    if not where[1]:
        content.root = member
    elif member.isfile():
        content.files += 1
        content.size += member.size
    return where


def read_archive(path: ArchiveFile | Path, digests: bool = False) -> dict[str, VolumeContent]:
    """Every volume in an archive, after reading all of it once (decryption, gzip CRC, tar):
    a damaged archive is refused here, before anything on the host changes. With `digests`,
    the same pass takes every file's sha256 (the drill's sample is checked against them)."""
    volumes: dict[str, VolumeContent] = {}
    with _reading(path), _open_tar(path) as tar:
        for member in tar:
            where = _account(volumes, member)
            if digests and where is not None and where[1] and member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                digest = hashlib.sha256()
                for chunk in iter(lambda: data.read(CHUNK), b""):  # noqa: B023
                    digest.update(chunk)
                volumes[where[0]].digests["/".join(where[1])] = digest.hexdigest()
    if not volumes:
        raise BackupError(f"{path.name} holds no volumes; nothing was changed")
    return volumes


def volume_stream(path: ArchiveFile | Path, volume: str, sink: IO[bytes]) -> None:
    """Write a tar of `volume`'s files alone, paths relative to the volume, to `sink`."""
    scan(path, {volume: ""}, sink)


class _HostGuard:
    """What a tar run as root on the host may be given (HostStager): the names are already
    inside their volume (`_volume_of` refuses `..`); this refuses what could still lead a
    writer out of the staging directory or onto the host's devices: an entry under a symbolic
    link of the archive (the link would be followed), a name written twice (a directory
    replaced by a link), a hard link to anything but a regular file before it, a device node."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.links: set[str] = set()
        self.files: set[str] = set()

    def check(self, volume: str, parts: list[str], member: tarfile.TarInfo) -> None:
        path = "/".join([volume, *parts])
        if path in self.names:
            raise BackupError(f"entry {member.name!r} is in the archive twice")
        for i in range(1, len(parts)):
            if "/".join([volume, *parts[:i]]) in self.links:
                raise BackupError(f"entry {member.name!r} lies under a symbolic link of the archive")
        if member.ischr() or member.isblk():
            raise BackupError(f"entry {member.name!r} is a device node")
        if member.islnk() and "/".join(_parts(member.linkname)[1:]) not in self.files:
            raise BackupError(f"hard link {member.name!r} does not point to a file before it")
        self.names.add(path)
        if member.issym():
            self.links.add(path)
        elif member.isfile():
            self.files.add(path)


def scan(
    path: ArchiveFile | Path, prefixes: dict[str, str], sink: IO[bytes], host: bool = False
) -> dict[str, VolumeContent]:
    """One pass over the archive: what it holds (read_archive's answer, checked to the end:
    age's last chunk, gzip's CRC) and, written to `sink`, a tar of the files of the volumes in
    `prefixes`, each named `<its volume's prefix><path in the volume>`. `host`: the tar is
    extracted by root on the host (_HostGuard).

    Owner names are dropped so that tar restores the numeric uid/gid of the archive: a name
    would be looked up in the extracting system's /etc/passwd, which knows nothing of the
    service. The end-of-archive blocks are written before the last checks: whoever extracts
    the tar must wait for this function to return before using what it extracted."""
    volumes: dict[str, VolumeContent] = {}
    guard = _HostGuard() if host else None
    with (
        _reading(path),
        _open_tar(path) as source,
        tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as out,
    ):
        for member in source:
            where = _account(volumes, member)
            if where is None or where[0] not in prefixes or not where[1]:
                continue
            if guard is not None:
                guard.check(*where, member)
            base = prefixes[where[0]]
            # A fresh header: the source's PAX records (path, uname, ...) must not come along.
            copy = tarfile.TarInfo(base + "/".join(where[1]))
            for attr in ("mode", "uid", "gid", "size", "mtime", "type", "linkname", "devmajor", "devminor"):
                setattr(copy, attr, getattr(member, attr))
            if member.islnk():  # checked by _account: inside the same volume
                copy.linkname = base + "/".join(_parts(member.linkname)[2:])
            out.addfile(copy, source.extractfile(member) if member.isfile() else None)
    if not volumes:
        raise BackupError(f"{path.name} holds no volumes; nothing was changed")
    return volumes


# ---- restore: decrypt -----------------------------------------------------------------------


def open_archive(archive: Path, identity: Path | None) -> ArchiveFile:
    """`archive`, to be read as a stream (decrypted with age when it ends in .age), once the
    key and the tool it needs are known to be there."""
    name = archive.name
    if name.endswith(".gpg"):
        raise BackupError(f"{name} is GPG-encrypted: this stack encrypts with age; decrypt it with gpg first")
    if not name.endswith(".age"):
        return ArchiveFile(archive)
    if identity is None:
        raise BackupError(
            f"{name} is encrypted: give --identity FILE, the key this stack exported "
            "(pulumi stack output backup-identity --show-secrets > backup.key); nothing was changed"
        )
    if not identity.is_file():
        what = "is not a file" if identity.exists() else "does not exist"
        raise BackupError(f"identity file {identity} {what}; nothing was changed")
    if shutil.which("age") is None:
        raise BackupError(
            "decrypting needs the age tool (Debian/Ubuntu: apt install age; macOS: brew install age)"
        )
    return ArchiveFile(archive, identity)


# ---- restore: the plan and its execution ----------------------------------------------------


@dataclass
class RestorePlan:
    hb: HostBackup
    archive: str
    volumes: list[tuple[BackupEntry, VolumeContent]]
    skipped: list[str]  # host volumes the archive does not hold
    stop: list[str]  # running containers that use a volume being restored
    notes: list[str] = field(default_factory=list)
    # Stopped by an earlier restore that did not finish, still there and not running: started
    # again at the end, with what this run stops.
    restart: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"restore from {self.archive} on host {self.hb.host}:"]
        for entry, content in self.volumes:
            size = human_size(content.size)
            lines.append(f"  {entry.volume} (service {entry.service}): {content.files} file(s), {size}")
        if self.skipped:
            lines.append(f"  not in the archive, left as they are: {', '.join(self.skipped)}")
        lines.append(f"  containers stopped during the restore: {', '.join(self.stop) or 'none running'}")
        if self.restart:
            lines.append(
                f"  stopped by an earlier restore that did not finish, started again at the end: "
                f"{', '.join(self.restart)}"
            )
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def _fetch(hb: HostBackup, name: str, docker: DockerCli, image: str | None, workdir: Path) -> Path:
    """An archive of the host's backup directory, here: read where it is on a local engine
    (archive_here), else copied to `workdir`."""
    if not ARCHIVE_NAME.fullmatch(name):
        raise BackupError(f"{name}: no such file here, and not the name of an archive")
    here = archive_here(hb, name)
    if here is not None:
        return here
    local = workdir / name
    copy_out(hb, docker, image or hb.image, name, local)
    return local


def archive_here(hb: HostBackup, name: str) -> Path | None:
    """The archive `name` in place, when the engine is on this machine (a unix socket, no SSH)
    and this process can read it in the host's backup directory: nothing to copy. The
    archive is only read (and checked to its end by every reader), so the path being the
    engine's own matters less than for writing (HostStager checks that)."""
    if hb.dial is not None or not hb.docker_host.startswith("unix://") or hb.directory is None:
        return None
    path = Path(hb.directory) / name
    return path if path.is_file() and os.access(path, os.R_OK) else None


def copy_out(hb: HostBackup, docker: DockerCli, image: str, name: str, dest: Path) -> None:
    """The archive `name` of the host's backup directory, copied to `dest` at disk speed:
    `docker cp` out of a container that is created with the directory mounted and never
    started (the engine sends the file as a one-entry tar through its API, GET
    /containers/{id}/archive). A container's `cat` through an attached stream moved about
    28 MB/s here (issue 27); `docker cp` of the same 200 MB file took 0.7-0.9 s."""
    mount = ["--mount", _archive_mount(hb)]
    created = docker.run(["create", "--network", "none", *mount, "--entrypoint", "true", image])
    if created.returncode != 0:
        said = _message(created.stderr, created.returncode)
        raise BackupError(f"reading {hb.directory} on host {hb.host} failed: {said}{docker.ssh_said()}")
    reader = created.stdout.decode().strip()
    found: list[int] = []

    def save(stream: IO[bytes]) -> None:
        with tarfile.open(fileobj=stream, mode="r|") as tar, dest.open("wb") as sink:
            for member in tar:
                if member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    shutil.copyfileobj(source, sink, CHUNK)
                    found.append(member.size)
                    break

    try:
        code, stderr = docker.read(["cp", f"{reader}:/archive/{name}", "-"], save)
    except tarfile.TarError as error:
        code, stderr = 1, str(error).encode()
    finally:
        docker.run(["rm", "-f", reader])
    if code != 0 or not found or dest.stat().st_size != found[0]:
        dest.unlink(missing_ok=True)
        raise BackupError(
            f"no archive {name} in {hb.directory} on host {hb.host} ({_message(stderr, code)}); "
            f"`backups --host {hb.host}` lists them"
        )


def _running_users(docker: DockerCli, volumes: list[str]) -> list[str]:
    """The running containers that use any of `volumes`, sorted: one `docker ps` (filters on
    the same key are alternatives)."""
    filters = [arg for volume in volumes for arg in ("--filter", f"volume={volume}")]
    text = docker.text(["ps", *filters, "--format", "{{.Names}}"], "listing the volumes' users")
    return sorted({line.strip() for line in text.splitlines() if line.strip()})


# A volume's driver, options (JSON) and Mountpoint, as `docker volume inspect` prints them.
VolumeLayout = tuple[str, str, str]
LAYOUT_FORMAT = "{{.Name}}\t{{.Driver}}\t{{json .Options}}\t{{.Mountpoint}}"


def preflight(hb: HostBackup, volumes: list[str], docker: DockerCli) -> dict[str, VolumeLayout]:
    """The checks that need no archive, before anything is read or stopped: no helper left
    by a killed restore (it holds the name every helper of a restore takes);
    which of `volumes` exist on the host (those are the ones staged), with their layout, from
    one `docker volume inspect` (it prints those it finds and exits 1 naming the others)."""
    helper = f"{hb.prefix}-restore"
    left = docker.text(
        ["ps", "-a", "--filter", f"name=^/{helper}$", "--format", "{{.Names}}"],
        "looking for a restore helper",
    )
    if left.strip():
        raise BackupError(
            f"a container {helper} is left from an earlier restore: if no restore is running, remove it "
            f"(docker rm -f {helper}) and run again; nothing was stopped or changed"
        )
    if not volumes:
        return {}
    result = docker.run(["volume", "inspect", "--format", LAYOUT_FORMAT, *volumes])
    found: dict[str, VolumeLayout] = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] in volumes:
            found[parts[0]] = (parts[1], parts[2], parts[3])
    said = result.stderr.decode(errors="replace").lower()
    if result.returncode != 0 and "no such volume" not in said:
        raise BackupError(
            f"inspecting the volumes failed: {_message(result.stderr, result.returncode)}{docker.ssh_said()}"
        )
    return {v: found[v] for v in volumes if v in found}


@dataclass
class Probe:
    """The volumes as the engine sees them, from one read-only helper container."""

    free: dict[str, int] = field(default_factory=dict)  # bytes free in each volume's file system
    # (st_dev, st_ino) of each volume's root: equal to those of its Mountpoint here exactly
    # when that path on this machine is the engine's volume (HostStager).
    ident: dict[str, tuple[int, int]] = field(default_factory=dict)


def probe_volumes(hb: HostBackup, volumes: list[str], docker: DockerCli, image: str | None = None) -> Probe:
    """Free space and identity of each volume: `df -Pk` and `stat -c '%n %d %i'` (BusyBox's
    df and stat, in Alpine's busybox as in Debian's) in one helper mounting them all read-only."""
    probe = Probe()
    if not volumes:
        return probe
    mounts = [
        arg
        for i, volume in enumerate(volumes)
        for arg in ("--mount", f"type=volume,source={volume},target=/v{i},readonly")
    ]
    paths = " ".join(f"/v{i}" for i in range(len(volumes)))
    args = ["run", "--rm", "--network", "none", "--user", "0:0", *mounts, "--entrypoint", "sh"]
    args += [image or hb.image, "-c", f"df -Pk {paths} && stat -c '%n %d %i' {paths}"]
    text = docker.text(args, "checking the volumes' free space")
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[-1].startswith("/v") and not fields[0].startswith("/v"):
            continue
        if len(fields) >= 6 and fields[-1][2:].isdigit() and fields[3].isdigit():
            probe.free[volumes[int(fields[-1][2:])]] = int(fields[3]) * 1024
        elif len(fields) == 3 and fields[0][2:].isdigit() and fields[1].isdigit() and fields[2].isdigit():
            probe.ident[volumes[int(fields[0][2:])]] = (int(fields[1]), int(fields[2]))
    return probe


def plan_restore(
    hb: HostBackup,
    archive: str,
    contents: dict[str, VolumeContent],
    service: str | None,
    docker: DockerCli,
    earlier: Journal | None = None,
    known: Collection[str] = (),
) -> RestorePlan:
    """What the restore of `archive` (whose `contents` are known) does on the host: the volumes
    it refills, those it leaves, the containers it stops and starts. `known`: volumes already
    found on the host (preflight)."""
    chosen = hb.select(service)
    present = [(e, contents[e.volume]) for e in chosen if e.volume in contents]
    skipped = [e.volume for e in chosen if e.volume not in contents]
    if not present or (service is not None and skipped):
        raise BackupError(
            f"{archive} does not hold {', '.join(skipped)} (it holds: {', '.join(sorted(contents))}); "
            "nothing was stopped or changed"
        )
    missing = [
        e.volume
        for e, _ in present
        if e.volume not in known and docker.run(["volume", "inspect", e.volume]).returncode != 0
    ]
    if missing:
        raise BackupError(
            f"volume(s) {', '.join(missing)} do not exist on host {hb.host}: run `pulumi up` first "
            "(it creates them empty), then restore; nothing was stopped or changed"
        )
    stop = _running_users(docker, [e.volume for e, _ in present])
    restart = _stopped_of(docker, [c for c in (earlier.stopped if earlier else []) if c not in stop])
    notes = []
    idle = sorted({e.container for e, _ in present} - set(stop) - set(restart))
    if idle:
        notes.append(f"not running (left as they are): {', '.join(idle)}")
    return RestorePlan(hb, archive, present, skipped, stop, notes, restart)


def _running(docker: DockerCli, names: list[str]) -> dict[str, bool]:
    """Whether each of `names` runs, for those that exist (one `docker inspect`)."""
    if not names:
        return {}
    result = docker.run(["inspect", "--format", "{{.Name}} {{.State.Running}}", *names])
    state = dict(line.split() for line in result.stdout.decode(errors="replace").splitlines() if " " in line)
    return {n: state[f"/{n}"] == "true" for n in names if f"/{n}" in state}


def _stopped_of(docker: DockerCli, names: list[str]) -> list[str]:
    """Those of `names` that exist and are not running (a removed one is left out)."""
    running = _running(docker, names)
    return [n for n in names if running.get(n) is False]


# ---- restore: the new files staged beside the old ones, then swapped in ----------------------
#
# The archive is read once. While the services still run, its files are written beside each
# volume's old data (staged); the owners are stopped only once every volume's files are
# complete and the archive has checked out to its end (age's last chunk, gzip's CRC), and are
# down only for the swap, which is renames. Two ways to stage, one protocol (sweep, stage, discard,
# swap, finish):
# - HostStager: this machine's tar writes into the engine's volume directory, beside `_data`
#   (a local engine, as root, plain local volumes): at disk speed, and out of every container's
#   sight; the swap renames `_data`.
# - HelperStager: a container of the helper image extracts into `<volume>/.homelab-restore-new`
#   (any engine, an SSH host too); the swap moves the entries within the volume.

NEW_DIR = ".homelab-restore-new"  # HelperStager: inside the volume
OLD_DIR = ".homelab-restore-old"
HOST_NEW, HOST_OLD = "homelab-restore-new", "homelab-restore-old"  # HostStager: beside `_data`
VIAS = ("auto", "host", "helper")


class StageError(BackupError):
    """The files could not be staged (the extracting tar failed): the caller looks for why."""


def feed_process(
    argv: Sequence[str], write: Callable[[IO[bytes]], None], stdout: IO[bytes] | None = None
) -> tuple[int, bytes]:
    """Run `argv` with `write` producing its stdin; (exit code, stderr). What it prints goes to
    `stdout` (a file), or nowhere. When `write` raises (other than on a closed pipe), the
    process is ended and the error raised once it has."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr,
        )
        assert process.stdin is not None
        try:
            write(process.stdin)
        except BrokenPipeError:  # it stopped reading: its exit code and stderr say why
            pass
        except BaseException:
            process.kill()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            code = process.wait()
        stderr.seek(0)
        return code, stderr.read()


@dataclass
class HelperStager:
    """Staging through a container of the helper image, mounting the volumes at /restore/v<i>."""

    hb: HostBackup
    docker: DockerCli
    image: str | None = None
    how: str = "a helper container"

    def _args(self, volumes: list[str], script: str, *options: str) -> list[str]:
        mounts = [f"type=volume,source={v},target={RESTORE_MOUNT}/v{i}" for i, v in enumerate(volumes)]
        args = _helper(self.hb, self.image, mounts[0], script)
        first = args.index(mounts[0]) + 1
        args[first:first] = [arg for mount in mounts[1:] for arg in ("--mount", mount)]
        # A fixed name: one restore at a time; no service can have it (stacks/checks.py RESERVED_NAMES).
        args[1:1] = [*options, "--name", f"{self.hb.prefix}-restore"]
        return args

    def _news(self, volumes: list[str]) -> str:
        return " ".join(f'"{RESTORE_MOUNT}/v{i}/{NEW_DIR}"' for i in range(len(volumes)))

    def stage(self, archive: ArchiveFile | Path, volumes: list[str]) -> dict[str, VolumeContent]:
        news = self._news(volumes)
        script = stage_script(news)
        prefixes = {v: f"v{i}/{NEW_DIR}/" for i, v in enumerate(volumes)}
        found: dict[str, VolumeContent] = {}
        args = self._args(volumes, script, "-i")
        code, stderr = self.docker.feed(args, lambda sink: found.update(scan(archive, prefixes, sink)))
        if code != 0 or not found:
            raise StageError(f"extracting into {', '.join(volumes)} failed: {_message(stderr, code)}")
        return found

    def discard(self, volumes: list[str]) -> None:
        if volumes:
            # A staging helper whose stream was cut may still be extracting (its CLI is gone,
            # the container is not: it ends on its own, at the end of its stdin, and may take
            # a cut at an entry's boundary for the archive's end): it goes first.
            self.docker.run(["rm", "-f", f"{self.hb.prefix}-restore"])
            self.docker.run(self._args(volumes, f"rm -rf {self._news(volumes)}"))

    def swap(self, volumes: list[tuple[str, VolumeContent]]) -> None:
        names = [v for v, _ in volumes]
        roots = [content.root for _, content in volumes]
        result = self.docker.run(self._args(names, swap_script(names, roots)))
        if result.returncode != 0:
            said = _message(result.stderr, result.returncode)
            raise BackupError(f"swapping in the new files of {', '.join(names)} failed: {said}")

    def sweep(self, volumes: list[str], out: TextIO) -> None:
        """Nothing to do before staging: what a killed run left inside a volume is removed by
        the next staging of that volume (stage_script), and is all this way ever leaves."""

    def finish(self, volumes: list[str]) -> None:
        """The old entries, moved aside by the swap, removed with the owners running again."""
        if volumes:
            olds = " ".join(f'"{RESTORE_MOUNT}/v{i}/{OLD_DIR}"' for i in range(len(volumes)))
            self.docker.run(self._args(volumes, f"rm -rf {olds}"))


def stage_script(news: str) -> str:
    """The staging helper's script: empty staging directories (and no old entries an earlier
    swap left aside), then the tar on stdin; a failed extraction removes them again."""
    return (
        f'set -e; for d in {news}; do rm -rf "$d" "${{d%/*}}/{OLD_DIR}"; mkdir "$d"; done; '
        f'if ! tar -xf - -C {RESTORE_MOUNT}; then for d in {news}; do rm -rf "$d"; done; exit 1; fi'
    )


def swap_script(volumes: list[str], roots: list[tarfile.TarInfo | None]) -> str:
    """The swapping helper's script, the owners stopped: in each volume, every old entry moved
    aside into `.homelab-restore-old` (removed by `finish`, once the owners run again: renames
    only while they are down) and the staged ones moved up, the root given the archive's owner
    and mode. Refused before any change when a volume has nothing staged."""
    lines = ["set -e"]
    for i, volume in enumerate(volumes):
        new = f"{RESTORE_MOUNT}/v{i}/{NEW_DIR}"
        lines.append(
            f'[ -d "{new}" ] || {{ echo "nothing is staged in {volume}: restore again" >&2; exit 4; }}'
        )
    for i, root in enumerate(roots):
        mount, new = f"{RESTORE_MOUNT}/v{i}", f"{RESTORE_MOUNT}/v{i}/{NEW_DIR}"
        old = f"{mount}/{OLD_DIR}"
        lines.append(
            f'rm -rf "{old}"; mkdir "{old}"; for f in {mount}/..?* {mount}/.[!.]* {mount}/*; do '
            f'if [ "$f" != "{new}" ] && [ "$f" != "{old}" ] && {{ [ -e "$f" ] || [ -L "$f" ]; }}; then '
            f'mv "$f" "{old}/"; fi; done'
        )
        lines.append(
            f'for f in "{new}"/..?* "{new}"/.[!.]* "{new}"/*; do if [ -e "$f" ] || [ -L "$f" ]; then '
            f'mv "$f" {mount}/; fi; done; rmdir "{new}"'
        )
        if root is not None:
            lines.append(f"chown {root.uid}:{root.gid} {mount}; chmod {root.mode & 0o7777:o} {mount}")
    return "; ".join(lines)


@dataclass
class HostStager:
    """Staging by this machine's tar, as root, into `<volumes>/<name>/homelab-restore-new`,
    beside the volume's `_data` (the local driver's layout: moby volume/local/local.go @
    v28.5.2, `volumeDataPathName = "_data"`), which no container sees. The swap renames `_data`
    away and the staged directory into its place: for a volume without options the driver
    mounts nothing and hands each container that path, by name (`Mount` returns `v.path`;
    `needsMount` only with a mount type or device, local_unix.go), so a container started
    after the swap gets the new directory. The old data is removed once the owners run again."""

    root: Path  # the engine's volumes directory
    how: str = "this machine's tar"

    def _dirs(self, volume: str) -> tuple[Path, Path, Path]:
        base = self.root / volume
        return base / "_data", base / HOST_NEW, base / HOST_OLD

    def stage(self, archive: ArchiveFile | Path, volumes: list[str]) -> dict[str, VolumeContent]:
        for volume in volumes:
            data, new, old = self._dirs(volume)
            shutil.rmtree(new, ignore_errors=True)
            if old.exists() and data.exists():  # left by a restore killed after its swap
                shutil.rmtree(old, ignore_errors=True)
            new.mkdir(mode=0o700)
        prefixes = {v: f"{v}/{HOST_NEW}/" for v in volumes}
        argv = ["tar", "-x", "-f", "-", "-C", str(self.root), "--numeric-owner", "--same-owner", "-p"]
        found: dict[str, VolumeContent] = {}
        code, stderr = feed_process(argv, lambda sink: found.update(scan(archive, prefixes, sink, host=True)))
        if code != 0 or not found:
            raise StageError(f"extracting into {', '.join(volumes)} failed: {_message(stderr, code)}")
        return found

    def discard(self, volumes: list[str]) -> None:
        for volume in volumes:
            shutil.rmtree(self._dirs(volume)[1], ignore_errors=True)

    def sweep(self, volumes: list[str], out: TextIO) -> None:
        """Remove what killed restores left beside these volumes (no restore of the host runs:
        the caller holds its lock): files staged and never swapped in, and old data swapped
        out and never removed (only while `_data` is there: without it, it is the data)."""
        for volume in volumes:
            data, new, old = self._dirs(volume)
            for left in (new, old) if data.exists() else (new,):
                if left.is_dir():
                    files = [f for f in left.rglob("*") if f.is_file() and not f.is_symlink()]
                    size = sum(f.stat().st_size for f in files)
                    shutil.rmtree(left, ignore_errors=True)
                    out.write(f"removed {left}, left by an interrupted restore ({human_size(size)})\n")

    def swap(self, volumes: list[tuple[str, VolumeContent]]) -> None:
        for volume, _ in volumes:
            if not self._dirs(volume)[1].is_dir():
                raise BackupError(f"nothing is staged for {volume}: run the restore again")
        for volume, content in volumes:
            data, new, old = self._dirs(volume)
            if data.exists():
                shutil.rmtree(old, ignore_errors=True)
                data.rename(old)
            # else: an earlier swap was cut between its two renames; `old` is the data before it
            new.rename(data)
            source = content.root
            if source is not None:
                os.chown(data, source.uid, source.gid)
                os.chmod(data, source.mode & 0o7777)
            elif old.exists():
                kept = old.stat()
                os.chown(data, kept.st_uid, kept.st_gid)
                os.chmod(data, kept.st_mode & 0o7777)

    def finish(self, volumes: list[str]) -> None:
        for volume in volumes:
            shutil.rmtree(self._dirs(volume)[2], ignore_errors=True)


Stager = HelperStager | HostStager


def host_volumes_root(
    hb: HostBackup, docker: DockerCli, layout: dict[str, VolumeLayout], probe: Probe
) -> tuple[Path | None, str]:
    """The engine's volumes directory when this machine can stage into it (HostStager), else
    None and why not: the engine must be local (a unix socket, no SSH), this process root,
    each volume a plain `local` one (no driver options: no mount of its own) whose Mountpoint
    here is the very directory the engine mounts (same device and inode as seen in a
    container), all under one directory on one file system."""
    if hb.dial is not None or not hb.docker_host.startswith("unix://"):
        return None, f"the engine of host {hb.host} is not on this machine"
    if os.geteuid() != 0:
        return None, "writing into the engine's volume directories needs root on this machine"
    if shutil.which("tar") is None:
        return None, "there is no tar on this machine"
    # Owners as the archive has them are right on the host only without user namespaces, and
    # files written here carry no container label: moby daemon/info.go @ v28.5.2 names the
    # engine's uid mapping `name=userns`, a rootless engine `name=rootless`, SELinux
    # `name=selinux` among its SecurityOptions.
    options = json.loads(
        docker.text(["info", "--format", "{{json .SecurityOptions}}"], "asking the engine") or "[]"
    )
    remapped = [
        o for o in options or [] if o.split(",")[0] in ("name=userns", "name=rootless", "name=selinux")
    ]
    if remapped:
        return None, f"the engine runs with {', '.join(remapped)}: its containers' owners or labels differ"
    roots = set()
    for name, (driver, options, mountpoint) in layout.items():
        data = Path(mountpoint)
        if driver != "local" or options not in ("null", "{}"):
            return None, f"{name} is not a plain local volume (driver {driver}, options {options})"
        if data.name != "_data" or data.parent.name != name:
            return None, f"{name} is not in the local driver's layout ({mountpoint})"
        try:
            here, parent = data.stat(), data.parent.stat()
        except OSError:
            return None, f"{name}'s directory {mountpoint} is not on this machine"
        if (here.st_dev, here.st_ino) != probe.ident.get(name) or here.st_dev != parent.st_dev:
            return None, f"{mountpoint} here is not the directory the engine mounts for {name}"
        roots.add(data.parent.parent)
    if len(roots) != 1:
        return None, "the volumes are not in one directory"
    return roots.pop(), ""


def choose_stager(
    hb: HostBackup,
    docker: DockerCli,
    image: str | None,
    layout: dict[str, VolumeLayout],
    probe: Probe,
    via: str,
) -> Stager:
    """`via`: host, helper, or auto (host when it can), for the volumes of `layout`."""
    if via == "helper" or not layout:
        return HelperStager(hb, docker, image)
    root, why = host_volumes_root(hb, docker, layout, probe)
    if root is not None:
        return HostStager(root)
    if via == "host":
        raise BackupError(f"--via host: {why}; nothing was stopped or changed")
    return HelperStager(hb, docker, image)


def stage(
    stager: Stager, archive: ArchiveFile | Path, volumes: list[str], probe: Probe
) -> dict[str, VolumeContent]:
    """Stage `volumes` from `archive` (everything else on the host untouched): what the archive
    holds. On any failure, what was staged is removed and the error says why: too little room
    (the archive's sizes, from one more pass, against each volume's free space) before what
    the extracting tar said."""
    try:
        return stager.stage(archive, volumes)
    except StageError as error:
        stager.discard(volumes)
        try:
            contents = read_archive(archive)
        except BackupError:
            contents = {}
        short = [
            (v, probe.free[v], contents[v].size)
            for v in volumes
            if v in contents and v in probe.free and probe.free[v] < contents[v].size
        ]
        if short:
            raise BackupError(
                "; ".join(
                    f"{volume} has {human_size(room)} free, and the archive's files need {human_size(size)} "
                    "next to the old data (kept until the new is complete)"
                    for volume, room, size in short
                )
                + ": make room in the volume's file system first; nothing was stopped or changed"
            ) from None
        raise BackupError(f"{error}; nothing was stopped or changed") from None
    except BaseException:
        stager.discard(volumes)
        raise


def execute_restore(
    plan: RestorePlan,
    stager: Stager,
    docker: DockerCli,
    out: TextIO,
    journal: Journal | None = None,
) -> None:
    """With every volume's files staged: stop the users of the volumes, swap the staged files
    in, start them again (and what an earlier, unfinished restore left stopped: plan.restart),
    then remove the old data.

    Refuses, restarting what it stopped and changing nothing, when a container cannot be
    stopped. When the swap fails or the run is interrupted (SIGINT, SIGTERM), the containers
    stay stopped, the journal says what was done, and the error says how to finish.
    """
    journal = journal or Journal(plan.archive, plan.archive, None)
    hb = plan.hb
    todo = [(e, c) for e, c in plan.volumes if e.volume not in journal.restored]
    volumes = [e.volume for e, _ in todo]
    try:
        if plan.stop or plan.restart:
            # In the journal before they are stopped: a run killed during the stop leaves the
            # containers named there, and the rerun starts those that are not running.
            journal.stopped += plan.stop
            journal.save(hb)
        if plan.stop:
            # One `docker stop` for all: the CLI stops them side by side (3 containers taking 1 s
            # each to stop: 1.1 s, against 3.2 s one after the other, measured here).
            result = docker.run(["stop", *plan.stop])
            if result.returncode != 0:
                down = _stopped_of(docker, plan.stop)
                refused = [c for c in plan.stop if c not in down]
                restarted = _start(docker, down)[0]
                journal.stopped = [c for c in journal.stopped if c not in restarted and c not in refused]
                if journal.stopped:
                    journal.save(hb)
                else:
                    Journal.remove(hb)
                stager.discard(volumes)
                said = _message(result.stderr, result.returncode)
                raise BackupError(
                    f"refusing to restore: could not stop {', '.join(refused) or 'them'} ({said}); "
                    "its data would change under it. Nothing was changed"
                    + (f"; started again: {', '.join(restarted)}" if restarted else "")
                )
            out.writelines(f"stopped {name}\n" for name in plan.stop)
    except (KeyboardInterrupt, Interrupted):
        raise BackupError(
            _unfinished(plan, journal, None, "interrupted while stopping the containers")
        ) from None
    for entry, _ in plan.volumes:
        if entry.volume in journal.restored:
            out.write(f"{entry.volume}: already restored by the earlier run\n")
    if todo:
        try:
            stager.swap([(e.volume, c) for e, c in todo])
        except (KeyboardInterrupt, Interrupted):
            docker.run(["rm", "-f", f"{hb.prefix}-restore"])  # the helper, if it still runs
            raise BackupError(_unfinished(plan, journal, volumes, "interrupted")) from None
        except Exception as error:  # whatever went wrong, the journal knows where it stopped
            raise BackupError(_unfinished(plan, journal, volumes, str(error))) from None
        journal.restored += volumes
        journal.save(hb)
        for entry, content in todo:
            out.write(f"restored {entry.volume}: {content.files} file(s), {human_size(content.size)}\n")
    # The old data goes while the containers start (files out of their sight; the engine's
    # work against the disk's): 0.9 s of 400 MB over 6 volumes, measured here, off the total.
    cleaner = threading.Thread(target=stager.finish, args=(volumes,), name="restore-finish")
    cleaner.start()
    try:
        started, failed = _start(docker, journal.stopped)
    except (KeyboardInterrupt, Interrupted):
        raise BackupError(
            _unfinished(plan, journal, None, "interrupted while starting the containers")
        ) from None
    finally:
        cleaner.join()
    out.writelines(f"started {name}\n" for name in started)
    if failed:
        raise BackupError(
            f"the volumes are restored, but these did not start again: {', '.join(failed)} "
            f"(the journal {Journal.path(hb)} keeps them: a rerun with --resume starts them)"
        )
    Journal.remove(hb)


def _start(docker: DockerCli, names: list[str]) -> tuple[list[str], list[str]]:
    """Start `names` with one `docker start`: (those running now, those that did not start,
    each with what the engine said)."""
    if not names:
        return [], []
    result = docker.run(["start", *names])
    if result.returncode == 0:
        return list(names), []
    running = _running(docker, names)
    said = _message(result.stderr, result.returncode)
    return [n for n in names if running.get(n)], [f"{n} ({said})" for n in names if not running.get(n)]


def _unfinished(plan: RestorePlan, journal: Journal, volumes: list[str] | None, what: str) -> str:
    """The message of a restore that stopped part way: what state it left, how to finish."""
    hb = plan.hb
    parts = [what]
    if volumes:
        parts.append(
            f"{', '.join(volumes)} were being swapped for the staged files (a volume may be half "
            "swapped): a rerun stages them again and finishes the swap"
        )
    if journal.restored:
        parts.append(f"already restored: {', '.join(journal.restored)}")
    parts.append(f"left stopped: {', '.join(journal.stopped) or 'none'}")
    return (
        ". ".join(parts) + f". The journal {Journal.path(hb)} keeps this: fix the cause, then finish with "
        f"`python -m automation restore --resume --host {hb.host} --identity KEY` (with the same "
        "--stack/--file), or run the same restore again"
    )


# ---- restore: a journal, so that an interrupted restore can be finished ----------------------


def state_dir() -> Path:
    """Where the restore journal is kept on this machine: $HOMELAB_STATE_DIR, else
    $XDG_STATE_HOME/homelab, else ~/.local/state/homelab (the XDG Base Directory default)."""
    if os.environ.get("HOMELAB_STATE_DIR"):
        return Path(os.environ["HOMELAB_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "homelab"


@dataclass
class Journal:
    """What a restore has done so far: written before its `docker stop`, naming every container
    it stops, updated once the volumes are swapped in, removed once everything it stopped runs
    again. A restore that
    finds one finishes that job: it starts what the earlier run stopped, and, for the same
    archive, skips the volumes that run had already swapped in."""

    archive: str  # as given (a file here or an archive name): what --resume restores
    shown: str  # the archive's name
    service: str | None
    stopped: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @staticmethod
    def path(hb: HostBackup) -> Path:
        return state_dir() / f"restore-{hb.prefix}-{hb.host}.json"

    def check(self) -> None:
        """TypeError naming the first field whose value is not of its kind (a journal edited by
        hand, or written by something else)."""
        texts = {"archive": self.archive, "shown": self.shown}
        for name, value in texts.items():
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} is not a non-empty text: {value!r}")
        if self.service is not None and not isinstance(self.service, str):
            raise TypeError(f"service is not a text or null: {self.service!r}")
        for name, names in (("stopped", self.stopped), ("restored", self.restored)):
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"{name} is not a list of names: {names!r}")
        if isinstance(self.started, bool) or not isinstance(self.started, (int, float)):
            raise TypeError(f"started is not a time: {self.started!r}")

    @classmethod
    def load(cls, hb: HostBackup) -> Journal | None:
        path = cls.path(hb)
        try:
            data = json.loads(path.read_text())
            journal = cls(
                **{k: data[k] for k in ("archive", "shown", "service", "stopped", "restored", "started")}
            )
            journal.check()
            return journal
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise BackupError(
                f"the restore journal {path} is unreadable ({error}): look at it, remove it, "
                "and start the containers it names yourself"
            ) from None

    def save(self, hb: HostBackup) -> None:
        path = self.path(hb)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        part.write_text(json.dumps(asdict(self), indent=2) + "\n")
        part.replace(path)  # a kill mid-write leaves the previous journal whole

    @classmethod
    def remove(cls, hb: HostBackup) -> None:
        cls.path(hb).unlink(missing_ok=True)


TEMP_PREFIX = "homelab-restore-"


@contextlib.contextmanager
def host_lock(hb: HostBackup) -> Iterator[None]:
    """One restore of a host at a time from this machine: an exclusive lock (flock) on
    `<state dir>/restore-<stack>-<host>.lock`, released when the process ends, however it
    ends. (The helper container's fixed name guards the engine the same way; staging by this
    machine's tar has no container to guard it.)"""
    path = state_dir() / f"restore-{hb.prefix}-{hb.host}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BackupError(
                f"another restore of host {hb.host} is running ({holder}); nothing was stopped or changed"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield


def sweep_temp(out: TextIO) -> None:
    """Remove what killed restores left in the temp directory (an archive fetched from the
    host, still encrypted if the stack encrypts): each run writes its pid in its directory;
    a directory whose process is gone is removed."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            pid = int((folder / "pid").read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or not yet written: left alone
        if _alive(pid):
            continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        out.write(
            f"removed {folder}, left by an interrupted restore ({human_size(size)} of decrypted data)\n"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Interrupted(BaseException):
    """SIGTERM, as KeyboardInterrupt is SIGINT: raised in the main thread by the handler."""


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM raises Interrupted (the default would end the process with no cleanup); SIGINT
    raises KeyboardInterrupt as always. Only in the main thread, where handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while a cleanup runs: a second Ctrl-C would leave it half done.
    Only in the main thread, where handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def restore(
    hb: HostBackup,
    archive: str | None,
    docker: DockerCli,
    out: TextIO,
    service: str | None = None,
    identity: Path | None = None,
    dry_run: bool = False,
    image: str | None = None,
    resume: bool = False,
    via: str = "auto",
) -> RestorePlan:
    """Restore `archive` (or, with `resume`, the archive of the unfinished restore the journal
    names). SIGINT and SIGTERM end it with the state it left and how to finish."""
    if via not in VIAS:
        raise BackupError(f"--via {via}: one of {', '.join(VIAS)}")
    sweep_temp(out)
    earlier = Journal.load(hb)
    if resume:
        if earlier is None:
            raise BackupError(
                f"no unfinished restore on host {hb.host} to resume ({Journal.path(hb)} does not exist)"
            )
        archive, service = archive or earlier.archive, earlier.service
    if archive is None:
        raise BackupError("give --archive FILE, or --resume to finish an interrupted restore")
    with host_lock(hb), signals_raise(), tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        workdir = Path(tmp)
        (workdir / "pid").write_text(str(os.getpid()))
        stager: Stager | None = None
        staged: list[str] = []
        try:
            local = Path(archive).expanduser()
            path = local if local.is_file() else _fetch(hb, archive, docker, image, workdir)
            plain = open_archive(path, identity)
            if dry_run:
                plan = plan_restore(hb, path.name, read_archive(plain), service, docker, earlier)
                out.write(plan.render())
                out.write("dry run: nothing was changed\n")
                return plan
            again = earlier is not None and earlier.shown == path.name and earlier.service == service
            done = earlier.restored if earlier is not None and again else []
            chosen = [e.volume for e in hb.select(service) if e.volume not in done]
            layout = preflight(hb, chosen, docker)
            volumes = list(layout)
            probe = probe_volumes(hb, volumes, docker, image)
            stager = choose_stager(hb, docker, image, layout, probe, via)
            stager.sweep([e.volume for e in hb.entries], out)
            began = time.monotonic()
            staged = volumes
            contents = stage(stager, plain, volumes, probe) if volumes else read_archive(plain)
            plan = plan_restore(hb, path.name, contents, service, docker, earlier, known=volumes)
        except (KeyboardInterrupt, Interrupted):
            if stager is not None:
                stager.discard(staged)
            raise BackupError(
                "interrupted before anything was stopped; nothing was stopped or changed"
            ) from None
        except BackupError:
            if stager is not None:
                stager.discard(staged)
            raise
        out.write(plan.render())
        out.write(f"  staged beside the old data by {stager.how} in {time.monotonic() - began:.1f} s\n")
        kept = [v for v in done if v in {e.volume for e, _ in plan.volumes}]
        journal = Journal(archive, path.name, service, stopped=list(plan.restart), restored=kept)
        unused = [v for v in staged if v not in {e.volume for e, _ in plan.volumes}]
        stager.discard(unused)
        execute_restore(plan, stager, docker, out, journal)
        return plan
