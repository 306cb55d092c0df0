"""Mattermost team chat with its own PostgreSQL; salts and keys generated, never in plain text."""

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


@dataclass(frozen=True)
class MattermostArgs:
    basics: Basics
    database_image: str


def mattermost(a: MattermostArgs) -> ServiceSpec:
    b = a.basics
    db_url = (
        "postgres://mattermost:{db-password}@mattermost-db:5432/mattermost?sslmode=disable&connect_timeout=10"
    )
    app = ContainerSpec(
        name="mattermost",
        image=b.image,
        env={
            "TZ": "UTC",
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": SecretRef(db_url),
            "MM_SQLSETTINGS_ATRESTENCRYPTKEY": SecretRef("{at-rest-encrypt-key}"),
            "MM_FILESETTINGS_PUBLICLINKSALT": SecretRef("{public-link-salt}"),
            "MM_EMAILSETTINGS_INVITESALT": SecretRef("{invite-salt}"),
            "MM_SERVICESETTINGS_SITEURL": (b.url or "").rstrip("/"),
            "MM_BLEVESETTINGS_INDEXDIR": "/mattermost/bleve-indexes",
        },
        volumes=(
            Volume("mattermost-config", "/mattermost/config"),
            Volume("mattermost-data", "/mattermost/data"),
            Volume("mattermost-logs", "/mattermost/logs", stateful=False),
            Volume("mattermost-plugins", "/mattermost/plugins"),
            Volume("mattermost-client-plugins", "/mattermost/client/plugins"),
            Volume("mattermost-bleve", "/mattermost/bleve-indexes", stateful=False),
        ),
        healthcheck=http_check("http://localhost:8065/api/v4/system/ping", tool="curl"),
        memory_mb=b.memory(2048),
        depends_on=("mattermost-db",),
    )
    db = postgres_container("mattermost-db", a.database_image, "mattermost", "mattermost", "db-password", 512)
    return ServiceSpec(
        name=b.name or "mattermost",
        kind="Mattermost",
        host=b.host,
        containers=(db, app),
        routes=(Route(b.fqdn, "mattermost", 8065),) if b.fqdn else (),
        secrets=(
            SecretSpec("db-password"),
            SecretSpec("at-rest-encrypt-key"),
            SecretSpec("public-link-salt"),
            SecretSpec("invite-salt"),
        ),
        restart=b.restart,
        title="Mattermost",
    )
