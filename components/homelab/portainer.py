"""Portainer CE: the container management UI; it manages the host through the Docker socket."""

from __future__ import annotations

from components.docker.spec import (
    Basics,
    ContainerSpec,
    FileUpload,
    Route,
    SecretRef,
    ServiceSpec,
    Volume,
)

ADMIN_PASSWORD_FILE = "/run/homelab/admin-password"


def portainer(b: Basics) -> ServiceSpec:
    # The image is built FROM scratch: no shell, so no health check command can run in it.
    container = ContainerSpec(
        name="portainer",
        image=b.image,
        command=("--admin-password-file", ADMIN_PASSWORD_FILE),
        volumes=(Volume("portainer-data", "/data"),),
        uploads=(FileUpload(ADMIN_PASSWORD_FILE, SecretRef("{admin-password}")),),
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
