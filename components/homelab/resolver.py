"""The LAN's split-horizon resolver (issue 25): Unbound answers every routed name with the LAN
address of the host that serves it and forwards every other question to the upstream resolvers.

Why Unbound: NLnet Labs' resolver is maintained with a stated policy (the latest release is
supported: NLnetLabs/unbound SECURITY.md), Debian ships it with `unbound-checkconf`, so the
generated file is checked and run live by the real server in the tests, and its `local-zone
transparent` + `local-data` is exactly split horizon: the names we know are answered, every
other name (and every other name under the domain) resolves normally (unbound.conf(5),
doc/unbound.conf.rst @ release-1.26.0). CoreDNS has no Debian package to check a Corefile
with; dnsmasq and AdGuard Home/Blocky answer the same, but dnsmasq has no maintained image and
the others no Debian package.

The image (klutchell/unbound, distroless) starts unbound with no wrapper: the program runs it
as the image's unbound user (101) on an unprivileged port, with its own complete file, so it
needs no capability and writes nothing (no pidfile, no log file, no trust anchor updates).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from components.docker.spec import Basics, ContainerSpec, FileUpload, HealthCheck, PublishedPort, ServiceSpec
from components.homelab.images import CONTRACTS

KIND = "Resolver"
PORT = 5053  # inside the container: an unprivileged port (the image's examples use 5053/5353)
CONFIG_DIR = "/etc/unbound/homelab"
CONFIG = f"{CONFIG_DIR}/unbound.conf"
UID, GID = CONTRACTS["resolver"].uid, 102  # adduser -u 101 unbound, addgroup -g 102 (Dockerfile)


@dataclass(frozen=True)
class Record:
    """A routed name and the LAN address of the host that serves it."""

    fqdn: str
    address: str


@dataclass(frozen=True)
class ResolverArgs:
    basics: Basics
    domain: str
    records: tuple[Record, ...]
    upstreams: tuple[str, ...]  # resolvers every other question goes to
    allow_from: tuple[str, ...]  # networks that may ask; unbound refuses everyone else
    bind_address: str  # the host address port 53 is published on
    host_port: int = 53


def record_line(r: Record) -> str:
    kind = "AAAA" if ipaddress.ip_address(r.address).version == 6 else "A"
    return f'    local-data: "{r.fqdn}. 300 IN {kind} {r.address}"'


def unbound_conf(a: ResolverArgs) -> str:
    """unbound.conf, every option from unbound.conf(5) @ release-1.26.0 (and in Debian's 1.17,
    which checks and runs it in the tests)."""
    lines = [
        "server:",
        "    do-daemonize: no",
        # No privilege change, no chroot, no pidfile and no log file: the image's own file
        # sets these the same way (rootfs_overlay/etc/unbound/unbound.conf @ v1.26.0).
        '    username: ""',
        '    chroot: ""',
        '    pidfile: ""',
        '    logfile: ""',
        "    use-syslog: no",
        "    verbosity: 1",
        # IPv4 inside the container: Docker's published ports forward to the container's IPv4
        # address, whichever host address they listen on.
        f"    interface: 0.0.0.0@{PORT}",
        "    do-ip6: no",
        "    hide-identity: yes",
        "    hide-version: yes",
        # Forwarding only: the upstreams validate; no trust anchor file to keep writable.
        '    module-config: "iterator"',
        # Every source refused but `allow_from` and the container's own loopback address (its
        # health check); unbound's built-in default would allow all of 127.0.0.0/8.
        "    access-control: 0.0.0.0/0 refuse",
        "    access-control: 127.0.0.0/8 refuse",
        "    access-control: 127.0.0.1/32 allow",
        *(f"    access-control: {net} allow" for net in a.allow_from),
        f'    local-zone: "{a.domain}." transparent',
        *(record_line(r) for r in sorted(a.records, key=lambda r: r.fqdn)),
        "",
        "forward-zone:",
        '    name: "."',
        *(f"    forward-addr: {u}" for u in a.upstreams),
        "",
    ]
    return "\n".join(lines)


def resolver(a: ResolverArgs) -> ServiceSpec:
    b = a.basics
    contract = CONTRACTS["resolver"]
    probe = sorted(r.fqdn for r in a.records)[0] if a.records else a.domain
    container = ContainerSpec(
        name="resolver",
        image=b.image,
        user=f"{UID}:{GID}",
        privileges=contract.privileges(),
        command=("-c", CONFIG),
        uploads=(FileUpload(CONFIG, unbound_conf(a)),),
        ports=(
            PublishedPort(PORT, a.host_port, "udp", host_ip=a.bind_address),
            PublishedPort(PORT, a.host_port, "tcp", host_ip=a.bind_address),
        ),
        # drill-hc runs drill and exits 0 or 1 (drill-hc/main.c; upstream's own test asks it
        # `drill-hc -p 5353 <name> @127.0.0.1`, docker-compose.test.yml @ v1.26.0). A routed
        # name is answered locally, so the check does not depend on the upstreams.
        healthcheck=HealthCheck(("CMD", "drill-hc", "-p", str(PORT), probe, "@127.0.0.1")),
        memory_mb=b.memory(128),
    )
    return ServiceSpec(
        name=b.name or "resolver",
        kind=KIND,
        host=b.host,
        containers=(container,),
        restart=b.restart,
        title="DNS resolver",
    )
