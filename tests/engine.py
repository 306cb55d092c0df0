"""The real Docker engine of the engine tests (restore, drills): whether one answers, and one
tiny busybox image per test session (per xdist worker) for their helper and service containers.

Images cannot be pulled here, so the image is made with `docker import` from Debian's static
busybox (`busybox-static`, installed by .ci/run and scripts/install-tools.sh): the applets the
restore and the drill run (sh, tar, find, sha256sum, df, awk, ...), an /etc/passwd whose `postgres` has
another uid than the archives' (a restore that mapped owners by name would show), and a
stand-in `backup` command (the backup engine's manual trigger) that says what it ran for and
exits with $BACKUP_EXIT.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh", "sleep", "tar", "rm", "cat", "stat", "chown", "chmod", "ls", "true", "echo",
    "find", "wc", "sha256sum", "mv", "mkdir", "rmdir", "df", "awk", "cp", "id",
)  # fmt: skip
PASSWD = "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:postgres:/:/bin/sh\n"
BACKUP_SCRIPT = '#!/bin/sh\necho "backup run for $BACKUP_LABEL"\nexit "${BACKUP_EXIT:-0}"\n'


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=120, **kwargs)


def engine_problem() -> str | None:
    """Why the engine tests cannot run here (no docker CLI, no engine, no busybox), or None."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        info = docker("info", check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out: no Docker engine answers (scripts/start-dockerd.sh)"
    if info.returncode != 0:
        return f"no Docker engine (scripts/start-dockerd.sh): {info.stderr.decode().strip()}"
    if not BUSYBOX.is_file():
        return "busybox is not installed (apt install busybox-static)"
    return None


def import_busybox_image(folder: Path) -> tuple[str | None, str]:
    """(the image reference, "") or (None, why it does not run)."""
    ref = f"t12-busybox:{uuid.uuid4().hex[:10]}"
    rootfs = folder / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        for directory in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, text, mode in (("etc/passwd", PASSWD, 0o644), ("bin/backup", BACKUP_SCRIPT, 0o755)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    docker("import", "-c", "ENV PATH=/bin", str(rootfs), ref)
    probe = docker("run", "--rm", "--network", "none", ref, "true", check=False)
    if probe.returncode != 0:
        docker("rmi", "-f", ref, check=False)
        return None, f"{BUSYBOX} does not run alone in an image (not busybox-static?): {probe.stderr!r}"
    return ref, ""


def ssh_age_key(path: Path) -> str:
    """An ssh-ed25519 key written at `path` (OpenSSH PEM, as `backup-identity` exports it; age
    takes it as an identity) and its public line, the recipient the backup engine encrypts to."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()
