"""Harbor: the image registry, with persistence and Trivy on, exposed through the ingress with
TLS, its admin password and secret key generated and handed over in Kubernetes Secrets.

Its certificate is a cert-manager Certificate Pulumi waits for, so the API provider starts
once the real certificate is served. With a private CA the portal offers that CA for download
(`caSecretName`). Its database is the platform's CloudNativePG cluster when there is one.
Project members are local Harbor users the program creates (auth mode db_auth), with
generated passwords: a member exists before anyone logs in (Harbor's member API only finds
users already in its database: goharbor/harbor src/controller/member/controller.go @ v2.15.1,
SearchAndOnBoardUser). With an OpenID Connect provider (HarborOidc), Harbor's auth mode is
oidc_auth instead: no local users (the mode cannot be set while there are any), project access
goes to the identity groups (OIDC group members, onboarded by name: the same controller's
Create, SearchAndOnBoardGroup), and the admin still signs in with its password (the API
provider's account and the break-glass: src/core/auth/authenticator.go @ v2.15.1, Login uses
db_auth for the super user whatever the mode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumiverse_harbor as harbor

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster, custom_resource
from components.platform.routing import Route, harbor_timeout_manifest, route_certificate

ADMIN_SECRET = "harbor-admin"
SECRET_KEY_SECRET = "harbor-secret-key"
TLS_SECRET = "harbor-tls"
CA_SECRET = "harbor-ca"
OIDC_CA_SECRET = "harbor-oidc-ca"


@dataclass(frozen=True)
class HarborOidc:
    """Harbor signs in through an OpenID Connect provider (harbor_config_auth's oidc fields,
    goharbor/terraform-provider-harbor client/config.go @ v3.10.21; their values from Authelia's
    harbor guide @ v4.39.20)."""

    issuer: str  # the provider's URL, no trailing slash (the guide's "OIDC Provider Endpoint")
    client_id: str
    client_secret: pulumi.Input[str]
    # The provider's CA when Harbor's system roots do not know it: given to Harbor core's trust
    # store through the chart's caBundleSecretName (templates/core/core-dpl.yaml @ v1.19.1
    # mounts its ca.crt at /harbor_cust_cert/custom-ca.crt).
    ca_cert_pem: pulumi.Input[str] | None = None
    # Its members are Harbor admins (one group: oidc_admin_group is a single name).
    admin_group: str | None = None


@dataclass(frozen=True)
class ExternalDatabase:
    """Harbor's external PostgreSQL (harbor-helm values `database.external`, v1.19.1)."""

    host: str
    database: str
    username: str
    # basic-auth Secret; the chart reads its key `password` (templates/core/core-dpl.yaml @ v1.19.1).
    secret_name: str
    port: int = 5432
    # CloudNativePG serves TLS with its own CA: encrypt, without verifying that CA.
    sslmode: str = "require"


@dataclass(frozen=True)
class HarborArgs:
    host: str
    route: Route
    cluster_issuer: str = "homelab-ca"
    registry_size: str = "50Gi"
    storage_class: str | None = None
    trivy: bool = True
    verify_tls: bool = True
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # The private CA that signs Harbor's certificate (None: a publicly trusted one).
    ca_cert_pem: pulumi.Input[str] | None = None
    database: ExternalDatabase | None = None
    database_ready: list[pulumi.Resource] = field(default_factory=list)
    # The API provider's URL, when something must hold it back (the trust check of the machine
    # running Pulumi); default: https://<host>.
    api_url: pulumi.Input[str] | None = None
    envoy_gateway: bool = False  # the platform installed Envoy Gateway (its policies exist)
    oidc: HarborOidc | None = None


