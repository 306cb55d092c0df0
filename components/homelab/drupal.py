"""Drupal ("intranet") with its own PostgreSQL, served by the image's Apache on port 80."""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import Basics, ContainerSpec, Route, SecretSpec, ServiceSpec, Volume, http_check
from components.homelab.databases import postgres_container


@dataclass(frozen=True)
class DrupalArgs:
    basics: Basics
    database_image: str


def drupal(a: DrupalArgs) -> ServiceSpec:
    b = a.basics
    site = "/var/www/html"
    app = ContainerSpec(
        name="drupal",
        image=b.image,
        volumes=(
            Volume("drupal-sites", f"{site}/sites"),
            Volume("drupal-modules", f"{site}/modules"),
            Volume("drupal-profiles", f"{site}/profiles"),
            Volume("drupal-themes", f"{site}/themes"),
        ),
        healthcheck=http_check("http://localhost/", tool="curl"),
        memory_mb=b.memory(512),
        depends_on=("drupal-db",),
    )
    db = postgres_container("drupal-db", a.database_image, "drupal", "drupal", "db-password", 512)
    return ServiceSpec(
        name=b.name or "drupal",
        kind="Drupal",
        host=b.host,
        containers=(db, app),
        routes=(Route(b.fqdn, "drupal", 80),) if b.fqdn else (),
        secrets=(SecretSpec("db-password"),),
        restart=b.restart,
        title="Intranet (Drupal)",
    )
