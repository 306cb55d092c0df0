"""A Docker host: prepared over SSH (or the local daemon), with its own provider and network.

Every resource that runs on a host is created with `host.opts(...)`, which carries the
host's Docker provider, so nothing can land on the wrong daemon. Images are pulled once
per host and shared by the services on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.templating import render


@dataclass(frozen=True)
class SshTarget:
    user: str
    hostname: str
    port: int = 22


@dataclass(frozen=True)
class HostArgs:
    """What a host is. `ssh=None` means the local Docker socket."""

    name: str
    ssh: SshTarget | None
    root_dir: str = "/opt/homelab"
    install_docker: bool = True
    # Secret PEM; without it the SSH agent (SSH_AUTH_SOCK) is used.
    private_key: pulumi.Input[str] | None = None
    # Where the Docker provider's ssh client finds the key (written 0600 from the secret).
    key_dir: str = "~/.ssh/homelab"
    network_name: str = "homelab"
    labels: dict[str, str] = field(default_factory=dict)
    extra_dirs: tuple[str, ...] = ()

    @property
    def docker_host(self) -> str:
        if self.ssh is None:
            return "unix:///var/run/docker.sock"
        return f"ssh://{self.ssh.user}@{self.ssh.hostname}:{self.ssh.port}"

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
        )


def write_private_key(key_dir: str, name: str, pem: str) -> str:
    """Write `pem` to `<key_dir>/<name>.key` with mode 0600 and return the path.

    The Docker provider's ssh client needs a file; the key itself stays a Pulumi secret
    and only the path reaches the provider's inputs.
    """
    folder = Path(os.path.expanduser(key_dir))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through os.open
    with os.fdopen(fd, "w") as handle:
        handle.write(pem if pem.endswith("\n") else pem + "\n")
    return str(path)


def image_resource_name(host: str, ref: str) -> str:
    """The Pulumi name of image `ref` pulled on `host` (the config checks reject collisions)."""
    safe = ref.replace("/", "-").replace(":", "-").replace("@", "-")
    return f"{host}-image-{safe}"


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
            connection = command.remote.ConnectionArgs(
                host=args.ssh.hostname,
                port=args.ssh.port,
                user=args.ssh.user,
                private_key=pulumi.Output.secret(args.private_key) if args.private_key else None,
            )
            self.bootstrap = command.remote.Command(
                f"{name}-bootstrap",
                connection=connection,
                create=args.bootstrap_script(),
                triggers=[args.settings_hash()],
                opts=child,
            )
            base_opts = ["-o", "StrictHostKeyChecking=accept-new", "-p", str(args.ssh.port)]
            if args.private_key is not None:
                key_path = pulumi.Output.from_input(args.private_key).apply(
                    lambda pem: write_private_key(args.key_dir, name, pem)
                )
                # The path is not secret; unwrap so it shows in the provider inputs as a path.
                ssh_opts = pulumi.Output.unsecret(key_path).apply(lambda p: [*base_opts, "-i", p])
            else:
                ssh_opts = base_opts

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
        """The pulled image `ref` on this host, created once and shared."""
        if ref not in self._images:
            self._images[ref] = docker.RemoteImage(
                image_resource_name(self.args.name, ref),
                name=ref,
                keep_locally=True,
                opts=self.opts(),
            )
        return self._images[ref]
