"""Trust in a private CA, for everything that talks to Harbor over TLS.

- The machine running Pulumi: Pulumi's Harbor provider is a Go program with no CA setting
  (goharbor/terraform-provider-harbor client/client.go @ v3.10.21: Go's default transport);
  it verifies with Go's system roots, which on Linux are the first readable file of a fixed
  list (or $SSL_CERT_FILE) plus every file in a fixed list of directories (or the
  colon-separated $SSL_CERT_DIR): golang/go src/crypto/x509/root_unix.go, root_linux.go.
  `machine_trusts` reads the same places; the program refuses to go on when the CA is not
  there, with instructions (`untrusted_ca_message`).
- The cluster's nodes (their container runtime pulls the app images): `NodeTrust` installs the
  CA over SSH with pulumi-command (or the config check says what to install where).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

from components.templating import render

CA_NAME = "homelab-platform-ca"

# golang/go src/crypto/x509/root_linux.go: "Possible certificate files; stop after finding one."
GO_CERT_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
# ... "Possible directories with certificate files; all will be read."
GO_CERT_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs")

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def certificate_bodies(text: str) -> set[str]:
    """The base64 bodies of the PEM certificates in `text`, whitespace removed."""
    return {re.sub(r"\s+", "", body) for body in _PEM.findall(text)}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def go_system_roots(
    env: Mapping[str, str],
    files: Iterable[str] = GO_CERT_FILES,
    dirs: Iterable[str] = GO_CERT_DIRS,
) -> set[str]:
    """The certificates Go's crypto/x509 loads as system roots on Linux (root_unix.go)."""
    roots: set[str] = set()
    candidates = [env["SSL_CERT_FILE"]] if env.get("SSL_CERT_FILE") else list(files)
    for path in candidates:
        text = _read(path)
        if text is not None:
            roots |= certificate_bodies(text)
            break
    directories = env["SSL_CERT_DIR"].split(":") if env.get("SSL_CERT_DIR") else list(dirs)
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            text = _read(os.path.join(directory, name))
            if text is not None:
                roots |= certificate_bodies(text)
    return roots


def machine_trusts(
    ca_pem: str, env: Mapping[str, str] | None = None, platform: str | None = None
) -> bool | None:
    """Whether Go programs on this machine (the Harbor provider) trust `ca_pem`; None where Go
    uses the operating system's verifier instead of files (macOS, Windows) and we cannot tell."""
    if (platform or sys.platform) not in ("linux",):
        return None
    bodies = certificate_bodies(ca_pem)
    if not bodies:
        return False
    return bodies <= go_system_roots(os.environ if env is None else env)


def untrusted_ca_message(harbor_url: str, where: str) -> str:
    return (
        f"Harbor ({harbor_url}) will serve a certificate signed by the private CA {where}, and "
        "Pulumi's Harbor provider verifies it with this machine's trust store (it has no CA "
        "setting). Install the CA on the machine running Pulumi, then run again: save it as "
        f"/usr/local/share/ca-certificates/{CA_NAME}.crt and run `sudo update-ca-certificates` "
        "(Debian/Ubuntu; Fedora/RHEL: /etc/pki/ca-trust/source/anchors/ and `sudo update-ca-trust`), "
        "or point SSL_CERT_DIR at a directory holding it and /etc/ssl/certs for the pulumi command. "
        "Or use platform.tls.mode 'acme' (publicly trusted certificates)."
    )


@dataclass(frozen=True)
class NodeProxy:
    """A jump host the node is reached through."""

    user: str
    host: str
    port: int = 22
    private_key: pulumi.Input[str] | None = None  # secret; default: the SSH agent
    host_key: str | None = None  # `<type> <base64>`; None: trust on first use (opted in)


@dataclass(frozen=True)
class Node:
    user: str
    host: str
    port: int = 22
    runtime: str = "containerd"
    private_key: pulumi.Input[str] | None = None  # secret; default: the SSH agent
    host_key: str | None = None  # `<type> <base64>`; None: trust on first use (opted in)
    proxy: NodeProxy | None = None


def node_connection(node: Node) -> command.remote.ConnectionArgs:
    """The SSH connection to a node: its pinned host key (`hostKey`) and jump host (`proxy`,
    with its own `hostKey`), keys as secrets (pulumi-command v1.2.1 schema), as the Docker hosts
    have it (components/docker/host.py `remote_connection`)."""
    proxy = None
    if node.proxy is not None:
        hop = node.proxy
        proxy = command.remote.ProxyConnectionArgs(
            host=hop.host,
            port=hop.port,
            user=hop.user,
            private_key=pulumi.Output.secret(hop.private_key) if hop.private_key else None,
            host_key=hop.host_key,
        )
    return command.remote.ConnectionArgs(
        host=node.host,
        port=node.port,
        user=node.user,
        private_key=pulumi.Output.secret(node.private_key) if node.private_key else None,
        host_key=node.host_key,
        proxy=proxy,
    )


@dataclass(frozen=True)
class NodeTrustArgs:
    ca_cert_pem: pulumi.Input[str]
    registry_host: str
    nodes: tuple[Node, ...]


def registry_ca_dir(runtime: str, registry_host: str) -> str:
    base = "/etc/containerd/certs.d" if runtime == "containerd" else "/etc/docker/certs.d"
    return f"{base}/{registry_host}"


def node_script(runtime: str, registry_host: str) -> str:
    return render(
        __file__,
        "node-ca.sh.j2",
        name=CA_NAME,
        registry_dir=registry_ca_dir(runtime, registry_host),
        runtime=runtime,
    )


class NodeTrust(pulumi.ComponentResource):
    """The private CA installed on each node over SSH (system trust and the runtime's
    registry CA directory); removed again when the resource goes."""

    commands: list[command.remote.Command]

    def __init__(self, name: str, args: NodeTrustArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:platform:NodeTrust", name, None, opts)
        self.commands = []
        for node in args.nodes:
            script = node_script(node.runtime, args.registry_host)
            self.commands.append(
                command.remote.Command(
                    f"{name}-{node.host}",
                    connection=node_connection(node),
                    create=f"sh -c {_quote(script)} node-ca install",
                    update=f"sh -c {_quote(script)} node-ca install",
                    delete=f"sh -c {_quote(script)} node-ca remove",
                    stdin=args.ca_cert_pem,
                    triggers=[args.ca_cert_pem, args.registry_host, node.runtime],
                    # Removing the old CA after installing the new one would remove both.
                    opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
                )
            )
        self.register_outputs({"nodes": [n.host for n in args.nodes]})


def _quote(script: str) -> str:
    return shlex.quote(script)
