"""The cross-checks of a stack config: rules that span sections or need the planned services
(hosts that exist, names declared once, host names claimed once, ports free, certificates
present, apps that fit the platform), and the entry points that run them after field-level
validation: `validate` (a plain dict), `validate_pulumi_config` and `load_config`.

They live beside the plan (`stacks/plan.py`) because most of them inspect it; the config
modules stay leaves that know nothing of services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from components.docker.spec import CAPABILITIES
from components.homelab.images import contract_of_tag
from stacks.config import StackConfig, app_fqdn, parse, read_pulumi_config
from stacks.config_base import ConfigError, _kebab, host_name, hostname_problem
from stacks.config_homelab import CustomService, ServicesConfig
from stacks.config_platform import ca_origin, node_instructions, platform_problems
from stacks.plan import build_plan, plan_problems

# ---- cross-checks -------------------------------------------------------------------

BUILTIN_NAMES = frozenset({_kebab(n) for n in ServicesConfig.model_fields} | {"haproxy", "backup", "proxy"})
# Names of containers the tool runs next to the services (a custom service would take its name).
RESERVED_NAMES = {"restore": "the name of the restore's helper container (<stack name>-restore)"}


def check(config: StackConfig) -> list[tuple[str, str]]:
    """Consistency rules pydantic cannot express field by field."""
    problems: list[tuple[str, str]] = []
    seen_hosts: set[str] = set()
    for i, host in enumerate(config.hosts):
        if host.name in seen_hosts:
            problems.append((f"hosts[{i}].name", f"host {host.name!r} is declared twice"))
        seen_hosts.add(host.name)
        problems += host.problems(f"hosts[{i}]")
    problems += config.backup.problems()
    problems += config.proxy.problems() + config.data.problems() + hostname_problems(config)
    problems += config.identity.problems()
    if config.identity.enabled and config.layers.homelab:
        if not config.tls.enabled:
            problems.append(
                (
                    "identity.enabled",
                    "the sign-in portal needs HTTPS (Authelia's authelia_url): turn tls.enabled on",
                )
            )
        if "." not in config.domain:
            problems.append(
                (
                    "domain",
                    f"{config.domain!r} has no dot: sign-in cookies need a domain like lab.example.com "
                    "(Authelia refuses one without a period)",
                )
            )
    problems += config.data.restore_drills.problems([h.name for h in config.hosts])
    if config.layers.platform:
        if config.platform is None:
            problems.append(("platform", "layers.platform is on but the platform section is missing"))
        else:
            problems += platform_problems(config.platform)
            problems += project_group_problems(config)
            problems += platform_tls_problems(config) + acme_zone_problems(config)
            problems += platform_hostname_problems(config)
    if config.layers.apps:
        problems += apps_problems(config)
    local = [i for i, h in enumerate(config.hosts) if h.is_local]
    if len(local) > 1:
        problems.append((f"hosts[{local[1]}].address", "only one host can be 'local'"))

    seen_custom: set[str] = set()
    for i, svc in enumerate(config.custom_services):
        path = f"custom-services[{i}].name"
        if svc.name in BUILTIN_NAMES:
            problems.append((path, f"{svc.name!r} is the name of a built-in service"))
        elif svc.name in RESERVED_NAMES:
            problems.append((path, f"{svc.name!r} is reserved: {RESERVED_NAMES[svc.name]}"))
        elif svc.name in seen_custom:
            problems.append((path, f"custom service {svc.name!r} is declared twice"))
        seen_custom.add(svc.name)
        names = [v.name for v in svc.volumes]
        for j, v in enumerate(svc.volumes):
            if names.index(v.name) != j:
                problems.append(
                    (f"custom-services[{i}].volumes[{j}].name", f"volume {v.name!r} declared twice")
                )
        problems += security_problems(f"custom-services[{i}].security", svc)
        secrets = [x.name for x in svc.secrets]
        envs = {name: f"custom-services[{i}].env.{name}" for name in svc.env}
        for j, x in enumerate(svc.secrets):
            path = f"custom-services[{i}].secrets[{j}]"
            if secrets.index(x.name) != j:
                problems.append((f"{path}.name", f"secret {x.name!r} declared twice"))
            elif x.env in envs:
                problems.append((f"{path}.env", f"{x.env!r} is also {envs[x.env]}: one value per variable"))
            envs.setdefault(x.env, f"{path}.env")
    if problems:
        return problems
    return plan_problems(config)


def security_problems(path: str, svc: CustomService) -> list[tuple[str, str]]:
    """Capabilities the kernel knows, and, for an image the program has a contract for, every
    capability that contract says its entrypoint needs (else it fails at its first start)."""
    sec = svc.security
    contract = contract_of_tag(svc.image)
    if sec.tmpfs and sec.read_only is None and contract is not None and contract.read_only is None:
        return [
            (
                f"{path}.tmpfs",
                f"{svc.image} runs with a writable root filesystem (its contract), so tmpfs has no "
                "use; set read-only: true too, or drop tmpfs",
            )
        ]
    wanted = sec.capabilities
    if wanted is None:
        return []
    unknown = [c for c in wanted if c not in CAPABILITIES]
    if unknown:
        return [
            (f"{path}.capabilities", f"not Linux capabilities: {', '.join(unknown)} (see capabilities(7))")
        ]
    missing = sorted({f.value for f in contract.capabilities} - set(wanted)) if contract else []
    if missing:
        return [
            (
                f"{path}.capabilities",
                f"{svc.image} needs {', '.join(missing)} (its contract in components/homelab/images.py "
                "names the line of its entrypoint that does); add them",
            )
        ]
    return []


def hostname_problems(config: StackConfig) -> list[tuple[str, str]]:
    """Host names are names under the domain: a full name would be spelled twice."""
    names: list[tuple[str, str, str]] = []  # (key path, hostname, domain)
    if config.layers.homelab:
        for key in ServicesConfig.model_fields:
            svc = getattr(config.services, key)
            if svc.enabled and getattr(svc, "hostname", None) is not None:
                names.append((f"services.{_kebab(key)}.hostname", svc.hostname, config.domain))
        for i, custom in enumerate(config.custom_services):
            for j, route in enumerate(custom.routes):
                names.append((f"custom-services[{i}].routes[{j}].hostname", route.hostname, config.domain))
        if config.identity.enabled:
            names.append(("identity.hostname", config.identity.hostname, config.domain))
    p = config.platform
    if config.layers.platform and p is not None:
        domain = p.domain or config.domain
        for c in ("argocd", "harbor", "tracing"):
            if getattr(p.components, c).enabled:
                names.append((f"platform.components.{c}.hostname", getattr(p.components, c).hostname, domain))
        if config.layers.apps:
            names += [
                (f"apps[{i}].hostname", a.hostname, domain) for i, a in enumerate(config.apps) if a.hostname
            ]
    problems = []
    for path, hostname, domain in names:
        message = hostname_problem(hostname, domain) if "." in hostname or "." in domain else None
        if message is not None:
            problems.append((path, message))
    return problems


def acme_zone_problems(config: StackConfig) -> list[tuple[str, str]]:
    """ACME `dns-zones` that cover none of the names the platform certifies: every certificate
    would find no solver (cert-manager selects a solver by `selector.dnsZones`)."""
    p = config.platform
    if p is None or p.tls is None or p.tls.acme is None or not p.tls.acme.dns_zones:
        return []
    domain = p.domain or config.domain
    c = p.components
    names = [
        host_name(hostname, domain)
        for hostname, on in (
            (c.argocd.hostname, c.argocd.enabled),
            (c.harbor.hostname, c.harbor.enabled),
            (c.tracing.hostname, c.tracing.enabled),
        )
        if on
    ]
    if config.layers.apps:
        names += [app_fqdn(config, app) for app in config.apps]
    zones = p.tls.acme.dns_zones
    covered = [n for n in names if any(n == z or n.endswith("." + z) for z in zones)]
    if names and not covered:
        return [
            (
                "platform.tls.acme.dns-zones",
                f"{', '.join(zones)} cover none of the names to certify ({', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}): name the zone they are in, or leave dns-zones out",
            )
        ]
    return []


def platform_tls_problems(config: StackConfig) -> list[tuple[str, str]]:
    """A private CA must come from somewhere that exists, and the nodes must trust it."""
    p = config.platform
    if p is None or p.tls is None or p.tls.mode != "private-ca" or p.tls.ca is None:
        return []
    problems: list[tuple[str, str]] = []
    if p.tls.ca.source == "homelab" and not (
        config.layers.homelab and config.tls.enabled and config.tls.self_signed
    ):
        problems.append(
            (
                "platform.tls.ca.source",
                "'homelab' uses the CA the homelab layer generates: it needs layers.homelab, "
                "tls.enabled and tls.self-signed",
            )
        )
    harbor = p.components.harbor
    if harbor.enabled and not p.tls.nodes and not p.tls.nodes_trust_ca:
        registry = host_name(harbor.hostname, p.domain or config.domain)
        problems.append(("platform.tls.nodes", node_instructions(registry, ca_origin(p.tls))))
    return problems


def project_group_problems(config: StackConfig) -> list[tuple[str, str]]:
    """With the stack's own identity provider, a project's groups are groups it declares."""
    if config.platform is None or not config.identity.enabled:
        return []
    declared = set(config.identity.groups)
    return [
        (
            f"platform.projects[{i}].groups.{role}[{j}]",
            f"unknown group {group!r}: declare it in identity.groups",
        )
        for i, project in enumerate(config.platform.projects)
        for role, groups in project.groups.items()
        for j, group in enumerate(groups)
        if group not in declared
    ]


def _claimed_names(config: StackConfig) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The host names the homelab's routes and the platform's routed components claim (name ->
    who), and the problems of a component whose name is already claimed (one name, one
    address). The apps check the names of theirs against the same claims."""
    p = config.platform
    assert p is not None
    claimed: dict[str, str] = {}
    if config.layers.homelab:
        for spec, route in build_plan(config).routes:
            claimed.setdefault(route.fqdn, f"homelab service {spec.name}")
    problems = []
    for c in ("argocd", "harbor", "tracing"):
        component = getattr(p.components, c)
        if not component.enabled:
            continue
        fqdn = host_name(component.hostname, p.domain or config.domain)
        if fqdn in claimed:
            path = f"platform.components.{c}.hostname"
            problems.append((path, f"host name {fqdn!r} is already claimed by {claimed[fqdn]}"))
        claimed.setdefault(fqdn, f"platform.components.{c}")
    return claimed, problems