def harbor_values(args: HarborArgs) -> dict[str, Any]:
    storage = {"storageClass": args.storage_class} if args.storage_class else {}
    values: dict[str, Any] = {
        "externalURL": f"https://{args.host}",
        "expose": expose_values(args.route),
        "existingSecretAdminPassword": ADMIN_SECRET,
        "existingSecretAdminPasswordKey": "HARBOR_ADMIN_PASSWORD",
        "existingSecretSecretKey": SECRET_KEY_SECRET,
        "persistence": {
            "enabled": True,
            "resourcePolicy": "keep",
            "persistentVolumeClaim": {
                "registry": {"size": args.registry_size, **storage},
                "jobservice": {"jobLog": dict(storage)},
                "redis": dict(storage),
                "trivy": dict(storage),
            },
        },
        "trivy": {"enabled": args.trivy},
    }
    if args.database is not None:
        db = args.database
        values["database"] = {
            "type": "external",
            "external": {
                "host": db.host,
                "port": str(db.port),
                "username": db.username,
                "coreDatabase": db.database,
                "existingSecret": db.secret_name,
                "sslmode": db.sslmode,
            },
        }
    else:
        values["persistence"]["persistentVolumeClaim"]["database"] = dict(storage)
    if args.ca_cert_pem is not None:
        # The portal's "download CA" link serves ca.crt of this Secret (values.yaml @ v1.19.1).
        values["caSecretName"] = CA_SECRET
    if args.oidc is not None and args.oidc.ca_cert_pem is not None:
        # "The custom ca bundle secret ... injected into the trust store for core, jobservice,
        # registry, trivy components" (values.yaml @ v1.19.1, a commented default).
        values["caBundleSecretName"] = OIDC_CA_SECRET
    return values


def expose_values(route: Route) -> dict[str, Any]:
    """Gateway mode: the chart's HTTPRoute (`expose.type: route`, templates/gateway-apis/route.yaml
    @ v1.19.1: /api/, /service/, /v2/, /c/ to core, / to the portal) on the Harbor listener.
    Ingress mode: an Ingress of the cluster's class with no implementation-specific annotation
    (the chart's ingress-nginx defaults are deleted: `deleted_defaults`; an uploaded layer's size
    limit is then the controller's own setting). The Certificate the
    program waits for writes the TLS Secret either way; `certSource: secret` keeps the chart from
    expecting a Secret it does not create."""
    tls = {"enabled": True, "certSource": "secret", "secret": {"secretName": route.tls_secret}}
    if route.mode == "gateway":
        return {
            "type": "route",
            "tls": tls,
            "route": {"parentRefs": route.parent_refs(), "hosts": [route.host]},
        }
    return {
        "type": "ingress",
        "tls": tls,
        "ingress": {"hosts": {"core": route.host}, "className": route.ingress_class},
    }


# The chart's default Ingress annotations (values.yaml @ v1.19.1, expose.ingress.annotations) are
# ingress-nginx's and the old generic ones; ingress mode sets none of its own, so it deletes them.
INGRESS_DEFAULT_ANNOTATIONS = (
    "ingress.kubernetes.io/ssl-redirect",
    "ingress.kubernetes.io/proxy-body-size",
    "nginx.ingress.kubernetes.io/ssl-redirect",
    "nginx.ingress.kubernetes.io/proxy-body-size",
)


def deleted_defaults(route: Route) -> str | None:
    """A values file deleting the chart's default Ingress annotations (ingress mode)."""
    if route.mode != "ingress":
        return None
    lines = ["expose:", "  ingress:", "    annotations:"]
    lines += [f'      "{key}": null' for key in INGRESS_DEFAULT_ANNOTATIONS]
    return "\n".join(lines) + "\n"


