"""The `hosts:` section: Docker hosts, local or over SSH, with pinned host keys and jump hosts.

Field-level rules only; checks that need the planned services live in `stacks/checks.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from stacks.config_base import (
    _SSH_RE,
    AbsolutePath,
    Address,
    BindAddress,
    Label,
    Model,
    SecretKey,
    SshAddress,
    ssh_address,
    ssh_parts,
)

# ---- hosts --------------------------------------------------------------------------

# Host key types a host can present, by their OpenSSH names (openssh-portable V_9_2_P1:
# ssh-ed25519.c, ssh-ecdsa.c, ssh-rsa.c). Certificates and the security-key types are not
# host keys we can pin; DSA is gone from current OpenSSH.
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def _host_key(value: str) -> str:
    """A host's public key (`<type> <base64> [comment]`) or a known_hosts line for it."""
    parse_host_key(value)
    return value


def parse_host_key(value: str) -> tuple[str | None, str, str]:
    """(known_hosts host patterns or None, key type, base64 key) of a `host-key` value.

    Raises ValueError when it is not one public host key: the base64 part must decode to the
    SSH wire form of a key of the named type (its first field is that type's name).
    """
    lines = [line for line in value.strip().splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise ValueError("give exactly one key (one line)")
    tokens = lines[0].split()
    if tokens[0].startswith("@"):
        raise ValueError(f"{tokens[0]} lines are not host keys")
    patterns: str | None = None
    if tokens[0] not in HOST_KEY_TYPES and len(tokens) >= 3 and tokens[1] in HOST_KEY_TYPES:
        patterns, tokens = tokens[0], tokens[1:]
    if tokens[0] not in HOST_KEY_TYPES or len(tokens) < 2:
        raise ValueError(
            "not a host public key: expected '<type> <base64>' or a known_hosts line "
            f"'<host> <type> <base64>', with type one of {', '.join(HOST_KEY_TYPES)}"
        )
    kind, data = tokens[0], tokens[1]
    try:
        blob = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ValueError(f"the {kind} key is not valid base64") from None
    size = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + size or blob[4 : 4 + size] != kind.encode() or len(blob) == 4 + size:
        raise ValueError(f"the base64 part is not an {kind} public key")
    return patterns, kind, data


def known_hosts_name(hostname: str, port: int) -> str:
    """How known_hosts names a host: `host`, or `[host]:port` off port 22 (sshd(8))."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):  # hashed: HMAC-SHA1 of the name, keyed with the salt
        try:
            _, _, salt, digest = pattern.split("|")
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            return False
    # ssh patterns know only `*` and `?` (ssh_config(5) PATTERNS); `[` is literal.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name.lower()) is not None


def known_hosts_line_matches(patterns: str, name: str) -> bool:
    """Whether a known_hosts host field (comma-separated, `!` negates) names `name`."""
    items = patterns.split(",")
    if any(p.startswith("!") and _pattern_matches(p[1:], name) for p in items):
        return False
    return any(not p.startswith("!") and _pattern_matches(p, name) for p in items)


SshHostKey = Annotated[str, AfterValidator(_host_key)]


HOST_KEY_HELP = (
    "Required for SSH unless trust-on-first-use: the host's SSH public key, `ssh-ed25519 AAAA...` "
    "(its /etc/ssh/ssh_host_ed25519_key.pub), or its line of `ssh-keyscan -p PORT HOST` output. "
    "The bootstrap command and the Docker provider refuse a host presenting another key."
)
TOFU_HELP = (
    "Opt in to trusting whatever key the host presents instead of a host-key: the Docker "
    "provider records it in ~/.ssh/known_hosts on first use; the bootstrap command "
    "(pulumi-command) checks no key at all."
)


def public_host_key(host_key: str | None) -> str | None:
    """`<type> <base64>` of a `host-key` value: the form pulumi-command's `hostKey` and a
    known_hosts line take."""
    if host_key is None:
        return None
    _, kind, data = parse_host_key(host_key)
    return f"{kind} {data}"


def _host_key_problems(
    path: str, ssh: tuple[str, str, int], host_key: str | None, tofu: bool, keyscan: str
) -> list[tuple[str, str]]:
    if host_key is not None and tofu:
        return [(f"{path}.trust-on-first-use", "set host-key or trust-on-first-use, not both")]
    if host_key is None:
        if tofu:
            return []
        return [
            (
                f"{path}.host-key",
                f"an SSH host needs its host key: print it with `{keyscan}`, check its fingerprint "
                "on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and set host-key "
                "to one of its lines; or opt in to trust-on-first-use: true",
            )
        ]
    patterns = parse_host_key(host_key)[0]
    name = known_hosts_name(ssh[1], ssh[2])
    if patterns is not None and not known_hosts_line_matches(patterns, name):
        return [(f"{path}.host-key", f"this known_hosts line is not for {name!r}")]
    return []


class SshProxyConfig(Model):
    """A jump host (bastion) the host is reached through."""

    address: SshAddress = Field(description="`user@host[:port]` of the jump host.")
    private_key_secret: SecretKey | None = Field(
        default=None,
        description="Config key holding the jump host's SSH private key (set with --secret); "
        "without it the SSH agent is used.",
    )
    host_key: SshHostKey | None = Field(
        default=None, description="The jump host's key, in the same forms as the host's host-key."
    )
    trust_on_first_use: bool = Field(default=False, description=TOFU_HELP)

    @property
    def ssh(self) -> tuple[str, str, int] | None:
        return ssh_parts(self.address)


def ssh_endpoint_problems(
    path: str,
    ssh: tuple[str, str, int],
    host_key: str | None,
    tofu: bool,
    proxy: SshProxyConfig | None,
) -> list[tuple[str, str]]:
    """The host-key problems of an SSH endpoint and of its jump host (a Docker host, or a
    cluster node the platform reaches): each pins a key unless it opts in to trust on first use."""
    _, host, port = ssh
    keyscan = f"ssh-keyscan -p {port} {host}"
    problems = []
    hop = proxy.ssh if proxy is not None else None
    if proxy is not None and hop is not None:
        p_user, p_host, p_port = hop
        problems += _host_key_problems(
            f"{path}.proxy",
            hop,
            proxy.host_key,
            proxy.trust_on_first_use,
            f"ssh-keyscan -p {p_port} {p_host}",
        )
        # Behind a jump host, ask from there: the host may be unreachable from here.
        keyscan = f"ssh -p {p_port} {p_user}@{p_host} {keyscan}"
    return _host_key_problems(path, ssh, host_key, tofu, keyscan) + problems


class HostConfig(Model):
    """A Docker host: `local` (this machine's socket) or `user@host[:port]` over SSH."""

    name: Label = Field(description="Short name services refer to in `host:`.")
    address: str = Field(default="local", description="`local`, or `user@host[:port]` for SSH.")
    private_key_secret: SecretKey | None = Field(
        default=None,
        description="Config key holding the SSH private key (set with --secret); "
        "without it the SSH agent is used.",
    )
    host_key: SshHostKey | None = Field(default=None, description=HOST_KEY_HELP)
    trust_on_first_use: bool = Field(default=False, description=TOFU_HELP)
    proxy: SshProxyConfig | None = Field(
        default=None,
        description="Jump host (bastion) to reach this host through, for the bootstrap command "
        "and the Docker provider alike.",
    )
    root: AbsolutePath = Field(
        default="/opt/homelab", description="Root directory with config/, data/, data/secrets/."
    )
    install_docker: bool = Field(
        default=True, description="Install Docker from the distribution's packages if missing."
    )
    images_from_bundle: bool = Field(
        default=False,
        description="The host takes its images from a release bundle (`python -m automation "
        "setup`, for a host without registry access): the program finds each image by its "
        "`name:tag`, which the bundle restores and `setup` checked to be the released image, "
        "instead of its `@sha256:` digest, which `docker load` does not keep.",
    )
    lan_address: BindAddress | None = Field(
        default=None,
        description="The host's address on your LAN: its routed names resolve to it (dns.resolver). "
        "Default: the SSH address when it is an IP address.",
    )
    public_address: BindAddress | None = Field(
        default=None,
        description="The host's address on the internet: the names in dns.public resolve to it.",
    )
    scrape_address: Address | None = Field(
        default=None,
        description="Address other hosts' Prometheus uses to reach this host's exporters "
        "(defaults to the SSH host name). When it is an IP address, their ports are published "
        "on it alone, not on every interface of the host.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "local":
            return value
        if not _SSH_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be 'local' or 'user@host[:port]'")
        return ssh_address(value)

    @model_validator(mode="after")
    def _check(self) -> HostConfig:
        if self.is_local:
            for key in ("private_key_secret", "host_key", "proxy"):
                if getattr(self, key):
                    raise ValueError(f"{key.replace('_', '-')} is only for SSH hosts")
            if self.trust_on_first_use:
                raise ValueError("trust-on-first-use is only for SSH hosts")
        return self

    def problems(self, path: str) -> list[tuple[str, str]]:
        """Host keys: each SSH endpoint pins one, unless it opts in to trust on first use."""
        ssh = self.ssh
        if ssh is None:
            return []
        return ssh_endpoint_problems(path, ssh, self.host_key, self.trust_on_first_use, self.proxy)

    @property
    def is_local(self) -> bool:
        return self.address == "local"

    @property
    def ssh(self) -> tuple[str, str, int] | None:
        return ssh_parts(self.address)

    @property
    def lan(self) -> str | None:
        """The address the host's routed names resolve to on the LAN, when known."""
        if self.lan_address:
            return self.lan_address
        ssh = self.ssh
        if ssh is None:
            return None
        try:
            return str(ipaddress.ip_address(ssh[1].strip("[]")))
        except ValueError:
            return None

    @property
    def reachable_address(self) -> str | None:
        if self.scrape_address:
            return self.scrape_address
        ssh = self.ssh
        return ssh[1] if ssh else None
