"""Backup and restore of one host's stack volumes with a one-off Volumerize container
(the `backup.yml`/`restore.yml` playbooks).

The owning containers are stopped first and started again afterwards, so databases are
copied (or overwritten) consistently; a restore refuses to run if any of them could not be
stopped. Secrets (the backup passphrase, S3 keys) are passed from this process's environment
by name (`-e PASSPHRASE`), never on the command line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from components.docker.host import HostArgs, SshTarget
from components.homelab.backup import SOURCE, backup_set
from components.homelab.images import IMAGES
from stacks.config import StackConfig
from stacks.plan import build_plan

Mode = Literal["backup", "restore", "restore-dry-run"]
COMMANDS: dict[str, tuple[str, ...]] = {
    "backup": ("backup",),
    "restore": ("restore",),
    "restore-dry-run": ("restore", "--dry-run"),
}


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class VolumerizeRun:
    """Everything `docker run` needs, as data (what the tests check)."""

    docker_host: str
    image: str
    mode: Mode
    volumes: tuple[tuple[str, str, bool], ...]  # (docker volume, mount path, read-only)
    binds: tuple[tuple[str, str], ...]  # (host path, container path)
    env: dict[str, str]
    pass_env: tuple[str, ...]  # names whose values come from our environment
    stop: tuple[str, ...]  # containers to stop around the run
    name: str = "homelab-volumerize-run"
    command: tuple[str, ...] = field(default=())

    def docker_args(self) -> list[str]:
        args = ["run", "--rm", "--name", self.name]
        for volume, path, read_only in self.volumes:
            args += ["-v", f"{volume}:{path}{':ro' if read_only else ''}"]
        for source, target in self.binds:
            args += ["-v", f"{source}:{target}"]
        for key, value in sorted(self.env.items()):
            args += ["-e", f"{key}={value}"]
        for key in self.pass_env:
            args += ["-e", key]
        return [*args, self.image, *self.command]


def run_spec(config: StackConfig, host: str, mode: Mode) -> VolumerizeRun:
    """The one-off Volumerize run over every stateful volume of `host`."""
    names = [h.name for h in config.hosts]
    if host not in names:
        raise BackupError(f"unknown host {host!r} (hosts: {', '.join(names)})")
    host_cfg = config.host(host)
    plan = build_plan(config)
    entries = backup_set(plan.on_host(host), config.name)
    if not entries:
        raise BackupError(f"host {host!r} has no stateful volumes")
    ssh = host_cfg.ssh
    docker_host = HostArgs(host, SshTarget(*ssh) if ssh else None).docker_host
    target = config.backup.target or f"{host_cfg.root}/backups"
    s3 = target.startswith("s3://")
    env = {"VOLUMERIZE_SOURCE": SOURCE, "VOLUMERIZE_TARGET": target if s3 else "file:///backup"}
    pass_env = ("PASSPHRASE", *(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if s3 else ()))
    return VolumerizeRun(
        docker_host=docker_host,
        image=config.backup.image or IMAGES["volumerize"],
        mode=mode,
        # Backups read the volumes; only a real restore writes them.
        volumes=tuple((e.volume, f"{SOURCE}/{e.volume}", mode != "restore") for e in entries),
        binds=() if s3 else ((target, "/backup"),),
        env=env,
        pass_env=pass_env,
        stop=tuple(sorted({e.container for e in entries})),
        command=COMMANDS[mode],
    )


Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _default_runner(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def execute(spec: VolumerizeRun, docker: str = "docker", runner: Runner = _default_runner) -> None:
    """Stop the owners, run Volumerize, start the owners again (also when the run fails)."""
    base = [docker, "-H", spec.docker_host]
    stopped: list[str] = []
    failed: list[str] = []
    for container in spec.stop:
        if runner([*base, "stop", container]).returncode == 0:
            stopped.append(container)
        else:
            failed.append(container)
    try:
        if failed and spec.mode == "restore":
            raise BackupError(
                f"refusing to restore: could not stop {', '.join(failed)}; their data would change under them"
            )
        result = runner([*base, *spec.docker_args()])
        if result.returncode != 0:
            raise BackupError(
                f"volumerize {spec.mode} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
    finally:
        for container in stopped:
            runner([*base, "start", container])
