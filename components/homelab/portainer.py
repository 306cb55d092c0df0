"""Portainer CE: the container management UI; it manages the host through the Docker socket."""

from __future__ import annotations

from components.docker.spec import Basics, ContainerSpec, Route, ServiceSpec, Volume, secret_file
from components.homelab.images import CONTRACTS


def portainer(b: Basics) -> ServiceSpec:
    # The image is built FROM scratch: no shell, so no health check command can run in it.
    password = secret_file("admin-password", "admin-password", owner=CONTRACTS["portainer"].uid)
    container = ContainerSpec(
        name="portainer",
        image=b.image,
        privileges=CONTRACTS["portainer"].privileges(),
        command=("--admin-password-file", password.path),
        volumes=(Volume("portainer-data", "/data"),),
        uploads=(password,),
        docker_socket="rw",
        memory_mb=b.memory(256),
    )
    routes = (Route(b.fqdn, "portainer", 9000),) if b.fqdn else ()
    return ServiceSpec(
        name=b.name or "portainer",
        kind="Portainer",
        host=b.host,
        containers=(container,),
        routes=routes,
        restart=b.restart,
        title="Portainer",
    )
