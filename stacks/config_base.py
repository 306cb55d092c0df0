"""Building blocks of the stack configuration: the base model, error type and scalar types.

Every section model derives from `Model`: kebab-case keys, unknown keys rejected, immutable.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NAMESPACE = "homelab"

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_SSH_RE = re.compile(
    r"^(?P<user>[a-z_][a-z0-9_.-]*)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>\d+))?$"
)
_IMAGE_RE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:\d+(?=/))?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@sha256:[a-f0-9]{64})?$"
)
_DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_SECRET_KEY_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")


class ConfigError(Exception):
    """The stack config is invalid. `problems` is a list of (key path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"invalid stack config ({len(problems)} problem(s)):\n{lines}")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=_kebab,
        populate_by_name=True,
        frozen=True,
        validate_default=True,
    )


# ---- scalar types -------------------------------------------------------------------


def _domain(value: str) -> str:
    value = value.lower().rstrip(".")
    if len(value) > 253 or not _DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a valid DNS domain name")
    return value


def _label(value: str) -> str:
    if not _LABEL_RE.match(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', 1-63 chars)")
    return value


def host_name(hostname: str, domain: str) -> str:
    """The public name of `hostname` under `domain`; `@` is the domain itself."""
    return domain if hostname == "@" else f"{hostname}.{domain}"


def _subdomain(value: str) -> str:
    if value == "@":
        return value
    try:
        return _domain(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a host name ('@' means the root domain)") from None


def _image(value: str) -> str:
    match = _IMAGE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an image reference")
    if "@sha256:" not in value and match.group("tag") in (None, "latest"):
        raise ValueError(
            f"image {value!r} is not pinned: give a tag other than 'latest', or an @sha256 digest"
        )
    return value


def _duration(value: str) -> str:
    if not _DURATION_RE.match(value):
        raise ValueError(f"{value!r} is not a duration like '15s', '5m' or '30d'")
    return value


_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """A `Duration` ('24h', '7d', '1d12h') in seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like '24h' or '7d'")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def _secret_key(value: str) -> str:
    if not _SECRET_KEY_RE.match(value):
        raise ValueError(f"{value!r} is not a config key name")
    return value


def _cron6(value: str) -> str:
    fields = value.split()
    if len(fields) != 6:
        raise ValueError(
            f"{value!r} must have 6 fields (seconds minutes hours day month weekday), e.g. '0 0 4 * * *'"
        )
    return value


Domain = Annotated[str, AfterValidator(_domain)]
Label = Annotated[str, AfterValidator(_label)]
Subdomain = Annotated[str, AfterValidator(_subdomain)]
Image = Annotated[str, AfterValidator(_image)]
Duration = Annotated[str, AfterValidator(_duration)]
SecretKey = Annotated[str, AfterValidator(_secret_key)]
Port = Annotated[int, Field(ge=1, le=65535)]
MemoryMb = Annotated[int, Field(ge=16, le=1_048_576)]
Restart = Literal["no", "on-failure", "always", "unless-stopped"]
