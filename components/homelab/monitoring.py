"""Monitoring: Prometheus (scrape config derived from every service's metrics endpoints),
Grafana (provisioned data source and dashboards, no anonymous access), and the per-host
exporters cAdvisor and node-exporter, run as their upstream READMEs say.

Prometheus runs without `--web.enable-lifecycle`: its `/-/reload` and `/-/quit` would be
reachable without login through the public route. Nothing needs them: prometheus.yml is
uploaded at container creation, and the Docker provider replaces the container whenever an
upload changes (its `upload` block is ForceNew), so a changed config takes effect by
replacement while the data volume stays.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from components.docker.spec import (
    SECRETS_DIR,
    Basics,
    BindMount,
    ContainerSpec,
    Device,
    FileUpload,
    MetricsEndpoint,
    Route,
    SecretRef,
    ServiceSpec,
    Volume,
    http_check,
    secret_file,
)
from components.homelab.alerting import RULES_FILE, RULES_FILE_REF, ProbeJob
from components.homelab.docker_api import CADVISOR_API, DockerApiProxy
from components.homelab.images import CONTRACTS
from components.templating import render

PROMETHEUS_PORT = 9090
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    path: str
    address: str  # host:port as Prometheus dials it
    host: str  # the homelab host the target runs on (a label)


def scrape_targets(
    specs: list[ServiceSpec], prometheus_host: str, addresses: dict[str, str | None]
) -> list[ScrapeTarget]:
    """Every metrics endpoint of every service, as Prometheus on `prometheus_host` reaches it.

    Same host: the container's name on the stack network. Another host: that host's
    address and the endpoint's published port. Raises `ValueError` when a remote target
    has no address or port (the config checks report that first, with its key path).
    """
    targets = []
    for spec in specs:
        for m in spec.metrics:
            if spec.host == prometheus_host:
                address = f"{m.container}:{m.port}"
            else:
                remote = addresses.get(spec.host)
                if remote is None or m.host_port is None:
                    raise ValueError(f"{spec.name}: cannot reach {m.job} on host {spec.host}")
                address = f"{remote}:{m.host_port}"
            targets.append(ScrapeTarget(m.job, m.path, address, spec.host))
    return targets


def prometheus_config(
    targets: list[ScrapeTarget],
    scrape_interval: str,
    stack: str,
    rule_files: tuple[str, ...] = (),
    alertmanagers: tuple[str, ...] = (),
    probe_jobs: tuple[ProbeJob, ...] = (),
) -> str:
    by_job: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    paths: dict[str, str] = {}
    for t in targets:
        if paths.setdefault(t.job, t.path) != t.path:
            raise ValueError(f"job {t.job!r} has two metrics paths: {paths[t.job]}, {t.path}")
        by_job[t.job][t.host].append(t.address)
    jobs = [
        {
            "name": job,
            "path": paths[job],
            "groups": [{"host": h, "targets": sorted(a)} for h, a in sorted(hosts.items())],
        }
        for job, hosts in sorted(by_job.items())
    ]
    return render(
        __file__,
        "prometheus.yml.j2",
        jobs=jobs,
        scrape_interval=scrape_interval,
        stack=stack,
        rule_files=rule_files,
        alertmanagers=alertmanagers,
        probe_jobs=probe_jobs,
    )


@dataclass(frozen=True)
class PrometheusArgs:
    basics: Basics
    targets: tuple[ScrapeTarget, ...]
    scrape_interval: str = "15s"
    retention: str = "15d"
    stack: str = "homelab"
    # Alerting (components/homelab/alerting.py): the rules file, where alerts go, probes.
    rules: str = ""
    alertmanagers: tuple[str, ...] = ()
    probe_jobs: tuple[ProbeJob, ...] = ()


def prometheus_self(host: str) -> ScrapeTarget:
    return ScrapeTarget("prometheus", "/metrics", f"localhost:{PROMETHEUS_PORT}", host)


def prometheus(a: PrometheusArgs) -> ServiceSpec:
    b = a.basics
    rule_files = (RULES_FILE_REF,) if a.rules else ()
    config = prometheus_config(
        list(a.targets), a.scrape_interval, a.stack, rule_files, a.alertmanagers, a.probe_jobs
    )
    uploads = [FileUpload(PROMETHEUS_CONFIG, config)]
    uploads += [FileUpload(RULES_FILE, a.rules)] if a.rules else []
    container = ContainerSpec(
        name="prometheus",
        image=b.image,
        privileges=CONTRACTS["prometheus"].privileges(),
        command=(
            f"--config.file={PROMETHEUS_CONFIG}",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={a.retention}",
            *((f"--web.external-url={b.url}",) if b.url else ()),
        ),
        volumes=(Volume("prometheus-data", "/prometheus"),),
        uploads=tuple(uploads),
        healthcheck=http_check(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/healthy"),
        memory_mb=b.memory(1024),
    )
    return ServiceSpec(
        name=b.name or "prometheus",
        kind="Prometheus",
        host=b.host,
        containers=(container,),
        routes=(Route(b.fqdn, "prometheus", PROMETHEUS_PORT),) if b.fqdn else (),
        # Prometheus scrapes itself on localhost; this endpoint is what says so.
        metrics=(MetricsEndpoint("prometheus", "prometheus", PROMETHEUS_PORT),),
        restart=b.restart,
        title="Prometheus",
    )


# ---- Grafana ------------------------------------------------------------------------

GRAFANA_PORT = 3000
DASHBOARD_DIR = "/etc/grafana/dashboards"


@cache
def dashboard_definitions() -> dict[str, dict]:  # type: ignore[type-arg]
    return yaml.safe_load((Path(__file__).parent / "dashboards.yaml").read_text())  # type: ignore[no-any-return]


def dashboard_json(uid: str, definition: dict) -> str:  # type: ignore[type-arg]
    """A Grafana dashboard (schema 39) with one panel per expression: a time series, or a
    table of the expression's current result (`type: table`)."""
    panels = []
    for i, panel in enumerate(definition["panels"]):
        kind = panel.get("type", "timeseries")
        instant = {"instant": True, "range": False, "format": "table"} if kind == "table" else {}
        panels.append(
            {
                "id": i + 1,
                "type": kind,
                "title": panel["title"],
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "fieldConfig": {"defaults": {"unit": panel["unit"]}, "overrides": []},
                "targets": [
                    {
                        "refId": "A",
                        "datasource": {"type": "prometheus", "uid": "prometheus"},
                        "expr": panel["expr"],
                        **instant,
                    }
                ],
            }
        )
    dashboard = {
        "uid": f"homelab-{uid}",
        "title": definition["title"],
        "tags": ["homelab"],
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


@cache
def dashboard_uploads() -> tuple[FileUpload, ...]:
    """The dashboard files, made once: they depend on nothing in the config."""
    return tuple(
        FileUpload(f"{DASHBOARD_DIR}/{uid}.json", dashboard_json(uid, definition))
        for uid, definition in sorted(dashboard_definitions().items())
    )


@dataclass(frozen=True)
class OidcSignIn:
    """Sign-in through the stack's identity provider (issue 24). `issuer`: its URL (with the
    trailing slash); `ca_secret`: the shared secret holding the CA that signed its certificate,
    when it is the stack's own."""

    issuer: str
    client_id: str
    client_secret: str  # the shared secret holding the client's secret
    admin_groups: tuple[str, ...]
    ca_secret: str | None = None


@dataclass(frozen=True)
class GrafanaArgs:
    basics: Basics
    admin_user: str
    prometheus_url: str
    scrape_interval: str = "15s"
    oidc: OidcSignIn | None = None


def role_attribute_path(admin_groups: tuple[str, ...]) -> str:
    """The JMESPath Grafana maps the `groups` claim with: the admin groups are Admins, every
    other user a Viewer (the form of Authelia's grafana guide, "Role Attribute Path")."""
    admin = " || ".join(f"contains(groups[*], '{g}')" for g in admin_groups)
    return f"({admin}) && 'Admin' || 'Viewer'" if admin else "'Viewer'"


def grafana_oidc(o: OidcSignIn, secret_path: str, ca_path: str | None) -> dict[str, str]:
    """[auth.generic_oauth] as GF_ variables: the settings of Authelia's grafana guide
    (docs/content/integration/openid-connect/clients/grafana/index.md @ v4.39.20), the secret
    from a file (`__FILE`, read by the image's run.sh like the admin password). The local
    admin keeps its login form: the way in when the identity provider is down."""
    env = {
        "GF_AUTH_GENERIC_OAUTH_ENABLED": "true",
        "GF_AUTH_GENERIC_OAUTH_NAME": "Single sign-on",
        "GF_AUTH_GENERIC_OAUTH_CLIENT_ID": o.client_id,
        "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET__FILE": secret_path,
        "GF_AUTH_GENERIC_OAUTH_SCOPES": "openid profile email groups",
        "GF_AUTH_GENERIC_OAUTH_AUTH_URL": f"{o.issuer}api/oidc/authorization",
        "GF_AUTH_GENERIC_OAUTH_TOKEN_URL": f"{o.issuer}api/oidc/token",
        "GF_AUTH_GENERIC_OAUTH_API_URL": f"{o.issuer}api/oidc/userinfo",
        "GF_AUTH_GENERIC_OAUTH_LOGIN_ATTRIBUTE_PATH": "preferred_username",
        "GF_AUTH_GENERIC_OAUTH_GROUPS_ATTRIBUTE_PATH": "groups",
        "GF_AUTH_GENERIC_OAUTH_NAME_ATTRIBUTE_PATH": "name",
        "GF_AUTH_GENERIC_OAUTH_USE_PKCE": "true",
        "GF_AUTH_GENERIC_OAUTH_AUTH_STYLE": "InHeader",
        "GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH": role_attribute_path(o.admin_groups),
        # The users of the stack config get an account at their first sign-in.
        "GF_AUTH_GENERIC_OAUTH_ALLOW_SIGN_UP": "true",
    }
    if ca_path:
        env["GF_AUTH_GENERIC_OAUTH_TLS_CLIENT_CA"] = ca_path
    return env


def grafana(a: GrafanaArgs) -> ServiceSpec:
    b = a.basics
    provisioning = "/etc/grafana/provisioning"
    # run.sh reads GF_*__FILE as the grafana user: the file is that user's alone.
    password = secret_file("admin-password", "admin-password", owner=CONTRACTS["grafana"].uid)
    uploads = [
        password,
        FileUpload(
            f"{provisioning}/datasources/homelab.yaml",
            render(
                __file__,
                "grafana-datasource.yaml.j2",
                url=a.prometheus_url,
                scrape_interval=a.scrape_interval,
            ),
        ),
        FileUpload(
            f"{provisioning}/dashboards/homelab.yaml",
            render(__file__, "grafana-dashboards.yaml.j2", path=DASHBOARD_DIR),
        ),
    ]
    uploads += dashboard_uploads()
    env = {
        "GF_SECURITY_ADMIN_USER": a.admin_user,
        "GF_SECURITY_ADMIN_PASSWORD__FILE": password.path,
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_SECURITY_COOKIE_SECURE": "true" if b.scheme == "https" else "false",
    }
    if b.url:
        env["GF_SERVER_ROOT_URL"] = b.url
    if a.oidc is not None:
        client = secret_file("oidc-client-secret", a.oidc.client_secret, owner=CONTRACTS["grafana"].uid)
        uploads.append(client)
        ca_path = None
        if a.oidc.ca_secret:
            ca_path = f"{SECRETS_DIR}/identity-ca.pem"  # a certificate: public, any user reads it
            uploads.append(FileUpload(ca_path, SecretRef("{" + a.oidc.ca_secret + "}"), mode="0444"))
        env.update(grafana_oidc(a.oidc, client.path, ca_path))
    container = ContainerSpec(
        name="grafana",
        image=b.image,
        privileges=CONTRACTS["grafana"].privileges(),
        env=env,
        volumes=(Volume("grafana-data", "/var/lib/grafana"),),
        uploads=tuple(uploads),
        healthcheck=http_check(f"http://127.0.0.1:{GRAFANA_PORT}/api/health"),
        memory_mb=b.memory(512),
    )
    return ServiceSpec(
        name=b.name or "grafana",
        kind="Grafana",
        host=b.host,
        containers=(container,),
        routes=(Route(b.fqdn, "grafana", GRAFANA_PORT),) if b.fqdn else (),
        metrics=(MetricsEndpoint("grafana", "grafana", GRAFANA_PORT, host_port=None),),
        restart=b.restart,
        title="Grafana",
    )


# ---- exporters ----------------------------------------------------------------------

CADVISOR_PORT = 8080
# containerd's socket (lib/container/containerd/factory.go --containerd default, v0.60.5).
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
NODE_EXPORTER_PORT = 9100
NODE_EXPORTER_ROOTFS = "/host"


def cadvisor(b: Basics, containerd: bool = False) -> ServiceSpec:
    """cAdvisor with the mounts and the /dev/kmsg device of its README's `docker run`, but the
    Docker API through its own proxy (reads only: components/homelab/docker_api.py) instead of
    the host's /var/run, which holds the raw Docker socket.

    Not `--privileged` (the README's quick start has it; the policy pack forbids it, and
    docs/running.md describes running with `--device` instead). `--docker` is the only way to
    point it elsewhere: it ignores DOCKER_HOST (container/docker/client.go: WithHost of the
    flag, v0.60.5). `containerd`: on a host whose Docker keeps its images in containerd
    (storage driver `overlayfs`), cAdvisor's Docker support dials containerd's socket too
    (container/docker/factory.go), which no HTTP proxy can narrow: that socket is then
    mounted, read-only (which does not stop a client: the socket is root on the host).
    """
    proxy = DockerApiProxy("cadvisor", CADVISOR_API)
    binds = [
        BindMount("/", "/rootfs"),
        BindMount("/sys", "/sys"),
        BindMount("/var/lib/docker", "/var/lib/docker"),
        BindMount("/dev/disk", "/dev/disk"),
    ]
    if containerd:
        binds.append(BindMount(CONTAINERD_SOCKET, CONTAINERD_SOCKET))
    container = ContainerSpec(
        name="cadvisor",
        image=b.image,
        privileges=CONTRACTS["cadvisor"].privileges(),
        command=(
            "--docker_only=true",
            "--housekeeping_interval=30s",
            "--store_container_labels=false",
            f"--docker={proxy.url}",
        ),
        binds=tuple(binds),
        devices=(Device("/dev/kmsg"),),
        healthcheck=http_check(f"http://127.0.0.1:{CADVISOR_PORT}/healthz"),
        memory_mb=b.memory(256),
        depends_on=(proxy.name,),
    )
    return ServiceSpec(
        name=b.name or f"cadvisor-{b.host}",
        kind="CAdvisor",
        host=b.host,
        containers=(proxy.container(), container),
        metrics=(MetricsEndpoint("cadvisor", "cadvisor", CADVISOR_PORT, host_port=9338),),
        restart=b.restart,
        title="cAdvisor",
    )


def node_exporter(b: Basics) -> ServiceSpec:
    """node-exporter as its README's `docker run`: the host's PID namespace and `/` mounted
    read-only with `rslave` propagation at `--path.rootfs`.

    The default mount-point exclusions stay: with `--path.rootfs` mount points are reported
    as host paths, and the default already leaves out /var/lib/docker/... . The README also
    uses the host's network; here the exporter stays on the stack network, where Prometheus
    finds every exporter by name and only declared ports are published, so network-device
    metrics describe the exporter's own interface.
    """
    container = ContainerSpec(
        name="node-exporter",
        image=b.image,
        privileges=CONTRACTS["node-exporter"].privileges(),
        command=(f"--path.rootfs={NODE_EXPORTER_ROOTFS}",),
        binds=(BindMount("/", NODE_EXPORTER_ROOTFS, read_only=True, propagation="rslave"),),
        pid_mode="host",
        healthcheck=http_check(f"http://127.0.0.1:{NODE_EXPORTER_PORT}/metrics"),
        memory_mb=b.memory(128),
    )
    return ServiceSpec(
        name=b.name or f"node-exporter-{b.host}",
        kind="NodeExporter",
        host=b.host,
        containers=(container,),
        metrics=(MetricsEndpoint("node-exporter", "node-exporter", NODE_EXPORTER_PORT, host_port=9100),),
        restart=b.restart,
        title="node-exporter",
    )
