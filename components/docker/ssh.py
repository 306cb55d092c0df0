"""How a Docker host is reached over SSH: pinned host keys, an optional jump host and one
shared (multiplexed) connection, in the forms the two SSH clients of a host take them.

- The bootstrap is a pulumi-command remote Command (Go, golang.org/x/crypto/ssh). Its
  `connection.hostKey` is parsed with `ssh.ParseAuthorizedKey` and enforced with
  `ssh.FixedHostKey`, the host key algorithm limited to that key's type; without it the host's
  key is ignored (`ssh.InsecureIgnoreHostKey`). `connection.proxy` is the jump host, with its
  own `hostKey` (pulumi/pulumi-command v1.2.1, provider/pkg/provider/remote/connection.go and
  proxyConnection.go).
- The Docker provider runs OpenSSH: `ssh -l USER -p PORT <ssh_opts> -o ConnectTimeout=30 -T
  -- HOST docker system dial-stdio`, and speaks the Docker API over its stdin/stdout
  (docker/cli v28.5.2 cli/connhelper/connhelper.go and cli/connhelper/ssh/ssh.go, called by
  kreuzwerker/terraform-provider-docker v4.5.0 internal/provider/config.go, the upstream that
  pulumi-docker 5.x bridges). `dial_stdio_command` rebuilds that command line.

OpenSSH hands only `-l/-p/-J/-F/-v` to the ssh it starts for `ProxyJump`, never `-o` or `-i`
(openssh-portable V_9_2_P1 ssh.c), so the jump host's key file and known_hosts live in a small
ssh_config file given with `-F`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

# A UNIX socket path has room for 104 bytes on macOS/BSD (108 on Linux), and ssh first binds
# "<ControlPath>.<16 random characters>" (openssh-portable V_9_2_P1 mux.c, muxserver_listen).
SOCKET_PATH_MAX = 104 - 1 - 17
CONTROL_NAME_LENGTH = 16
# How long an idle shared connection stays up after the last client left (ssh_config(5)).
CONTROL_PERSIST = "60s"
# ssh reads these paths as tokens of one -o option or config line (whitespace splits them,
# `%` and `~` expand) and OpenSSH puts the -F path unquoted into a shell command for ProxyJump.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@:,=-]+")  # fullmatch: `$` also matches before a final newline


@dataclass(frozen=True)
class SshTarget:
    user: str
    hostname: str
    port: int = 22

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host: `host`, or `[host]:port` off port 22 (sshd(8))."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def url_host(self) -> str:
        return f"[{self.hostname}]" if ":" in self.hostname else self.hostname


def known_hosts_line(target: SshTarget, host_key: str) -> str:
    """The known_hosts line pinning `host_key` (`<type> <base64>`) for `target`."""
    return f"{target.known_hosts_name} {host_key}\n"


def safe_path(path: Path | str, what: str) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ValueError(
            f"{what} {text!r}: ssh takes it inside an option, so it may hold only letters, digits "
            "and ._/+@:,=- (set HOMELAB_SSH_KEY_DIR to such a directory)"
        )
    return text


def control_path(folder: Path, scope: str, *identity: str) -> Path:
    """Where the shared connection listens: one socket per stack (`scope`) and everything
    that identifies the connection (user, host, port, pinned key, jump host), so a changed
    setting never reuses a connection made under the old one. The name is a short digest:
    socket paths are short."""
    digest = hashlib.sha256("\0".join([scope, *identity]).encode()).hexdigest()[:CONTROL_NAME_LENGTH]
    path = folder / digest
    if len(str(path)) > SOCKET_PATH_MAX:
        raise ValueError(
            f"SSH control socket path {str(path)!r} is longer than {SOCKET_PATH_MAX} characters "
            "(UNIX socket paths are short)"
        )
    return path


@dataclass(frozen=True)
class DockerSshFiles:
    """The files behind the Docker provider's ssh options (all absolute paths)."""

    known_hosts: Path | None  # the pinned key; None trusts on first use (~/.ssh/known_hosts)
    identity: Path | None = None  # the private key; None leaves it to the SSH agent
    jump_config: Path | None = None  # ssh_config with the jump host (`jump_alias`)
    jump_alias: str | None = None
    control_path: Path | None = None  # None: a new connection per Docker API call


