"""A narrowed Docker API for the services that need only part of it (issue 26 item 4).

The Docker socket is root on the host: whoever can create a container with `/` mounted owns
the machine, and a read-only bind of the socket changes nothing (connecting needs no write to
the file system). So the backup engine and cAdvisor no longer mount it: each reaches the API
through its own socket proxy, wollomatic/socket-proxy, which passes a request only when its
method has an allowlist (`-allow<METHOD>=<regex>`, repeatable) and the request's path matches
one of its regular expressions, anchored at both ends (internal/config/config.go
compileRegexp: "^" + regex + "$", matched against the URL path in
cmd/socket-proxy/handlehttprequest.go @ 1.13.1); any other method gets 405, any other path
403, and a client not named by `-allowfrom` (an IP, a network, or a host name it resolves)
403. Each proxy answers only its own client, by its name on the stack network.

Portainer keeps the raw socket, read-write: managing containers, images, volumes and networks
is its purpose, and an allowlist that lets it work would allow everything (docs/concepts.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.docker.spec import ContainerSpec, HealthCheck
from components.homelab.images import CONTRACTS, IMAGES

PORT = 2375  # the proxy's default -proxyport (internal/config/config.go @ 1.13.1)
# An API version prefix, as clients send it ("/v1.47/containers/json"); /_ping has none.
_V = r"(/v1\.[0-9]+)?"
# A container's ID or name (Docker's names: [a-zA-Z0-9][a-zA-Z0-9_.-]+); never "." or "..",
# which a path could use to step out of /containers/<id>/.
_ID = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
_EXEC = r"[a-zA-Z0-9]+"  # an exec instance's ID

Allowlist = Mapping[str, tuple[str, ...]]  # HTTP method -> path regular expressions

# offen/docker-volume-backup v2.48.2 (cmd/backup/stop_restart.go, exec.go; listed by upstream
# in docs/how-tos/use-custom-docker-host.md): the API version handshake (HEAD, then GET
# /_ping), Info on every run, ContainerList (with label filters), ContainerStop and
# ContainerStart of the labelled containers, and the command hooks: ExecCreate, ExecAttach
# (POST /exec/{id}/start, a hijacked connection), ExecInspect. Nothing else: no create, no
# delete, no archive or logs, nothing on images, volumes or networks.
BACKUP_API: Allowlist = {
    "HEAD": ("/_ping",),
    "GET": (f"{_V}/(_ping|info|containers/json)", f"{_V}/exec/{_EXEC}/json"),
    "POST": (f"{_V}/containers/{_ID}/(stop|start|exec)", f"{_V}/exec/{_EXEC}/start"),
}

# google/cadvisor v0.60.5 (container/docker/docker.go, handler.go, factory.go): Ping, Info,
# ServerVersion, ContainerInspect; all reads. ImageList only serves the /docker/ page of its
# web UI (cmd/internal/pages/docker.go), which the stack does not route, so it is refused.
CADVISOR_API: Allowlist = {
    "HEAD": ("/_ping",),
    "GET": (f"{_V}/(_ping|info|version)", f"{_V}/containers/{_ID}/json"),
}


@dataclass(frozen=True)
class DockerApiProxy:
    """The proxy of one client container: its name on the stack network and its URL."""

    client: str
    allow: Allowlist

    @property
    def name(self) -> str:
        return f"{self.client}-docker-api"

    @property
    def url(self) -> str:
        """What the client is given as its Docker host (DOCKER_HOST, cAdvisor's --docker)."""
        return f"tcp://{self.name}:{PORT}"

    def command(self) -> tuple[str, ...]:
        """The proxy's flags (internal/config/config.go InitConfig @ 1.13.1): listen on the stack
        network, answer only the client, and the allowlist; `-allowhealthcheck` opens the
        loopback-only /health endpoint its bundled /healthcheck binary asks (README.md)."""
        flags = ["-listenip=0.0.0.0", f"-allowfrom={self.client}", "-allowhealthcheck"]
        for method, patterns in sorted(self.allow.items()):
            flags += [f"-allow{method}={p}" for p in patterns]
        return tuple(flags)

    def container(self, memory_mb: int = 32) -> ContainerSpec:
        return ContainerSpec(
            name=self.name,
            image=IMAGES["docker-api-proxy"],
            command=self.command(),
            # The image runs as nobody (USER 65534:65534) and upstream asks for the host's docker
            # group as its group, a number that differs per host. Root with every capability
            # dropped reads the root-owned socket as its owner and can do nothing else root can.
            user="0:0",
            docker_socket="ro",
            healthcheck=HealthCheck(("CMD", "/healthcheck"), interval="30s", start_period="10s"),
            memory_mb=memory_mb,
            privileges=CONTRACTS["docker-api-proxy"].privileges(),
        )
