"""Turns one `ServiceSpec` into Docker resources on its host.

This is the only place that knows how a spec becomes containers, volumes and generated
secrets, so every service (built-in or declared in config) gets the same treatment:
pinned image pulled once per host, stack labels, restart policy, health check, the
stack network with the container's name as DNS alias, secrets only as Pulumi secrets,
and stateful volumes that survive `pulumi destroy` unless the user opts out.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.docker.host import DockerHost
from components.docker.spec import (
    TMPFS_OPTIONS,
    ContainerSpec,
    FileUpload,
    LogLimits,
    Privileges,
    SecretRef,
    ServiceSpec,
    Volume,
)

DOCKER_SOCKET = "/var/run/docker.sock"
# The backup engine stops, for the length of an archive run, every running container whose
# label has the value its BACKUP_STOP_DURING_BACKUP_LABEL names, and starts it again after
# (offen/docker-volume-backup v2.48.2: cmd/backup/stop_restart.go, checkStopLabels).
STOP_DURING_BACKUP_LABEL = "docker-volume-backup.stop-during-backup"


@dataclass(frozen=True)
class DataSafety:
    """How stateful volumes are guarded. The defaults keep data through destroy."""

    retain_on_delete: bool = True
    protect: bool = False


@dataclass(frozen=True)
class ServiceArgs:
    spec: ServiceSpec
    prefix: str = "homelab"
    labels: dict[str, str] = field(default_factory=dict)
    shared_secrets: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    data_safety: DataSafety = DataSafety()
    logs: LogLimits = field(default_factory=lambda: LogLimits())
    # The image that stages files (ContainerSpec.stage_files): it needs /bin/sh, find, cp,
    # chmod and chown, and runs as root.
    stager_image: str | None = None


# Staged files: the stager gets each upload at STAGE + its path, and mounts the volume of each
# staged directory at FILES + that directory.
STAGE = "/stage"
FILES = "/files"


def stage_script(c: ContainerSpec) -> str:
    """What the stager runs: empty each volume (a file dropped from the config goes), copy the
    uploads in, then give each file its mode and owner (the provider's own upload owner is
    not relied on: issue 23). Directories stay root's, 0755."""
    lines = ["set -eu"]
    for d in c.staged_dirs():
        target = shlex.quote(FILES + d)
        lines += [
            f"find {target} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +",
            f"cp -a {shlex.quote(STAGE + d)}/. {target}/",
            f"find {target} -type d -exec chmod 0755 {{}} +",
        ]
    for u in c.uploads:
        path = shlex.quote(FILES + u.path)
        lines.append(f"chmod {u.mode or ('0755' if u.executable else '0644')} {path}")
        if u.owner is not None:
            lines.append(f"chown {u.owner} {path}")
    return "\n".join(lines)


# The stager runs as root and only chowns what it copied.
STAGER_PRIVILEGES = Privileges(capabilities=("CHOWN",))


def privilege_args(p: Privileges) -> dict[str, Any]:
    """A container's privilege inputs: every capability dropped but `p`'s, no new privileges,
    the read-only root and its tmpfs mounts."""
    return {
        "security_opts": p.security_opts() or None,
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(p.capabilities) or None),
        "read_only": p.read_only,
        "tmpfs": {path: TMPFS_OPTIONS for path in p.tmpfs} or None,
    }


def upload_content(upload: FileUpload, secrets: dict[str, pulumi.Output[str]]) -> pulumi.Input[str]:
    """A file's content: plain text, or its secret template filled (always a secret)."""
    if isinstance(upload.content, SecretRef):
        return resolve_secret(upload.content, secrets)
    return upload.content


def secret_names(ref: SecretRef) -> list[str]:
    """The `{placeholders}` of a secret template, in order, without repeats."""
    names: list[str] = []
    for _, field_name, _, _ in string.Formatter().parse(ref.template):
        if field_name is not None and field_name not in names:
            names.append(field_name)
    return names


