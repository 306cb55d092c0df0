"""The identity section (`homelab:identity`, issue 24): the users and groups of the stack's
single sign-on, declared in config like everything else.

A password is never in the config: each user names a config key set with
`pulumi config set --secret`, and the program hashes it on the operator's machine before it
reaches the provider. Field-level rules only; `problems()` holds the rules across users.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from stacks.config_base import Email, Image, Label, MemoryMb, Model, Restart, SecretKey, Subdomain, Text

_USERNAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a user name (lower-case letters, digits, '.', '_', '-'; a letter first)"
        )
    return value


Username = Annotated[str, AfterValidator(_username)]


class IdentityUser(Model):
    """One person who signs in: the provider's user, removed from it when removed here."""

    name: Username = Field(description="The name to sign in with.")
    display_name: Text | None = Field(default=None, description="Shown in the services (default: the name).")
    email: Email = Field(description="Their e-mail address (one per user; the OIDC `email` claim).")
    groups: list[Label] = Field(default_factory=list, description="Groups, each declared in `groups`.")
    password_secret: SecretKey = Field(
        description="Config key holding the password (set with --secret); hashed with argon2id "
        "before it leaves this machine."
    )
    disabled: bool = Field(default=False, description="Keep the user, but refuse every sign-in.")

    @model_validator(mode="before")
    @classmethod
    def _no_plain_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "a password in plain text: set it with `pulumi config set --secret <key> ...` and "
                "name that key in password-secret"
            )
        return data


class RoutePolicy(Model):
    """Who gets through the proxy to a routed service that has no login of its own."""

    policy: Literal["public", "one-factor", "two-factor"] = Field(
        description="`public`: no sign-in; `one-factor`: a password; `two-factor`: and a second factor."
    )
    groups: list[Label] = Field(
        default_factory=list, description="Only members of these groups (default: any user)."
    )


class OidcClientConfig(Model):
    """A service that signs its users in through the identity provider (OpenID Connect)."""

    enabled: bool = Field(default=True, description="Sign in through the identity provider.")
    groups: list[Label] = Field(
        default_factory=list,
        description="Only members of these groups may sign in (default: any user); admin-groups "
        "always may, with two factors.",
    )


# Which services sign in through OpenID Connect, and why the others do not (issue 24; each
# verdict read upstream, sources in docs/concepts.md, "Identity").
OIDC_SERVICES = ("grafana", "argocd", "harbor", "kubernetes")
NO_OIDC = {
    "portainer": "Portainer CE has OAuth sign-in, but it is set only through its settings API "
    "(no flag or variable), which the program does not drive yet: it keeps its own login",
    "mattermost": "Mattermost Team Edition has no OpenID Connect (a paid-edition feature): "
    "it keeps its own login",
    "drupal": "the Drupal image ships no OpenID Connect module: it keeps its own login",
    "prometheus": "Prometheus has no login of its own: it sits behind forward auth (identity.forward-auth)",
    "alertmanager": "Alertmanager has no login of its own: it sits behind forward auth "
    "(identity.forward-auth)",
}


class IdentityConfig(Model):
    """The identity provider: who may sign in, and in which groups."""

    enabled: bool = Field(default=False, description="Run the identity provider.")
    host: Label | None = Field(default=None, description="Host to run on (default: the first).")
    hostname: Subdomain = Field(default="auth", description="Name under the domain of its sign-in page.")
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")
    groups: list[Label] = Field(default_factory=lambda: ["admins"], description="The groups users may be in.")
    admin_groups: list[Label] = Field(
        default_factory=lambda: ["admins"],
        description="Groups whose members administer the stack: they sign in with a second factor.",
    )
    users: list[IdentityUser] = Field(default_factory=list, description="Who may sign in.")
    oidc: dict[Label, OidcClientConfig] = Field(
        default_factory=dict,
        description="Per service that speaks OpenID Connect (grafana, argocd, harbor, kubernetes): who "
        "signs in to it through the identity provider. Default: each such service that is enabled and "
        "routed, for any user, its admins from admin-groups (Argo CD: unless it signs in with GitHub); "
        "`harbor` only when named here (Harbor then keeps no local users: project access goes to the "
        "projects' groups; its admin group is the first of admin-groups); `kubernetes` (kubectl "
        "through kubelogin) only when named here.",
    )
    forward_auth: dict[Subdomain, RoutePolicy] = Field(
        default_factory=dict,
        description="Per routed name (as in the services' hostname): who gets through to a service "
        "without a login of its own. Default: admin tools (Prometheus, Alertmanager) two-factor for "
        "admin-groups, every other such route one-factor for any user.",
    )

    def problems(self) -> list[tuple[str, str]]:
        """Groups declared once and known; names and e-mail addresses once each; an admin."""
        if not self.enabled:
            return []
        out: list[tuple[str, str]] = []
        declared: set[str] = set()
        for i, group in enumerate(self.groups):
            if group in declared:
                out.append((f"identity.groups[{i}]", f"group {group!r} is declared twice"))
            declared.add(group)
        for i, group in enumerate(self.admin_groups):
            if group not in declared:
                out.append((f"identity.admin-groups[{i}]", f"unknown group {group!r}: declare it in groups"))
        names: dict[str, int] = {}
        emails: dict[str, int] = {}
        for i, user in enumerate(self.users):
            path = f"identity.users[{i}]"
            if user.name in names:
                out.append((f"{path}.name", f"user {user.name!r} is also users[{names[user.name]}]"))
            names.setdefault(user.name, i)
            email = user.email.lower()
            if email in emails:
                out.append((f"{path}.email", f"{user.email} is also the e-mail of users[{emails[email]}]"))
            emails.setdefault(email, i)
            for j, group in enumerate(user.groups):
                if group not in declared:
                    out.append(
                        (f"{path}.groups[{j}]", f"unknown group {group!r}: declare it in identity.groups")
                    )
        for host, rule in self.forward_auth.items():
            for j, group in enumerate(rule.groups):
                if group not in declared:
                    path = f"identity.forward-auth.{host}.groups[{j}]"
                    out.append((path, f"unknown group {group!r}: declare it in identity.groups"))
            if rule.policy == "public" and rule.groups:
                out.append((f"identity.forward-auth.{host}.groups", "a public route has no groups"))
        for service, client in self.oidc.items():
            if service not in OIDC_SERVICES:
                why = NO_OIDC.get(service, f"no service {service!r} signs in through OpenID Connect")
                out.append((f"identity.oidc.{service}", f"{why} (these do: {', '.join(OIDC_SERVICES)})"))
            for j, group in enumerate(client.groups):
                if group not in declared:
                    path = f"identity.oidc.{service}.groups[{j}]"
                    out.append((path, f"unknown group {group!r}: declare it in identity.groups"))
        admins = set(self.admin_groups) & declared  # an unknown one is reported above
        if admins and not any(admins & set(u.groups) and not u.disabled for u in self.users):
            out.append(
                (
                    "identity.users",
                    f"no enabled user is in {', '.join(sorted(admins))}: nobody could administer",
                )
            )
        return out

    def secret_refs(self) -> list[tuple[str, str]]:
        if not self.enabled:
            return []
        return [(f"identity.users[{i}].password-secret", u.password_secret) for i, u in enumerate(self.users)]
