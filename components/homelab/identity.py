"""Authelia, the stack's identity provider (issue 24): its sign-in portal, the users and groups
of the stack config, and the access rules.

Why Authelia (docs/concepts.md, "Identity"): it is OpenID Certified (README, @ v4.39.20), made
for a proxy in front of services (forward auth), runs from one small container with a file of
users and SQLite, and is configured entirely by files the program can generate and check
against the JSON schema Authelia publishes for its version. Keycloak and authentik have Pulumi
providers, but Keycloak sizes a node at 1250 MB of RAM and authentik runs a PostgreSQL server,
a server and a worker (their sources in docs/concepts.md).

The users file holds argon2id hashes, made on the operator's machine (`password_hash`), with
the parameters Authelia documents as its "Low Memory" recommendation and defaults (argon2id,
t=3, m=65536 KiB, p=4, 16-byte salt, 32-byte key: docs/content/reference/guides/passwords.md
and docs/content/configuration/first-factor/file.md @ v4.39.20). Each user's salt is a
`random.RandomBytes` kept in state, so a hash changes only when the password does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

import yaml

from components.docker.spec import (
    Basics,
    ContainerSpec,
    FileUpload,
    MetricsEndpoint,
    Route,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
    http_check,
    secret_file,
)
from components.homelab.images import CONTRACTS

PORT = 9091  # server.address default tcp://:9091/ (docs/content/configuration/miscellaneous/server.md)
# telemetry.metrics: Prometheus metrics on their own listener, default tcp://:9959/metrics
# (docs/content/configuration/telemetry/metrics.md @ v4.39.20); off unless enabled.
METRICS_PORT = 9959
# PUID/PGID the entrypoint gives /config and runs authelia as: the uid docs/content/
# integration/deployment/docker.md uses in its example (8000), no other image's here.
UID = CONTRACTS["authelia"].uid
CONFIG_DIR = "/etc/authelia"
CONFIG = f"{CONFIG_DIR}/configuration.yml"
USERS = f"{CONFIG_DIR}/users_database.yml"
DATA = "/config"  # the volume: SQLite and the filesystem notifier's file
KIND = "IdentityProvider"
USERS_SECRET = "identity-users"  # the shared secret holding the users file (hashes inside)

# argon2id as Authelia documents it (see the module docstring).
ITERATIONS, MEMORY_KIB, PARALLELISM, KEY_LENGTH, SALT_LENGTH = 3, 65536, 4, 32, 16
ARGON2 = {
    "variant": "argon2id",
    "iterations": ITERATIONS,
    "memory": MEMORY_KIB,
    "parallelism": PARALLELISM,
    "key_length": KEY_LENGTH,
    "salt_length": SALT_LENGTH,
}


@dataclass(frozen=True)
class IdentityUserSpec:
    name: str
    display_name: str
    email: str
    groups: tuple[str, ...]
    disabled: bool = False


@dataclass(frozen=True)
class AccessRule:
    """Who may reach `fqdn` through forward auth: `policy` ("one_factor", "two_factor") and,
    when any, only members of `groups`."""

    fqdn: str
    policy: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcClient:
    """A service that signs its users in through Authelia (OpenID Connect 1.0, authorization
    code flow with PKCE). `groups`: only their members may sign in (default: any user); the
    admin groups always may, with two factors."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    groups: tuple[str, ...] = ()
    # A public client (a command line tool on the user's machine): no secret, PKCE only, and
    # refresh tokens (the `argocd-cli` client of Authelia's argocd guide @ v4.39.20).
    public: bool = False
    # PKCE required (S256); off for a client that does not send it (Harbor: `require_pkce:
    # false` in Authelia's harbor guide @ v4.39.20).
    pkce: bool = True
    # Refresh tokens (`offline_access`, grant `refresh_token`), as a public client always has
    # them (Harbor's guide asks for them too).
    refresh: bool = False


@dataclass(frozen=True)
class IdentityArgs:
    basics: Basics
    domain: str  # the session cookie's domain: every routed name is under it
    admin_groups: tuple[str, ...]
    rules: tuple[AccessRule, ...] = ()
    clients: tuple[OidcClient, ...] = ()


# The ForwardAuth endpoint HAProxy asks (docs/content/reference/guides/proxy-authorization.md
# @ v4.39.20), on the stack network.
VERIFY_PATH = "/api/authz/forward-auth"


def verify_url(container: str = "authelia") -> str:
    return f"http://{container}:{PORT}{VERIFY_PATH}"


