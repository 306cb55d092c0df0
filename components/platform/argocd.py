"""Argo CD: the GitOps controller, its admin password generated and given as a bcrypt hash,
optional GitHub sign-in through Dex, reached through the platform's Gateway (an HTTPRoute of
the chart's `server.httproute`) or an Ingress of the cluster's class. TLS ends there, with a
certificate the program waits for; the hop to the server inside the cluster is plain HTTP
(`server.insecure`, as argoproj/argo-cd docs/operator-manual/ingress.md @ v3.4.4 has it for a
TLS-terminating Gateway), which needs no implementation-specific backend annotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_random as random
import pulumiverse_time
import yaml

from components.platform.charts import helm_release
from components.platform.cluster import KubernetesCluster
from components.platform.routing import Route, route_certificate


@dataclass(frozen=True)
class GitHubSsoArgs:
    client_id: str
    client_secret: pulumi.Input[str]
    orgs: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcSsoArgs:
    """Sign-in through an OpenID Connect provider (the homelab's Authelia): `oidc.config` in
    argocd-cm, whose keys are OIDCConfig's (util/settings/settings.go @ v3.4.4). It takes
    precedence over Dex: IssuerURL() returns it first (same file)."""

    issuer: str  # without the trailing slash, as the provider's discovery document says it
    client_id: str
    client_secret: pulumi.Input[str]
    root_ca: pulumi.Input[str] | None = None  # PEM, when the provider's CA is a private one
    cli_client_id: str = "argocd-cli"
    # Identity groups whose members administer Argo CD (`g, <group>, role:admin` in policy.csv:
    # docs/operator-manual/rbac.md @ v3.4.4, role:admin being "unrestricted access").
    admin_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArgoCdArgs:
    host: str
    webhook_secret: pulumi.Input[str]
    route: Route
    cluster_issuer: str = "homelab-ca"
    sso: GitHubSsoArgs | None = None
    ha: bool = False
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # Sync results are posted here (e.g. a Mattermost incoming webhook); a secret.
    notifications_webhook: pulumi.Input[str] | None = None
    # Sign-in through the homelab's identity provider instead of Dex.
    oidc: OidcSsoArgs | None = None


NOTIFIER = "homelab"
# As Argo CD's own catalog has them (argoproj/argo-cd notifications_catalog/triggers/
# on-sync-failed.yaml): an app that never synced has no operationState, so the sync triggers
# test it first, and notify once per synced revision.
_ONCE_PER_SYNC = "app.status.operationState?.syncResult?.revision"
_EVENTS = {
    "on-sync-succeeded": (
        "app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']",
        "synced",
        _ONCE_PER_SYNC,
    ),
    "on-sync-failed": (
        "app.status.operationState != nil and app.status.operationState.phase in ['Error', 'Failed']",
        "failed to sync",
        _ONCE_PER_SYNC,
    ),
    "on-health-degraded": ("app.status.health.status == 'Degraded'", "is degraded", None),
}


def notifications_values(args: ArgoCdArgs) -> dict[str, Any]:
    """Argo CD notifications: one webhook service, a template and a trigger per event."""
    if args.notifications_webhook is None:
        return {"enabled": False}
    templates, triggers = {}, {}
    for trigger, (condition, verb, once_per) in _EVENTS.items():
        template = f"app-{trigger.removeprefix('on-')}"
        text = f"Argo CD: application {{{{.app.metadata.name}}}} {verb} ({{{{.app.status.sync.revision}}}})"
        body = {"webhook": {NOTIFIER: {"method": "POST", "body": '{"text": "' + text + '"}'}}}
        templates[f"template.{template}"] = yaml.safe_dump(body, sort_keys=False)
        rule: dict[str, Any] = {"when": condition, "send": [template]}
        if once_per:
            rule["oncePer"] = once_per
        triggers[f"trigger.{trigger}"] = yaml.safe_dump([rule], sort_keys=False)
    notifier = yaml.safe_dump(
        {"url": "$webhook-url", "headers": [{"name": "Content-Type", "value": "application/json"}]},
        sort_keys=False,
    )
    return {
        "enabled": True,
        "argocdUrl": f"https://{args.host}",
        "secret": {"items": {"webhook-url": args.notifications_webhook}},
        "notifiers": {f"service.webhook.{NOTIFIER}": notifier},
        "templates": templates,
        "triggers": triggers,
    }


def dex_config(sso: GitHubSsoArgs) -> str:
    """Dex's GitHub connector; the client secret is read from argocd-secret, not inlined."""
    connector: dict[str, Any] = {
        "type": "github",
        "id": "github",
        "name": "GitHub",
        "config": {"clientID": sso.client_id, "clientSecret": "$dex.github.clientSecret"},
    }
    if sso.orgs:
        connector["config"]["orgs"] = [{"name": org} for org in sso.orgs]
    return yaml.safe_dump({"connectors": [connector]}, sort_keys=False)


OIDC_SECRET_KEY = "oidc.authelia.clientSecret"  # argocd-secret key the config names as $<key>


def oidc_config(o: OidcSsoArgs) -> pulumi.Output[str]:
    """oidc.config: Authelia's argocd guide (docs/content/integration/openid-connect/clients/
    argocd/index.md @ v4.39.20) with `profile` added, which carries preferred_username (the
    logins the project roles name), and PKCE on (`enablePKCEAuthentication`, docs/operator-
    manual/user-management/index.md @ v3.4.4). The secret stays in argocd-secret."""
    document: dict[str, Any] = {
        "name": "Single sign-on",
        "issuer": o.issuer,
        "clientID": o.client_id,
        "clientSecret": f"${OIDC_SECRET_KEY}",
        # The CLI signs in through its own public client (`argocd login --sso`).
        "cliClientID": o.cli_client_id,
        "requestedScopes": ["openid", "profile", "email", "groups"],
        "enableUserInfoGroups": True,
        "userInfoPath": "/api/oidc/userinfo",
        "enablePKCEAuthentication": True,
    }
    if o.root_ca is None:
        return pulumi.Output.from_input(yaml.safe_dump(document, sort_keys=False))
    return pulumi.Output.from_input(o.root_ca).apply(
        lambda ca: yaml.safe_dump({**document, "rootCA": ca}, sort_keys=False)
    )


def rbac_values(args: ArgoCdArgs) -> dict[str, Any]:
    """argocd-rbac-cm: no default role; the identity's admin groups as role:admin when Argo CD
    signs in through the homelab's provider (their `groups` claim, one of the scopes read)."""
    rbac: dict[str, Any] = {"policy.default": "", "scopes": "[groups, preferred_username]"}
    if args.oidc is not None and args.oidc.admin_groups:
        rbac["policy.csv"] = "".join(f"g, {group}, role:admin\n" for group in args.oidc.admin_groups)
    return rbac


def argocd_values(
    args: ArgoCdArgs, admin_hash: pulumi.Input[str], admin_mtime: pulumi.Input[str]
) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "argocdServerAdminPassword": admin_hash,
        # Without it the chart renders `now` (argo-helm templates/argocd-configs/argocd-secret.yaml
        # @ argo-cd-10.1.1), which logs every admin out on each `up`: the password's creation time.
        "argocdServerAdminPasswordMtime": admin_mtime,
        "githubSecret": args.webhook_secret,
    }
    cm: dict[str, Any] = {"url": f"https://{args.host}", "admin.enabled": True}
    if args.oidc is not None:
        cm["oidc.config"] = oidc_config(args.oidc)
        secret["extra"] = {OIDC_SECRET_KEY: args.oidc.client_secret}
    elif args.sso is not None:
        cm["dex.config"] = dex_config(args.sso)
        secret["extra"] = {"dex.github.clientSecret": args.sso.client_secret}
    replicas = 2 if args.ha else 1
    return {
        "global": {"domain": args.host},
        "configs": {
            # argocd-cmd-params-cm (docs/operator-manual/argocd-cmd-params-cm.yaml @ v3.4.4:
            # `server.insecure`): TLS ends at the Gateway or Ingress; the chart's HTTPRoute then
            # targets the server's HTTP port (templates/argocd-server/httproute.yaml @ 10.1.1).
            "params": {"server.insecure": True},
            "cm": cm,
            "secret": secret,
            # Project roles name GitHub logins; Dex puts the login in preferred_username.
            "rbac": rbac_values(args),
        },
        "redis-ha": {"enabled": args.ha},
        "controller": {"replicas": 1},
        "repoServer": {"replicas": replicas},
        "applicationSet": {"replicas": replicas},
        "server": {"replicas": replicas, **server_route_values(args.route)},
        "dex": {"enabled": args.sso is not None and args.oidc is None},
        "notifications": notifications_values(args),
    }


