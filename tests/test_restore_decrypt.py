"""Decrypting an archive (issue 27): a damaged or truncated `.age` archive is told apart from a
key it is not encrypted to, and no plaintext is ever written to disk: the archive is decrypted
as a stream each time it is read (automation/backup.py ArchiveFile)."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from automation.backup import BackupError, open_archive, read_archive, volume_stream

AGE = shutil.which("age")
KEYGEN = shutil.which("age-keygen")
pytestmark = pytest.mark.skipif(
    AGE is None or KEYGEN is None, reason="the age tool is not installed (make test installs age)"
)


DATA = bytes(range(256)) * 800  # 200 KiB: four of age's 64 KiB chunks


def engine_tar() -> bytes:
    """A tar in the backup engine's layout: /backup/<volume>/..."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("/backup", "/backup/v"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        info = tarfile.TarInfo("/backup/v/data")
        info.size = len(DATA)
        tar.addfile(info, io.BytesIO(DATA))
    return buffer.getvalue()


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*")}


@pytest.fixture
def encrypted(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An archive encrypted to key k1, the identity k1, and another identity k2."""
    keys = []
    for name in ("k1", "k2"):
        subprocess.run([str(KEYGEN), "-o", str(tmp_path / name)], check=True, capture_output=True)
        keys.append(tmp_path / name)
    recipient = subprocess.run(
        [str(KEYGEN), "-y", str(keys[0])], check=True, capture_output=True, text=True
    ).stdout.strip()
    plain = tmp_path / "homelab-local-2026-12-07T04-00-00.tar.gz"
    plain.write_bytes(gzip.compress(engine_tar()))
    archive = tmp_path / (plain.name + ".age")
    subprocess.run([str(AGE), "-r", recipient, "-o", str(archive), str(plain)], check=True)
    plain.unlink()
    return archive, keys[0], keys[1]


def test_the_right_key_decrypts_as_a_stream(encrypted, tmp_path):
    archive, key, _ = encrypted
    before = files_in(tmp_path)
    source = open_archive(archive, key)
    assert read_archive(source)["v"].size == len(DATA)
    sink = io.BytesIO()
    volume_stream(source, "v", sink)
    with tarfile.open(fileobj=io.BytesIO(sink.getvalue())) as tar:
        member = tar.getmember("data")
        assert tar.extractfile(member).read() == DATA  # type: ignore[union-attr]
    assert files_in(tmp_path) == before  # no plaintext anywhere


def test_a_wrong_key_is_said_as_such(encrypted, tmp_path):
    archive, _, other = encrypted
    before = files_in(tmp_path)
    with pytest.raises(BackupError) as raised:
        read_archive(open_archive(archive, other))
    assert f"is not encrypted to the key in {other}" in str(raised.value)
    assert "damaged" not in str(raised.value)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated", "header-only"])
def test_a_damaged_archive_is_said_as_such_and_leaves_no_plaintext(encrypted, tmp_path, damage):
    archive, key, _ = encrypted
    data = bytearray(archive.read_bytes())
    if damage == "flipped-byte":
        data[-100] ^= 1
    elif damage == "truncated":
        data = data[: len(data) - 100]
    else:
        data = data[: data.index(b"\n---") + 1]
    archive.write_bytes(bytes(data))
    before = files_in(tmp_path)
    with pytest.raises(BackupError) as raised:
        read_archive(open_archive(archive, key))
    # age's reason, not its consequence (a gzip stream cut short)
    assert str(raised.value).startswith(f"{archive.name} is damaged or truncated"), raised.value
    assert "nothing was changed" in str(raised.value)
    assert files_in(tmp_path) == before  # nothing age decrypted before the bad chunk is on disk


def test_a_command_that_said_nothing_is_reported_with_its_exit_code():
    """Issue 27: the engine going away mid-run gave "failed: no message"."""
    from automation.backup import _message

    assert _message(b"", 137).startswith(
        "exit code 137, no message: the helper container or the docker CLI was killed"
    )
    assert "the Docker engine went away (check `docker info` on the host)" in _message(b"\n", 1)
    assert (
        _message(b"line one\nError response from daemon: gone\n", 1)
        == "line one / Error response from daemon: gone"
    )
