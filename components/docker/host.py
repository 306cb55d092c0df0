"""A Docker host: prepared over SSH (or the local daemon), with its own provider and network.

Every resource that runs on a host is created with `host.opts(...)`, which carries the
host's Docker provider, so nothing can land on the wrong daemon. Images are pulled once
per host and shared by the services on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.docker.reference import tagged_name
from components.docker.spec import LogLimits
from components.docker.ssh import (
    CONTROL_NAME_LENGTH,
    SOCKET_PATH_MAX,
    DockerSshFiles,
    SshTarget,
    control_path,
    docker_ssh_opts,
    jump_config,
    known_hosts_line,
)
from components.templating import render

__all__ = ["DockerHost", "HostArgs", "JumpHost", "SshTarget", "write_private_key"]


@dataclass(frozen=True)
class JumpHost:
    """A jump host (bastion) an SSH host is reached through."""

    ssh: SshTarget
    # `<type> <base64>`; None only with trust_on_first_use.
    host_key: str | None = None
    trust_on_first_use: bool = False
    # Secret PEM; without it the SSH agent is used.
    private_key: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class HostArgs:
    """What a host is. `ssh=None` means the local Docker socket."""

    name: str
    ssh: SshTarget | None
    root_dir: str = "/opt/homelab"
    install_docker: bool = True
    # The daemon's default log settings, written to a host whose Docker has no daemon.json.
    logs: LogLimits = field(default_factory=LogLimits)
    # Images come from a release bundle: found by `name:tag`, never by digest (see image()).
    images_from_bundle: bool = False
    # Secret PEM; without it the SSH agent (SSH_AUTH_SOCK) is used.
    private_key: pulumi.Input[str] | None = None
    # The key the host must present, `<type> <base64>`. None only with trust_on_first_use.
    host_key: str | None = None
    trust_on_first_use: bool = False
    proxy: JumpHost | None = None
    # Where the Docker provider's ssh finds its files: key (written 0600 from the secret),
    # known_hosts, jump host config, and the shared connections' sockets (cm/).
    key_dir: str = "~/.ssh/homelab"
    # Shared SSH connections are per stack: nothing is reused across stacks.
    stack: str = ""
    network_name: str = "homelab"
    labels: dict[str, str] = field(default_factory=dict)
    extra_dirs: tuple[str, ...] = ()

    @property
    def docker_host(self) -> str:
        if self.ssh is None:
            return "unix:///var/run/docker.sock"
        return f"ssh://{self.ssh.user}@{self.ssh.url_host}:{self.ssh.port}"

    def settings_hash(self) -> str:
        """A digest of everything the bootstrap depends on; its trigger."""
        payload = {
            "ssh": None if self.ssh is None else vars(self.ssh),
            "root": self.root_dir,
            "install_docker": self.install_docker,
            "extra_dirs": list(self.extra_dirs),
            "script": self.bootstrap_script(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def bootstrap_script(self) -> str:
        return render(
            __file__,
            "bootstrap.sh.j2",
            root=self.root_dir,
            user=self.ssh.user if self.ssh else "root",
            install_docker=self.install_docker,
            extra_dirs=self.extra_dirs,
            daemon_json=self.logs.daemon_json(),
            log_driver=self.logs.driver,
        )

    def check_host_keys(self) -> None:
        """No SSH endpoint without a pinned key unless it opted in to trust on first use."""
        endpoints = [(self.name, self.host_key, self.trust_on_first_use)]
        if self.proxy is not None:
            endpoints.append((f"{self.name} (jump host)", self.proxy.host_key, self.proxy.trust_on_first_use))
        for who, key, tofu in endpoints:
            if key is None and not tofu:
                raise ValueError(f"host {who}: no host key, and trust on first use is off")


def _private_folder(key_dir: str) -> Path:
    folder = Path(os.path.expanduser(key_dir)).absolute()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def key_file(key_dir: str, name: str) -> str:
    return str(Path(os.path.expanduser(key_dir)).absolute() / f"{name}.key")


def write_private_key(key_dir: str, name: str, pem: str) -> str:
    """Write `pem` to `<key_dir>/<name>.key` with mode 0600 and return the path.

    The Docker provider's ssh client needs a file; the key itself stays a Pulumi secret
    and only the path reaches the provider's inputs.
    """
    _private_folder(key_dir)
    path = Path(key_file(key_dir, name))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through os.open
    with os.fdopen(fd, "w") as handle:
        handle.write(pem if pem.endswith("\n") else pem + "\n")
    return str(path)


def image_resource_name(host: str, ref: str) -> str:
    """The Pulumi name of image `ref` pulled on `host` (the config checks reject collisions)."""
    safe = ref.replace("/", "-").replace(":", "-").replace("@", "-")
    return f"{host}-image-{safe}"


def write_file(key_dir: str, filename: str, text: str) -> Path:
    """Write a (not secret) ssh file next to the keys, replacing it in one step."""
    folder = _private_folder(key_dir)
    path = folder / filename
    temporary = folder / f".{filename}.{os.getpid()}"
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)  # atomic: a concurrent ssh reads the old or the new file
    return path


def remote_connection(args: HostArgs) -> command.remote.ConnectionArgs:
    """The bootstrap command's SSH connection: the pinned host key (`hostKey`) and the jump
    host (`proxy`, with its own `hostKey`), keys as secrets (pulumi-command v1.2.1 schema)."""
    assert args.ssh is not None
    proxy = None
    if args.proxy is not None:
        proxy = command.remote.ProxyConnectionArgs(
            host=args.proxy.ssh.hostname,
            port=args.proxy.ssh.port,
            user=args.proxy.ssh.user,
            private_key=pulumi.Output.secret(args.proxy.private_key) if args.proxy.private_key else None,
            host_key=args.proxy.host_key,
        )
    return command.remote.ConnectionArgs(
        host=args.ssh.hostname,
        port=args.ssh.port,
        user=args.ssh.user,
        private_key=pulumi.Output.secret(args.private_key) if args.private_key else None,
        host_key=args.host_key,
        proxy=proxy,
    )


def write_keys(args: HostArgs) -> list[pulumi.Output[str]]:
    """Write the host's and its jump host's private keys (once known); their paths."""
    keys = [(args.name, args.private_key)]
    if args.proxy is not None:
        keys.append((f"{args.name}.proxy", args.proxy.private_key))
    return [
        pulumi.Output.from_input(pem).apply(functools.partial(write_private_key, args.key_dir, stem))
        for stem, pem in keys
        if pem is not None
    ]


# Short enough for a socket path anywhere; /tmp exists on Linux and macOS alike.
SHORT_SOCKET_BASE = Path("/tmp")


def control_folder(key_dir: str) -> Path:
    """Where the shared connections' sockets go: `<key_dir>/cm`, or, when a socket path there
    would be too long, a private directory under /tmp (checked to be ours and closed to
    others, since whoever can reach a socket can use the connection)."""
    folder = _private_folder(key_dir) / "cm"
    if len(str(folder)) + 1 + CONTROL_NAME_LENGTH > SOCKET_PATH_MAX:
        folder = SHORT_SOCKET_BASE / f"homelab-ssh-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ValueError(
            f"{folder} must be a directory of yours that only you can open (mode 0700) for "
            "the SSH control sockets"
        )
    return folder


def docker_ssh_files(args: HostArgs) -> DockerSshFiles:
    """Write the known_hosts and jump host files of `args` and say where everything is
    (the key files are written by `write_keys`, once the secrets are known)."""
    assert args.ssh is not None
    identity = key_file(args.key_dir, args.name) if args.private_key is not None else None
    jump_identity = None
    if args.proxy is not None and args.proxy.private_key is not None:
        jump_identity = key_file(args.key_dir, f"{args.name}.proxy")
    args.check_host_keys()
    pinned = []
    if args.host_key is not None:
        pinned.append(known_hosts_line(args.ssh, args.host_key))
    if args.proxy is not None and args.proxy.host_key is not None:
        pinned.append(known_hosts_line(args.proxy.ssh, args.proxy.host_key))
    known_hosts = write_file(args.key_dir, f"{args.name}.known_hosts", "".join(pinned)) if pinned else None
    jump_config_path = alias = None
    if args.proxy is not None:
        alias = f"homelab-{args.name}-jump"
        text = jump_config(
            alias,
            args.proxy.ssh,
            known_hosts if args.proxy.host_key is not None else None,
            Path(jump_identity) if jump_identity else None,
            f"Written by homelab for host {args.name!r}: its jump host (components/docker/ssh.py).",
        )
        jump_config_path = write_file(args.key_dir, f"{args.name}.ssh_config", text)
    folder = control_folder(args.key_dir)
    connection = [repr(args.ssh), str(args.host_key)]
    if args.proxy is not None:
        connection += [repr(args.proxy.ssh), str(args.proxy.host_key)]
    return DockerSshFiles(
        known_hosts=known_hosts if args.host_key is not None else None,
        identity=Path(identity) if identity else None,
        jump_config=jump_config_path,
        jump_alias=alias,
        control_path=control_path(folder, args.stack, *connection),
    )


class DockerHost(pulumi.ComponentResource):
    """A host ready to run containers: bootstrap command, Docker provider, stack network."""

    provider: docker.Provider
    network: docker.Network
    bootstrap: command.remote.Command | None

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:docker:DockerHost", name, None, opts)
        self.args = args
        self._images: dict[str, docker.RemoteImage] = {}
        child = pulumi.ResourceOptions(parent=self)

        self.bootstrap = None
        ssh_opts: pulumi.Input[list[str]] | None = None
        if args.ssh is not None:
            args.check_host_keys()
            self.bootstrap = command.remote.Command(
                f"{name}-bootstrap",
                connection=remote_connection(args),
                create=args.bootstrap_script(),
                triggers=[args.settings_hash()],
                opts=child,
            )
            # The key paths are not secret: unwrap so they show in the provider inputs as paths,
            # available once the key files are written.
            written = pulumi.Output.unsecret(pulumi.Output.all(*write_keys(args)))
            opts_list = docker_ssh_opts(docker_ssh_files(args))
            ssh_opts = written.apply(lambda _: opts_list)
            for who, tofu in (
                (name, args.trust_on_first_use),
                (f"{name}'s jump host", bool(args.proxy and args.proxy.trust_on_first_use)),
            ):
                if tofu:
                    pulumi.log.warn(
                        f"{who}: trust on first use: the Docker provider accepts the key it sees "
                        "first (~/.ssh/known_hosts) and the bootstrap command checks none; pin it "
                        "with host-key",
                        resource=self,
                    )

        self.provider = docker.Provider(
            f"{name}-docker",
            host=args.docker_host,
            ssh_opts=ssh_opts,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bootstrap] if self.bootstrap else None),
        )
        self.network = docker.Network(
            f"{name}-network",
            name=args.network_name,
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in args.labels.items()],
            opts=self.opts(),
        )
        self.register_outputs({"docker_host": args.docker_host, "network": self.network.name})

    def opts(self, parent: pulumi.Resource | None = None, **kwargs: object) -> pulumi.ResourceOptions:
        """Resource options that put a resource on this host's Docker daemon."""
        return pulumi.ResourceOptions(
            parent=parent or self,
            provider=self.provider,
            **kwargs,  # type: ignore[arg-type]
        )

    def image(self, ref: str) -> docker.RemoteImage:
        """The pulled image `ref` on this host, created once and shared.

        On a host whose images come from a bundle it is named by its `name:tag`: a loaded
        image answers to no digest (components/docker/reference.py), and the provider pulls
        whatever `docker image inspect <name>` does not find (kreuzwerker/terraform-provider-docker
        v4.5.0 internal/provider/resource_docker_image_funcs.go: findImage).
        """
        if ref not in self._images:
            name = ref
            if self.args.images_from_bundle:
                name = tagged_name(ref) or ""
                if not name:
                    raise ValueError(f"host {self.args.name}: image {ref} has no tag to be found by")
            self._images[ref] = docker.RemoteImage(
                image_resource_name(self.args.name, ref),
                name=name,
                keep_locally=True,
                opts=self.opts(),
            )
        return self._images[ref]
