"""A backup before an upgrade: when a change replaces the container of a stateful service
(an image bump is the common case), the host's backup engine runs first, in the same `up`.

The backup is a pulumi-command `Command` (remote over the host's SSH connection, local for
the local daemon) whose `triggers` are the writing containers' images and a digest of their
settings. `triggers` is `replaceOnChanges` (pulumi-command v1.2.1,
provider/pkg/provider/common/inputs.go), so a new image re-runs `create`; the service's
containers depend on it, so the engine replaces them only after it succeeded, and not at all
when it failed. A container's `image` forces its replacement (kreuzwerker/
terraform-provider-docker v4.5.0, internal/provider/resource_docker_container.go,
`ForceNew: true`), which is why the image is the trigger.

The run is the engine's manual trigger, `docker exec <stack>-backup backup`
(offen/docker-volume-backup v2.48.2, docs/how-tos/manual-trigger.md), with this run's own
`BACKUP_FILENAME`: the engine reads its configuration from the environment for a manual run
(cmd/backup/command.go, `runAsCommand`, `configStrategyEnv`), so `docker exec -e` names the
archive. Its name starts with the host's archive prefix, so the engine's retention prunes it
like any other, and the restore lists it. The archive name is the command's stdout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pulumi
import pulumi_command as command

from components.docker.host import DockerHost, remote_connection
from components.docker.spec import ServiceSpec
from components.templating import render


@dataclass(frozen=True)
class PreUpgradeBackupArgs:
    spec: ServiceSpec
    prefix: str  # the stack name: containers are <prefix>-<name>
    backup_container: str  # the host's backup engine container
    archive_prefix: str  # the host's archive names start with this
    encrypted: bool = True  # archives get the engine's `.age` suffix

    @property
    def writers(self) -> tuple[str, ...]:
        """The Docker names of the containers that write a stateful volume."""
        return tuple(
            f"{self.prefix}-{c.name}" for c in self.spec.containers if any(v.stateful for v in c.volumes)
        )

    @property
    def triggers(self) -> list[str]:
        """The writers' images, then a digest of their whole declaration (env names, not secrets)."""
        writing = [c for c in self.spec.containers if any(v.stateful for v in c.volumes)]
        settings = json.dumps([asdict(c) for c in writing], sort_keys=True, default=str)
        return [*(c.image for c in writing), hashlib.sha256(settings.encode()).hexdigest()]

    def script(self) -> str:
        return render(
            __file__,
            "pre-upgrade-backup.sh.j2",
            service=self.spec.name,
            writers=self.writers,
            backup_container=self.backup_container,
            archive_prefix=f"{self.archive_prefix}pre-upgrade-{self.spec.name}-",
            suffix=".age" if self.encrypted else "",
        )


class PreUpgradeBackup(pulumi.ComponentResource):
    """Runs the host's backup before the service's containers are replaced."""

    run: command.local.Command | command.remote.Command
    archive: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PreUpgradeBackupArgs,
        host: DockerHost,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:backup:PreUpgradeBackup", name, None, opts)
        ssh = host.args.ssh
        child = pulumi.ResourceOptions(parent=self)
        if ssh is not None:
            # The bootstrap's connection: pinned host key, jump host, keys as secrets.
            self.run = command.remote.Command(
                f"{name}-run",
                connection=remote_connection(host.args),
                create=args.script(),
                triggers=args.triggers,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[host.bootstrap] if host.bootstrap else None
                ),
            )
        else:
            self.run = command.local.Command(
                f"{name}-run", create=args.script(), triggers=args.triggers, opts=child
            )
        self.archive = self.run.stdout
        self.register_outputs({"archive": self.archive})