def host_key_options(known_hosts: Path | None) -> list[tuple[str, str]]:
    """Strict checking against our own known_hosts only, or OpenSSH's trust on first use."""
    if known_hosts is None:
        return [("StrictHostKeyChecking", "accept-new")]
    return [
        ("StrictHostKeyChecking", "yes"),
        ("UserKnownHostsFile", safe_path(known_hosts, "known_hosts file")),
        # Only the pinned key counts, not one an admin put in /etc/ssh/ssh_known_hosts.
        ("GlobalKnownHostsFile", "/dev/null"),
        ("CheckHostIP", "no"),
    ]


def docker_ssh_opts(files: DockerSshFiles) -> list[str]:
    """The Docker provider's `ssh_opts`: what its ssh needs besides user, port and host."""
    options: list[tuple[str, str]] = [("BatchMode", "yes"), *host_key_options(files.known_hosts)]
    if files.identity is not None:
        options += [("IdentityFile", safe_path(files.identity, "key file")), ("IdentitiesOnly", "yes")]
    if files.jump_alias is not None:
        options.append(("ProxyJump", files.jump_alias))
    if files.control_path is not None:
        options += [
            ("ControlMaster", "auto"),
            ("ControlPath", safe_path(files.control_path, "control socket")),
            ("ControlPersist", CONTROL_PERSIST),
        ]
    opts = []
    if files.jump_config is not None:
        opts += ["-F", safe_path(files.jump_config, "ssh config")]
    for key, value in options:
        opts += ["-o", f"{key}={value}"]
    return opts


def jump_config(
    alias: str, jump: SshTarget, known_hosts: Path | None, identity: Path | None, comment: str
) -> str:
    """An ssh_config file naming the jump host `alias`, for `-F` with `ProxyJump=<alias>`."""
    lines = [
        f"# {comment}",
        "# The ssh that ProxyJump starts reads only this file (-F), not the command's -o options.",
        f"Host {alias}",
        f"  HostName {jump.hostname}",
        f"  Port {jump.port}",
        f"  User {jump.user}",
        "  BatchMode yes",
    ]
    lines += [f"  {key} {value}" for key, value in host_key_options(known_hosts)]
    if identity is not None:
        lines += [f"  IdentityFile {safe_path(identity, 'key file')}", "  IdentitiesOnly yes"]
    return "\n".join(lines) + "\n"


def dial_stdio_command(docker_host: str, ssh_opts: list[str]) -> list[str]:
    """The command the Docker provider runs to reach `docker_host` (`ssh://user@host:port`).

    Rebuilt from docker/cli v28.5.2: cli/connhelper/connhelper.go appends
    `-o ConnectTimeout=30` (unless an option names ConnectTimeout) and `-T` to the options,
    and cli/connhelper/ssh/ssh.go puts `-l user -p port` before them and `-- host` and the
    remote command `docker system dial-stdio` after.
    """
    match = re.fullmatch(
        r"ssh://(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:/\s]+)(?::(?P<port>[0-9]+))?", docker_host
    )
    if match is None:
        raise ValueError(f"not an ssh:// Docker host: {docker_host!r}")
    flags = list(ssh_opts)
    if "ConnectTimeout" not in "".join(flags):
        flags.append("-o ConnectTimeout=30")
    if "-T" not in flags:
        flags.append("-T")
    args = ["ssh"]
    if match.group("user"):
        args += ["-l", match.group("user")]
    if match.group("port"):
        args += ["-p", match.group("port")]
    return [*args, *flags, "--", match.group("host").strip("[]"), "docker system dial-stdio"]
