"""The homelab plan: the validated config turned into service declarations, before any resource.

`build_plan` maps each enabled service of the config to its `ServiceSpec`, then derives the
services that depend on all the others (one reverse proxy per host with routes, Prometheus
with every metrics endpoint, the landing page with every URL, one backup run per host with
every stateful volume). Being pure data, the plan is also what the config checks inspect
(`plan_problems`) and what `automation validate` prints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from components.docker.host import image_resource_name
from components.docker.reference import tagged_name
from components.docker.service import (
    container_resource_name,
    secret_resource_name,
    volume_name,
    volume_resource_name,
)
from components.docker.spec import (
    Basics,
    ContainerSpec,
    Exposure,
    HealthCheck,
    MetricsEndpoint,
    Privileges,
    PublishedPort,
    Route,
    SecretRef,
    SecretSpec,
    ServiceSpec,
    Volume,
)
from components.homelab import (
    acme,
    alerting,
    backup,
    databases,
    drill,
    drupal,
    identity,
    landing,
    mattermost,
    monitoring,
    proxy,
    resolver,
    tailscale,
    tunnel,
)
from components.homelab.images import IMAGES, contract_of_tag
from components.homelab.portainer import portainer
from components.homelab.schedule import ScheduleError, longest_gap
from components.homelab.web import web
from stacks.config import StackConfig
from stacks.config_base import duration_seconds, host_name
from stacks.config_homelab import CustomRoute, CustomService, TcpServiceConfig


@dataclass
class Plan:
    config: StackConfig
    services: list[ServiceSpec] = field(default_factory=list)
    # spec name -> config path it came from, for error messages
    origins: dict[str, str] = field(default_factory=dict)
    # (spec name, route index) -> config path of the route's host name
    route_paths: dict[tuple[str, int], str] = field(default_factory=dict)
    prometheus_host: str | None = None
    # The identity provider's OpenID Connect clients (their secrets are made in stacks/homelab.py).
    oidc_clients: tuple[identity.OidcClient, ...] = ()

    def add(self, spec: ServiceSpec, origin: str, route_paths: list[str] | None = None) -> None:
        self.services.append(spec)
        self.origins[spec.name] = origin
        for i, _ in enumerate(spec.routes):
            self.route_paths[(spec.name, i)] = (route_paths or [])[i] if route_paths else f"{origin}.hostname"

    def on_host(self, host: str) -> list[ServiceSpec]:
        return [s for s in self.services if s.host == host]

    @property
    def routes(self) -> list[tuple[ServiceSpec, Route]]:
        return [(s, r) for s in self.services for r in s.routes]

    def served(self) -> dict[str, ServiceSpec]:
        """The service of each routed HTTP host name."""
        return {r.fqdn: s for s, r in self.routes if r.mode == "http"}

    def urls(self) -> dict[str, str]:
        scheme = "https" if self.config.tls.enabled else "http"
        return {s.name: f"{scheme}://{r.fqdn}/" for s in self.services for r in s.url_routes()[:1]}

    def tls_hosts(self) -> list[str]:
        """Routed HTTP host names that need a generated (or your own) certificate: none that
        the ACME certificate covers."""
        if not self.config.tls.enabled:
            return []
        names = {r.fqdn for _, r in self.routes if r.mode == "http"}
        acme_args = acme_of(self.config)
        if acme_args is not None and acme_args.challenge == "http-01":
            return []  # each host's certificate names all it routes
        if acme_args is not None:
            names = {n for n in names if not acme.covers(acme_args.domains, n)}
        return sorted(names)


def signed_by_stack_ca(config: StackConfig, fqdn: str) -> bool:
    """Whether `fqdn`'s certificate is one the stack's own CA signs (not yours, not ACME's)."""
    a = acme_of(config)
    covered = a is not None and (a.challenge == "http-01" or acme.covers(a.domains, fqdn))
    return (
        config.tls.enabled and config.tls.self_signed and fqdn not in config.tls.certificates and not covered
    )


def tunnel_ca_names(config: StackConfig) -> frozenset[str]:
    """The tunnel's public names whose certificate the stack CA signs (cloudflared verifies
    them with it, and gets it as a file when there is any)."""
    t = config.tunnel.cloudflare
    names = [config.fqdn(h) for h in t.routes] if t is not None else []
    return frozenset(n for n in names if signed_by_stack_ca(config, n))


def acme_of(config: StackConfig) -> acme.AcmeArgs | None:
    """The ACME certificate's settings (tls.mode acme), if any."""
    a = config.tls.acme
    if not config.tls.enabled or config.tls.mode != "acme" or a is None:
        return None
    return acme.AcmeArgs(config.domain, a.email, a.server, a.dns_provider, tuple(a.resolvers), a.challenge)


def acme_for(config: StackConfig, routes: list[Route]) -> acme.AcmeArgs | None:
    """The ACME settings of one proxy host: with http-01, its certificate names the host's
    routed names."""
    a = acme_of(config)
    if a is None or a.challenge != "http-01":
        return a
    return dataclasses.replace(a, names=tuple(sorted({r.fqdn for r in routes if r.mode == "http"})))


def _basics(config: StackConfig, key: str, svc, name: str = "") -> Basics:  # type: ignore[no-untyped-def]
    hostname = getattr(svc, "hostname", None)
    return Basics(
        host=getattr(svc, "host", None) or config.default_host,
        image=svc.image or IMAGES[key],
        fqdn=config.fqdn(hostname) if hostname is not None else None,
        memory_mb=svc.memory_mb,
        restart=svc.restart,
        name=name,
        scheme="https" if config.tls.enabled else "http",
    )


# Services that sign users in themselves (OIDC next: issue 24), and the admin tools whose routes
# need two factors and the admin groups unless identity.forward-auth says otherwise.
OWN_LOGIN = frozenset({"Grafana", "Portainer", "Mattermost", "Drupal", identity.KIND})
ADMIN_TOOLS = frozenset({"Prometheus", "Alertmanager"})


def _with_forward_auth(config: StackConfig, spec: ServiceSpec) -> ServiceSpec:
    """`spec` with each HTTP route's sign-in policy (none for a service with its own login)."""
    if spec.kind in OWN_LOGIN:
        return spec
    idc = config.identity
    overrides = {config.fqdn(k): v for k, v in idc.forward_auth.items()}
    routes = []
    for r in spec.routes:
        rule = overrides.get(r.fqdn)
        if r.mode != "http" or (rule is not None and rule.policy == "public"):
            routes.append(r)
        elif rule is not None:
            auth: Literal["one_factor", "two_factor"] = (
                "two_factor" if rule.policy == "two-factor" else "one_factor"
            )
            routes.append(dataclasses.replace(r, auth=auth, auth_groups=tuple(rule.groups)))
        elif spec.kind in ADMIN_TOOLS:
            routes.append(dataclasses.replace(r, auth="two_factor", auth_groups=tuple(idc.admin_groups)))
        else:
            routes.append(dataclasses.replace(r, auth="one_factor"))
    return dataclasses.replace(spec, routes=tuple(routes))


# The admin tools: what the `admin-sign-in` policy holds to a sign-in (issue 25). cAdvisor has
# no route of its own today; it is listed so that a route added later is held too.
ADMIN_KINDS = frozenset({"Portainer", "Prometheus", "Alertmanager", "CAdvisor"})


def with_sign_in_labels(config: StackConfig, spec: ServiceSpec) -> ServiceSpec:
    """An admin tool's containers say how its routes sign users in, for the policy pack:
    `own-login`, `forward-auth` (every HTTP route asks the identity provider), `open-by-config`
    (proxy.without-sign-in or identity.forward-auth names them public), or `none`."""
    routes = [r for r in spec.routes if r.mode == "http"]
    if spec.kind not in ADMIN_KINDS or not routes:
        return spec
    open_names = {config.fqdn(h) for h in config.proxy.without_sign_in}
    if config.identity.enabled:
        open_names |= {
            config.fqdn(h) for h, rule in config.identity.forward_auth.items() if rule.policy == "public"
        }
    unguarded = [r for r in routes if r.auth is None]
    if spec.kind in OWN_LOGIN:
        how = "own-login"
    elif not unguarded:
        how = "forward-auth"
    elif all(r.fqdn in open_names for r in unguarded):
        how = "open-by-config"
    else:
        how = "none"
    labels = {
        "homelab.admin-tool": "true",
        "homelab.sign-in": how,
        "homelab.routes": ",".join(sorted(r.fqdn for r in routes)),
    }
    containers = tuple(
        dataclasses.replace(c, labels={**c.labels, **labels})
        if c.name in {r.container for r in routes}
        else c
        for c in spec.containers
    )
    return dataclasses.replace(spec, containers=containers)


# The shared secret holding the stack CA's certificate, for services that call the identity
# provider themselves (OIDC token and userinfo requests) when its certificate is the stack's own.
IDENTITY_CA = "tls-ca-certificate"


def _oidc_client(
    config: StackConfig, key: str, name: str, url: str | None, callback: str
) -> identity.OidcClient | None:
    """The OpenID Connect client of service `key`, served at `url`, whose redirect URI is its
    URL + `callback`; None when the identity provider is off, the service is not routed, or
    identity.oidc turns it off."""
    idc = config.identity
    wanted = idc.oidc.get(key)
    if not idc.enabled or not url or (wanted is not None and not wanted.enabled):
        return None
    groups = tuple(wanted.groups) if wanted is not None else ()
    return identity.OidcClient(key, name, (f"{url}{callback}",), groups)


ARGOCD_CLI = "argocd-cli"
KUBERNETES = "kubernetes"  # the client ID the API server's --oidc-client-id names


def argocd_client(config: StackConfig) -> identity.OidcClient | None:
    """Argo CD of the platform layer as a client of the homelab's identity provider: unless
    it signs in with GitHub (components.argocd.sso) and identity.oidc does not name it."""
    p = config.platform
    if (
        not config.layers.homelab
        or not config.layers.platform
        or p is None
        or not p.components.argocd.enabled
    ):
        return None
    if p.components.argocd.sso is not None and "argocd" not in config.identity.oidc:
        return None
    url = f"https://{host_name(p.components.argocd.hostname, p.domain or config.domain)}/"
    # The callback: "the /auth/callback endpoint of your Argo CD URL" (argoproj/argo-cd
    # docs/operator-manual/user-management/index.md @ v3.4.4).
    return _oidc_client(config, "argocd", "Argo CD", url, "auth/callback")


HARBOR = "harbor"


def harbor_client(config: StackConfig) -> identity.OidcClient | None:
    """Harbor of the platform layer as a client of the homelab's identity provider: only when
    identity.oidc names it, since Harbor then keeps no local users (its auth mode oidc_auth:
    project access by group). Authelia's harbor guide @ v4.39.20: redirect `/c/oidc/callback`
    (goharbor/harbor src/common/const.go @ v2.15.1), no PKCE, refresh tokens."""
    p = config.platform
    wanted = config.identity.oidc.get(HARBOR)
    if wanted is None or not wanted.enabled or not config.layers.homelab or not config.layers.platform:
        return None
    if p is None or not p.components.harbor.enabled:
        return None
    url = f"https://{host_name(p.components.harbor.hostname, p.domain or config.domain)}/"
    client = _oidc_client(config, HARBOR, "Harbor", url, "c/oidc/callback")
    return dataclasses.replace(client, pkce=False, refresh=True) if client is not None else None


def _acme_problems(plan: Plan) -> Problems:
    """With tls.mode acme, every routed name is covered by the domain's certificate (the domain
    or one label under it), or has a certificate of its own in tls.certificates."""
    config = plan.config
    a = acme_of(config)
    if a is None or a.challenge == "http-01":  # http-01: each host's certificate names its routes
        return []
    problems: Problems = []
    zone = config.tls.acme.zone if config.tls.acme is not None else None
    if zone is not None and config.domain != zone and not config.domain.endswith(f".{zone}"):
        problems.append(
            (
                "tls.acme.zone",
                f"the certificate's names ({', '.join(a.domains)}) are not in zone {zone}: the DNS-01 "
                "records could not be written there",
            )
        )
    for spec, route in plan.routes:
        if (
            route.mode != "http"
            or acme.covers(a.domains, route.fqdn)
            or route.fqdn in config.tls.certificates
        ):
            continue
        path = plan.route_paths.get((spec.name, spec.routes.index(route)), "tls.mode")
        problems.append(
            (
                path,
                f"{route.fqdn} is not covered by the ACME certificate ({', '.join(a.domains)}): one label "
                "under the domain, or bring a certificate for it in tls.certificates",
            )
        )
    return problems


def _without_sign_in_problems(plan: Plan) -> Problems:
    """proxy.without-sign-in names routed admin tools that have no login of their own."""
    config = plan.config
    by_fqdn = plan.served()
    problems: Problems = []
    for i, name in enumerate(config.proxy.without_sign_in):
        spec = by_fqdn.get(config.fqdn(name))
        path = f"proxy.without-sign-in[{i}]"
        if spec is None:
            problems.append((path, f"no service is routed at {config.fqdn(name)}"))
        elif spec.kind not in ADMIN_KINDS or spec.kind in OWN_LOGIN:
            what = "has a login of its own" if spec.kind in OWN_LOGIN else "is not an admin tool"
            problems.append((path, f"{spec.title or spec.name} {what}: nothing to serve open"))
        elif any(r.auth is not None for r in spec.routes if r.fqdn == config.fqdn(name)):
            problems.append(
                (
                    path,
                    f"{config.fqdn(name)} signs in through forward auth: make it public in "
                    "identity.forward-auth",
                )
            )
    return problems


def _tunnel_problems(plan: Plan) -> Problems:
    """Each tunnel route is an HTTP route served on the tunnel's host (cloudflared reaches that
    host's proxy on its stack network), and the stack serves HTTPS (the origin it dials)."""
    config = plan.config
    t = config.tunnel.cloudflare
    if t is None:
        return []
    problems: Problems = []
    host = t.host or config.default_host  # a known one: _unknown_hosts checked it
    if not config.tls.enabled:
        problems.append(
            ("tunnel.cloudflare", "the tunnel dials the proxy's HTTPS frontend: turn tls.enabled on")
        )
    served = plan.served()
    for i, name in enumerate(t.routes):
        spec = served.get(config.fqdn(name))
        path = f"tunnel.cloudflare.routes[{i}]"
        if spec is None:
            problems.append((path, f"no service is routed at {config.fqdn(name)}"))
        elif spec.host != host:
            problems.append(
                (
                    path,
                    f"{config.fqdn(name)} runs on host {spec.host!r}, cloudflared on {host!r}: it reaches "
                    "only its own host's proxy; set tunnel.cloudflare.host or move the service",
                )
            )
    return problems


def public_records(plan: Plan) -> list[tuple[str, str]]:
    """(fqdn, public address) of each dns.public route whose host has one."""
    config = plan.config
    if config.dns.public is None:
        return []
    served = plan.served()
    public = {h.name: h.public_address for h in config.hosts}
    out = []
    for name in config.dns.public.routes:
        spec = served.get(config.fqdn(name))
        if spec is not None and public.get(spec.host):
            out.append((config.fqdn(name), str(public[spec.host])))
    return out


def _public_dns_problems(plan: Plan) -> Problems:
    """Each public route is routed, its host has a public address, and it is not also a tunnel
    route (one name, one record: the tunnel's CNAME or the host's A record)."""
    config = plan.config
    p = config.dns.public
    if p is None:
        return []
    problems: Problems = []
    served = plan.served()
    tunneled = (
        {config.fqdn(h) for h in config.tunnel.cloudflare.routes} if config.tunnel.cloudflare else set()
    )
    index = {h.name: i for i, h in enumerate(config.hosts)}
    for i, name in enumerate(p.routes):
        fqdn, path = config.fqdn(name), f"dns.public.routes[{i}]"
        spec = served.get(fqdn)
        if spec is None:
            problems.append((path, f"no service is routed at {fqdn}"))
        elif fqdn in tunneled:
            problems.append((path, f"{fqdn} is published through the tunnel already (its CNAME): keep one"))
        elif config.hosts[index[spec.host]].public_address is None:
            problems.append(
                (
                    f"hosts[{index[spec.host]}].public-address",
                    f"{fqdn} is public (dns.public) but host {spec.host!r} has no public address: set it, "
                    "or publish the name through the tunnel",
                )
            )
    return problems


def _resolver_problems(plan: Plan) -> Problems:
    """The resolver answers each routed name with its host's LAN address: each such host
    needs one."""
    config = plan.config
    r = config.dns.resolver
    if not r.enabled:
        return []
    problems: Problems = []
    serving = sorted({spec.host for spec, _ in plan.routes})
    for i, h in enumerate(config.hosts):
        if h.name in serving and h.lan is None:
            problems.append(
                (
                    f"hosts[{i}].lan-address",
                    f"host {h.name!r} serves routed names, which the resolver answers with its LAN "
                    "address: set it (e.g. 192.168.1.10)",
                )
            )
    return problems


def _forward_auth_problems(plan: Plan) -> Problems:
    """identity.forward-auth names routed services without a login of their own, and forward auth
    reaches the identity provider on the stack network of its own host only."""
    config = plan.config
    if not config.identity.enabled:
        return []
    problems = []
    by_fqdn = plan.served()
    for key in config.identity.forward_auth:
        spec = by_fqdn.get(config.fqdn(key))
        path = f"identity.forward-auth.{key}"
        if spec is None:
            problems.append((path, f"no service is routed at {config.fqdn(key)}"))
        elif spec.kind in OWN_LOGIN:
            problems.append(
                (path, f"{spec.title or spec.name} has a login of its own: it takes no forward auth")
            )
    argocd = config.platform.components.argocd if config.platform else None
    wanted_argocd = config.identity.oidc.get("argocd")
    if wanted_argocd is not None and wanted_argocd.enabled:
        if not (config.layers.platform and argocd is not None and argocd.enabled):
            problems.append(("identity.oidc.argocd", "the platform layer runs no Argo CD: nothing signs in"))
        elif argocd.sso is not None:
            problems.append(
                (
                    "identity.oidc.argocd",
                    "Argo CD signs in with GitHub (platform.components.argocd.sso): use one or the other",
                )
            )
    harbor = config.platform.components.harbor if config.platform else None
    wanted_harbor = config.identity.oidc.get(HARBOR)
    runs_harbor = config.layers.platform and harbor is not None and harbor.enabled
    if wanted_harbor is not None and wanted_harbor.enabled and not runs_harbor:
        problems.append(("identity.oidc.harbor", "the platform layer runs no Harbor: nothing signs in"))
    for key, wanted in config.identity.oidc.items():
        service = getattr(config.services, key.replace("-", "_"), None)
        if wanted.enabled and service is not None and not (service.enabled and service.hostname):
            problems.append(
                (f"identity.oidc.{key}", f"services.{key} is not enabled and routed: nothing signs in")
            )
    home = next((s.host for s in plan.services if s.kind == identity.KIND), None)
    for spec, route in plan.routes:
        if route.auth is not None and spec.host != home:
            problems.append(
                (
                    plan.route_paths[(spec.name, spec.routes.index(route))],
                    f"{route.fqdn} runs on host {spec.host!r}, the identity provider on {home!r}: "
                    "forward auth reaches it on its own host only; run them together or make the "
                    "route public in identity.forward-auth",
                )
            )
    return problems


def _exposure(c: CustomRoute | TcpServiceConfig) -> Exposure | None:
    """Where a TCP frontend listens and who may connect (the config checked both are set)."""
    if isinstance(c, CustomRoute) and c.mode != "tcp":
        return None
    if isinstance(c, TcpServiceConfig) and not c.expose:
        return None
    assert c.bind_address is not None  # the config's validators require it
    return Exposure(c.bind_address, tuple(c.allow_from))


# A custom service whose image the program has no contract for: no capability, a read-only
# root filesystem with an in-memory /tmp, no new privileges (each relaxed under `security`).
CUSTOM_DEFAULT = Privileges(read_only=True, tmpfs=("/tmp",))


def custom_privileges(svc: CustomService) -> Privileges:
    """The image's contract (or CUSTOM_DEFAULT), with what `security` sets instead."""
    contract = contract_of_tag(svc.image)
    base = contract.privileges() if contract else CUSTOM_DEFAULT
    sec = svc.security
    read_only = base.read_only if sec.read_only is None else sec.read_only
    if sec.tmpfs is not None:
        tmpfs = tuple(sec.tmpfs)
    else:
        tmpfs = (base.tmpfs or CUSTOM_DEFAULT.tmpfs) if read_only else ()
    capabilities = base.capabilities if sec.capabilities is None else tuple(sorted(set(sec.capabilities)))
    return Privileges(capabilities, sec.no_new_privileges, read_only, tmpfs)


def custom_spec(config: StackConfig, svc: CustomService) -> ServiceSpec:
    """A service declared in config: the same model as the built-ins, nothing special-cased."""
    routes = tuple(
        Route(config.fqdn(r.hostname), svc.name, r.port, r.mode, r.exposed_port, _exposure(r))
        for r in svc.routes
    )
    metrics = tuple(
        MetricsEndpoint(
            svc.name if len(svc.metrics) == 1 else f"{svc.name}-{i + 1}",
            svc.name,
            m.port,
            m.path,
            m.host_port or m.port,
        )
        for i, m in enumerate(svc.metrics)
    )
    env: dict[str, str | SecretRef] = dict(svc.env)
    for secret in svc.secrets:
        env[secret.env] = SecretRef("{" + secret.name + "}")
    healthcheck = None
    if svc.health_check is not None:
        hc = svc.health_check
        test = tuple(hc.test) if hc.test[0] in ("CMD", "CMD-SHELL", "NONE") else ("CMD", *hc.test)
        healthcheck = HealthCheck(test, hc.interval, hc.timeout, hc.retries)
    container = ContainerSpec(
        name=svc.name,
        image=svc.image,
        env=env,
        command=tuple(svc.command),
        volumes=tuple(Volume(v.name, v.path, v.stateful) for v in svc.volumes),
        healthcheck=healthcheck,
        memory_mb=svc.memory_mb,
        privileges=custom_privileges(svc),
    )
    return ServiceSpec(
        name=svc.name,
        kind="CustomService",
        host=svc.host or config.default_host,
        containers=(container,),
        routes=routes,
        metrics=metrics,
        secrets=tuple(SecretSpec(s.name, s.length) for s in svc.secrets),
        restart=svc.restart,
        title=svc.title or svc.name,
    )


def _publish_remote_metrics(
    spec: ServiceSpec, prometheus_host: str | None, scraped_at: dict[str, str | None]
) -> ServiceSpec:
    """Publish the metrics ports of a service that a Prometheus on another host scrapes: on
    the address it scrapes when that is an IP address (not every interface of the host, where
    HAProxy's /stats and the exporters have no login), else on every address."""
    if prometheus_host is None or spec.host == prometheus_host or not spec.metrics:
        return spec
    ip = _ip_literal(scraped_at.get(spec.host))
    containers = []
    for c in spec.containers:
        extra = tuple(
            PublishedPort(m.port, m.host_port, host_ip=ip)
            for m in spec.metrics
            if m.container == c.name
            and m.host_port is not None
            and all(p.host_port != m.host_port for p in c.ports)
        )
        containers.append(dataclasses.replace(c, ports=c.ports + extra) if extra else c)
    return dataclasses.replace(spec, containers=tuple(containers))


def _ip_literal(address: str | None) -> str | None:
    """`address` when it is an IP address (brackets of IPv6 removed), else None."""
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return None


def _dial(address: str | None) -> str | None:
    """An address as it goes before `:port` in a scrape target: IPv6 in brackets."""
    return f"[{address}]" if address is not None and ":" in address else address


_LAST: list[tuple[StackConfig, Plan]] = []  # the last config planned, and its plan


def build_plan(config: StackConfig) -> Plan:
    """The services of `config`, placed on hosts. A config is frozen, so the plan of the same
    config object is made once: the checks, the homelab layer and the apps layer's checks all
    ask for it in one program run. A plan is read, never changed, by its users."""
    if _LAST and _LAST[0][0] is config:
        return _LAST[0][1]
    plan = _plan(config)
    _LAST[:] = [(config, plan)]
    return plan


def _plan(config: StackConfig) -> Plan:
    plan = Plan(config)
    s = config.services
    all_hosts = [h.name for h in config.hosts]

    # Per-host agents.
    def cadvisor(b: Basics) -> ServiceSpec:
        return monitoring.cadvisor(b, containerd=s.cadvisor.containerd_socket)

    for key, agent, build in (
        ("cadvisor", s.cadvisor, cadvisor),
        ("node-exporter", s.node_exporter, monitoring.node_exporter),
    ):
        if agent.enabled:
            for host in agent.hosts or all_hosts:
                basics = Basics(host, agent.image or IMAGES[key], None, agent.memory_mb, agent.restart)
                plan.add(build(basics), f"services.{key}")

    # Application services.
    if s.portainer.enabled:
        plan.add(portainer(_basics(config, "portainer", s.portainer)), "services.portainer")
    if s.postgres.enabled:
        tcp = databases.TcpBasics(
            _basics(config, "postgres", s.postgres), s.postgres.exposed_port, _exposure(s.postgres)
        )
        plan.add(databases.postgres(tcp), "services.postgres")
    if s.mysql.enabled:
        tcp = databases.TcpBasics(_basics(config, "mysql", s.mysql), s.mysql.exposed_port, _exposure(s.mysql))
        plan.add(databases.mysql(tcp), "services.mysql")
    if config.identity.enabled:
        idc = config.identity
        args_i = identity.IdentityArgs(
            _basics(config, "authelia", idc), config.domain, tuple(idc.admin_groups)
        )
        plan.add(identity.authelia(args_i), "identity")
    if s.mattermost.enabled:
        args = mattermost.MattermostArgs(_basics(config, "mattermost", s.mattermost), IMAGES["postgres"])
        plan.add(mattermost.mattermost(args), "services.mattermost")
    if s.drupal.enabled:
        args_d = drupal.DrupalArgs(_basics(config, "drupal", s.drupal), IMAGES["postgres"])
        plan.add(drupal.drupal(args_d), "services.drupal")
    if s.web.enabled:
        plan.add(web(_basics(config, "web", s.web)), "services.web")
    for i, custom in enumerate(config.custom_services):
        if custom.enabled:
            paths = [f"custom-services[{i}].routes[{j}].hostname" for j in range(len(custom.routes))]
            plan.add(custom_spec(config, custom), f"custom-services[{i}]", paths)

    # Monitoring: Grafana reads Prometheus on the same host's network.
    prometheus_basics = _basics(config, "prometheus", s.prometheus)
    if s.prometheus.enabled:
        plan.prometheus_host = prometheus_basics.host
    clients: list[identity.OidcClient] = []
    if s.grafana.enabled:
        grafana_basics = _basics(config, "grafana", s.grafana)
        sign_in = None
        client = _oidc_client(config, "grafana", "Grafana", grafana_basics.url, "login/generic_oauth")
        if client is not None:
            clients.append(client)
            sign_in_url = _basics(config, "authelia", config.identity).url or ""
            sign_in = monitoring.OidcSignIn(
                sign_in_url,
                client.client_id,
                identity.client_secret_name(client.client_id),
                tuple(config.identity.admin_groups),
                ca_secret=IDENTITY_CA
                if signed_by_stack_ca(config, urlsplit(sign_in_url).hostname or "")
                else None,
            )
        args_g = monitoring.GrafanaArgs(
            grafana_basics,
            config.admin_user,
            f"http://prometheus:{monitoring.PROMETHEUS_PORT}",
            config.monitoring.scrape_interval,
            oidc=sign_in,
        )
        plan.add(monitoring.grafana(args_g), "services.grafana")

    def prometheus_spec(
        targets: tuple[monitoring.ScrapeTarget, ...],
        rules: str = "",
        probes: tuple[alerting.ProbeJob, ...] = (),
    ) -> ServiceSpec:
        alertmanager_on = any(x.kind == "Alertmanager" for x in plan.services)
        return monitoring.prometheus(
            monitoring.PrometheusArgs(
                prometheus_basics,
                targets,
                config.monitoring.scrape_interval,
                config.monitoring.retention,
                config.name,
                rules=rules,
                alertmanagers=(f"alertmanager:{alerting.ALERTMANAGER_PORT}",) if alertmanager_on else (),
                probe_jobs=probes,
            )
        )

    if s.prometheus.enabled:
        # Its route is known now; its scrape targets once every other service is planned.
        plan.add(prometheus_spec(()), "services.prometheus")
        if s.alertmanager.enabled:
            plan.add(
                alerting.alertmanager(_alertmanager_args(config, prometheus_basics.host)),
                "services.alertmanager",
            )

    if s.landing.enabled:
        b = _basics(config, "landing", s.landing)
        own = landing.Link("Home", b.url or "", b.host)
        links = tuple(
            sorted([*landing.service_links(plan.services, b.scheme), own], key=lambda x: x.title.lower())
        )
        plan.add(
            landing.landing(landing.LandingArgs(b, links, title=config.name.capitalize())), "services.landing"
        )

    # Forward auth: the routes of services without a login of their own sign in through the
    # identity provider, which gets one access rule per such name.
    verify = None
    if config.identity.enabled:
        plan.services = [_with_forward_auth(config, spec) for spec in plan.services]
        access = tuple(
            identity.AccessRule(r.fqdn, r.auth, r.auth_groups) for _, r in plan.routes if r.auth is not None
        )
        at = next(i for i, x in enumerate(plan.services) if x.kind == identity.KIND)
        argocd = argocd_client(config)
        if argocd is not None:
            # The argocd CLI's own public client: it listens on localhost:8085 for the callback
            # (Authelia's argocd guide; Argo CD's `cliClientID`).
            cli = identity.OidcClient(
                ARGOCD_CLI,
                "Argo CD (CLI)",
                ("http://localhost:8085/auth/callback",),
                argocd.groups,
                public=True,
            )
            clients += [argocd, cli]
        harbor = harbor_client(config)
        if harbor is not None:
            clients.append(harbor)
        kube = config.identity.oidc.get(KUBERNETES)
        if kube is not None and kube.enabled:
            # kubectl through kubelogin: a confidential client whose callbacks are kubelogin's
            # local ports (Authelia's kubelogin guide @ v4.39.20); its secret is the stack
            # output kubernetes-oidc-client-secret, given to the cluster's users.
            redirects = ("http://localhost:8000", "http://localhost:18000")
            clients.append(identity.OidcClient(KUBERNETES, "Kubernetes", redirects, tuple(kube.groups)))
        plan.oidc_clients = tuple(clients)
        plan.services[at] = identity.authelia(
            dataclasses.replace(args_i, rules=access, clients=plan.oidc_clients)
        )
        verify = identity.verify_url()

    # One reverse proxy per host that has routes.
    routes_by_host: dict[str, list[Route]] = defaultdict(list)
    for spec, route in plan.routes:
        routes_by_host[spec.host].append(route)
    for host in all_hosts:
        if routes_by_host.get(host):
            p = config.proxy
            b = Basics(host, p.image or IMAGES["haproxy"], None, p.memory_mb, p.restart)
            args_p = proxy.ProxyArgs(
                b,
                tuple(routes_by_host[host]),
                config.tls.enabled,
                p.http_port,
                p.https_port,
                p.stats_port,
                verify_url=verify,
                acme=acme_for(config, routes_by_host[host]),
                acme_image=IMAGES["acme"],
            )
            plan.add(proxy.haproxy(args_p), "proxy")

    # Remote access: cloudflared beside the proxy that serves the tunnel's names.
    t = config.tunnel.cloudflare
    if t is not None:
        b = Basics(t.host or config.default_host, t.image or IMAGES["tunnel"], None, t.memory_mb, t.restart)
        plan.add(tunnel.cloudflared(b, bool(tunnel_ca_names(config))), "tunnel.cloudflare")

    ts = config.tunnel.tailscale
    if ts is not None:
        b = Basics(
            ts.host or config.default_host, ts.image or IMAGES["tailscale"], None, ts.memory_mb, ts.restart
        )
        plan.add(tailscale.tailscale_node(b, ts.hostname, tuple(ts.routes)), "tunnel.tailscale")

    # The LAN's resolver: every routed name at the LAN address of the host that serves it.
    r = config.dns.resolver
    if r.enabled:
        assert r.bind_address is not None  # the config's validator requires it
        lan = {h.name: h.lan for h in config.hosts}
        records = tuple(
            sorted(
                # A host without a LAN address is a problem the checks name (_resolver_problems).
                {
                    resolver.Record(route.fqdn, lan[spec.host] or "")
                    for spec, route in plan.routes
                    if lan[spec.host]
                },
                key=lambda x: x.fqdn,
            )
        )
        b = Basics(r.host or config.default_host, r.image or IMAGES["resolver"], None, r.memory_mb, r.restart)
        args_r = resolver.ResolverArgs(
            b, config.domain, records, tuple(r.upstreams), tuple(r.allow_from), r.bind_address, r.port
        )
        plan.add(resolver.resolver(args_r), "dns.resolver")

    # Certificates of the routed host names, read by the blackbox exporter beside Prometheus.
    addresses = {h.name: _dial(h.reachable_address) for h in config.hosts}
    probes: list[alerting.TlsProbe] = []
    if plan.prometheus_host is not None and config.tls.enabled and s.blackbox_exporter.enabled:
        probes = alerting.tls_probes(routes_by_host, plan.prometheus_host, addresses, config.proxy.https_port)
        if probes:
            bb = s.blackbox_exporter
            b = Basics(
                plan.prometheus_host, bb.image or IMAGES["blackbox-exporter"], None, bb.memory_mb, bb.restart
            )
            plan.add(alerting.blackbox_exporter(b), "services.blackbox-exporter")

    # Remote exporters publish their ports.
    scraped_at = {h.name: h.reachable_address for h in config.hosts}
    plan.services = [
        _publish_remote_metrics(spec, plan.prometheus_host, scraped_at) for spec in plan.services
    ]

    # One backup run per host with stateful volumes; it stops (only) their writers.
    if config.backup.enabled:
        for host_cfg in config.hosts:
            entries = backup.backup_set(plan.on_host(host_cfg.name), config.name)
            if not entries:
                continue
            group = backup.backup_group(config.name, host_cfg.name)
            plan.services = [
                dataclasses.replace(x, backup_group=group)
                if x.host == host_cfg.name and x.stateful_volumes
                else x
                for x in plan.services
            ]
            plan.add(backup.backup_schedule(backup_args(config, host_cfg.name, tuple(entries))), "backup")

    # Then Prometheus gets every endpoint, and the alert rules derived from the whole plan.
    if plan.prometheus_host is not None:
        scrape_from = [x for x in plan.services if x.name != "prometheus"]
        try:
            targets = monitoring.scrape_targets(scrape_from, plan.prometheus_host, addresses)
        except ValueError:
            targets = []  # reported with its key path by plan_problems
        targets.append(monitoring.prometheus_self(plan.prometheus_host))
        probe_jobs = (alerting.tls_probe_job(probes),) if probes else ()
        watches = _backup_watches(plan)
        _record_backup_successes(plan, {w.host for w in watches})
        rules = alerting.alert_rules(
            alerting.rule_set(
                plan.services,
                [t.job for t in targets] + [j.name for j in probe_jobs],
                watches,
                tls=bool(probes),
            ),
            _thresholds(config),
        )
        # Restore drills report through the same textfile directories (automation/drill.py).
        max_age = int(duration_seconds(config.data.restore_drills.max_age))
        rules += drill.drill_rules(drill.drill_watches(plan.services, max_age), standalone=False)
        try:
            final = prometheus_spec(tuple(targets), rules, probe_jobs)
        except ValueError:  # one job name, two metrics paths: reported by plan_problems
            final = prometheus_spec((monitoring.prometheus_self(plan.prometheus_host),), rules, probe_jobs)
        # The backup run of its host already stops it: keep the placeholder's stop label.
        placeholder = next(x for x in plan.services if x.name == "prometheus")
        # ... and its routes' sign-in (the proxy was configured from the placeholder's).
        final = dataclasses.replace(final, backup_group=placeholder.backup_group, routes=placeholder.routes)
        plan.services = [final if x.name == "prometheus" else x for x in plan.services]
    # The admin tools say how they sign in (after Prometheus' last rebuild, for the policy pack).
    plan.services = [with_sign_in_labels(config, spec) for spec in plan.services]
    return plan


def backup_directory(config: StackConfig, host: str) -> str | None:
    """Where `host` keeps its archives, or None when it keeps none (backup.local off)."""
    bk = config.backup
    if not bk.local:
        return None
    return bk.directory or f"{config.host(host).root}/backups"


def backup_args(config: StackConfig, host: str, entries: tuple[backup.BackupEntry, ...]) -> backup.BackupArgs:
    bk = config.backup
    s3 = ssh = webdav = None
    if bk.s3 is not None:
        s3 = backup.S3Storage(bk.s3.endpoint, bk.s3.protocol, bk.s3.bucket, bk.s3.path)
    if bk.ssh is not None:
        ssh = backup.SshStorage(*bk.ssh.target, bk.ssh.path)
    if bk.webdav is not None:
        webdav = backup.WebdavStorage(bk.webdav.url, bk.webdav.path, bk.webdav.username)
    return backup.BackupArgs(
        Basics(host, bk.image or IMAGES["backup"]),
        entries,
        bk.schedule,
        prefix=config.name,
        retention_days=bk.retention_days,
        encrypted=bk.encryption == "age",
        directory=backup_directory(config, host),
        s3=s3,
        ssh=ssh,
        webdav=webdav,
        notify=bk.notify_url_secret is not None,
    )


def _alertmanager_args(config: StackConfig, host: str) -> alerting.AlertmanagerArgs:
    am, a = config.services.alertmanager, config.monitoring.alerting
    receiver = a.receiver
    fqdn = config.fqdn(am.hostname) if am.hostname is not None else None
    scheme = "https" if config.tls.enabled else "http"
    return alerting.AlertmanagerArgs(
        Basics(host, am.image or IMAGES["alertmanager"], fqdn, am.memory_mb, am.restart, scheme=scheme),
        alerting.Receiver(receiver.kind, receiver.channel) if receiver else None,
        alerting.Routing(a.group_wait, a.group_interval, a.repeat_interval),
    )


def _thresholds(config: StackConfig) -> alerting.Thresholds:
    t = config.monitoring.alerting.thresholds
    return alerting.Thresholds(**t.model_dump())


def _record_backup_successes(plan: Plan, hosts: set[str]) -> None:
    """On `hosts`, node-exporter reads a textfile directory and the backup run records each
    success there: what the BackupOverdue rule reads (the engine exposes no metrics)."""
    volumes: dict[str, str] = {}
    services = []
    for x in plan.services:
        if x.kind == "NodeExporter" and x.host in hosts:
            x = alerting.with_textfile_collector(x)
            volumes[x.host] = volume_name(plan.config.name, x, alerting.textfile_volume(x))
        services.append(x)
    plan.services = [
        alerting.with_backup_success_hook(x, volumes[x.host])
        if x.kind == "BackupSchedule" and x.host in volumes
        else x
        for x in services
    ]


def _backup_watches(plan: Plan) -> list[alerting.BackupWatch]:
    """Hosts with a backup run whose node-exporter can report it, and how often it runs."""
    try:
        interval = longest_gap(plan.config.backup.schedule)
    except ScheduleError:
        return []  # reported with its key path by plan_problems
    exporters = {x.host for x in plan.services if x.kind == "NodeExporter"}
    return [
        alerting.BackupWatch(x.host, interval)
        for x in plan.services
        if x.kind == "BackupSchedule" and x.host in exporters
    ]


Problems = list[tuple[str, str]]


def _unknown_hosts(config: StackConfig) -> Problems:
    names = [h.name for h in config.hosts]

    def unknown(path: str, host: str) -> tuple[str, str]:
        return path, f"unknown host {host!r} (hosts: {', '.join(names)})"

    problems = []
    for key in type(config.services).model_fields:
        svc = getattr(config.services, key)
        path = f"services.{key.replace('_', '-')}"
        if not svc.enabled:
            continue
        if getattr(svc, "host", None) and svc.host not in names:
            problems.append(unknown(f"{path}.host", svc.host))
        listed = getattr(svc, "hosts", None) or []
        for i, h in enumerate(listed):
            if h not in names:
                problems.append(unknown(f"{path}.hosts[{i}]", h))
            elif h in listed[:i]:
                problems.append((f"{path}.hosts[{i}]", f"host {h!r} is listed twice"))
    for i, custom in enumerate(config.custom_services):
        if custom.enabled and custom.host and custom.host not in names:
            problems.append(unknown(f"custom-services[{i}].host", custom.host))
    # The other sections that run a container on a host of their choice.
    t = config.tunnel
    others = [
        ("identity.host", config.identity.host if config.identity.enabled else None),
        ("dns.resolver.host", config.dns.resolver.host if config.dns.resolver.enabled else None),
        ("tunnel.cloudflare.host", t.cloudflare.host if t.cloudflare else None),
        ("tunnel.tailscale.host", t.tailscale.host if t.tailscale else None),
    ]
    problems += [unknown(path, host) for path, host in others if host and host not in names]
    return problems


def _host_name_claims(plan: Plan) -> Problems:
    """Each HTTP host name is claimed by one service."""
    problems = []
    claimed: dict[str, str] = {}
    for spec, route in plan.routes:
        if route.mode != "http":
            continue
        path = plan.route_paths[(spec.name, spec.routes.index(route))]
        if route.fqdn in claimed:
            problems.append((path, f"host name {route.fqdn!r} is already claimed by {claimed[route.fqdn]}"))
        claimed.setdefault(route.fqdn, plan.origins[spec.name])
        # A DNS name has at most 253 characters; HAProxy's certificate file is `<name>.pem`,
        # and a file name has at most 255 bytes.
        size = f"host name {route.fqdn[:40]}... is {len(route.fqdn)} characters"
        if len(route.fqdn) > 253:
            problems.append((path, f"{size}: a DNS name has at most 253"))
        elif plan.config.tls.enabled and len(route.fqdn) > 251:
            problems.append(
                (path, f"{size}: its certificate file <name>.pem would pass a file name's 255 bytes")
            )
    return problems


def _port_claims(plan: Plan, host: str) -> Problems:
    """TCP routes and published ports: each port once per host, none on the proxy's own."""
    proxy, problems = plan.config.proxy, []
    reserved = {proxy.http_port: "proxy.http-port", proxy.stats_port: "proxy.stats-port"}
    if plan.config.tls.enabled:
        reserved[proxy.https_port] = "proxy.https-port"
    used: dict[int, str] = {}
    for spec in plan.on_host(host):
        for index, route in enumerate(spec.routes):
            if route.mode != "tcp" or route.exposed_port is None:
                continue
            path = plan.route_paths[(spec.name, index)].replace("hostname", "exposed-port")
            port = route.exposed_port
            if port in reserved:
                problems.append((path, f"port {port} is taken by {reserved[port]}"))
            elif port in used:
                problems.append((path, f"port {port} on host {host!r} is already used by {used[port]}"))
            used[port] = plan.origins[spec.name]
    published: dict[int, str] = {}
    for spec in plan.on_host(host):
        for port in (p.host_port for c in spec.containers for p in c.ports):
            owner = published.setdefault(port, spec.name)
            if owner != spec.name:
                message = f"host port {port} on host {host!r} is also published by {owner}"
                problems.append((plan.origins[spec.name], message))
    return problems


def _container_names(plan: Plan, host: str) -> Problems:
    """Container names are DNS names on the host's stack network: one service each."""
    problems = []
    owners: dict[str, str] = {}
    for spec in plan.on_host(host):
        for c in spec.containers:
            owner = owners.setdefault(c.name, spec.name)
            if owner != spec.name:
                message = f"container name {c.name!r} on host {host!r} is also used by {owner}"
                problems.append((plan.origins[spec.name], message))
    return problems


def _scrape_addresses(plan: Plan) -> Problems:
    """Prometheus on one host must reach the exporters of the others."""
    if plan.prometheus_host is None:
        return []
    problems = []
    for i, h in enumerate(plan.config.hosts):
        scraped = any(x.metrics for x in plan.on_host(h.name))
        if h.name != plan.prometheus_host and scraped and h.reachable_address is None:
            message = f"Prometheus on {plan.prometheus_host!r} needs an address to scrape host {h.name!r}"
            problems.append((f"hosts[{i}].scrape-address", message))
    return problems


def _bundle_tags(plan: Plan) -> Problems:
    """A host that takes its images from a bundle finds them by tag: each image needs one."""
    problems = []
    for i, h in enumerate(plan.config.hosts):
        if not h.images_from_bundle:
            continue
        for spec in plan.on_host(h.name):
            for c in spec.containers:
                if tagged_name(c.image) is None:
                    # At the image's own key: the service's `image` (an override or a custom
                    # service's), where the fix is made.
                    message = (
                        f"{c.image!r} has no tag, and host {h.name!r} takes its images from a bundle "
                        f"(hosts[{i}].images-from-bundle), which restores them under name:tag: pin it "
                        "as name:tag@sha256:<digest>"
                    )
                    problems.append((f"{plan.origins[spec.name]}.image", message))
    return problems


def _certificates(plan: Plan) -> Problems:
    """With self-signed off, every routed host name needs the user's own certificate; and
    every certificate given is for a host name a service routes."""
    tls = plan.config.tls
    if not tls.enabled:
        return [
            (f"tls.certificates.{fqdn}", "tls.enabled is off: this certificate would not be used")
            for fqdn in tls.certificates
        ]
    routed = plan.tls_hosts()
    problems = [
        (f"tls.certificates.{fqdn}", f"no service routes {fqdn!r} (routed: {', '.join(routed) or 'none'})")
        for fqdn in tls.certificates
        if fqdn not in routed
    ]
    if tls.self_signed:
        return problems
    return problems + [
        ("tls.certificates", f"no certificate for {fqdn!r} and tls.self-signed is off")
        for fqdn in routed
        if fqdn not in tls.certificates
    ]


def _custom(plan: Plan, spec: ServiceSpec) -> CustomService | None:
    """The custom service a spec was declared by, or None for a built-in."""
    origin = plan.origins[spec.name]
    if not origin.startswith("custom-services["):
        return None
    return plan.config.custom_services[int(origin.removeprefix("custom-services[").split("]")[0])]


def _builtins_first(plan: Plan, specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """Built-ins claim names first: a clash is reported where the user can rename."""
    return sorted(specs, key=lambda spec: _custom(plan, spec) is not None)


def _item_path(plan: Plan, spec: ServiceSpec, field: str, name: str) -> str:
    """The key path of a custom service's volume/secret named `name`, else the service's."""
    custom, origin = _custom(plan, spec), plan.origins[spec.name]
    if custom is None:
        return origin
    items = [item.name for item in getattr(custom, field)]
    return f"{origin}.{field}[{items.index(name)}].name" if name in items else origin


def _metrics_jobs(plan: Plan) -> Problems:
    """A Prometheus job belongs to one declaration (an agent's job to all its hosts)."""
    problems = []
    owners: dict[str, tuple[str, str]] = {}  # job -> (origin, key path)
    if any(x.kind == "BlackboxExporter" for x in plan.services):
        # Its certificate probes are a job of their own (alerting.TLS_JOB).
        where = plan.origins[next(x.name for x in plan.services if x.kind == "BlackboxExporter")]
        owners[alerting.TLS_JOB] = (where, where)
    for spec in _builtins_first(plan, plan.services):
        origin = plan.origins[spec.name]
        for j, m in enumerate(spec.metrics):
            path = f"{origin}.metrics[{j}]" if _custom(plan, spec) is not None else origin
            owner, owner_path = owners.setdefault(m.job, (origin, path))
            if owner != origin:
                problems.append((path, f"metrics job {m.job!r} is also {owner_path}'s: rename one service"))
    return problems


def _names(plan: Plan, host: str) -> Problems:
    """Docker volume names on a host are one per volume.

    Names are joined with '_' (and Pulumi names with '-'), which names also contain, so two
    declarations can spell one name. The names are kept as they are (a new Docker volume name
    would leave the data behind in the old volume) and such configs are rejected instead."""
    prefix, problems = plan.config.name, []
    volumes: dict[str, str] = {}
    for spec in _builtins_first(plan, plan.on_host(host)):
        for c in spec.containers:
            for v in c.volumes:
                path, docker_name = _item_path(plan, spec, "volumes", v.name), volume_name(prefix, spec, v)
                owner = volumes.setdefault(docker_name, path)
                if owner != path:
                    message = (
                        f"Docker volume {docker_name!r} on host {host!r} is also {owner}'s: "
                        "two services would share its data; rename one"
                    )
                    problems.append((path, message))
    return problems


def _resource_names(plan: Plan) -> Problems:
    """Two resources of one type and parent type never get one Pulumi name (one URN)."""
    problems = []
    seen: dict[tuple[str, str, str], str] = {}

    def claim(key: tuple[str, str, str], path: str, what: str) -> None:
        owner = seen.setdefault(key, path)
        if owner != path:
            problems.append((path, f"{what} would get the Pulumi name {key[2]!r} of {owner}: rename one"))

    images: dict[tuple[str, str], tuple[str, str]] = {}  # (host, name) -> (image, key path)
    for spec in _builtins_first(plan, plan.services):
        origin = plan.origins[spec.name]
        for c in spec.containers:  # one image is pulled once per host: only other images clash
            name = image_resource_name(spec.host, c.image)
            image, owner = images.setdefault((spec.host, name), (c.image, f"{origin}.image"))
            if image != c.image:
                message = f"image {c.image!r} would get the Pulumi name {name!r} of {image!r} ({owner})"
                problems.append((f"{origin}.image", message))
        for secret in spec.secrets:
            path = _item_path(plan, spec, "secrets", secret.name)
            claim((spec.kind, "secret", secret_resource_name(spec.name, secret.name)), path, "the secret")
        for c in spec.containers:
            for v in c.volumes:
                path = _item_path(plan, spec, "volumes", v.name)
                claim((spec.kind, "volume", volume_resource_name(spec.name, v.name)), path, "the volume")
            claim(
                (spec.kind, "container", container_resource_name(spec.name, c.name)), origin, "its container"
            )
    return problems


def _alerting(plan: Plan) -> Problems:
    """A receiver needs Alertmanager; a backup run needs a schedule whose interval is known."""
    config, problems = plan.config, []
    s = config.services
    if config.monitoring.alerting.receiver is not None and not (
        s.prometheus.enabled and s.alertmanager.enabled
    ):
        message = "alerts are sent by Alertmanager: enable services.prometheus and services.alertmanager"
        problems.append(("monitoring.alerting.receiver", message))
    if plan.prometheus_host is not None and any(x.kind == "BackupSchedule" for x in plan.services):
        try:
            longest_gap(config.backup.schedule)
        except ScheduleError as error:
            problems.append(("backup.schedule", f"{error}; the backup alert needs its interval"))
    return problems


def plan_problems(config: StackConfig) -> Problems:
    """Everything wrong with a config that only shows once its services are planned."""
    problems = _unknown_hosts(config)
    if problems:
        return problems
    s = config.services
    if s.grafana.enabled and s.prometheus.enabled:
        prometheus_host = s.prometheus.host or config.default_host
        if (s.grafana.host or config.default_host) != prometheus_host:
            message = f"Grafana must run beside Prometheus (host {prometheus_host!r})"
            problems.append(("services.grafana.host", message))
    plan = build_plan(config)
    problems += _host_name_claims(plan) + _metrics_jobs(plan) + _forward_auth_problems(plan)
    problems += _resolver_problems(plan) + _without_sign_in_problems(plan) + _acme_problems(plan)
    problems += _tunnel_problems(plan) + _public_dns_problems(plan)
    for host in config.hosts:
        problems += (
            _port_claims(plan, host.name) + _container_names(plan, host.name) + _names(plan, host.name)
        )
    problems += _scrape_addresses(plan) + _bundle_tags(plan) + _certificates(plan) + _alerting(plan)
    # A clash of Docker names is also one of Pulumi names: one problem per key path.
    named = {path for path, _ in problems}
    return problems + [p for p in _resource_names(plan) if p[0] not in named]
