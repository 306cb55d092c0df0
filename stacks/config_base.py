"""Building blocks of the stack configuration: the base model, error type and scalar types.

Every section model derives from `Model`: kebab-case keys, unknown keys rejected, immutable.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NAMESPACE = "homelab"

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
# Every pattern here is used with `fullmatch`: `re`'s `$` also matches before a final newline.
_DOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_LABEL_RE = re.compile(_LABEL)
_SSH_RE = re.compile(
    r"(?P<user>[a-z_][a-z0-9_.-]*)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>\d+))?"
)
_IMAGE_RE = re.compile(
    r"(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:\d+(?=/))?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@sha256:[a-f0-9]{64})?"
)
_SECRET_KEY_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_.@/:-]+")


def join_key(path: str, key: str) -> str:
    """`path.key`, or `path["key"]` when the key has spaces, quotes or control characters,
    so a problem stays one line with a path that says where."""
    if _PLAIN_KEY_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


# A problem's message quotes the value it refuses: a value of a megabyte would fill the terminal.
# The longest message of a real problem (a platform's private CA on the nodes) is about 720.
LONGEST_MESSAGE = 2000


def _shortened(message: str) -> str:
    if len(message) <= LONGEST_MESSAGE:
        return message
    return f"{message[:LONGEST_MESSAGE]}... ({len(message) - LONGEST_MESSAGE:,} more characters)"


class ConfigError(Exception):
    """The stack config is invalid. `problems` is a list of (key path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = [(path, _shortened(message)) for path, message in problems]  # --json too
        lines = "\n".join(f"  {path}: {message}" for path, message in self.problems)
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


def _dns_name(value: str) -> str:
    value = value.lower().rstrip(".")
    if len(value) > 253 or not _DOMAIN_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid DNS domain name")
    return value


def _domain(value: str) -> str:
    value = _dns_name(value)
    # RFC 3696 section 2: a top-level domain is never all-numeric (and `123` reads as an IP).
    if value.rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"{value!r} is not a valid DNS domain name (its last label is all digits)")
    return value


def _label(value: str) -> str:
    if not _LABEL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', 1-63 chars)")
    return value


def host_name(hostname: str, domain: str) -> str:
    """The public name of `hostname` under `domain`; `@` is the domain itself."""
    return domain if hostname == "@" else f"{hostname}.{domain}"


def hostname_problem(hostname: str, domain: str) -> str | None:
    """Why `hostname` (a name under `domain`) is really the full name, with the fix; or None."""
    if hostname == domain:
        return f"{hostname!r} is the domain itself: write '@' for it"
    if hostname.endswith("." + domain):
        short = hostname.removesuffix("." + domain)
        return f"{hostname!r} already ends with the domain {domain!r}: give the name under it: {short!r}"
    return None


