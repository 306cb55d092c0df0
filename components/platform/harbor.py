"""Harbor: the image registry, with persistence and Trivy on, exposed through the ingress with
TLS, its admin password and secret key generated and handed over in Kubernetes Secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumiverse_harbor as harbor

from components.platform.charts import helm_release, ingress_annotations
from components.platform.cluster import KubernetesCluster

ADMIN_SECRET = "harbor-admin"
SECRET_KEY_SECRET = "harbor-secret-key"
TLS_SECRET = "harbor-tls"


@dataclass(frozen=True)
class HarborArgs:
    host: str
    ingress_class: str = "nginx"
    cluster_issuer: str = "homelab-ca"
    registry_size: str = "50Gi"
    storage_class: str | None = None
    trivy: bool = True
    verify_tls: bool = True
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def harbor_values(args: HarborArgs) -> dict[str, Any]:
    storage = {"storageClass": args.storage_class} if args.storage_class else {}
    return {
        "externalURL": f"https://{args.host}",
        "expose": {
            "type": "ingress",
            "tls": {"enabled": True, "certSource": "secret", "secret": {"secretName": TLS_SECRET}},
            "ingress": {
                "hosts": {"core": args.host},
                "className": args.ingress_class,
                "annotations": ingress_annotations(
                    args.cluster_issuer,
                    **{
                        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
                        "nginx.ingress.kubernetes.io/proxy-body-size": "0",
                    },
                ),
            },
        },
        "existingSecretAdminPassword": ADMIN_SECRET,
        "existingSecretAdminPasswordKey": "HARBOR_ADMIN_PASSWORD",
        "existingSecretSecretKey": SECRET_KEY_SECRET,
        "persistence": {
            "enabled": True,
            "resourcePolicy": "keep",
            "persistentVolumeClaim": {
                "registry": {"size": args.registry_size, **storage},
                "jobservice": {"jobLog": dict(storage)},
                "database": dict(storage),
                "redis": dict(storage),
                "trivy": dict(storage),
            },
        },
        "trivy": {"enabled": args.trivy},
    }


class Harbor(pulumi.ComponentResource):
    admin_password: pulumi.Output[str]
    provider: harbor.Provider
    url: str
    registry_host: str

    def __init__(
        self,
        name: str,
        args: HarborArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:Harbor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = cluster.args.namespace
        password = random.RandomPassword(f"{name}-admin-password", length=24, special=False, opts=child)
        # Harbor wants exactly 16 characters for its encryption key.
        secret_key = random.RandomPassword(f"{name}-secret-key", length=16, special=False, opts=child)
        self.admin_password = pulumi.Output.secret(password.result)
        secrets = [
            k8s.core.v1.Secret(
                f"{name}-{secret_name}",
                metadata={"name": secret_name, "namespace": namespace},
                type="Opaque",
                string_data={key: value},  # RandomPassword.result is a secret output
                opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
            )
            for secret_name, key, value in (
                (ADMIN_SECRET, "HARBOR_ADMIN_PASSWORD", password.result),
                (SECRET_KEY_SECRET, "secretKey", secret_key.result),
            )
        ]
        self.release = helm_release(
            name,
            "harbor",
            namespace,
            harbor_values(args),
            cluster.opts(parent=self, depends_on=[*secrets, *args.depends_on]),
        )
        self.url = f"https://{args.host}"
        self.registry_host = args.host
        # Registry objects (projects, members, robots) go through Harbor's own API provider.
        self.provider = harbor.Provider(
            f"{name}-api",
            url=self.url,
            username="admin",
            password=self.admin_password,
            # The SDK defaults to skipping the certificate check; we do not.
            insecure=not args.verify_tls,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.register_outputs({"url": self.url})
