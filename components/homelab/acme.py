"""Publicly trusted certificates on the Docker side (issue 25): lego beside each HAProxy gets one
certificate for the domain and its wildcard through ACME DNS-01, renews it on its own (no
`pulumi up`), and hands it to HAProxy without a restart.

Why this mechanism (docs/concepts.md, "Certificates"):
- HAProxy's own ACME client (3.2, the pinned line) is experimental and limited to HTTP-01
  ("Current limitations as of 3.2", doc/configuration.txt section 12.8 @ v3.2.0): a host the
  internet cannot reach never gets a certificate that way;
- pulumiverse-acme renews only when someone runs `pulumi up`;
- lego speaks DNS-01 to every provider of its list (components/homelab/lego_providers.py) and
  runs from a configuration file (`lego --config`: docs/content/advanced/file-configuration.md
  @ v5.3.1), renewing when due (1/3 of the lifetime left by default, or as the CA's renewal
  information says: references/ref-file/_index.md).

Delivery: the renewer shares HAProxy's PID namespace. Its deploy hook (lego runs it after each
new certificate: advanced/hooks.md, with LEGO_HOOK_CERT_PATH and LEGO_HOOK_CERT_KEY_PATH) writes
key and chain as one PEM into a volume HAProxy reads (`crt <dir>`; files starting with a dot
are skipped, so the hook writes a dot file and renames it: doc/configuration.txt "crt" @ v3.2.0)
and sends SIGUSR2 to HAProxy's master, PID 1 of that namespace (the image runs `haproxy -W`,
master-worker mode, which reloads on SIGUSR2: docker-library/haproxy 3.2/alpine/
docker-entrypoint.sh). New workers serve the new certificate; the old ones finish their
connections; the master is not restarted. tests/test_acme_live.py runs the hook against a real
haproxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from components.docker.spec import (
    SECRETS_DIR,
    ContainerSpec,
    FileUpload,
    SecretRef,
    Volume,
)
from components.homelab.images import CONTRACTS

CONFIG_DIR = "/etc/lego"
CONFIG = f"{CONFIG_DIR}/lego.yml"
HOOK = f"{CONFIG_DIR}/deploy-hook.sh"
STORAGE = "/var/lib/lego"  # accounts and certificates (a stateful volume: no new order on restart)
CERTS = "/certs"  # the renewer's side of the volume HAProxy reads
HAPROXY_DIR = "/var/lib/haproxy/acme"  # HAProxy's side (`crt <dir>/`), read-only there
CERT_FILE = "homelab.pem"
ENV_FILE = f"{SECRETS_DIR}/acme-dns.env"
ENV_SECRET = "acme-dns-env"  # the shared secret holding the DNS provider's credentials
CERTS_VOLUME = "acme-certs"
STORAGE_VOLUME = "acme-data"
HAPROXY_UID = CONTRACTS["haproxy"].uid
# Let's Encrypt's short codes in lego (docs/content/advanced/zz_gen_caservers.md @ v5.3.1).
SERVERS = {"production": "letsencrypt", "staging": "letsencrypt-staging"}
CHECK_EVERY = 43200  # seconds (12 h) between the renewer's questions to lego: is it due?


HTTP01_PORT = 8402  # lego's HTTP-01 server in the renewer, which HAProxy sends the CA's requests to


@dataclass(frozen=True)
class AcmeArgs:
    domain: str
    email: str
    server: str  # "production", "staging" or a directory URL
    dns_provider: str | None
    resolvers: tuple[str, ...] = ()
    challenge: str = "dns-01"
    names: tuple[str, ...] = ()  # http-01: the names this host's proxy routes

    @property
    def domains(self) -> tuple[str, ...]:
        if self.challenge == "http-01":
            return self.names
        return (self.domain, f"*.{self.domain}")


def covers(domains: tuple[str, ...], fqdn: str) -> bool:
    """Whether a certificate for `domains` is valid for `fqdn`: a name, or a wildcard for one
    label ("*.example.org matches www.example.org but not www.sub.example.org": "crt" in
    doc/configuration.txt @ v3.2.0)."""
    first, _, rest = fqdn.partition(".")
    return any(d == fqdn or (d.startswith("*.") and first and rest == d[2:]) for d in domains)


def lego_config(a: AcmeArgs) -> dict:
    """lego.yml: every key from the configuration file reference (docs/content/references/
    ref-file/_index.md @ v5.3.1; the tests hold the file to it)."""
    challenge: dict
    if a.challenge == "http-01":
        # lego's own HTTP server on an unprivileged port; HAProxy routes /.well-known/acme-challenge/
        # of port 80 to it (challenges.<name>.http.address: the file reference).
        challenge = {"http": {"address": f":{HTTP01_PORT}"}}
    else:
        challenge = {"dns": {"provider": a.dns_provider, "envFile": ENV_FILE}}
        if a.resolvers:
            challenge["dns"]["resolvers"] = list(a.resolvers)
    return {
        "storage": STORAGE,
        "accounts": {
            "homelab": {
                "server": SERVERS.get(a.server, a.server),
                "email": a.email,
                "acceptsTermsOfService": True,
            }
        },
        "challenges": {"acme": challenge},
        "certificates": {"homelab": {"account": "homelab", "challenge": "acme", "domains": list(a.domains)}},
        "hooks": {"deploy": {"command": HOOK}},
    }


def deploy_hook() -> str:
    """Run by lego after a new certificate (and by the loop when HAProxy's copy is missing)."""
    out = f"{CERTS}/{CERT_FILE}"
    staging = f"{CERTS}/.{CERT_FILE}"
    return f"""#!/bin/sh
# lego's deploy hook: the new key and chain as one PEM for HAProxy, then a seamless reload.
set -eu
umask 077
cat "$LEGO_HOOK_CERT_KEY_PATH" "$LEGO_HOOK_CERT_PATH" > {staging}
# chmod before chown: with only CHOWN and KILL, root may no longer change a file it gave away.
chmod 0400 {staging}
chown {HAPROXY_UID}:{HAPROXY_UID} {staging}
mv -f {staging} {out}
# HAProxy's master is PID 1 of the PID namespace this container shares (HAPROXY_PID: tests).
kill -USR2 "${{HAPROXY_PID:-1}}"
echo "acme: new certificate for $LEGO_HOOK_CERT_DOMAINS handed to HAProxy"
"""


def loop_script() -> str:
    """The renewer's process: lego when due, every CHECK_EVERY; HAProxy's copy restored from
    lego's storage if the volume lost it."""
    cert = f"{STORAGE}/certificates/homelab.crt"
    key = f"{STORAGE}/certificates/homelab.key"
    return (
        "while :; do "
        f"/lego --config {CONFIG} || echo 'acme: lego failed; retrying in {CHECK_EVERY} s' >&2; "
        f"if [ -f {cert} ] && [ ! -f {CERTS}/{CERT_FILE} ]; then "
        f"LEGO_HOOK_CERT_PATH={cert} LEGO_HOOK_CERT_KEY_PATH={key} LEGO_HOOK_CERT_DOMAINS=restored "
        f"{HOOK}; fi; "
        f"sleep {CHECK_EVERY}; done"
    )


def env_file(credentials: dict[str, str]) -> str:
    """The DNS provider's credentials as the dotenv file lego loads (envFile; joho/godotenv:
    single-quoted values are taken literally)."""
    lines = []
    for name, value in sorted(credentials.items()):
        if "'" in value or "\n" in value:
            raise ValueError(
                f"the value of {name} has a quote or a line break, which the env file cannot hold"
            )
        lines.append(f"{name}='{value}'")
    return "\n".join(lines) + "\n"


def renewer(a: AcmeArgs, image: str, proxy: str = "haproxy") -> ContainerSpec:
    """The lego container beside the proxy container `proxy` (same service)."""
    return ContainerSpec(
        name="acme",
        image=image,
        privileges=CONTRACTS["acme"].privileges(),
        entrypoint=("/bin/sh", "-c"),
        command=(loop_script(),),
        volumes=(Volume(STORAGE_VOLUME, STORAGE), Volume(CERTS_VOLUME, CERTS, stateful=False)),
        uploads=(
            FileUpload(CONFIG, yaml.safe_dump(lego_config(a), sort_keys=False)),
            FileUpload(HOOK, deploy_hook(), executable=True, mode="0755"),
            *(
                (FileUpload(ENV_FILE, SecretRef("{" + ENV_SECRET + "}"), owner=0, mode="0400"),)
                if a.challenge == "dns-01"
                else ()
            ),
        ),
        # In HAProxy's PID namespace, created after it (and replaced with it).
        depends_on=(proxy,),
        pid_mode=f"container:{proxy}",
        memory_mb=128,
    )
