"""The service model: one declaration per service, from which the stack derives the rest.

A `ServiceSpec` says what a service runs (containers), how it is reached (routes), what
Prometheus scrapes (metrics), what must survive (stateful volumes) and which secrets it
needs. The proxy, TLS, monitoring, backup and landing-page code read only these fields,
so a new service is one new spec and nothing else.

Everything here is plain, immutable data: no Pulumi resources are created in this module.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

RouteMode = Literal["http", "tcp"]


@dataclass(frozen=True)
class Exposure:
    """Who reaches a TCP route: the proxy publishes its port on one host address only
    (`bind_address`) and refuses every source outside `allow_from` (CIDR networks)."""

    bind_address: str
    allow_from: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.allow_from:
            raise ValueError("an exposed TCP route needs at least one source network")


@dataclass(frozen=True)
class Route:
    """A public entry point: `fqdn` reaches `container:port` through the host's proxy."""

    fqdn: str
    container: str
    port: int
    mode: RouteMode = "http"
    # TCP routes only: the port the proxy listens on, published on the host, and who may connect.
    exposed_port: int | None = None
    exposure: Exposure | None = None
    # HTTP routes only: sign-in through the identity provider's forward auth at the proxy
    # ("one_factor" or "two_factor"), limited to `auth_groups` when any; None: none.
    auth: Literal["one_factor", "two_factor"] | None = None
    auth_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode == "tcp" and (self.exposed_port is None or self.exposure is None):
            raise ValueError(f"{self.fqdn}: a tcp route needs its exposed port, bind address and sources")


@dataclass(frozen=True)
class MetricsEndpoint:
    """A Prometheus target: `container:port/path`, published on `host_port` for remote scrapes."""

    job: str
    container: str
    port: int
    path: str = "/metrics"
    host_port: int | None = None


@dataclass(frozen=True)
class Volume:
    """A named Docker volume mounted at `path`. Stateful volumes are backed up and retained."""

    name: str
    path: str
    stateful: bool = True
    read_only: bool = False


@dataclass(frozen=True)
class ExternalVolume:
    """A volume owned by another service, mounted by its Docker name (the backup run)."""

    docker_name: str
    path: str
    read_only: bool = True


MountPropagation = Literal["private", "rprivate", "shared", "rshared", "slave", "rslave"]


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into a container (read-only unless said otherwise).

    `propagation` sets the bind's mount propagation (e.g. `rslave`, so mounts made on the
    host later show up inside); None keeps Docker's default.
    """

    source: str
    target: str
    read_only: bool = True
    propagation: MountPropagation | None = None


@dataclass(frozen=True)
class Device:
    """A host device node made available in the container (`docker run --device`)."""

    host_path: str
    container_path: str | None = None  # same path as on the host when None
    permissions: str = "rwm"  # cgroup permissions: read, write, mknod


@dataclass(frozen=True)
class SecretSpec:
    """A secret the service needs, generated with pulumi-random (letters and digits only)."""

    name: str
    length: int = 32


@dataclass(frozen=True)
class SecretRef:
    """A value built from secrets: `template` with `{secret-name}` placeholders.

    Names resolve first against the service's own `secrets`, then against the stack's
    shared secrets (for example `admin-password`). The result is always a Pulumi secret.
    """

    template: str


@dataclass(frozen=True)
class FileUpload:
    """A file written into the container at creation: plain text or a `SecretRef`.

    `owner` (a numeric uid) and `mode` (octal, e.g. "0400") make a file readable by one user
    only; None leaves the provider's defaults (root, 0644, or 0744 when `executable`).
    """

    path: str
    content: str | SecretRef
    executable: bool = False
    owner: int | None = None
    mode: str | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and not re.fullmatch(r"0[0-7]{3}", self.mode):
            raise ValueError(f"{self.path}: mode {self.mode!r} is not an octal mode like '0400'")


SECRETS_DIR = "/run/homelab"


def secret_file(name: str, secret: str, owner: int) -> FileUpload:
    """The secret `secret` as the file SECRETS_DIR/`name`, readable by `owner` (a uid) only."""
    return FileUpload(f"{SECRETS_DIR}/{name}", SecretRef("{" + secret + "}"), owner=owner, mode="0400")


@dataclass(frozen=True)
class HealthCheck:
    """Docker health check; `test` is the exec form (`["CMD", ...]` or `["CMD-SHELL", "..."]`)."""

    test: tuple[str, ...]
    interval: str = "30s"
    timeout: str = "5s"
    retries: int = 3
    start_period: str = "30s"


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on the host (`host_port`, on every address of the host or
    only on `host_ip`)."""

    container_port: int
    host_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str | None = None


