"""A real OpenSSH server for tests and benchmarks: Debian's `openssh-server` started on a
loopback port from a temporary directory (its own host key, authorized keys, config, log),
and a Docker API call made the way the Docker provider makes it over SSH.

`.ci/run` installs openssh-server; where sshd cannot start (not root, no sshd, no Docker
engine answering) `unavailable()` says why and the callers skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# What the Docker client sends first; `Connection: close` makes the daemon end the stream.
PING = b"GET /_ping HTTP/1.1\r\nHost: docker.example.com\r\nConnection: close\r\n\r\n"


def unavailable() -> str | None:
    """Why a real sshd with a Docker engine behind it cannot run here, or None."""
    if not Path(SSHD).exists():
        return "sshd is not installed (make test installs it: apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client (ssh, ssh-keygen) is not installed"
    if os.geteuid() != 0:
        return "sshd must run as root to log a user in (privilege separation)"
    if shutil.which("docker") is None:
        return "no docker CLI for `docker system dial-stdio` on the SSH side"
    probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True)
    if probe.returncode != 0:
        return "no Docker engine answers (scripts/start-dockerd.sh starts one)"
    return None


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key pair: (private key file, `ssh-ed25519 <base64>` public key)."""
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path, " ".join(path.with_suffix(".pub").read_text().split()[:2])


@dataclass
class Sshd:
    """One sshd on 127.0.0.1 that lets `root` in with the given public keys only."""

    folder: Path
    authorized: list[str]
    log_level: str = "VERBOSE"
    extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    host_key: str = ""  # `ssh-ed25519 <base64>` this server presents
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        path = self.folder / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Sshd:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file, self.host_key = keypair(self.folder, "host_key")
        authorized = self.folder / "authorized_keys"
        authorized.write_text("".join(k + "\n" for k in self.authorized))
        authorized.chmod(0o600)
        # The privilege separation directory Debian's sshd chroots into.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            settings = {
                "ListenAddress": "127.0.0.1",
                "Port": str(self.port),
                "HostKey": str(key_file),
                "AuthorizedKeysFile": str(authorized),
                "PidFile": "none",
                "UsePAM": "no",
                "PasswordAuthentication": "no",
                "KbdInteractiveAuthentication": "no",
                "PermitRootLogin": "prohibit-password",
                "StrictModes": "no",  # the temporary directory is not root's home
                "AllowTcpForwarding": "yes",
                "LogLevel": self.log_level,
                # bash started by sshd reads ~/.bashrc unless it looks nested (SHLVL); root's
                # may be slow (pyenv init: ~0.4 s measured here), and it is not what we test.
                "SetEnv": "SHLVL=1",
                **self.extra,
            }
            config = self.folder / "sshd_config"
            config.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
            log = (self.folder / "sshd.log").open("ab")
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
            log.close()
            if self._wait_listening():
                return self
            self.stop()
        raise RuntimeError(f"sshd did not start:\n{self.log}")

    def _wait_listening(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if f"Server listening on 127.0.0.1 port {self.port}" in self.log:
                return True
            time.sleep(0.05)
        return False

    def connections(self) -> int:
        """TCP connections accepted so far (sshd logs each at VERBOSE and above)."""
        return self.log.count("Connection from 127.0.0.1")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Call:
    returncode: int
    response: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return (
            self.returncode == 0
            and self.response.startswith(b"HTTP/1.1 200 ")
            and self.response.endswith(b"OK")
        )


def hermetic_env() -> dict[str, str]:
    """The environment without an SSH agent, so only the configured key files count."""
    return {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID")}


def docker_ping(argv: list[str], timeout: float = 60) -> Call:
    """Run the transport command `argv` and send `GET /_ping` over its stdin/stdout, as the
    Docker client does over `ssh ... docker system dial-stdio`; read the whole response."""
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=hermetic_env()
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    response = b""
    try:
        process.stdin.write(PING)
        process.stdin.flush()
        response = _read_response(process, timeout)
    except BrokenPipeError:
        pass  # ssh gave up before reading the request (a refused host key)
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout)
    return Call(process.returncode, response, b"".join(stderr).decode(errors="replace"))


def _read_response(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Headers and a Content-Length body; stops at end of stream (ssh exited)."""
    stdout = process.stdout
    assert stdout is not None
    result: list[bytes] = []

    def read() -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = stdout.readline()
            if not line:
                break
            head += line
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        result.append(head + (stdout.read(length) if length else b""))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else b""


def close_master(control_path: str) -> None:
    """End the shared connection listening on `control_path`, if any (`ssh -O exit`)."""
    if Path(control_path).exists():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={control_path}", "-O", "exit", "homelab-test"],
            capture_output=True,
            timeout=30,
        )


def without_options(opts: list[str], *names: str) -> list[str]:
    """`opts` without the `-o NAME=value` pairs of `names`."""
    out: list[str] = []
    i = 0
    while i < len(opts):
        if opts[i] == "-o" and i + 1 < len(opts) and opts[i + 1].partition("=")[0] in names:
            i += 2
            continue
        out.append(opts[i])
        i += 1
    return out


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll `condition` (e.g. a line sshd logs after the client exited) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
