"""The policy rules, as plain functions: importable and testable without a policy server.

Each resource rule takes a `Res` (type token, name, props as the engine passes them, with
secret values wrapped in `SecretValue`) and the rule's config, and returns violation
messages, each saying how to fix it. Stack rules take every resource at once.
`policies/__main__.py` wraps them into a CrossGuard `PolicyPack`.

The engine does not show analyzers a resource's `retain_on_delete`; our volumes carry it as
the label `homelab.data-safety` (kept in step with the option by the tests).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

Config = dict[str, Any]


@dataclass(frozen=True)
class SecretValue:
    value: Any


@dataclass(frozen=True)
class Res:
    type: str
    name: str
    props: dict[str, Any]
    urn: str = ""
    protect: bool = False
    provider: str = ""
    dependencies: tuple[str, ...] = ()
    delete_before_replace: bool = False


def plain(value: Any) -> Any:
    """The value with secret wrappers removed."""
    if isinstance(value, SecretValue):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def labels(res: Res) -> dict[str, str]:
    return {item["label"]: item["value"] for item in plain(res.props.get("labels") or [])}


# ---- images -------------------------------------------------------------------------

_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}\Z")  # \Z: `$` also matches before a final newline


def image_problem(image: str) -> str | None:
    if _DIGEST.search(image) or image.startswith("sha256:"):
        return None
    tail = image.rsplit("/", 1)[-1]
    if ":" not in tail:
        return f"image {image!r} has no tag: pin a version tag or an @sha256 digest"
    if tail.endswith(":latest"):
        return f"image {image!r} uses 'latest': pin a version tag or an @sha256 digest"
    return None


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")  # what Argo CD reads from a directory


def pod_specs(res: Res) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of a Kubernetes workload, or of manifests committed to Git."""
    props = plain(res.props)
    if res.type.startswith("kubernetes:"):
        yield from _pod_specs_of(res.name, props)
    elif res.type == "github:index/repositoryFile:RepositoryFile" and str(props.get("file", "")).endswith(
        MANIFEST_SUFFIXES
    ):
        try:
            docs = list(yaml.safe_load_all(props.get("content") or ""))
        except yaml.YAMLError:
            return
        for doc in docs:
            if isinstance(doc, dict):
                yield from _pod_specs_of(f"{res.name} ({props.get('file')})", doc)


def _pod_specs_of(where: str, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec") or {}
    if "containers" in spec:
        yield where, spec
    template = (spec.get("template") or {}).get("spec")
    if isinstance(template, dict):
        yield where, template
    job = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    if isinstance(job, dict):
        yield where, job


def containers_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def pinned_images(res: Res, config: Config) -> list[str]:
    found: list[str] = []
    props = plain(res.props)
    if res.type == "docker:index/remoteImage:RemoteImage":
        found.append(props.get("name", ""))
    elif res.type == "docker:index/container:Container":
        found.append(props.get("image", ""))
    for _, pod in pod_specs(res):
        found += [c.get("image", "") for c in containers_of(pod)]
    return [f"{res.name}: {p}" for p in (image_problem(i) for i in found if i) if p]


# ---- Docker containers ----------------------------------------------------------------

DOCKER_SOCKET = "/var/run/docker.sock"
# Portainer manages the host (full access); the backup engine and cAdvisor reach the API only
# through their proxies (components/homelab/docker_api.py), which alone mount the socket.
# cAdvisor may mount containerd's socket, on a host whose images are in containerd, and it and
# node-exporter read the host's root file system (`/` read-only, as their READMEs run them),
# which holds the sockets: node-exporter runs as nobody (prometheus/node_exporter Dockerfile @
# v1.12.1), whom the socket's mode refuses (0660 root:docker, as Debian's dockerd makes it).
DEFAULT_SOCKET_ALLOWLIST = {
    "portainer": "rw",
    "backup-docker-api": "ro",
    "cadvisor-docker-api": "ro",
    "cadvisor": "ro",
    "node-exporter": "ro",
}
# Sockets that are root on the host (and the directories that hold them).
ROOT_SOCKETS = (
    DOCKER_SOCKET,
    "/run/docker.sock",
    "/var/run",
    "/run",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd",
)


def docker_privileges(res: Res, config: Config) -> list[str]:
    if res.type != "docker:index/container:Container":
        return []
    props = plain(res.props)
    out = []
    if props.get("privileged"):
        out.append(f"{res.name}: privileged container; grant the single capability it needs instead")
    allow = {**DEFAULT_SOCKET_ALLOWLIST, **(config.get("docker-socket-allowlist") or {})}
    who = labels(res).get("homelab.container", props.get("name", res.name))
    # Host paths from both ways a container binds one: `volumes` and, for a bind with mount
    # propagation, `mounts` (components/docker/service.py).
    binds = [(m.get("hostPath"), m.get("readOnly")) for m in props.get("volumes") or []]
    binds += [
        (m.get("source"), m.get("readOnly")) for m in props.get("mounts") or [] if m.get("type") == "bind"
    ]
    for path, read_only in binds:
        if not isinstance(path, str) or not _holds_root_socket(path):
            continue
        what = "the Docker socket" if path in ROOT_SOCKETS else f"{path} (it holds the Docker socket)"
        allowed = allow.get(who)
        if allowed is None:
            out.append(
                f"{res.name}: mounts {what}; only {', '.join(sorted(allow))} may "
                "(add it to docker-socket-allowlist in the pack config if it must)"
            )
        elif allowed == "ro" and not read_only:
            out.append(f"{res.name}: may mount {what} only read-only")
    return out


def _holds_root_socket(path: str) -> bool:
    """`path` is one of ROOT_SOCKETS or a directory above one (`/`, `/var`)."""
    top = path.rstrip("/") + "/"
    return path in ROOT_SOCKETS or any(s.startswith(top) for s in ROOT_SOCKETS)


# What the image contracts of components/homelab/images.py give back after dropping ALL.
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_READ_SEARCH", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID")