# ---- OpenID Connect 1.0 provider ---------------------------------------------------------
# The identity_providers section holds the issuer's private key, the HMAC secret and the
# clients' secret digests, so it is a second configuration file, a secret of uid 8000 alone.
# Authelia merges the files given with --config in order; a section may live in a file of its
# own (docs/content/configuration/methods/files.md, "Multiple Configuration Files", v4.39.20).
OIDC_CONFIG = f"{CONFIG_DIR}/oidc.yml"
OIDC_SECRET = "identity-oidc"  # the shared secret holding that file
# Endpoints under the issuer (the portal's URL): docs/content/integration/openid-connect/
# clients/grafana/index.md @ v4.39.20 (auth_url, token_url, api_url).
AUTHORIZATION_PATH, TOKEN_PATH, USERINFO_PATH = (
    "api/oidc/authorization",
    "api/oidc/token",
    "api/oidc/userinfo",
)
# The scopes every client here asks for (configuration.json @ v4.39: the scope enum).
SCOPES = ("openid", "profile", "email", "groups")
# Client secrets are stored as pbkdf2-sha512 digests with 310000 iterations and a 16-byte salt,
# the form of the digests in Authelia's client guides (grafana/index.md: the digest of
# 'insecure_secret'; the `$pbkdf2-sha512$` prefix: docs/content/reference/guides/passwords.md).
PBKDF2_ITERATIONS, PBKDF2_KEY_LENGTH = 310000, 64


def client_secret_name(client_id: str) -> str:
    """The shared secret holding a client's secret in plain text (the client's file)."""
    return f"oidc-{client_id}-secret"


def _ab64(raw: bytes) -> str:
    """passlib's adapted base64, which the PHC-style pbkdf2 digests use: '+' as '.', no '='."""
    return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")


@functools.lru_cache(maxsize=64)
def client_secret_digest(secret: str, salt_b64: str) -> str:
    """The pbkdf2-sha512 digest Authelia verifies `secret` against, from a fixed salt (kept in
    state, so the digest changes only with the secret)."""
    salt = base64.b64decode(salt_b64)
    raw = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, PBKDF2_ITERATIONS, PBKDF2_KEY_LENGTH)
    return f"$pbkdf2-sha512${PBKDF2_ITERATIONS}${_ab64(salt)}${_ab64(raw)}"


def authorization_policy(client: OidcClient, admin_groups: tuple[str, ...]) -> dict:
    """Who may sign in to `client`: the admin groups with two factors, then its groups (or any
    user) with one; everyone else is denied (identity_providers.oidc.authorization_policies:
    first matching rule wins, `deny` only there: provider.md @ v4.39.20)."""
    rules: list[dict] = []
    if admin_groups:
        rules.append({"policy": "two_factor", "subject": [[f"group:{g}"] for g in admin_groups]})
    if client.groups:
        rules.append({"policy": "one_factor", "subject": [[f"group:{g}"] for g in client.groups]})
    return {"default_policy": "deny" if client.groups else "one_factor", "rules": rules}


def client_entry(c: OidcClient, digests: dict[str, str]) -> dict:
    """One client: confidential (a secret digest, client_secret_basic) or public (no secret,
    `none`, refresh tokens for a command line tool); PKCE with S256 unless the client says not."""
    entry: dict = {"client_id": c.client_id, "client_name": c.name}
    if not c.public:
        entry["client_secret"] = digests[c.client_id]
    refresh = c.public or c.refresh
    entry |= {
        "public": c.public,
        "authorization_policy": c.client_id,
        "require_pkce": c.pkce,
        "pkce_challenge_method": "S256" if c.pkce else "",
        "redirect_uris": list(c.redirect_uris),
        "scopes": [*SCOPES, "offline_access"] if refresh else list(SCOPES),
        "response_types": ["code"],
        "grant_types": ["authorization_code", "refresh_token"] if refresh else ["authorization_code"],
        "access_token_signed_response_alg": "none",
        "userinfo_signed_response_alg": "none",
        "token_endpoint_auth_method": "none" if c.public else "client_secret_basic",
    }
    return entry


def oidc_section(
    clients: tuple[OidcClient, ...],
    admin_groups: tuple[str, ...],
    hmac_secret: str,
    key_pem: str,
    digests: dict[str, str],
) -> str:
    """The secret configuration file: the provider's keys and its clients (a confidential
    client each, PKCE with S256, the code flow only; the fields of the client guides)."""
    document = {
        "identity_providers": {
            "oidc": {
                "hmac_secret": hmac_secret,
                "jwks": [{"key_id": "main", "algorithm": "RS256", "use": "sig", "key": key_pem}],
                "authorization_policies": {
                    c.client_id: authorization_policy(c, admin_groups) for c in clients
                },
                "clients": [client_entry(c, digests) for c in clients],
            }
        }
    }
    return yaml.safe_dump(document, sort_keys=False)


