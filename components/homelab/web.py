"""The Apache/PHP web server (official php:apache image); its document root is a backed-up volume."""

from __future__ import annotations

from components.docker.spec import Basics, ContainerSpec, Route, ServiceSpec, Volume, http_check


def web(b: Basics) -> ServiceSpec:
    container = ContainerSpec(
        name="web",
        image=b.image,
        volumes=(
            Volume("web-html", "/var/www/html"),
            Volume("web-logs", "/var/log/apache2", stateful=False),
        ),
        healthcheck=http_check("http://localhost/", tool="curl"),
        memory_mb=b.memory(256),
    )
    return ServiceSpec(
        name=b.name or "web",
        kind="WebServer",
        host=b.host,
        containers=(container,),
        routes=(Route(b.fqdn, "web", 80),) if b.fqdn else (),
        restart=b.restart,
        title="Web site",
    )