def server_route_values(route: Route) -> dict[str, Any]:
    """`server.httproute` (gateway mode) or `server.ingress` with the certificate's Secret in
    `extraTls` (ingress mode: `tls: true` would name the chart's own `argocd-server-tls`)."""
    if route.mode == "gateway":
        return {"httproute": {"enabled": True, "parentRefs": route.parent_refs(), "hostnames": [route.host]}}
    return {
        "ingress": {
            "enabled": True,
            "ingressClassName": route.ingress_class,
            "hostname": route.host,
            "extraTls": [{"hosts": [route.host], "secretName": route.tls_secret}],
        }
    }


class ArgoCd(pulumi.ComponentResource):
    release: Any
    admin_password: pulumi.Output[str]
    url: str

    def __init__(
        self,
        name: str,
        args: ArgoCdArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:ArgoCd", name, None, opts)
        password = random.RandomPassword(
            f"{name}-admin-password", length=24, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.admin_password = pulumi.Output.secret(password.result)
        # Set once, and again only when the password is replaced.
        mtime = pulumiverse_time.Static(
            f"{name}-admin-password-mtime",
            triggers={"password": self.admin_password},
            opts=pulumi.ResourceOptions(parent=self),
        )
        values = argocd_values(args, pulumi.Output.secret(password.bcrypt_hash), mtime.rfc3339)
        self.certificate = route_certificate(
            f"{name}-certificate", args.route, args.cluster_issuer, cluster, args.depends_on, self
        )
        self.release = helm_release(
            name,
            "argo-cd",
            cluster.args.namespace,
            values,
            cluster.opts(parent=self, depends_on=[cluster.namespace, *args.depends_on]),
        )
        self.namespace = cluster.args.namespace
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})