def least_privilege(res: Res, config: Config) -> list[str]:
    """Every container drops all capabilities and adds back only ones a contract needs, and
    cannot gain privileges through setuid binaries or file capabilities (no-new-privileges).
    A container that must differ is named in the pack config (`capability-allowlist`,
    `new-privileges-allowlist`)."""
    if res.type != "docker:index/container:Container":
        return []
    props = plain(res.props)
    who = labels(res).get("homelab.container", props.get("name", res.name))
    out = []
    opts = [str(o).replace(":", "=") for o in props.get("securityOpts") or []]
    allowed_nnp = who in (config.get("new-privileges-allowlist") or [])
    if not {"no-new-privileges", "no-new-privileges=true"} & set(opts) and not allowed_nnp:
        out.append(
            f"{res.name}: may gain privileges through a setuid binary or file capability; set "
            "no-new-privileges (or name it in new-privileges-allowlist)"
        )
    caps = props.get("capabilities") or {}
    drops = {str(c).upper().removeprefix("CAP_") for c in caps.get("drops") or []}
    if "ALL" not in drops:
        out.append(
            f"{res.name}: keeps Docker's default capabilities; drop ALL and add back only what its "
            "image needs"
        )
    adds = {str(c).upper().removeprefix("CAP_") for c in caps.get("adds") or []}
    extra = (config.get("capability-allowlist") or {}).get(who, [])
    beyond = sorted(adds - set(DEFAULT_CAPABILITIES) - set(extra))
    if beyond:
        out.append(
            f"{res.name}: adds {', '.join(beyond)}; grant it in capability-allowlist of the pack "
            "config if the image truly needs it"
        )
    return out


def bounded_logs(res: Res, config: Config) -> list[str]:
    """A container's logs rotate: the `local` driver (5 files of 20 MB unless told otherwise),
    or a `max-size` for `json-file`, Docker's default driver, which otherwise keeps everything
    (docs.docker.com/engine/logging/drivers/json-file.md: max-size "Defaults to -1 (unlimited)")."""
    if res.type != "docker:index/container:Container":
        return []
    props = plain(res.props)
    driver = props.get("logDriver") or "json-file"
    if driver == "json-file" and not (props.get("logOpts") or {}).get("max-size"):
        return [
            f"{res.name}: its logs grow without bound (json-file without max-size); set the stack's "
            "`logs` (the local driver) or a max-size"
        ]
    return []


def _endpoint(name: str, value: str) -> bool:
    """An address named like a credential (GF_AUTH_GENERIC_OAUTH_TOKEN_URL): a `*_URL` whose
    value is an http(s) URL without user information or query, so it carries no secret."""
    if not name.upper().endswith("_URL"):
        return False
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and not parts.query
    )


def _reference(name: str, value: str) -> bool:
    """A value that points at a secret instead of holding one: an endpoint URL, or `file:<path>`
    (Tailscale's containerboot reads TS_AUTHKEY from that file: cmd/containerboot/main.go)."""
    return _endpoint(name, value) or re.fullmatch(r"file:/\S+", value) is not None


