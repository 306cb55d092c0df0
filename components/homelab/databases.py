"""Standalone databases: PostgreSQL and MySQL, passwords generated, reached through the proxy over TCP.

Passwords never sit in a container's environment (where `docker inspect` shows them): each is
a file under /run/homelab, owned by the database user with mode 0400, named by the image's
`*_FILE` variable. Both official entrypoints read those files while still root, before
`gosu` drops to the database user (components/homelab/images.py cites them).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import (
    Basics,
    ContainerSpec,
    Exposure,
    HealthCheck,
    Route,
    SecretSpec,
    ServiceSpec,
    Volume,
    secret_file,
)
from components.homelab.images import CONTRACTS

POSTGRES_UID = CONTRACTS["postgres"].uid
MYSQL_UID = CONTRACTS["mysql"].uid

# A database must shut down cleanly before the nightly backup archives its files (the backup
# stops it, see docs/concepts.md), so that a restored copy starts without crash recovery:
# give it up to two minutes before Docker's SIGKILL instead of the default 10 s.
DATABASE_STOP_TIMEOUT = 120


def postgres_container(
    name: str, image: str, database: str, user: str, password: str, memory_mb: int
) -> ContainerSpec:
    """A PostgreSQL container; `password` names the secret holding its password."""
    password_file = secret_file("db-password", password, owner=POSTGRES_UID)
    return ContainerSpec(
        name=name,
        image=image,
        privileges=CONTRACTS["postgres"].privileges(),
        env={
            "POSTGRES_DB": database,
            "POSTGRES_USER": user,
            "POSTGRES_PASSWORD_FILE": password_file.path,
            "POSTGRES_INITDB_ARGS": "--data-checksums",
            "PGDATA": "/var/lib/postgresql/data/pgdata",
        },
        volumes=(Volume(f"{name}-data", "/var/lib/postgresql/data"),),
        uploads=(password_file,),
        healthcheck=HealthCheck(
            test=("CMD", "pg_isready", "-U", user, "-d", database),
            interval="10s",
            start_period="30s",
        ),
        memory_mb=memory_mb,
        stop_timeout=DATABASE_STOP_TIMEOUT,
    )


@dataclass(frozen=True)
class TcpBasics:
    """A database's settings; `exposure` None: no TCP frontend, reachable on the stack network only."""

    basics: Basics
    exposed_port: int
    exposure: Exposure | None = None

    def routes(self, container: str, port: int) -> tuple[Route, ...]:
        b = self.basics
        if self.exposure is None or not b.fqdn:
            return ()
        return (Route(b.fqdn, container, port, "tcp", self.exposed_port, self.exposure),)


def postgres(t: TcpBasics) -> ServiceSpec:
    b = t.basics
    return ServiceSpec(
        name=b.name or "postgres",
        kind="PostgreSQL",
        host=b.host,
        containers=(
            postgres_container("postgres", b.image, "homelab", "homelab", "password", b.memory(512)),
        ),
        routes=t.routes("postgres", 5432),
        secrets=(SecretSpec("password"),),
        restart=b.restart,
        title="PostgreSQL",
    )


def mysql(t: TcpBasics) -> ServiceSpec:
    b = t.basics
    root_password = secret_file("root-password", "root-password", owner=MYSQL_UID)
    password = secret_file("password", "password", owner=MYSQL_UID)
    container = ContainerSpec(
        name="mysql",
        image=b.image,
        privileges=CONTRACTS["mysql"].privileges(),
        env={
            "MYSQL_ROOT_PASSWORD_FILE": root_password.path,
            "MYSQL_DATABASE": "kodi",
            "MYSQL_USER": "kodi",
            "MYSQL_PASSWORD_FILE": password.path,
        },
        volumes=(Volume("mysql-data", "/var/lib/mysql"),),
        uploads=(root_password, password),
        healthcheck=HealthCheck(
            test=("CMD", "mysqladmin", "ping", "--host=localhost", "--silent"),
            interval="10s",
            start_period="60s",
        ),
        memory_mb=b.memory(768),
        stop_timeout=DATABASE_STOP_TIMEOUT,
    )
    return ServiceSpec(
        name=b.name or "mysql",
        kind="MySQL",
        host=b.host,
        containers=(container,),
        routes=t.routes("mysql", 3306),
        secrets=(SecretSpec("root-password"), SecretSpec("password")),
        restart=b.restart,
        title="MySQL",
    )
