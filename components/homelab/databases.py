"""Standalone databases: PostgreSQL and MySQL, passwords generated, reached through the proxy over TCP."""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import (
    Basics,
    ContainerSpec,
    HealthCheck,
    Route,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
)

# A database must shut down cleanly before the nightly backup archives its files (the backup
# stops it, see docs/concepts.md), so that a restored copy starts without crash recovery:
# give it up to two minutes before Docker's SIGKILL instead of the default 10 s.
DATABASE_STOP_TIMEOUT = 120


def postgres_container(
    name: str, image: str, database: str, user: str, password: str, memory_mb: int
) -> ContainerSpec:
    """A PostgreSQL container; `password` names the secret holding its password."""
    return ContainerSpec(
        name=name,
        image=image,
        env={
            "POSTGRES_DB": database,
            "POSTGRES_USER": user,
            "POSTGRES_PASSWORD": SecretRef("{" + password + "}"),
            "POSTGRES_INITDB_ARGS": "--data-checksums",
            "PGDATA": "/var/lib/postgresql/data/pgdata",
        },
        volumes=(Volume(f"{name}-data", "/var/lib/postgresql/data"),),
        healthcheck=HealthCheck(
            test=("CMD-SHELL", f"pg_isready -U {user} -d {database}"),
            interval="10s",
            start_period="30s",
        ),
        memory_mb=memory_mb,
        stop_timeout=DATABASE_STOP_TIMEOUT,
    )


@dataclass(frozen=True)
class TcpBasics:
    basics: Basics
    exposed_port: int


def postgres(t: TcpBasics) -> ServiceSpec:
    b = t.basics
    return ServiceSpec(
        name=b.name or "postgres",
        kind="PostgreSQL",
        host=b.host,
        containers=(
            postgres_container("postgres", b.image, "homelab", "homelab", "password", b.memory(512)),
        ),
        routes=(Route(b.fqdn, "postgres", 5432, "tcp", t.exposed_port),) if b.fqdn else (),
        secrets=(SecretSpec("password"),),
        restart=b.restart,
        title="PostgreSQL",
    )


def mysql(t: TcpBasics) -> ServiceSpec:
    b = t.basics
    container = ContainerSpec(
        name="mysql",
        image=b.image,
        env={
            "MYSQL_ROOT_PASSWORD": SecretRef("{root-password}"),
            "MYSQL_DATABASE": "kodi",
            "MYSQL_USER": "kodi",
            "MYSQL_PASSWORD": SecretRef("{password}"),
        },
        volumes=(Volume("mysql-data", "/var/lib/mysql"),),
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
        routes=(Route(b.fqdn, "mysql", 3306, "tcp", t.exposed_port),) if b.fqdn else (),
        secrets=(SecretSpec("root-password"), SecretSpec("password")),
        restart=b.restart,
        title="MySQL",
    )