def platform_hostname_problems(config: StackConfig) -> list[tuple[str, str]]:
    """Each routed platform component has a host name of its own, which no homelab service
    serves either."""
    return _claimed_names(config)[1]


def apps_problems(config: StackConfig) -> list[tuple[str, str]]:
    """The apps layer: needs the platform, known projects, unique names and host names."""
    p = config.platform
    if not config.layers.platform or p is None:
        return [("layers.apps", "the apps layer needs the platform layer (layers.platform: true)")]
    problems: list[tuple[str, str]] = []
    for component in ("argocd", "harbor"):
        if not getattr(p.components, component).enabled:
            problems.append((f"platform.components.{component}.enabled", "the apps layer needs it on"))
    projects = [project.name for project in p.projects]
    claimed = _claimed_names(config)[0]
    seen: set[tuple[str, str]] = set()
    applications: dict[str, str] = {}
    # Repositories the program creates: the GitOps one, and one per app with create: true.
    created: dict[str, str] = {p.gitops.repository.lower(): "gitops.repository"} if p.gitops.create else {}
    for i, app in enumerate(config.apps):
        path = f"apps[{i}]"
        if app.source.create:
            repository = f"{p.github_owner}/{app.name}"
            if repository.lower() in created:
                also = created[repository.lower()]
                problems.append(
                    (
                        f"{path}.source.create",
                        f"repository {repository!r} would be created twice (also {also}): "
                        "rename the app, or adopt the repository with source.repository",
                    )
                )
            created.setdefault(repository.lower(), path)
        # Argo CD Applications share one namespace, named <project>-<app>.
        application = f"{app.project}-{app.name}"
        if application in applications and (app.project, app.name) not in seen:
            problems.append(
                (
                    f"{path}.name",
                    f"Argo CD application {application!r} would clash with {applications[application]}",
                )
            )
        applications.setdefault(application, path)
        if app.project not in projects:
            problems.append(
                (
                    f"{path}.project",
                    f"unknown project {app.project!r} (projects: {', '.join(projects) or 'none'})",
                )
            )
        if (app.project, app.name) in seen:
            problems.append(
                (f"{path}.name", f"app {app.name!r} is declared twice in project {app.project!r}")
            )
        seen.add((app.project, app.name))
        fqdn = app_fqdn(config, app)
        if fqdn in claimed:
            problems.append((f"{path}.hostname", f"host name {fqdn!r} is already claimed by {claimed[fqdn]}"))
        claimed.setdefault(fqdn, path)
    return problems


def validate(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a plain dict (kebab-case keys) into a `StackConfig`, or raise `ConfigError`.

    Field problems are reported first; the cross-checks need a config whose fields are valid.
    """
    config = parse(raw)
    problems = check(config)
    if problems:
        raise ConfigError(problems)
    return config


def validate_pulumi_config(
    items: Iterable[tuple[str, Any]], secret_keys: Iterable[str], require_secrets: bool = True
) -> StackConfig:
    """Validate the `homelab:` namespace of a Pulumi config: fields, secret references
    (see `read_pulumi_config`) and the cross-checks."""
    config, problems = read_pulumi_config(items, secret_keys, require_secrets)
    problems += check(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config() -> StackConfig:
    """Read and validate this stack's `homelab:` config from the Pulumi runtime."""
    from pulumi.runtime import config as runtime_config

    items = dict(runtime_config.get_config_env())
    items.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {k for k in items if runtime_config.is_config_secret(k)}
    return validate_pulumi_config(items.items(), secret_keys)
