"""How the command-line tool reaches a host's Docker engine: the way the Docker provider does.

A local host is the Docker socket. An SSH host is reached with exactly the command the
program gives the Docker provider (components/docker/ssh.py): `ssh <options> -- HOST docker
system dial-stdio`, with the pinned host key (strict checking against our own known_hosts),
the jump host and the shared connection. The docker CLI's own `ssh://` transport cannot do
that: the CLI builds its connection helper without ssh options (docker/cli v29.7.2,
cli/connhelper/connhelper.go: `GetConnectionHelper` passes no flags; only
`GetConnectionHelperWithSSHOpts`, which the provider uses, takes them), so it would trust
whatever `~/.ssh/known_hosts` says. Instead, `DialStdioBridge` listens on a private local
socket and runs that ssh command for each connection the docker CLI opens, copying bytes
both ways; the CLI is pointed at `unix://<that socket>`.

The private keys: the CLI has no stack secrets. It uses the key files the program wrote for
the provider in the key directory (`HOMELAB_SSH_KEY_DIR`, default `~/.ssh/homelab`,
`<host>.key` and `<host>.proxy.key`) when they are there, and the SSH agent otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from components.docker.host import docker_ssh_files, key_file
from components.docker.ssh import dial_stdio_command, docker_ssh_opts
from stacks.config import StackConfig
from stacks.homelab import HomelabSecrets, host_args

DEFAULT_KEY_DIR = "~/.ssh/homelab"
CHUNK = 1 << 16


def key_dir_from_env() -> str:
    """Where the program keeps its ssh files (the same variable `stacks/program.py` reads)."""
    return os.environ.get("HOMELAB_SSH_KEY_DIR", DEFAULT_KEY_DIR)


def dial_command(config: StackConfig, host: str, key_dir: str, stack: str) -> list[str] | None:
    """The ssh command the Docker provider of `host` runs, or None for a local host.

    Writes the pinned known_hosts (and the jump host's ssh config) into `key_dir`, as the
    program does; refuses (ValueError) a host with neither a host key nor trust on first use.
    """
    h = config.host(host)
    if h.ssh is None:
        return None
    # The keys are not known here: say which key files the program left in `key_dir`. The
    # provider's options name a key file only when a key was given, not its content.
    on_disk = HomelabSecrets()
    if Path(key_file(key_dir, host)).exists():
        on_disk.host_keys[host] = "(written by the program)"  # type: ignore[assignment]
    if h.proxy is not None and Path(key_file(key_dir, f"{host}.proxy")).exists():
        on_disk.proxy_keys[host] = "(written by the program)"  # type: ignore[assignment]
    args = host_args(config, h, on_disk, key_dir, stack)
    return dial_stdio_command(args.docker_host, docker_ssh_opts(docker_ssh_files(args)))


def _to_process(connection: socket.socket, stdin: IO[bytes]) -> None:
    """What the docker CLI sends goes to ssh; its end of file closes ssh's stdin."""
    with contextlib.suppress(OSError, ValueError):
        while data := connection.recv(CHUNK):
            stdin.write(data)
            stdin.flush()
    with contextlib.suppress(OSError, ValueError):
        stdin.close()


def _to_connection(stdout: IO[bytes], connection: socket.socket) -> None:
    """What the engine answers through ssh goes back to the docker CLI."""
    with contextlib.suppress(OSError, ValueError):
        while data := stdout.read1(CHUNK):  # type: ignore[attr-defined]
            connection.sendall(data)
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)


class DialStdioBridge:
    """A local socket whose every connection is one run of `command` (an ssh `dial-stdio`).

    Use as a context manager: the value is the `unix://` URL for `docker -H`. The socket lives
    in a new directory only this user can open; everything is removed on exit.
    """

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self._folder: Path | None = None
        self._server: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.stderr: list[bytes] = []

    def __enter__(self) -> str:
        self._folder = Path(tempfile.mkdtemp(prefix="homelab-docker-"))  # mode 0700
        path = self._folder / "docker.sock"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()
        return f"unix://{path}"

    def __exit__(self, *_: object) -> None:
        self._closed.set()
        if self._server is not None:
            # close() alone does not wake a thread blocked in accept() (Linux): shutdown does.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(
                    self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
                )
            except OSError as error:
                self.stderr.append(str(error).encode())
                connection.close()
                return
            with self._lock:
                self._processes.append(process)
            assert process.stdin is not None and process.stdout is not None
            upstream = threading.Thread(target=_to_process, args=(connection, process.stdin), daemon=True)
            upstream.start()
            _to_connection(process.stdout, connection)
            upstream.join(timeout=5)
            connection.close()
            process.wait()
            stderr.seek(0)
            message = stderr.read().strip()
            if message:
                self.stderr.append(message)
