"""Drupal ("intranet") with its own PostgreSQL, served by the image's Apache on port 80.

The image takes no database settings from the environment: its web installer asks for them
("Set up database": type, name, user, password, and the host under advanced options;
docker-library/docs drupal/content.md). The program generates the database password, so it
hands the whole set to the user as the secret stack output `drupal-credentials`.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import (
    Basics,
    ContainerSpec,
    Route,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
    http_check,
)
from components.homelab.databases import postgres_container
from components.homelab.images import CONTRACTS

DATABASE = "drupal"
DATABASE_USER = "drupal"
DATABASE_HOST = "drupal-db"


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
        privileges=CONTRACTS["drupal"].privileges(),
        volumes=(
            Volume("drupal-sites", f"{site}/sites"),
            Volume("drupal-modules", f"{site}/modules"),
            Volume("drupal-profiles", f"{site}/profiles"),
            Volume("drupal-themes", f"{site}/themes"),
        ),
        # Before the installer ran, "/" redirects to /core/install.php (not an error for curl -f).
        healthcheck=http_check("http://127.0.0.1/", tool="curl"),
        memory_mb=b.memory(512),
        depends_on=(DATABASE_HOST,),
    )
    db = postgres_container(DATABASE_HOST, a.database_image, DATABASE, DATABASE_USER, "db-password", 512)
    return ServiceSpec(
        name=b.name or "drupal",
        kind="Drupal",
        host=b.host,
        containers=(db, app),
        routes=(Route(b.fqdn, "drupal", 80),) if b.fqdn else (),
        secrets=(SecretSpec("db-password"),),
        restart=b.restart,
        title="Intranet (Drupal)",
        # What the installer's "Set up database" step asks for.
        credentials={
            "database-type": "PostgreSQL",
            "database-name": DATABASE,
            "database-username": DATABASE_USER,
            "database-password": SecretRef("{db-password}"),
            "database-host": DATABASE_HOST,
            "database-port": "5432",
        },
    )