def resolve_secret(ref: SecretRef, secrets: dict[str, pulumi.Output[str]]) -> pulumi.Output[str]:
    """Fill a secret template from generated secrets; the result is always secret."""
    missing = [n for n in secret_names(ref) if n not in secrets]
    if missing:
        raise ValueError(f"secret template {ref.template!r} names unknown secrets: {missing}")
    parts = {n: secrets[n] for n in secret_names(ref)}
    rendered = pulumi.Output.all(**parts).apply(lambda values: ref.template.format(**values))
    return pulumi.Output.secret(rendered)


def volume_name(prefix: str, spec: ServiceSpec, volume: Volume) -> str:
    """The Docker volume name: `<prefix>_<service>_<volume>`, without saying the service twice."""
    own = volume.name == spec.name or volume.name.startswith(f"{spec.name}-")
    name = f"{prefix}_{volume.name}" if own else f"{prefix}_{spec.name}_{volume.name}"
    return name.replace("-", "_")


def secret_resource_name(service: str, secret: str) -> str:
    """Pulumi names of a service's children. They are joined with '-', which names may
    contain too: the config checks (stacks/plan.py) reject the configs where two collide."""
    return f"{service}-{secret}"


def volume_resource_name(service: str, volume: str) -> str:
    return f"{service}-{volume}"


def container_resource_name(service: str, container: str) -> str:
    return f"{service}-{container}" if container != service else service


