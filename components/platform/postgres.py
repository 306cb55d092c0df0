"""PostgreSQL for the platform: the CloudNativePG operator and one `Cluster`, its owner's
credentials generated and kept in a basic-auth Secret; and, declaratively, a database per
platform service that uses it (Harbor): a role managed by the Cluster (`spec.managed.roles`,
its password from a basic-auth Secret) and a `Database` owned by that role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource


@dataclass(frozen=True)
class ServiceDatabase:
    """A database and its owner role for one platform service."""

    name: str  # database and role name
    secret_name: str  # basic-auth Secret with the role's username and password


@dataclass(frozen=True)
class PostgresArgs:
    name: str = "platform-db"
    instances: int = 1
    storage_size: str = "10Gi"
    storage_class: str | None = None
    database: str = "platform"
    owner: str = "platform"
    services: tuple[ServiceDatabase, ...] = ()


# pulumi-kubernetes awaits a custom resource only when told how (the `pulumi.com/waitFor`
# annotation, "New in v4.17.0" in the provider's annotation reference; 4.34.2 is pinned): the
# Cluster's `Ready` condition (cloudnative-pg api/v1/cluster_types.go @ v1.30.0:
# `ConditionClusterReady ClusterConditionType = "Ready"`) and the Database's `status.applied`
# ("Applied is true if the database was reconciled correctly", api/v1/database_types.go). Harbor
# then starts on a database that exists, instead of racing its bootstrap.
WAIT_FOR = "pulumi.com/waitFor"
CLUSTER_READY = "condition=Ready"
DATABASE_APPLIED = "jsonpath={.status.applied}=true"
# A role's password Secret is re-read when it changes only with this label
# (docs/src/declarative_role_management.md @ v1.30.0: 'Label the Secret with
# `cnpg.io/reload: "true"`').
RELOAD_LABELS = {"cnpg.io/reload": "true"}


def cluster_manifest(args: PostgresArgs, namespace: str, secret_name: str) -> dict[str, Any]:
    storage: dict[str, Any] = {"size": args.storage_size}
    if args.storage_class:
        storage["storageClass"] = args.storage_class
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        # The policy pack cannot see retain_on_delete: this says what the option says.
        "metadata": {
            "name": args.name,
            "namespace": namespace,
            "annotations": {"homelab.data-safety": "retain", WAIT_FOR: CLUSTER_READY},
        },
        "spec": {
            "instances": args.instances,
            "storage": storage,
            "enableSuperuserAccess": False,
            "bootstrap": {
                "initdb": {
                    "database": args.database,
                    "owner": args.owner,
                    "secret": {"name": secret_name},
                    "dataChecksums": True,
                }
            },
            **(
                {
                    "managed": {
                        "roles": [
                            {
                                "name": db.name,
                                "ensure": "present",
                                "login": True,
                                "passwordSecret": {"name": db.secret_name},
                            }
                            for db in args.services
                        ]
                    }
                }
                if args.services
                else {}
            ),
        },
    }


def database_manifest(db: ServiceDatabase, cluster: str, namespace: str) -> dict[str, Any]:
    """CloudNativePG's `Database`: created by the operator, kept when the resource goes."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Database",
        "metadata": {
            "name": f"{cluster}-{db.name}",
            "namespace": namespace,
            "annotations": {WAIT_FOR: DATABASE_APPLIED},
        },
        "spec": {
            "name": db.name,
            "owner": db.name,
            "cluster": {"name": cluster},
            "ensure": "present",
            "databaseReclaimPolicy": "retain",
        },
    }


class PlatformPostgres(pulumi.ComponentResource):
    password: pulumi.Output[str]
    host: str
    # Service database name -> the resources that must exist before the service connects.
    ready: dict[str, list[pulumi.Resource]]

    def __init__(
        self,
        name: str,
        args: PostgresArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:PlatformPostgres", name, None, opts)
        namespace = cluster.args.namespace
        operator = helm_release(
            f"{name}-operator",
            "cloudnative-pg",
            namespace,
            {"crds": {"create": True}},
            cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        password = random.RandomPassword(
            f"{name}-owner-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.password = pulumi.Output.secret(password.result)
        secret_name = f"{args.name}-owner"
        secret = k8s.core.v1.Secret(
            f"{name}-owner",
            metadata={"name": secret_name, "namespace": namespace, "labels": RELOAD_LABELS},
            type="kubernetes.io/basic-auth",
            string_data={"username": args.owner, "password": self.password},
            opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        service_secrets: dict[str, k8s.core.v1.Secret] = {}
        for db in args.services:
            role_password = random.RandomPassword(
                f"{name}-{db.name}-password",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            db_password: pulumi.Output[str] = pulumi.Output.secret(role_password.result)
            service_secrets[db.name] = k8s.core.v1.Secret(
                f"{name}-{db.name}-credentials",
                # basic-auth with username and password: the format `passwordSecret` asks for
                # (cnpg-cluster CRD, managed.roles[].passwordSecret) and Harbor reads `password`.
                metadata={"name": db.secret_name, "namespace": namespace, "labels": RELOAD_LABELS},
                type="kubernetes.io/basic-auth",
                string_data={"username": db.name, "password": db_password},
                opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
            )
        manifest = cluster_manifest(args, namespace, secret_name)
        # The Cluster CRD comes with the operator chart: create the Cluster after it.
        self.cluster = custom_resource(
            f"{name}-cluster",
            manifest,
            cluster.opts(
                parent=self, depends_on=[operator, secret, *service_secrets.values()], retain_on_delete=True
            ),
        )
        self.ready = {}
        for db in args.services:
            database = custom_resource(
                f"{name}-database-{db.name}",
                database_manifest(db, args.name, namespace),
                cluster.opts(parent=self, depends_on=[self.cluster], retain_on_delete=True),
            )
            self.ready[db.name] = [service_secrets[db.name], database]
        self.host = f"{args.name}-rw.{namespace}.svc"
        self.register_outputs({"host": self.host})
