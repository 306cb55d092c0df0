"""The Apache/PHP web server (official php:apache image); its document root is a backed-up volume.

The image forbids directory listings (`Options -Indexes`), so until the user adds an index
page "/" answers 403: the health check asks only that Apache answers HTTP at all.
"""

from __future__ import annotations

from components.docker.spec import Basics, ContainerSpec, Route, ServiceSpec, Volume, http_check
from components.homelab.images import CONTRACTS


def web(b: Basics) -> ServiceSpec:
    container = ContainerSpec(
        name="web",
        image=b.image,
        privileges=CONTRACTS["web"].privileges(),
        volumes=(
            Volume("web-html", "/var/www/html"),
            Volume("web-logs", "/var/log/apache2", stateful=False),
        ),
        healthcheck=http_check("http://127.0.0.1/", tool="curl", any_status=True),
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