def _subdomain(value: str) -> str:
    if value == "@":
        return value
    try:
        return _dns_name(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a host name ('@' means the root domain)") from None


def _address(value: str) -> str:
    """A host name or a bare IP address, as another machine dials it."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        return _dns_name(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a host name or IP address (no scheme, port or brackets)"
        ) from None


def _bind_address(value: str) -> str:
    """One address of the host to publish a port on: never the wildcard (every interface)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address (the host's LAN address, e.g. 192.168.1.10)"
        ) from None
    if address.is_unspecified:
        raise ValueError(
            f"{value} is every interface of the host; name the one address (the LAN one) to listen on"
        )
    return str(address)


def _source_network(value: str) -> str:
    """A network allowed to connect (CIDR, or one address): never the whole internet."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a network in CIDR form like 192.168.1.0/24 ({e})") from None
    if network.prefixlen == 0:
        raise ValueError(f"{value} is every address; list the networks that may connect (e.g. your LAN)")
    return str(network)


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def host_problem(host: str) -> str | None:
    """Why `host` is no host name (RFC 1123 labels, at most 253 characters), IPv4 address or
    bracketed IPv6 address; None when it is one."""
    import ipaddress

    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 address"
        return None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not an IPv4 address"
        return None
    name = host.removesuffix(".")
    if len(name) > 253 or not name or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            f"{host!r} is not a host name (labels of letters, digits and inner hyphens, "
            "253 characters at most)"
        )
    return None


def ssh_address(value: str) -> str:
    """`user@host[:port]`, the whole value (a final newline is not part of it)."""
    match = _SSH_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} must be 'user@host[:port]'")
    problem = host_problem(match.group("host"))
    if problem is not None:
        raise ValueError(f"{value!r}: {problem}")
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port {port} is out of range 1-65535")
    return value


def ssh_parts(address: str) -> tuple[str, str, int] | None:
    """(user, host, port) of a `user@host[:port]` address; None for anything else."""
    match = _SSH_RE.fullmatch(address)
    if match is None:
        return None
    return match.group("user"), match.group("host").strip("[]"), int(match.group("port") or 22)


def ssh_endpoint(address: SshAddress) -> tuple[str, str, int]:
    """(user, host, port) of an address that passed `ssh_address` (an `SshAddress` field)."""
    parts = ssh_parts(address)
    assert parts is not None, f"{address!r} was validated"
    return parts


def _image(value: str) -> str:
    match = _IMAGE_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not an image reference")
    if "@sha256:" not in value and match.group("tag") in (None, "latest"):
        raise ValueError(
            f"image {value!r} is not pinned: give a tag other than 'latest', or an @sha256 digest"
        )
    return value


# Duration units in nanoseconds, largest first.
_UNITS_NS = {
    "y": 365 * 24 * 3600 * 10**9,
    "w": 7 * 24 * 3600 * 10**9,
    "d": 24 * 3600 * 10**9,
    "h": 3600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
}
_DURATION_PART = re.compile(r"([0-9]+)(ms|[ywdhms])")
_MAX_NS = 2**63 - 1  # Go's time.Duration


def _parse_duration(value: str, units: tuple[str, ...], example: str) -> int:
    """Nanoseconds of `value`, the way prometheus/common's model.ParseDuration (v0.65.0,
    Prometheus 3.5) reads it: units from the largest to the smallest, each once, at most
    2^63-1 ns ("duration out of range"). Only `units` are allowed."""
    parts = list(_DURATION_PART.finditer(value))
    if not parts or "".join(p.group(0) for p in parts) != value:
        raise ValueError(f"{value!r} is not a duration like {example}")
    order = list(_UNITS_NS)
    total, last = 0, -1
    for part in parts:
        number, unit = int(part.group(1)), part.group(2)
        if unit not in units:
            raise ValueError(f"{value!r}: unit {unit!r} is not one of {', '.join(units)}")
        if order.index(unit) <= last:
            raise ValueError(f"{value!r}: give the units once each, from the largest unit to the smallest")
        last = order.index(unit)
        total += number * _UNITS_NS[unit]
        if total > _MAX_NS:
            raise ValueError(f"{value!r} is out of range (at most about 292 years)")
    if total == 0:
        raise ValueError(f"{value!r} must be longer than 0")
    return total


def _duration(value: str) -> str:
    _parse_duration(value, tuple(_UNITS_NS), "'15s', '5m' or '30d'")
    return value


def _docker_duration(value: str) -> str:
    # Docker health checks: the provider parses them with Go's time.ParseDuration
    # (kreuzwerker/terraform-provider-docker internal/provider/validators.go), which
    # knows no d, w or y; Docker refuses a non-zero value under 1ms (moby MinimumDuration).
    _parse_duration(value, ("h", "m", "s", "ms"), "'30s', '1m30s' or '500ms'")
    return value


def duration_seconds(text: str) -> float:
    """A `Duration` ('24h', '7d', '1d12h') in seconds, read as the validator reads it."""
    return _parse_duration(text, tuple(_UNITS_NS), "'24h' or '7d'") / 10**9


# A `*-secret` field names the config key that holds a secret. A value that is a secret itself
# (pasted in the wrong place) must not be quoted back into a terminal or a CI log: these look
# like one, by a token prefix or by a length no key name has. Sources of the prefixes: GitHub
# ghp_/gho_/ghu_/ghs_/ghr_ (github.blog changelog 2021-03-31, "authentication token format
# updates"), Tailscale tskey- (tailscale.com/kb/1277/key-prefixes), GitLab glpat- (gitlab-org/
# gitlab issue 342327); github_pat_, Slack xoxb-/xoxp-/xapp-, Stripe sk_live_/sk_test_/rk_live_
# and AWS AKIA/ASIA as secret scanners match them (GitLab secret-detection-rules MR 165 for
# AWS), not read in the issuers' own docs; AGE-SECRET-KEY- is the bech32 prefix of an age
# identity (str4d/rage, age crate src/x25519.rs SECRET_KEY_PREFIX). Only a refusal rides on it.
_TOKEN_PREFIXES = (
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xapp-",
    "sk_live_", "sk_test_", "rk_live_", "tskey-", "AKIA", "ASIA", "AGE-SECRET-KEY-",
)  # fmt: skip
_LONGEST_KEY_NAME = 64
_NOT_A_KEY = (
    "is not a config key name (a letter, then letters, digits, '-' or '_'): name the key that "
    "holds the secret (pulumi config set --secret KEY ...), not the secret itself"
)


def _secret_key(value: str) -> str:
    if not _SECRET_KEY_RE.fullmatch(value):
        raise ValueError(f"the value {_NOT_A_KEY}")  # never quoted: it may be the secret
    if len(value) > _LONGEST_KEY_NAME or value.startswith(_TOKEN_PREFIXES):
        raise ValueError(f"the value looks like a token, not a key name; it {_NOT_A_KEY}")
    return value


def _text(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError(f"{value!r} contains a control character (a newline or a tab)")
    return value


def _absolute_path(value: str) -> str:
    # No commas either: a path reaches `docker run --mount type=bind,source=PATH,...`, whose
    # value the docker CLI reads as one CSV record (docker/cli v28.5.2 opts/mount.go,
    # csv.NewReader), in automation/backup.py's helper containers.
    if not value.startswith("/") or _CONTROL_RE.search(value) or " " in value or "," in value:
        raise ValueError(f"{value!r} must be an absolute path (no spaces, commas or control characters)")
    return value


def _email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    bad_local = not local or _CONTROL_RE.search(local) or " " in local
    if bad_local or not _DOMAIN_RE.fullmatch(domain.lower()) or "." not in domain:
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host, as one token: no spaces or control characters."""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises ValueError on a port out of range)
    except ValueError:
        raise ValueError(f"{value!r} is not an http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.hostname or re.search(r"[\s\x00-\x1f\x7f]", value):
        raise ValueError(f"{value!r} is not an http(s) URL (http[s]://host[:port][/path], no spaces)")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/") or _CONTROL_RE.search(value) or " " in value:
        raise ValueError(f"{value!r} must be a URL path starting with '/' (no spaces)")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, '_')")
    return value


Domain = Annotated[str, AfterValidator(_domain)]
Label = Annotated[str, AfterValidator(_label)]
Subdomain = Annotated[str, AfterValidator(_subdomain)]
Image = Annotated[str, AfterValidator(_image)]
Duration = Annotated[str, AfterValidator(_duration)]
DockerDuration = Annotated[str, AfterValidator(_docker_duration)]
Address = Annotated[str, AfterValidator(_address)]
BindAddress = Annotated[str, AfterValidator(_bind_address)]
SourceNetwork = Annotated[str, AfterValidator(_source_network)]
Text = Annotated[str, AfterValidator(_text)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
UrlPath = Annotated[str, AfterValidator(_url_path)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Email = Annotated[str, AfterValidator(_email)]
EnvName = Annotated[str, AfterValidator(_env_name)]
SecretKey = Annotated[str, AfterValidator(_secret_key)]
SshAddress = Annotated[str, AfterValidator(ssh_address)]
Port = Annotated[int, Field(ge=1, le=65535)]
MemoryMb = Annotated[int, Field(ge=16, le=1_048_576)]
Restart = Literal["no", "on-failure", "always", "unless-stopped"]
