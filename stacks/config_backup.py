"""The `backup:` section: schedule, retention, encryption, targets and notifications of the
backup engine (offen/docker-volume-backup, components/homelab/backup.py).

Field-level rules only; checks that need the planned services live in `stacks/checks.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from stacks.config_base import (
    AbsolutePath,
    HttpUrl,
    Image,
    Model,
    SecretKey,
    SshAddress,
    Text,
    ssh_endpoint,
)

# Cron as the backup engine reads it: robfig/cron/v3 with an optional seconds field and the
# @-descriptors (offen/docker-volume-backup v2.48.2: cmd/backup/command.go, runInForeground).
# We take the standard 5 fields; the old 6-field form of earlier releases (seconds first) is
# refused with its 5-field equivalent, so nobody's schedule shifts silently.
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_PART_RE = re.compile(r"(?P<range>\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/(?P<step>[0-9]+))?")  # fullmatch


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + (1 if low == 1 else 0)
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _cron_field(text: str, index: int) -> None:
    name, low, high, names = _CRON_FIELDS[index]
    for part in text.split(","):
        match = _CRON_PART_RE.fullmatch(part)
        if not match or (match.group("range") == "?" and name not in ("day of month", "day of week")):
            raise ValueError(f"{name} {text!r} is not a cron field")
        step = match.group("step")
        span = high - low + 1
        # robfig/cron parses a step as an int (one that overflows is an error when the engine
        # starts); a step beyond the field's span would only ever match its first value.
        if step is not None and not 1 <= int(step) <= span:
            raise ValueError(f"{name} {text!r}: a step must be 1-{span}")
        if match.group("range") in ("*", "?"):
            continue
        try:
            bounds = [_cron_value(v, low, names) for v in match.group("range").split("-")]
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a cron field") from None
        if any(not low <= v <= high for v in bounds) or bounds[0] > bounds[-1]:
            raise ValueError(f"{name} {text!r} is out of range {low}-{high}")


def _cron5(value: str) -> str:
    fields = value.split()
    if len(fields) == 1 and fields[0] in _CRON_DESCRIPTORS:
        return fields[0]
    if len(fields) == 6:
        hint = " ".join(fields[1:])
        seconds = "" if fields[0] == "0" else f" (at second 0: seconds {fields[0]!r} are not kept)"
        raise ValueError(
            f"{value!r} is the old 6-field form (seconds first); the backup engine takes 5 fields "
            f"(minute hour day month weekday): write {hint!r}{seconds}"
        )
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} must have 5 fields (minute hour day month weekday), e.g. '0 4 * * *', "
            f"or be one of {', '.join(_CRON_DESCRIPTORS)}"
        )
    for index, text in enumerate(fields):
        _cron_field(text, index)
    return " ".join(fields)


Cron = Annotated[str, AfterValidator(_cron5)]

# age recipients the engine accepts in AGE_PUBLIC_KEYS: native X25519 keys and ssh-ed25519 /
# ssh-rsa public keys (cmd/backup/encrypt_archive.go, parseAgeRecipient). The list is
# comma-separated there, so a key cannot hold a comma.
# fullmatch, and the comment of an ssh key without control characters (no line breaks).
_AGE_RECIPIENT_RE = re.compile(
    r"age1[02-9ac-hj-np-z]{58}|ssh-(ed25519|rsa) [A-Za-z0-9+/]+=*( [^,\x00-\x1f\x7f]*)?"
)


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_ok(text: str) -> bool:
    """Whether `text` is a Bech32 string whose checksum holds (BIP 173; age's recipients are
    Bech32 with the human-readable part "age", age-encryption.org/v1) and whose data is 32 bytes."""
    hrp, _, data = text.rpartition("1")
    values = [_BECH32.index(c) for c in data]
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check == 1 and len(values) - 6 == 52  # 52 five-bit groups hold 32 bytes


def _ssh_key_ok(kind: str, blob: str) -> bool:
    """Whether the base64 blob is a whole key of `kind` (RFC 4253 6.6: the type as a string,
    then the key: ssh-ed25519 a 32-byte string, ssh-rsa two mpints)."""
    import base64
    import binascii
    import struct

    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    fields, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            return False
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        if offset + 4 + size > len(data):
            return False
        fields.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if not fields or fields[0] != kind.encode():
        return False
    if kind == "ssh-ed25519":
        return len(fields) == 2 and len(fields[1]) == 32
    return len(fields) == 3 and len(fields[2]) >= 128  # ssh-rsa: e, n (1024 bits and up)


def _age_recipient(value: str) -> str:
    value = value.strip()
    if value.upper().startswith("AGE-SECRET-KEY-") or value.startswith("-----BEGIN"):
        raise ValueError(  # never quoted
            "this is a private key: give its public key instead (age-keygen -y KEYFILE, or "
            "ssh-keygen -y -f KEYFILE)"
        )
    if not _AGE_RECIPIENT_RE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not an age public key (age1...) or an ssh-ed25519/ssh-rsa key")
    if value.startswith("age1") and not _bech32_ok(value):
        raise ValueError(f"{value[:40]!r}: its checksum does not hold (a typo, or a truncated key?)")
    if value.startswith("ssh-"):
        kind, blob = value.split()[:2]
        if not _ssh_key_ok(kind, blob):
            raise ValueError(f"{value[:40]!r}: not a whole {kind} public key (truncated or garbled?)")
    return value


class S3Target(Model):
    """S3-compatible storage (AWS, MinIO, Backblaze B2, ...): a copy of every archive."""

    endpoint: str = Field(
        default="s3.amazonaws.com",
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="Host name (and port) of the S3 API, without scheme.",
    )
    protocol: Literal["https", "http"] = Field(default="https", description="`http` only inside your LAN.")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="Bucket name.")
    path: Text = Field(
        default="", pattern=r"^([^/].*)?$", description="Folder in the bucket, without a leading slash."
    )
    access_key_id_secret: SecretKey = Field(description="Config key (secret) with the access key id.")
    secret_access_key_secret: SecretKey = Field(description="Config key (secret) with the secret key.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        _, _, port = value.partition(":")
        if port and not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
        return value


class SshBackupTarget(Model):
    """An SFTP server: a copy of every archive (the engine does not check its host key)."""

    address: SshAddress = Field(description="`user@host[:port]` of the SSH server.")
    path: AbsolutePath = Field(description="Absolute directory on the server (created if missing).")
    private_key_secret: SecretKey = Field(description="Config key (secret) with the SSH private key.")

    @property
    def target(self) -> tuple[str, str, int]:
        return ssh_endpoint(self.address)


class WebdavTarget(Model):
    """A WebDAV server (Nextcloud, ownCloud, ...): a copy of every archive."""

    url: HttpUrl = Field(description="Server URL, e.g. https://dav.example.com.")
    path: Text = Field(default="/", description="Directory on the server (created if missing).")
    username: Text = Field(min_length=1, description="User name.")
    password_secret: SecretKey = Field(description="Config key (secret) with the password.")


# Keys of earlier releases, with what replaced them (reported instead of "unknown key").
REMOVED_KEYS = {
    "backup.target": "removed: archives go to backup.directory on each host (default <root>/backups) "
    "and, with a backup.s3 section, to S3 too (docs/howto.md)",
    "backup.s3-access-key-id-secret": "moved to backup.s3.access-key-id-secret",
    "backup.s3-secret-access-key-secret": "moved to backup.s3.secret-access-key-secret",
}


class BackupConfig(Model):
    """A backup run per host (offen/docker-volume-backup): every stateful volume, on a schedule,
    encrypted, to the host's backup directory and any remote targets configured."""

    enabled: bool = Field(default=True, description="Back up every stateful volume.")
    schedule: Cron = Field(
        default="0 4 * * *", description="5-field cron (minute hour day month weekday, UTC), per host."
    )
    retention_days: Annotated[int, Field(ge=1, le=36500)] | None = Field(
        default=14, description="Delete archives older than this many days (null: keep all)."
    )
    encryption: Literal["age", "none"] = Field(
        default="age",
        description="Encrypt archives with age. The program generates the key pair; only the public "
        "key is on the hosts, the private key is the secret stack output `backup-identity`.",
    )
    age_recipients: list[Annotated[str, AfterValidator(_age_recipient)]] = Field(
        default_factory=list,
        description="Your own age (age1...) or ssh-ed25519/ssh-rsa public keys instead of a "
        "generated key pair.",
    )
    directory: AbsolutePath | None = Field(
        default=None, description="Archive directory on each host (default: <root>/backups)."
    )
    local: bool = Field(default=True, description="Keep archives in `directory` on the host.")
    s3: S3Target | None = Field(default=None, description="Also copy archives to S3-compatible storage.")
    ssh: SshBackupTarget | None = Field(default=None, description="Also copy archives over SFTP.")
    webdav: WebdavTarget | None = Field(default=None, description="Also copy archives to WebDAV.")
    notify_url_secret: SecretKey | None = Field(
        default=None,
        description="Config key (secret) with where failed runs are reported: a Mattermost incoming "
        "webhook URL (https://chat.example.com/hooks/...), another webhook URL (POSTed to), or any "
        "shoutrrr URL the engine takes.",
    )
    image: Image | None = Field(default=None, description="Override the pinned backup engine image.")

    def problems(self) -> list[tuple[str, str]]:
        problems = []
        if not self.local and not (self.s3 or self.ssh or self.webdav):
            problems.append(
                ("backup.local", "with local off, configure backup.s3, backup.ssh or backup.webdav")
            )
        if self.encryption == "none" and self.age_recipients:
            problems.append(
                ("backup.age-recipients", "encryption is 'none': drop the recipients or use 'age'")
            )
        if self.encryption == "none" and self.ssh is not None:
            problems.append(
                (
                    "backup.ssh",
                    "the backup engine does not verify the SSH server's host key, so archives sent "
                    "over SSH must be encrypted: set backup.encryption to 'age'",
                )
            )
        return problems

    def secret_refs(self) -> list[tuple[str, str]]:
        """(key path, config key) of the secrets the backup section names."""
        refs = []
        if self.s3 is not None:
            refs += [
                ("backup.s3.access-key-id-secret", self.s3.access_key_id_secret),
                ("backup.s3.secret-access-key-secret", self.s3.secret_access_key_secret),
            ]
        if self.ssh is not None:
            refs.append(("backup.ssh.private-key-secret", self.ssh.private_key_secret))
        if self.webdav is not None:
            refs.append(("backup.webdav.password-secret", self.webdav.password_secret))
        if self.notify_url_secret:
            refs.append(("backup.notify-url-secret", self.notify_url_secret))
        return refs