def secret_env(res: Res, config: Config) -> list[str]:
    """Env vars named like credentials hold secret values (or point to a file).

    CrossGuard strips secret markers before a policy sees props, so for Docker a container
    also counts an env as secret when its `homelab.secret-env` label names it: the program
    sets that label from the same declaration that makes the value a Pulumi secret.
    """
    pattern = re.compile(config.get("name-pattern") or r"(PASSWORD|TOKEN|SECRET|KEY|SALT)", re.I)
    out = []
    if res.type == "docker:index/container:Container":
        envs = res.props.get("envs")
        declared = set(filter(None, labels(res).get("homelab.secret-env", "").split(",")))
        if envs is not None and not isinstance(envs, SecretValue):
            for entry in envs:
                if isinstance(entry, SecretValue) or entry is None:
                    continue
                name, _, value = str(entry).partition("=")
                if name in declared:
                    continue
                if (
                    pattern.search(name)
                    and not name.endswith("_FILE")
                    and value
                    and not _reference(name, value)
                ):
                    out.append(f"{res.name}: env {name} is a plain value; pass it as a secret (or a *_FILE)")
    for where, pod in pod_specs(res):
        for c in containers_of(pod):
            for env in c.get("env") or []:
                if pattern.search(env.get("name", "")) and "value" in env and env.get("value"):
                    out.append(f"{where}: env {env['name']} has a literal value; use valueFrom.secretKeyRef")
    return out


# ---- Kubernetes workloads -------------------------------------------------------------

DEFAULT_ROOT_ALLOWLIST = ("kaniko",)


def k8s_workloads(res: Res, config: Config) -> list[str]:
    out = []
    allow = set(config.get("run-as-root-allowlist") or DEFAULT_ROOT_ALLOWLIST)
    for where, pod in pod_specs(res):
        pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                out.append(f"{where}: volume {volume.get('name')} is a hostPath; use a PVC or emptyDir")
        for c in containers_of(pod):
            name = c.get("name", "?")
            resources = c.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not {"cpu", "memory"} <= set(requests):
                out.append(f"{where}: container {name} needs cpu and memory requests")
            if "memory" not in limits:
                out.append(f"{where}: container {name} needs a memory limit")
            sc = c.get("securityContext") or {}
            if sc.get("privileged"):
                out.append(
                    f"{where}: container {name} is privileged; drop it, add only the capability it needs"
                )
            non_root = sc.get("runAsNonRoot", pod_non_root)
            if not non_root and name not in allow:
                out.append(
                    f"{where}: container {name} may run as root; set runAsNonRoot "
                    "(or add it to run-as-root-allowlist)"
                )
    if res.type == "kubernetes:core/v1:Service" or res.type == "github:index/repositoryFile:RepositoryFile":
        allowed = set(config.get("exposed-service-allowlist") or ())
        for obj in _objects(res):
            if obj.get("kind") == "Service" and (obj.get("spec") or {}).get("type") in (
                "NodePort",
                "LoadBalancer",
            ):
                name = (obj.get("metadata") or {}).get("name", res.name)
                if name not in allowed:
                    out.append(
                        f"{res.name}: Service {name} is {obj['spec']['type']}; expose it through the ingress"
                    )
    return out