DockerSocket = Literal["none", "ro", "rw"]

# Linux capabilities by their Docker names (capabilities(7) without the CAP_ prefix), the ones
# a container may keep; every other one is dropped.
CAPABILITIES = frozenset(
    {
        "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
        "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
        "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
        "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
        "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
        "WAKE_ALARM",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Privileges:
    """What a container may do beyond an unprivileged process.

    Every capability is dropped but `capabilities` (what the image's entrypoint needs, from its
    contract); `no_new_privileges` stops a setuid binary or file capability from raising them
    again; `read_only` makes the root filesystem read-only, with `tmpfs` the paths the image
    writes outside its volumes. Docker refuses an upload (the provider's copy into the
    container before it starts) into a read-only root filesystem, so such a container gets its
    files staged (ContainerSpec.stage_files, components/docker/service.py).
    """

    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = True
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.capabilities) - CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {unknown} (Docker names, e.g. CHOWN, without CAP_)")
        if self.tmpfs and not self.read_only:
            raise ValueError("tmpfs paths are for a read-only root filesystem")

    def security_opts(self) -> list[str]:
        """`no-new-privileges=true`: the `key=value` form (the `:` one is deprecated; moby
        daemon/daemon_unix.go parseSecurityOpt @ v28.5.2)."""
        return ["no-new-privileges=true"] if self.no_new_privileges else []


# tmpfs mounts: the options Docker itself adds (noexec, nosuid, nodev: moby daemon/oci_linux.go
# @ b985e2313a86, the tmpfs mounts of a container) plus a size bound, so a runaway writer fills
# its own mount and not the host's memory. tests/test_least_privilege.py runs them.
TMPFS_OPTIONS = "rw,noexec,nosuid,nodev,size=64m"


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a service. `name` is its DNS alias on the stack network."""

    name: str
    image: str
    env: Mapping[str, str | SecretRef] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    volumes: tuple[Volume, ...] = ()
    external_volumes: tuple[ExternalVolume, ...] = ()
    binds: tuple[BindMount, ...] = ()
    uploads: tuple[FileUpload, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    healthcheck: HealthCheck | None = None
    memory_mb: int | None = None
    docker_socket: DockerSocket = "none"
    user: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    # Host namespaces and devices, for agents that observe the host (node-exporter, cAdvisor);
    # "container:<name>": the PID namespace of another container of the same service (created
    # first, and this one replaced with it).
    pid_mode: str | None = None
    # Replaces the image's ENTRYPOINT (empty: the image's own).
    entrypoint: tuple[str, ...] = ()
    devices: tuple[Device, ...] = ()
    # Containers this one needs to be created after (same service only).
    depends_on: tuple[str, ...] = ()
    # More names the stack network resolves to this container, beside `name` (the proxy
    # answers for the host names it routes, so services reach each other by their URLs).
    aliases: tuple[str, ...] = ()
    # Seconds `docker stop` (and the backup engine, which stops containers the same way)
    # waits for a clean shutdown before SIGKILL; None keeps Docker's default of 10 s.
    stop_timeout: int | None = None
    # Extra container labels another program reads (e.g. the backup engine's command hooks).
    labels: Mapping[str, str] = field(default_factory=dict)
    # Capabilities kept, no-new-privileges, read-only root: from the image's contract.
    privileges: Privileges = field(default_factory=Privileges)
    # The uploads reach the container through volumes a one-shot stager fills (with each
    # file's owner and mode), mounted read-only where they belong: see `staged_dirs`.
    stage_files: bool = True

    def __post_init__(self) -> None:
        if self.pid_mode is not None and self.pid_mode != "host":
            target = self.pid_mode.removeprefix("container:")
            if not self.pid_mode.startswith("container:") or target not in self.depends_on:
                raise ValueError(
                    f"{self.name}: pid_mode {self.pid_mode!r}: 'host' or 'container:<a dependency>'"
                )
        if self.privileges.read_only and self.uploads and not self.stage_files:
            raise ValueError(
                f"{self.name}: a read-only root filesystem cannot take uploads "
                f"({', '.join(u.path for u in self.uploads)}); Docker refuses the copy: stage them"
            )
        for d in self.staged_dirs():
            if any(d == v.path or d.startswith(v.path.rstrip("/") + "/") for v in self.volumes):
                raise ValueError(f"{self.name}: staged files under {d} would sit in a volume")

    def staged_dirs(self) -> tuple[str, ...]:
        """The directories the staged uploads are mounted at: the uploads' own directories,
        the outermost of nested ones. Each is one volume, mounted read-only over what the
        image has there."""
        if not self.stage_files:
            return ()
        out: list[str] = []
        for d in sorted({posixpath.dirname(u.path) for u in self.uploads}):
            if not any(d == o or d.startswith(o + "/") for o in out):
                out.append(d)
        return tuple(out)


@dataclass(frozen=True)
class ServiceSpec:
    """Everything the stack needs to know about one service on one host."""

    name: str
    kind: str  # the component type, e.g. "Grafana"; fixed per kind of service
    host: str
    containers: tuple[ContainerSpec, ...]
    routes: tuple[Route, ...] = ()
    metrics: tuple[MetricsEndpoint, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()
    restart: str = "unless-stopped"
    title: str = ""  # human name for the landing page
    # What the user needs to finish setting the service up by hand (e.g. the database a web
    # installer asks for); exported as one secret stack output, `<name>-credentials`.
    credentials: Mapping[str, str | SecretRef] = field(default_factory=dict)
    # Set by the plan, never by a service module: the backup schedule of the service's host.
    # Each container with a stateful volume is stopped by that schedule (and only by it).
    backup_group: str | None = None

    @property
    def stateful_volumes(self) -> tuple[tuple[ContainerSpec, Volume], ...]:
        return tuple((c, v) for c in self.containers for v in c.volumes if v.stateful)

    def url_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.mode == "http")


@dataclass(frozen=True)
class Basics:
    """The settings every built-in service takes: where it runs and with what image.

    `fqdn` is the public host name of a routed service (None when it is not routed).
    """

    host: str
    image: str
    fqdn: str | None = None
    memory_mb: int | None = None
    restart: str = "unless-stopped"
    name: str = ""
    scheme: str = "https"  # "http" when the stack runs without TLS

    @property
    def url(self) -> str | None:
        return f"{self.scheme}://{self.fqdn}/" if self.fqdn else None

    def memory(self, default: int) -> int:
        return self.memory_mb if self.memory_mb is not None else default


def http_check(url: str, tool: Literal["wget", "curl"] = "wget", any_status: bool = False) -> HealthCheck:
    """A health check that fetches `url` inside the container with the tool the image has.

    The URL names the loopback address, never `localhost`: BusyBox wget tries `::1` first
    and does not fall back, so a server bound to IPv4 only would never look healthy.
    `any_status` (curl only): any HTTP answer is healthy, a 403 or 404 included, for
    servers whose content the user provides.
    """
    host = urlsplit(url).hostname
    if host == "localhost":
        raise ValueError(f"{url}: probe 127.0.0.1, not localhost (which may resolve to ::1)")
    if tool == "wget":
        if any_status:
            raise ValueError("BusyBox wget cannot accept every HTTP status; use curl")
        return HealthCheck(test=("CMD", "wget", "-q", "--spider", url))
    return HealthCheck(test=("CMD", "curl", "-sS" if any_status else "-fsS", "-o", "/dev/null", url))


@dataclass(frozen=True)
class LogLimits:
    """Every container's log driver and rotation (Docker's option names: `max-size`,
    `max-file`; docs.docker.com/engine/logging/drivers/local.md). The defaults are the
    `local` driver's own: 5 files of 20 MB, compressed."""

    driver: str = "local"
    max_size: str = "20m"
    max_file: int = 5

    def options(self) -> dict[str, str]:
        return {"max-size": self.max_size, "max-file": str(self.max_file)}

    def daemon_json(self) -> str:
        """The same as the Docker daemon's default for every other container (`log-driver`,
        `log-opts` in daemon.json, docs.docker.com/engine/logging/drivers/local.md)."""
        return json.dumps({"log-driver": self.driver, "log-opts": self.options()}, sort_keys=True)