class Service(pulumi.ComponentResource):
    """A service of the homelab: its secrets, volumes and containers on one host."""

    containers: dict[str, docker.Container]
    volumes: dict[str, docker.Volume]
    secrets: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: ServiceArgs,
        host: DockerHost,
        opts: pulumi.ResourceOptions | None = None,
        after: list[pulumi.Resource] | None = None,
    ):
        """`after`: resources every container of this service is created after."""
        spec = args.spec
        super().__init__(f"homelab:services:{spec.kind}", name, None, opts)
        self.spec = spec
        self.secrets = {}
        for secret in spec.secrets:
            password = random.RandomPassword(
                secret_resource_name(name, secret.name),
                length=secret.length,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.secrets[secret.name] = pulumi.Output.secret(password.result)
        available = {**args.shared_secrets, **self.secrets}

        self.volumes = {}
        for container in spec.containers:
            for volume in container.volumes:
                if volume.name in self.volumes:  # shared by two containers of the service
                    continue
                self.volumes[volume.name] = docker.Volume(
                    volume_resource_name(name, volume.name),
                    name=volume_name(args.prefix, spec, volume),
                    labels=_labels(
                        {**args.labels, **volume_labels(volume, args.data_safety)},
                        spec,
                        docker.VolumeLabelArgs,
                    ),
                    opts=host.opts(
                        parent=self,
                        retain_on_delete=volume.stateful and args.data_safety.retain_on_delete,
                        protect=volume.stateful and args.data_safety.protect,
                    ),
                )

        self.containers = {}
        for container in spec.containers:
            needs: list[pulumi.Resource] = [self.containers[d] for d in container.depends_on]
            needs += after or []
            self.containers[container.name] = self._container(name, args, host, container, available, needs)

        # Values the user needs to finish the set-up by hand, as one secret.
        self.credentials: pulumi.Output[dict[str, str]] | None = None
        if spec.credentials:
            values = {
                key: resolve_secret(value, available) if isinstance(value, SecretRef) else value
                for key, value in spec.credentials.items()
            }
            self.credentials = pulumi.Output.secret(pulumi.Output.all(**values))

        self.register_outputs(
            {
                "containers": {k: c.name for k, c in self.containers.items()},
                "volumes": {k: v.name for k, v in self.volumes.items()},
            }
        )

    def _pid_mode(self, c: ContainerSpec) -> pulumi.Input[str] | None:
        """`container:<name>` names the container by its ID: a new one replaces this one too
        (its processes die with the namespace's first process)."""
        if c.pid_mode is None or c.pid_mode == "host":
            return c.pid_mode
        target = self.containers[c.pid_mode.removeprefix("container:")]
        return target.id.apply(lambda i: f"container:{i}")

    def _container(
        self,
        name: str,
        args: ServiceArgs,
        host: DockerHost,
        c: ContainerSpec,
        secrets: dict[str, pulumi.Output[str]],
        after: list[pulumi.Resource],
    ) -> docker.Container:
        spec = args.spec
        envs: list[pulumi.Input[str]] = []
        for key, value in sorted(c.env.items()):
            if isinstance(value, SecretRef):
                envs.append(resolve_secret(SecretRef(f"{key}={value.template}"), secrets))
            else:
                envs.append(f"{key}={value}")

        staged = c.stage_files and bool(c.uploads)
        uploads = [
            docker.ContainerUploadArgs(
                file=upload.path,
                content=upload_content(upload, secrets),
                executable=upload.executable,
                owner=str(upload.owner) if upload.owner is not None else None,
                permissions=upload.mode,
            )
            for upload in (() if staged else c.uploads)
        ]

        mounts = [
            docker.ContainerVolumeArgs(
                volume_name=self.volumes[v.name].name,
                container_path=v.path,
                read_only=v.read_only,
            )
            for v in c.volumes
        ]
        mounts += [
            docker.ContainerVolumeArgs(
                volume_name=v.docker_name, container_path=v.path, read_only=v.read_only
            )
            for v in c.external_volumes
        ]
        mounts += [
            docker.ContainerVolumeArgs(host_path=b.source, container_path=b.target, read_only=b.read_only)
            for b in c.binds
            if b.propagation is None
        ]
        # A bind with mount propagation needs the provider's `mounts` (its `volumes` have none).
        propagated = [
            docker.ContainerMountArgs(
                type="bind",
                source=b.source,
                target=b.target,
                read_only=b.read_only,
                bind_options=docker.ContainerMountBindOptionsArgs(propagation=b.propagation),
            )
            for b in c.binds
            if b.propagation is not None
        ]
        if c.docker_socket != "none":
            mounts.append(
                docker.ContainerVolumeArgs(
                    host_path=DOCKER_SOCKET,
                    container_path=DOCKER_SOCKET,
                    read_only=c.docker_socket == "ro",
                )
            )

        extra_labels: dict[str, pulumi.Input[str]] = {}
        if staged:
            volumes, stager = self._stager(name, args, host, c, secrets)
            mounts += [
                docker.ContainerVolumeArgs(volume_name=v.name, container_path=d, read_only=True)
                for d, v in zip(c.staged_dirs(), volumes, strict=True)
            ]
            after = [*after, stager]
            # A new stager run (new files) replaces the container, which then reads them.
            extra_labels["homelab.files-run"] = stager.id

        healthcheck = None
        if c.healthcheck is not None:
            hc = c.healthcheck
            healthcheck = docker.ContainerHealthcheckArgs(
                tests=list(hc.test),
                interval=hc.interval,
                timeout=hc.timeout,
                retries=hc.retries,
                start_period=hc.start_period,
            )

        return docker.Container(
            container_resource_name(name, c.name),
            name=f"{args.prefix}-{c.name}",
            hostname=c.name,
            image=host.image(c.image).image_id,
            envs=envs or None,
            command=list(c.command) or None,
            user=c.user,
            uploads=uploads or None,
            volumes=mounts or None,
            mounts=propagated or None,
            pid_mode=self._pid_mode(c),
            entrypoints=list(c.entrypoint) or None,
            devices=[
                docker.ContainerDeviceArgs(
                    host_path=d.host_path, container_path=d.container_path, permissions=d.permissions
                )
                for d in c.devices
            ]
            or None,
            ports=[
                docker.ContainerPortArgs(
                    internal=p.container_port, external=p.host_port, protocol=p.protocol, ip=p.host_ip
                )
                for p in c.ports
            ]
            or None,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=host.network.name, aliases=[c.name, *c.aliases])
            ],
            healthcheck=healthcheck,
            memory=c.memory_mb,
            stop_timeout=c.stop_timeout,
            **privilege_args(c.privileges),
            log_driver=args.logs.driver,
            log_opts=args.logs.options(),
            sysctls=c.sysctls or None,
            restart=spec.restart,
            must_run=True,
            labels=_labels(
                {**args.labels, **container_labels(spec, c), **extra_labels},
                spec,
                docker.ContainerLabelArgs,
                container=c.name,
            ),
            opts=host.opts(parent=self, depends_on=after or None),
        )

    def _stager(
        self,
        name: str,
        args: ServiceArgs,
        host: DockerHost,
        c: ContainerSpec,
        secrets: dict[str, pulumi.Output[str]],
    ) -> tuple[list[docker.Volume], docker.Container]:
        """The volumes of `c`'s staged directories, and the one-shot container that fills them:
        it runs to its end before `c` is created (`attach`), on no network, as root with only
        CHOWN, and is not restarted."""
        if args.stager_image is None:
            raise ValueError(f"{c.name}: staged files need ServiceArgs.stager_image")
        spec = args.spec
        volumes = [
            docker.Volume(
                f"{container_resource_name(name, c.name)}-files-{i}",
                name=f"{args.prefix}_{c.name}_files_{i}".replace("-", "_"),
                labels=_labels({**args.labels, "homelab.stateful": "false"}, spec, docker.VolumeLabelArgs),
                opts=host.opts(parent=self),
            )
            for i, _ in enumerate(c.staged_dirs())
        ]
        uploads = [
            docker.ContainerUploadArgs(
                file=STAGE + u.path, content=upload_content(u, secrets), executable=u.executable
            )
            for u in c.uploads
        ]
        stager = docker.Container(
            f"{container_resource_name(name, c.name)}-files",
            name=f"{args.prefix}-{c.name}-files",
            image=host.image(args.stager_image).image_id,
            entrypoints=["/bin/sh", "-c"],
            command=[stage_script(c)],
            user="0:0",
            uploads=uploads,
            volumes=[
                docker.ContainerVolumeArgs(volume_name=v.name, container_path=FILES + d)
                for d, v in zip(c.staged_dirs(), volumes, strict=True)
            ],
            network_mode="none",
            must_run=False,
            attach=True,
            restart="no",
            **privilege_args(STAGER_PRIVILEGES),
            log_driver=args.logs.driver,
            log_opts=args.logs.options(),
            labels=_labels(
                {**args.labels, "homelab.role": "files", "homelab.files-for": c.name},
                spec,
                docker.ContainerLabelArgs,
                container=f"{c.name}-files",
            ),
            opts=host.opts(parent=self, depends_on=volumes),
        )
        return volumes, stager