def password_hash(password: str, salt_b64: str) -> str:
    """The argon2id hash of `password` in Authelia's (PHC) form, from a fixed salt."""
    from argon2.low_level import Type, hash_secret

    digest = hash_secret(
        password.encode(),
        base64.b64decode(salt_b64),
        time_cost=ITERATIONS,
        memory_cost=MEMORY_KIB,
        parallelism=PARALLELISM,
        hash_len=KEY_LENGTH,
        type=Type.ID,
    )
    return digest.decode()


def users_file(users: list[IdentityUserSpec], hashes: dict[str, str]) -> str:
    """users_database.yml: `users` by name, as the file backend reads it."""
    document = {
        "users": {
            u.name: {
                "disabled": u.disabled,
                "displayname": u.display_name,
                "password": hashes[u.name],
                "email": u.email,
                "groups": list(u.groups),
            }
            for u in users
        }
    }
    return yaml.safe_dump(document, sort_keys=False)


def access_control(a: IdentityArgs) -> dict:
    """One rule per name behind forward auth; everything else denied. Without any rule the
    default must be a sign-in policy (internal/configuration/validator), and then no name
    asks Authelia anyway."""
    if not a.rules:
        return {"default_policy": "two_factor"}
    rules = []
    for r in a.rules:
        rule: dict = {"domain": [r.fqdn], "policy": r.policy}
        if r.groups:
            rule["subject"] = [[f"group:{g}"] for g in r.groups]
        rules.append(rule)
    return {"default_policy": "deny", "rules": rules}


def authelia_config(a: IdentityArgs) -> dict:
    """configuration.yml as data (checked against Authelia's JSON schema in the tests). The
    secrets come from *_FILE variables, so none of them is in it."""
    return {
        "theme": "auto",
        "server": {"address": f"tcp://:{PORT}/"},
        "log": {"level": "info"},
        "totp": {"issuer": a.domain},
        "authentication_backend": {
            # Users live in the stack config: no self-service reset (it would be undone by `up`).
            "password_reset": {"disable": True},
            "file": {
                "path": USERS,
                "watch": False,
                "password": {"algorithm": "argon2", "argon2": ARGON2},
            },
        },
        "access_control": access_control(a),
        "session": {"cookies": [{"domain": a.domain, "authelia_url": a.basics.url}]},
        "storage": {"local": {"path": f"{DATA}/db.sqlite3"}},
        "notifier": {"filesystem": {"filename": f"{DATA}/notification.txt"}},
        "telemetry": {"metrics": {"enabled": True, "address": f"tcp://:{METRICS_PORT}/metrics"}},
    }


def authelia(a: IdentityArgs) -> ServiceSpec:
    b = a.basics
    contract = CONTRACTS["authelia"]
    files = {
        "AUTHELIA_SESSION_SECRET_FILE": secret_file("session-secret", "session-secret", owner=UID),
        "AUTHELIA_STORAGE_ENCRYPTION_KEY_FILE": secret_file("storage-key", "storage-key", owner=UID),
        "AUTHELIA_IDENTITY_VALIDATION_RESET_PASSWORD_JWT_SECRET_FILE": secret_file(
            "jwt-secret", "jwt-secret", owner=UID
        ),
    }
    users = FileUpload(USERS, SecretRef("{" + USERS_SECRET + "}"), owner=UID, mode="0400")
    command: tuple[str, ...] = ("--config", CONFIG)
    oidc: tuple[FileUpload, ...] = ()
    if a.clients:
        command += ("--config", OIDC_CONFIG)
        oidc = (FileUpload(OIDC_CONFIG, SecretRef("{" + OIDC_SECRET + "}"), owner=UID, mode="0400"),)
    container = ContainerSpec(
        name="authelia",
        image=b.image,
        privileges=contract.privileges(),
        command=command,
        env={"PUID": str(UID), "PGID": str(UID), **{k: f.path for k, f in files.items()}},
        volumes=(Volume("authelia-data", DATA),),
        uploads=(
            FileUpload(CONFIG, yaml.safe_dump(authelia_config(a), sort_keys=False)),
            users,
            *oidc,
            *files.values(),
        ),
        healthcheck=http_check(f"http://127.0.0.1:{PORT}/api/health"),
        memory_mb=b.memory(256),
    )
    return ServiceSpec(
        name=b.name or "authelia",
        kind=KIND,
        host=b.host,
        containers=(container,),
        routes=(Route(b.fqdn, "authelia", PORT),) if b.fqdn else (),
        metrics=(MetricsEndpoint("authelia", "authelia", METRICS_PORT, "/metrics", METRICS_PORT),),
        # The storage key must be 20 characters or more (internal/configuration/validator).
        secrets=(
            SecretSpec("session-secret", 64),
            SecretSpec("storage-key", 64),
            SecretSpec("jwt-secret", 64),
        ),
        restart=b.restart,
        title="Sign-in",
    )
