"""PostgreSQL for the platform: the CloudNativePG operator and one `Cluster`, its owner's
credentials generated and kept in a basic-auth Secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource


@dataclass(frozen=True)
class PostgresArgs:
    name: str = "platform-db"
    instances: int = 1
    storage_size: str = "10Gi"
    storage_class: str | None = None
    database: str = "platform"
    owner: str = "platform"


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
            "annotations": {"homelab.data-safety": "retain"},
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
        },
    }


class PlatformPostgres(pulumi.ComponentResource):
    password: pulumi.Output[str]
    host: str

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
            metadata={"name": secret_name, "namespace": namespace},
            type="kubernetes.io/basic-auth",
            string_data={"username": args.owner, "password": self.password},
            opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        manifest = cluster_manifest(args, namespace, secret_name)
        # The Cluster CRD comes with the operator chart: create the Cluster after it.
        self.cluster = custom_resource(
            f"{name}-cluster",
            manifest,
            cluster.opts(parent=self, depends_on=[operator, secret], retain_on_delete=True),
        )
        self.host = f"{args.name}-rw.{namespace}.svc"
        self.register_outputs({"host": self.host})