def member_email(login: str, emails: dict[str, str]) -> str:
    """Harbor requires an e-mail per user (validateUserProfile, src/server/v2.0/handler/user.go @ v2.15.1)."""
    return emails.get(login) or f"{login}@users.noreply.github.com"


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
        self._name = name
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
        in_ns = cluster.opts(parent=self, depends_on=[cluster.namespace])
        self.certificate = route_certificate(
            f"{name}-certificate", args.route, args.cluster_issuer, cluster, args.depends_on, self
        )
        if args.ca_cert_pem is not None:
            secrets.append(
                k8s.core.v1.Secret(
                    f"{name}-{CA_SECRET}",
                    metadata={"name": CA_SECRET, "namespace": namespace},
                    type="Opaque",
                    string_data={"ca.crt": args.ca_cert_pem},  # the certificate only, never the key
                    opts=in_ns,
                )
            )
        if args.oidc is not None and args.oidc.ca_cert_pem is not None:
            secrets.append(
                k8s.core.v1.Secret(
                    f"{name}-{OIDC_CA_SECRET}",
                    metadata={"name": OIDC_CA_SECRET, "namespace": namespace},
                    type="Opaque",
                    string_data={"ca.crt": args.oidc.ca_cert_pem},
                    opts=in_ns,
                )
            )
        self.release = helm_release(
            name,
            "harbor",
            namespace,
            harbor_values(args),
            deleted=deleted_defaults(args.route),
            opts=cluster.opts(
                parent=self,
                depends_on=[*secrets, self.certificate, *args.depends_on, *args.database_ready],
            ),
        )
        if args.route.mode == "gateway" and args.envoy_gateway:
            # Envoy's 15 s route timeout would cut a large layer's upload short.
            custom_resource(
                f"{name}-push-timeout",
                harbor_timeout_manifest(f"{name}-route", namespace),
                cluster.opts(parent=self, depends_on=[self.release]),
            )
        self.url = f"https://{args.host}"
        self.registry_host = args.host
        # Registry objects (projects, members, robots) go through Harbor's own API provider. It
        # verifies the certificate with the system trust of the machine running Pulumi (the
        # provider's HTTP client has no CA setting: goharbor/terraform-provider-harbor
        # client/client.go @ v3.10.21 uses Go's default transport unless `insecure`).
        self.provider = harbor.Provider(
            f"{name}-api",
            url=args.api_url if args.api_url is not None else self.url,
            username="admin",
            password=self.admin_password,
            # The SDK defaults to skipping the certificate check; we do not.
            insecure=not args.verify_tls,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, self.certificate]),
        )
        # Local users can only be created in db_auth mode (requireCreatable, user.go @ v2.15.1),
        # which is Harbor's default (src/lib/config/metadata/metadatalist.go @ v2.15.1: AUTHMode
        # DefaultValue "db_auth"). No `ConfigAuth` says so: the provider never sends auth_mode
        # for db_auth (terraform-provider-harbor client/config.go @ v3.10.21 handles only
        # oidc_auth and ldap_auth) and would write ldap_scope=0, enforcing nothing (issue 22).
        self.users: dict[str, harbor.User] = {}
        self.user_passwords: dict[str, pulumi.Output[str]] = {}
        self.auth: harbor.ConfigAuth | None = None
        if args.oidc is not None:
            o = args.oidc
            self.auth = harbor.ConfigAuth(
                f"{name}-auth",
                auth_mode="oidc_auth",
                oidc_name="Authelia",
                oidc_endpoint=o.issuer,
                oidc_client_id=o.client_id,
                oidc_client_secret=pulumi.Output.secret(o.client_secret),
                oidc_scope="openid,profile,email,groups,offline_access",
                oidc_groups_claim="groups",
                oidc_admin_group=o.admin_group,
                oidc_user_claim="preferred_username",
                oidc_verify_cert=True,
                oidc_auto_onboard=True,
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[self.release]),
            )
        self.register_outputs({"url": self.url})

    def add_users(self, logins: list[str], emails: dict[str, str]) -> None:
        """A local Harbor user per login (lower-cased, once), with a generated password that meets
        Harbor's policy (8-128 characters, an upper- and lower-case letter and a digit:
        requireValidSecret, user.go @ v2.15.1). None in oidc_auth (self.auth): users are made
        by their first sign-in."""
        if self.auth is not None:
            return
        for login in logins:
            username = login.lower()
            if username in self.users:
                continue
            password = random.RandomPassword(
                f"{self._name}-user-{username}-password",
                length=24,
                special=False,
                min_upper=1,
                min_lower=1,
                min_numeric=1,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.user_passwords[username] = pulumi.Output.secret(password.result)
            self.users[username] = harbor.User(
                f"{self._name}-user-{username}",
                username=username,
                full_name=login,
                email=member_email(login, emails),
                password=password.result,
                comment="managed by Pulumi",
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[self.release]),
            )
