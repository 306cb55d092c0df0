"""HAProxy: the reverse proxy of a host, its configuration derived from the routes alone.

HTTP routes are chosen by Host header (HTTP->HTTPS redirect when TLS is on), every TCP
route gets its own frontend on its exposed port, backends resolve containers through
Docker's DNS and are health-checked, and the `stats` frontend serves HAProxy's built-in
Prometheus exporter on `/metrics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from components.docker.spec import (
    Basics,
    ContainerSpec,
    FileUpload,
    MetricsEndpoint,
    PublishedPort,
    Route,
    SecretRef,
    ServiceSpec,
    Volume,
    http_check,
)
from components.homelab import acme
from components.homelab.acme import AcmeArgs
from components.homelab.images import CONTRACTS
from components.templating import render

CONFIG_DIR = "/usr/local/etc/haproxy"
CERT_DIR = f"{CONFIG_DIR}/certs"
# The certificate served to a client that names no routed host (or none): first in the crt-list,
# so HAProxy's default, and no service's (the .invalid name is reserved, RFC 2606).
FALLBACK_NAME = "no-service.invalid"


def cert_secret_name(fqdn: str) -> str:
    """The shared-secret name under which the combined PEM of `fqdn` is handed to the proxy."""
    return "tls-" + fqdn.replace(".", "_")


def _backend_name(route: Route) -> str:
    return re.sub(r"[^a-z0-9_]", "_", f"be_{route.container}_{route.port}")


@dataclass(frozen=True)
class Backend:
    name: str
    mode: str
    container: str
    port: int
    fqdn: str
    exposed_port: int | None
    allow_from: tuple[str, ...] = ()


def backends(routes: tuple[Route, ...]) -> tuple[list[Backend], list[Backend]]:
    """HTTP and TCP routes as (frontend rule, backend) pairs, sorted for a stable file."""
    http: list[Backend] = []
    tcp: list[Backend] = []
    for r in sorted(routes, key=lambda r: (r.mode, r.fqdn, r.exposed_port or 0)):
        allow = r.exposure.allow_from if r.exposure else ()
        b = Backend(_backend_name(r), r.mode, r.container, r.port, r.fqdn, r.exposed_port, allow)
        (http if r.mode == "http" else tcp).append(b)
    return http, tcp


def unique_backends(routes: list[Backend]) -> list[Backend]:
    """One backend section per name: several host names may share a container port."""
    seen: dict[str, Backend] = {}
    for b in routes:
        seen.setdefault(b.name, b)
    return list(seen.values())


FORWARD_AUTH_LUA = "forward-auth.lua"  # in config_dir; components/homelab/templates/forward-auth.lua


def forward_auth_lua() -> str:
    return (Path(__file__).parent / "templates" / FORWARD_AUTH_LUA).read_text()


def haproxy_config(
    routes: tuple[Route, ...],
    tls: bool,
    stats_port: int,
    config_dir: str = CONFIG_DIR,
    verify_url: str | None = None,
    acme_dir: str | None = None,
    acme_http01: int | None = None,
) -> str:
    """Render haproxy.cfg; `config_dir` is where crt-list.txt, certs/ and the forward-auth Lua
    are found; `verify_url`: the identity provider's forward-auth endpoint, asked for every
    route with an `auth` policy (HTTPS only: the identity provider needs TLS); `acme_dir`: the
    directory of the ACME certificate, loaded beside the crt-list (its names' SNI picks it)."""
    http, tcp = backends(routes)
    protected = sorted({r.fqdn for r in routes if r.mode == "http" and r.auth})
    if protected and not (tls and verify_url):
        raise ValueError("routes with sign-in need TLS and the identity provider's forward-auth URL")
    return render(
        __file__,
        "haproxy.cfg.j2",
        protected=protected,
        verify_url=verify_url,
        lua=f"{config_dir}/{FORWARD_AUTH_LUA}",
        # Without an HTTP route there is no certificate, so no TLS listener either.
        tls=tls and bool(http),
        sections=unique_backends(http + tcp),
        stats_port=stats_port,
        crt_list=f"{config_dir}/crt-list.txt",
        acme_dir=acme_dir,
        acme_http01=acme_http01,
        http_backends=http,
        tcp_backends=tcp,
    )


def crt_list(fqdns: list[str], cert_dir: str = CERT_DIR) -> str:
    """One line per host: its combined PEM and the SNI name it answers; the fallback first (the
    first certificate is the one an unknown or missing SNI name gets)."""
    names = [FALLBACK_NAME, *sorted(fqdns)]
    return "".join(f"{cert_dir}/{fqdn}.pem {fqdn}\n" for fqdn in names)


@dataclass(frozen=True)
class ProxyArgs:
    basics: Basics
    routes: tuple[Route, ...]
    tls: bool
    http_port: int = 80
    https_port: int = 443
    stats_port: int = 8404
    verify_url: str | None = None  # the identity provider's forward-auth endpoint
    # ACME (tls.mode acme): the renewer beside HAProxy, and its image.
    acme: AcmeArgs | None = None
    acme_image: str | None = None


def tls_hosts(routes: tuple[Route, ...]) -> list[str]:
    return sorted({r.fqdn for r in routes if r.mode == "http"})


def haproxy(a: ProxyArgs) -> ServiceSpec:
    b = a.basics
    hosts = tls_hosts(a.routes)
    acme_dir = acme.HAPROXY_DIR if a.acme is not None else None
    http01 = acme.HTTP01_PORT if a.acme is not None and a.acme.challenge == "http-01" else None
    config = haproxy_config(
        a.routes, a.tls, a.stats_port, verify_url=a.verify_url, acme_dir=acme_dir, acme_http01=http01
    )
    # The ACME certificate answers for the names it covers: no generated one shadows it
    # (an exact SNI match wins over a wildcard).
    own_certs = [h for h in hosts if a.acme is None or not acme.covers(a.acme.domains, h)]
    uploads = [FileUpload(f"{CONFIG_DIR}/haproxy.cfg", config)]
    if any(r.auth for r in a.routes):
        uploads.append(FileUpload(f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}", forward_auth_lua()))
    ports = [PublishedPort(80, a.http_port)]
    if a.tls and hosts:
        uploads.append(FileUpload(f"{CONFIG_DIR}/crt-list.txt", crt_list(own_certs)))
        # Key and certificate: readable by the haproxy user only (the image runs as it).
        uploads += [
            FileUpload(
                f"{CERT_DIR}/{fqdn}.pem",
                SecretRef("{" + cert_secret_name(fqdn) + "}"),
                owner=CONTRACTS["haproxy"].uid,
                mode="0400",
            )
            for fqdn in [FALLBACK_NAME, *own_certs]
        ]
        ports.append(PublishedPort(443, a.https_port))
    # A TCP frontend is published on its one host address only (Exposure.bind_address).
    ports += [
        PublishedPort(r.exposed_port, r.exposed_port, host_ip=r.exposure.bind_address)
        for r in sorted(a.routes, key=lambda r: r.exposed_port or 0)
        if r.mode == "tcp" and r.exposed_port and r.exposure
    ]
    container = ContainerSpec(
        name="haproxy",
        image=b.image,
        privileges=CONTRACTS["haproxy"].privileges(),
        uploads=tuple(uploads),
        ports=tuple(ports),
        # The stats frontend binds IPv4 only (`bind :port`): probe the IPv4 loopback.
        healthcheck=http_check(f"http://127.0.0.1:{a.stats_port}/healthz"),
        memory_mb=b.memory(256),
        # The image runs as the unprivileged haproxy user; let it bind 80 and 443.
        sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        # The stack network resolves every name this proxy routes to it: a service reaches
        # another by its URL (Grafana the identity provider's token endpoint) without DNS.
        aliases=tuple(hosts),
        volumes=(Volume(acme.CERTS_VOLUME, acme.HAPROXY_DIR, stateful=False, read_only=True),)
        if acme_dir
        else (),
    )
    containers = [container]
    if a.acme is not None:
        assert a.acme_image is not None
        containers.append(acme.renewer(a.acme, a.acme_image, proxy="haproxy"))
    return ServiceSpec(
        name=b.name or f"haproxy-{b.host}",
        kind="ReverseProxy",
        host=b.host,
        containers=tuple(containers),
        metrics=(MetricsEndpoint("haproxy", "haproxy", a.stats_port, "/metrics", a.stats_port),),
        restart=b.restart,
        title="HAProxy",
    )