def volume_labels(volume: Volume, safety: DataSafety) -> dict[str, str]:
    """What the policy pack reads: the engine does not show analyzers `retain_on_delete`,
    so the volume says what the resource options say (a test keeps the two in step)."""
    if not volume.stateful:
        return {"homelab.stateful": "false"}
    keep = "protect" if safety.protect else ("retain" if safety.retain_on_delete else "delete")
    return {"homelab.stateful": "true", "homelab.data-safety": keep}


def container_labels(spec: ServiceSpec, c: ContainerSpec) -> dict[str, str]:
    """Metrics jobs declared for this container, for the policy pack (its own labels kept);
    the stop-during-backup label when the container writes a stateful volume of a host with
    backups (its value names that host's schedule, so no other schedule stops it)."""
    labels = dict(c.labels)
    if spec.backup_group is not None and any(v.stateful for v in c.volumes):
        labels[STOP_DURING_BACKUP_LABEL] = spec.backup_group
    jobs = sorted({m.job for m in spec.metrics if m.container == c.name})
    if jobs:
        labels["homelab.metrics"] = ",".join(jobs)
    secret = sorted(k for k, v in c.env.items() if isinstance(v, SecretRef))
    if secret:
        labels["homelab.secret-env"] = ",".join(secret)
    return labels


def _labels(  # type: ignore[no-untyped-def]
    base: Mapping[str, pulumi.Input[str]], spec: ServiceSpec, cls, container: str | None = None
) -> list:
    labels: dict[str, pulumi.Input[str]] = {**base, "homelab.service": spec.name, "homelab.host": spec.host}
    if container is not None:
        labels["homelab.container"] = container
    return [cls(label=k, value=v) for k, v in sorted(labels.items())]
