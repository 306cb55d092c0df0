"""Decrypting an archive (issue 27): a damaged or truncated `.age` archive is told apart from a
key it is not encrypted to, and a failed decryption leaves no partial plaintext behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from automation.backup import BackupError, decrypt

AGE = shutil.which("age")
KEYGEN = shutil.which("age-keygen")
pytestmark = pytest.mark.skipif(
    AGE is None or KEYGEN is None, reason="the age tool is not installed (make test installs age)"
)


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
    plain.write_bytes(bytes(range(256)) * 800)
    archive = tmp_path / (plain.name + ".age")
    subprocess.run([str(AGE), "-r", recipient, "-o", str(archive), str(plain)], check=True)
    plain.unlink()
    return archive, keys[0], keys[1]


def test_the_right_key_decrypts(encrypted, tmp_path):
    archive, key, _ = encrypted
    work = tmp_path / "work"
    work.mkdir()
    assert decrypt(archive, key, work).read_bytes() == bytes(range(256)) * 800


def test_a_wrong_key_is_said_as_such(encrypted, tmp_path):
    archive, _, other = encrypted
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BackupError) as raised:
        decrypt(archive, other, work)
    assert f"is not encrypted to the key in {other}" in str(raised.value)
    assert "damaged" not in str(raised.value)
    assert list(work.iterdir()) == []


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
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BackupError) as raised:
        decrypt(archive, key, work)
    assert f"{archive.name} is damaged or truncated" in str(raised.value)
    assert "nothing was changed" in str(raised.value)
    # age writes what it decrypted before a later chunk fails: nothing of it is left.
    assert list(work.iterdir()) == []
