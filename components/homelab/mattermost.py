"""Mattermost team chat with its own PostgreSQL; salts and keys generated, never in plain text.

The image has no shell and no HTTP client (components/homelab/images.py): the health check
is the image's own, `mmctl system status --local`, over the local-mode socket. The data
source names no password: Mattermost's PostgreSQL driver (lib/pq) reads it from the file
PGPASSFILE names, which it accepts only when no one but its owner can read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import (
    SECRETS_DIR,
    Basics,
    ContainerSpec,
    FileUpload,
    HealthCheck,
    Route,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
)
from components.homelab.databases import postgres_container
from components.homelab.images import CONTRACTS

MMCTL = "/mattermost/bin/mmctl"
PGPASS = f"{SECRETS_DIR}/pgpass"


@dataclass(frozen=True)
class MattermostArgs:
    basics: Basics
    database_image: str


def mattermost(a: MattermostArgs) -> ServiceSpec:
    b = a.basics
    db_url = "postgres://mattermost@mattermost-db:5432/mattermost?sslmode=disable&connect_timeout=10"
    # .pgpass format: host:port:database:user:password (the password has letters and digits only)
    pgpass = FileUpload(
        PGPASS,
        SecretRef("mattermost-db:5432:mattermost:mattermost:{db-password}\n"),
        owner=CONTRACTS["mattermost"].uid,
        mode="0400",
    )
    app = ContainerSpec(
        name="mattermost",
        image=b.image,
        privileges=CONTRACTS["mattermost"].privileges(),
        env={
            "TZ": "UTC",
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": db_url,
            "PGPASSFILE": PGPASS,
            # mmctl --local talks to the server over this socket; off by default upstream.
            "MM_SERVICESETTINGS_ENABLELOCALMODE": "true",
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
        uploads=(pgpass,),
        healthcheck=HealthCheck(test=("CMD", MMCTL, "system", "status", "--local"), start_period="60s"),
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