def _objects(res: Res) -> list[dict[str, Any]]:
    props = plain(res.props)
    if res.type.startswith("kubernetes:"):
        kind = res.type.rsplit(":", 1)[-1]
        return [{**props, "kind": kind}]
    try:
        return [d for d in yaml.safe_load_all(props.get("content") or "") if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


# ---- GitHub, Harbor, Helm -------------------------------------------------------------

_SEMVER = re.compile(r"v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?")  # fullmatch


def github_settings(res: Res, config: Config) -> list[str]:
    props = plain(res.props)
    if res.type == "github:index/repository:Repository":
        public = props.get("visibility") == "public" or props.get("private") is False
        if public and props.get("name") not in set(config.get("public-repositories") or ()):
            return [f"{res.name}: repository is public; make it private or add it to public-repositories"]
    if res.type == "github:index/repositoryWebhook:RepositoryWebhook":
        conf = res.props.get("configuration") or {}
        conf_plain = plain(conf)
        out = []
        if not conf_plain.get("secret"):
            out.append(f"{res.name}: webhook without a secret; set configuration.secret")
        if conf_plain.get("insecureSsl") in (True, "1", "true"):
            out.append(f"{res.name}: webhook skips TLS verification; set insecure_ssl false")
        if str(conf_plain.get("url", "")).startswith("http://"):
            out.append(f"{res.name}: webhook URL is plain http; use https")
        return out
    return []


HARBOR_ROBOT_ACTIONS = {"pull", "push", "read", "list"}


def harbor_settings(res: Res, config: Config) -> list[str]:
    props = plain(res.props)
    if res.type == "harbor:index/project:Project" and props.get("public"):
        return [f"{res.name}: Harbor project is public; set public false"]
    if res.type == "harbor:index/robotAccount:RobotAccount":
        out = []
        if props.get("level") == "system":
            out.append(f"{res.name}: system-level robot; scope it to one project")
        for perm in props.get("permissions") or []:
            if perm.get("namespace") in ("*", "/"):
                out.append(f"{res.name}: robot permission on every project; name one project")
            for access in perm.get("accesses") or []:
                if access.get("action") not in HARBOR_ROBOT_ACTIONS or access.get("resource") not in (
                    "repository",
                    "artifact",
                ):
                    out.append(
                        f"{res.name}: robot may {access.get('action')} {access.get('resource')}; "
                        "robots get pull/push on repositories only"
                    )
        return out
    return []


def helm_pinned(res: Res, config: Config) -> list[str]:
    if res.type not in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"):
        return []
    version = str(plain(res.props).get("version") or "")
    if not _SEMVER.fullmatch(version):
        return [f"{res.name}: chart version {version or '(none)'!r} is not pinned; give an exact version"]
    return []


# ---- stack rules ----------------------------------------------------------------------


def by_type(resources: Iterable[Res], type_: str) -> list[Res]:
    return [r for r in resources if r.type == type_]


# A stager (components/docker/service.py) receives another container's files at STAGE + the
# path that container reads them at; its label homelab.files-for names that container.
STAGE = "/stage"


def uploads(res: Res) -> dict[str, Any]:
    """file -> content (SecretValue kept) of a container's uploads; for a stager, by the path
    the container it stages for reads them at."""
    raw = res.props.get("uploads") or []
    items = raw.value if isinstance(raw, SecretValue) else raw
    staged = labels(res).get("homelab.role") == "files"
    out = {}
    for item in items:
        item = item.value if isinstance(item, SecretValue) else item
        path = str(plain(item.get("file")))
        out[path.removeprefix(STAGE) if staged else path] = item.get("content")
    return out


def served(res: Res, resources: list[Res]) -> Res:
    """The container that reads `res`'s files: itself, or, for a stager, the container of the
    same host its homelab.files-for label names."""
    target = labels(res).get("homelab.files-for")
    if target is None:
        return res
    for c in by_type(resources, "docker:index/container:Container"):
        if c.provider == res.provider and labels(c).get("homelab.container") == target:
            return c
    return res


# offen/docker-volume-backup stops the containers whose label has the value its
# BACKUP_STOP_DURING_BACKUP_LABEL names (v2.48.2: cmd/backup/stop_restart.go).
STOP_LABEL = "docker-volume-backup.stop-during-backup"
STOP_LABEL_ENV = "BACKUP_STOP_DURING_BACKUP_LABEL"


def env_of(res: Res) -> dict[str, str]:
    items = [plain(e) for e in plain(res.props).get("envs") or []]
    return dict(e.split("=", 1) for e in items if isinstance(e, str) and "=" in e)


def volumes_backed_up(resources: list[Res], config: Config) -> list[str]:
    """Every stateful volume is retained (or protected) and mounted by a backup run, and the
    containers that write it are stopped while that run archives it."""
    out = []
    backed: dict[str, set[str]] = defaultdict(set)  # provider -> volume names
    stop_value: dict[str, str] = {}  # provider -> its backup run's stop label value
    containers = by_type(resources, "docker:index/container:Container")
    for c in containers:
        if labels(c).get("homelab.role") == "backup":
            stop_value[c.provider] = env_of(c).get(STOP_LABEL_ENV, "true")  # the engine's default
            for mount in plain(c.props).get("volumes") or []:
                if mount.get("volumeName"):
                    backed[c.provider].add(mount["volumeName"])
    stateful = {
        (v.provider, plain(v.props).get("name", v.name))
        for v in by_type(resources, "docker:index/volume:Volume")
        if labels(v).get("homelab.stateful") == "true"
    }
    for c in containers:
        if labels(c).get("homelab.role") == "backup" or c.provider not in stop_value:
            continue
        written = [
            m["volumeName"]
            for m in plain(c.props).get("volumes") or []
            if m.get("volumeName") and not m.get("readOnly") and (c.provider, m["volumeName"]) in stateful
        ]
        if written and labels(c).get(STOP_LABEL) != stop_value[c.provider]:
            out.append(
                f"{c.name}: writes stateful volume {written[0]} but is not stopped during its host's backup; "
                f"label it {STOP_LABEL}={stop_value[c.provider]} so the archive is not of live data"
            )
    for v in by_type(resources, "docker:index/volume:Volume"):
        lab = labels(v)
        if lab.get("homelab.stateful") != "true":
            continue
        name = plain(v.props).get("name", v.name)
        if not v.protect and lab.get("homelab.data-safety") not in ("retain", "protect"):
            out.append(
                f"{v.name}: stateful volume {name} is deleted with the stack; keep retain_on_delete on"
            )
        if name not in backed[v.provider]:
            out.append(f"{v.name}: stateful volume {name} is in no backup set; enable backups on its host")
    for pvc in by_type(resources, "kubernetes:core/v1:PersistentVolumeClaim"):
        annotations = (plain(pvc.props).get("metadata") or {}).get("annotations") or {}
        if not pvc.protect and annotations.get("helm.sh/resource-policy") != "keep":
            out.append(f"{pvc.name}: PVC is deleted with the stack; protect it")
    return out


_HTTPS_RULE = re.compile(r"-m str (\S+) }")


def _acme_domains(resources: list[Res]) -> dict[Any, list[str]]:
    """The names the ACME renewer of each host (its Docker provider) obtains certificates for:
    the domains of every certificate in its lego.yml (lego's configuration file)."""
    out: dict[Any, list[str]] = defaultdict(list)
    for c in by_type(resources, "docker:index/container:Container"):
        text = plain(uploads(c).get("/etc/lego/lego.yml"))
        if isinstance(text, str):
            document = yaml.safe_load(text) or {}
            for cert in (document.get("certificates") or {}).values():
                out[c.provider] += [str(d) for d in cert.get("domains") or []]
    return out


def _covered(domains: list[str], fqdn: str) -> bool:
    first, _, rest = fqdn.partition(".")
    return any(d == fqdn or (d.startswith("*.") and bool(first) and rest == d[2:]) for d in domains)


def tls_routes(resources: list[Res], config: Config) -> list[str]:
    """With TLS on, every routed host has a certificate and port 80 redirects to HTTPS: its own
    in the crt-list, or the ACME certificate of the host's renewer (a `crt <dir>` on the bind
    line, and a lego.yml on that host whose domains cover the name)."""
    out = []
    acme = _acme_domains(resources)
    for c in by_type(resources, "docker:index/container:Container"):
        files = uploads(c)
        cfg = files.get("/usr/local/etc/haproxy/haproxy.cfg")
        cfg = plain(cfg) if cfg is not None else None
        if not cfg or "frontend https" not in cfg:
            continue
        name = served(c, resources).name  # the proxy, as tcp-sources names it; not its stager
        https = cfg.split("frontend https", 1)[1].split("\nfrontend ", 1)[0]
        http = (
            cfg.split("frontend http\n", 1)[1].split("\nfrontend ", 1)[0] if "frontend http\n" in cfg else ""
        )
        if "redirect scheme https" not in http:
            out.append(f"{name}: HTTP does not redirect to HTTPS")
        crt_list = plain(files.get("/usr/local/etc/haproxy/crt-list.txt") or "")
        listed = {
            line.split()[1]: line.split()[0] for line in crt_list.splitlines() if len(line.split()) >= 2
        }
        from_acme = re.search(r"^\s*bind \S+ ssl .* crt /\S+/", https, re.M) is not None
        for fqdn in _HTTPS_RULE.findall(https):
            if fqdn not in listed and from_acme and _covered(acme.get(c.provider, []), fqdn):
                continue
            if fqdn not in listed:
                out.append(f"{name}: {fqdn} is routed over HTTPS without a certificate")
            elif listed[fqdn] not in files:
                out.append(f"{name}: the certificate of {fqdn} ({listed[fqdn]}) is not uploaded")
    return out


_SECTION = re.compile(r"^(\S.*)\n((?:[ \t]+.*\n?|[ \t]*\n)*)", re.M)


def tcp_sources(resources: list[Res], config: Config) -> list[str]:
    """A proxy's TCP frontend (a database) accepts only listed source networks, and its port is
    published on one host address, not every interface (`tcp-request connection reject
    unless <acl>` closes any other connection at accept, as the real haproxy does in
    tests/test_proxy_live.py)."""
    out = []
    for c in by_type(resources, "docker:index/container:Container"):
        out += _tcp_sources(c, served(c, resources))
    return out


def _tcp_sources(holder: Res, proxy: Res) -> list[str]:
    """`holder` holds a haproxy.cfg (the proxy itself, or its stager); `proxy` publishes the
    ports, and is the resource the messages name."""
    cfg = next((plain(v) for k, v in uploads(holder).items() if str(k).endswith("haproxy.cfg")), None)
    if not isinstance(cfg, str):
        return []
    ports = plain(proxy.props).get("ports") or []
    out = []
    for head, body in _SECTION.findall(cfg):
        lines = [
            line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")
        ]
        if not head.startswith("frontend ") or "mode tcp" not in lines:
            continue
        name = head.split()[1]
        acls = {
            words[1]: words[3:]
            for words in (line.split() for line in lines)
            if words[:1] == ["acl"] and words[2:3] == ["src"]
        }
        guards = [
            line.split()[-1] for line in lines if line.startswith("tcp-request connection reject unless ")
        ]
        sources = [net for acl in guards for net in acls.get(acl, [])]
        if not sources:
            out.append(
                f"{proxy.name}: TCP frontend {name} accepts every source; list the networks that may connect "
                "(allow-from) so the proxy rejects the rest"
            )
        elif any(net.endswith("/0") for net in sources):
            out.append(
                f"{proxy.name}: TCP frontend {name} accepts {', '.join(sources)}; "
                "narrow allow-from to your LAN"
            )
        binds = [int(m) for line in lines for m in re.findall(r"^bind \S*:(\d+)", line)]
        for port in ports:
            if int(port.get("internal") or 0) in binds and (port.get("ip") or "0.0.0.0") in ("0.0.0.0", "::"):
                out.append(
                    f"{proxy.name}: TCP frontend {name} is published on every interface of the host (port "
                    f"{port.get('external')}); set its bind-address to the LAN address"
                )
    return out


_SIGNED_IN = re.compile(r"^\s*acl signed_in_route \S+ -m str (.+)$", re.M)


def admin_sign_in(resources: list[Res], config: Config) -> list[str]:
    """No admin tool (Portainer, Prometheus, Alertmanager, cAdvisor: the containers labelled
    `homelab.admin-tool`) is routed without sign-in: its own login, or forward auth that a
    proxy really asks (its route is in a haproxy.cfg's `signed_in_route` list), unless the
    stack config serves it open on purpose (`homelab.sign-in: open-by-config`)."""
    guarded: set[str] = set()
    for c in by_type(resources, "docker:index/container:Container"):
        for path, content in uploads(c).items():
            text = plain(content)
            if str(path).endswith("haproxy.cfg") and isinstance(text, str):
                guarded |= {name for line in _SIGNED_IN.findall(text) for name in line.split()}
    out = []
    for c in by_type(resources, "docker:index/container:Container"):
        tags = labels(c)
        if tags.get("homelab.admin-tool") != "true":
            continue
        how = tags.get("homelab.sign-in", "none")
        routes = [r for r in tags.get("homelab.routes", "").split(",") if r]
        if how in ("own-login", "open-by-config"):
            continue
        open_routes = [r for r in routes if how != "forward-auth" or r not in guarded]
        if how == "forward-auth" and open_routes:
            out.append(
                f"{c.name}: says it signs in through forward auth, but no proxy asks for "
                f"{', '.join(open_routes)}"
            )
        elif how != "forward-auth":
            out.append(
                f"{c.name}: an admin tool routed at {', '.join(routes) or '?'} without sign-in; turn on "
                "homelab:identity (forward auth), or name it in proxy.without-sign-in to serve it open "
                "on purpose"
            )
    return out


def host_ports(resources: list[Res], config: Config) -> list[str]:
    """No two containers on one host publish the same host port."""
    out = []
    seen: dict[tuple[str, int, str], str] = {}
    for c in by_type(resources, "docker:index/container:Container"):
        for port in plain(c.props).get("ports") or []:
            key = (c.provider, int(port.get("external") or 0), port.get("protocol") or "tcp")
            if key[1] and key in seen and seen[key] != c.name:
                out.append(
                    f"{c.name}: host port {key[1]} is also published by {seen[key]}; "
                    "give one of them another port (or move it to another host)"
                )
            seen.setdefault(key, c.name)
    return out


def metrics_scraped(resources: list[Res], config: Config) -> list[str]:
    """Every metrics job a container declares is scraped on that container's host."""
    scraped: set[tuple[Any, Any]] = set()
    for c in by_type(resources, "docker:index/container:Container"):
        content = uploads(c).get("/etc/prometheus/prometheus.yml")
        if content is None:
            continue
        document = yaml.safe_load(plain(content)) or {}
        for job in document.get("scrape_configs") or []:
            for group in job.get("static_configs") or []:
                scraped.add((job.get("job_name"), (group.get("labels") or {}).get("host")))
    if not scraped:
        return []  # no Prometheus in this stack: nothing is expected to be scraped
    out = []
    for c in by_type(resources, "docker:index/container:Container"):
        lab = labels(c)
        for job in filter(None, lab.get("homelab.metrics", "").split(",")):
            if (job, lab.get("homelab.host")) not in scraped:
                out.append(
                    f"{c.name}: metrics job {job} on host {lab.get('homelab.host')} is not scraped; "
                    "enable Prometheus and give the host a scrape-address"
                )
    return out


def gitops_branch_protected(resources: list[Res], config: Config) -> list[str]:
    """The repository Argo CD syncs from has its default branch protected."""
    hooks = [
        h
        for h in by_type(resources, "github:index/repositoryWebhook:RepositoryWebhook")
        if str(plain(h.props).get("configuration", {}).get("url", "")).endswith("/api/webhook")
    ]
    if not hooks:
        return []
    repositories = {r.urn for r in by_type(resources, "github:index/repository:Repository")}
    protections = [
        b
        for b in by_type(resources, "github:index/branchProtection:BranchProtection")
        if not plain(b.props).get("allowsForcePushes") and not plain(b.props).get("allowsDeletions")
    ]
    out = []
    for hook in hooks:
        # A repository created here: its protection must depend on that same repository.
        # An adopted one (no Repository resource): any protection of the stack counts.
        repo = set(hook.dependencies) & repositories
        if not any(not repo or repo & set(b.dependencies) for b in protections):
            out.append(
                f"{hook.name}: the GitOps repository's branch is not protected; "
                "protect it: no force pushes, no deletion"
            )
    return out


PRE_UPGRADE_RUN = "-pre-upgrade-backup-run"  # components/homelab/preupgrade.py
COMMANDS = ("command:local:Command", "command:remote:Command")
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"


def stateful_changes_guarded(resources: list[Res], config: Config) -> list[str]:
    """The guard's rule, as far as the proposed state shows it (see docs/policies.md).

    A stack policy sees every resource as the update would leave it, with its options and
    dependencies, but not the step that gets it there (replace, delete), not the resources
    the program no longer declares, and not `retain_on_delete`. So it cannot refuse a
    replacement; it enforces what makes every replacement safe: each container that writes
    a stateful volume is ordered after a pre-upgrade backup keyed on its image (a new image
    re-runs the backup before the container is replaced), no data-holding resource is
    deleted before its replacement exists, and the CloudNativePG Cluster outlives the stack.
    """
    skip = set(config.get("services-without-pre-upgrade-backup") or ())
    by_urn = {r.urn: r for r in resources if r.urn}
    stateful: set[tuple[str, str]] = set()
    data: list[Res] = []
    for v in by_type(resources, "docker:index/volume:Volume"):
        if labels(v).get("homelab.stateful") == "true":
            stateful.add((v.provider, plain(v.props).get("name", v.name)))
            data.append(v)
    out = []
    for c in by_type(resources, "docker:index/container:Container"):
        writes = sorted(
            m["volumeName"]
            for m in plain(c.props).get("volumes") or []
            if m.get("volumeName") and not m.get("readOnly") and (c.provider, m["volumeName"]) in stateful
        )
        if not writes:
            continue
        data.append(c)
        if labels(c).get("homelab.service") in skip:
            continue
        deps = [by_urn[u] for u in c.dependencies if u in by_urn]
        images = {
            plain(d.props).get("name") for d in deps if d.type == "docker:index/remoteImage:RemoteImage"
        }
        runs = [d for d in deps if d.type in COMMANDS and d.name.endswith(PRE_UPGRADE_RUN)]
        if not runs:
            out.append(
                f"{c.name}: writes {', '.join(writes)} but is not ordered after a pre-upgrade backup; "
                "keep data.pre-upgrade-backup and backups on for its host (or list the service in "
                "services-without-pre-upgrade-backup)"
            )
        elif not any(images & set(plain(r.props).get("triggers") or []) for r in runs):
            out.append(
                f"{c.name}: its pre-upgrade backup is not keyed on its image, so an image bump "
                "would replace it without a backup; put the image in the backup's triggers"
            )
    data += by_type(resources, "kubernetes:core/v1:PersistentVolumeClaim")
    clusters = by_type(resources, CNPG_CLUSTER)
    data += clusters
    for r in data:
        if r.delete_before_replace:
            out.append(f"{r.name}: deleteBeforeReplace would remove its data before a replacement exists")
    for cluster in clusters:
        annotations = (plain(cluster.props).get("metadata") or {}).get("annotations") or {}
        if not cluster.protect and annotations.get("homelab.data-safety") not in ("retain", "protect"):
            out.append(f"{cluster.name}: the CloudNativePG Cluster is deleted with the stack; retain it")
    return out


ResourceRule = Callable[[Res, Config], list[str]]
StackRule = Callable[[list[Res], Config], list[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Any
    stack: bool = False
    config_schema: dict[str, Any] = field(default_factory=dict)


RULES: list[Rule] = [
    Rule("pinned-images", "Container images are pinned to a tag or digest, never latest.", pinned_images),
    Rule(
        "docker-privileges",
        "No privileged Docker container; the Docker socket only where allowed.",
        docker_privileges,
        config_schema={
            "docker-socket-allowlist": {"type": "object", "additionalProperties": {"enum": ["ro", "rw"]}}
        },
    ),
    Rule(
        "least-privilege",
        "Containers drop all capabilities but the contract's, and cannot gain new privileges.",
        least_privilege,
        config_schema={
            "capability-allowlist": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "new-privileges-allowlist": {"type": "array", "items": {"type": "string"}},
        },
    ),
    Rule("bounded-logs", "Every container's logs are rotated.", bounded_logs),
    Rule(
        "secret-env",
        "Env vars named like credentials hold secret values.",
        secret_env,
        config_schema={"name-pattern": {"type": "string"}},
    ),
    Rule(
        "kubernetes-workloads",
        "Workloads have requests and memory limits, run as non-root, no hostPath, no exposed Services.",
        k8s_workloads,
        config_schema={
            "run-as-root-allowlist": {"type": "array", "items": {"type": "string"}},
            "exposed-service-allowlist": {"type": "array", "items": {"type": "string"}},
        },
    ),
    Rule(
        "github-settings",
        "Repositories are private; webhooks have a secret and verify TLS.",
        github_settings,
        config_schema={"public-repositories": {"type": "array", "items": {"type": "string"}}},
    ),
    Rule("harbor-settings", "Harbor projects are private; robots have least privilege.", harbor_settings),
    Rule("helm-pinned", "Helm releases are pinned to an exact chart version.", helm_pinned),
    Rule("volumes-backed-up", "Stateful volumes are retained and backed up.", volumes_backed_up, stack=True),
    Rule(
        "tls-routes",
        "With TLS on, every routed host has a certificate and HTTP redirects.",
        tls_routes,
        stack=True,
    ),
    Rule(
        "tcp-sources",
        "A proxy's TCP frontends (databases) accept only listed networks on one host address.",
        tcp_sources,
        stack=True,
    ),
    Rule(
        "admin-sign-in",
        "No admin tool is routed without sign-in unless the config serves it open on purpose.",
        admin_sign_in,
        stack=True,
    ),
    Rule("host-ports", "No two services on one host publish the same port.", host_ports, stack=True),
    Rule("metrics-scraped", "Every declared metrics endpoint is scraped.", metrics_scraped, stack=True),
    Rule(
        "stateful-changes-guarded",
        "Data is backed up before its container is replaced and never deleted before its replacement.",
        stateful_changes_guarded,
        stack=True,
        config_schema={
            "services-without-pre-upgrade-backup": {"type": "array", "items": {"type": "string"}},
        },
    ),
    Rule(
        "gitops-branch-protected",
        "The GitOps repository's branch is protected.",
        gitops_branch_protected,
        stack=True,
    ),
]


def evaluate(resources: list[Res], config: dict[str, Config] | None = None) -> dict[str, list[str]]:
    """Every rule over every resource: rule name -> violations (what the tests run)."""
    config = config or {}
    out: dict[str, list[str]] = {}
    for rule in RULES:
        cfg = config.get(rule.name, {})
        if rule.stack:
            out[rule.name] = rule.check(resources, cfg)
        else:
            out[rule.name] = [m for r in resources for m in rule.check(r, cfg)]
    return out
