"""Every container of the full single-host example, service by service.

One run of `examples/single-host.yaml` (every built-in service on, plus the custom `whoami`);
each test looks at the registered `docker:index/container:Container` inputs: pinned image
pulled by a `RemoteImage` on the host, published ports, volumes, stack network, secrets,
health check, labels, memory limit, restart policy, Docker provider and socket mounts.
"""

from __future__ import annotations

import hashlib

import pytest
from harness import (
    EXAMPLES,
    example_run,
    file_is_secret,
    file_owner_and_mode,
    files,
    is_secret,
    is_stager,
    plain_strings,
    stager_of,
)

from components.homelab import proxy
from components.homelab.images import IMAGES

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
PREFIX = "homelab"  # the example's stack name: container prefix, volume prefix and network
HOST = "server"
DOCKER_SOCKET = "/var/run/docker.sock"
PGDATA = "/var/lib/postgresql/data"

# Container alias (its name on the stack network) -> the image it must run.
EXPECTED_IMAGES = {
    "portainer": IMAGES["portainer"],
    "prometheus": IMAGES["prometheus"],
    "alertmanager": IMAGES["alertmanager"],
    "blackbox-exporter": IMAGES["blackbox-exporter"],
    "grafana": IMAGES["grafana"],
    "cadvisor": IMAGES["cadvisor"],
    "node-exporter": IMAGES["node-exporter"],
    "haproxy": IMAGES["haproxy"],
    "backup": IMAGES["backup"],
    "backup-docker-api": IMAGES["docker-api-proxy"],
    "cadvisor-docker-api": IMAGES["docker-api-proxy"],
    "mattermost": IMAGES["mattermost"],
    "mattermost-db": IMAGES["postgres"],
    "postgres": IMAGES["postgres"],
    "mysql": IMAGES["mysql"],
    "drupal": IMAGES["drupal"],
    "drupal-db": IMAGES["postgres"],
    "web": IMAGES["web"],
    "landing": IMAGES["landing"],
    "authelia": IMAGES["authelia"],
    "resolver": IMAGES["resolver"],
    "whoami": "traefik/whoami:v1.11.0",  # from the example's custom-services
}
ALIASES = sorted(EXPECTED_IMAGES)

# Images without a shell or HTTP client (portainer, whoami: FROM scratch) or without a
# long-running server to probe (backup: a cron loop, alpine without an HTTP client) get no
# health check.
WITHOUT_HEALTHCHECK = {"portainer", "backup", "whoami"}

# The built-ins' default memory limits (MB). `whoami` sets none in the example.
MEMORY_MB = {
    "portainer": 256,
    "prometheus": 1024,
    "alertmanager": 128,
    "blackbox-exporter": 64,
    "grafana": 512,
    "cadvisor": 256,
    "node-exporter": 128,
    "haproxy": 256,
    "backup": 256,
    "backup-docker-api": 32,
    "cadvisor-docker-api": 32,
    "mattermost": 2048,
    "mattermost-db": 512,
    "postgres": 512,
    "mysql": 768,
    "drupal": 512,
    "drupal-db": 512,
    "web": 256,
    "landing": 64,
    "authelia": 256,
    "resolver": 128,
}

# Named volumes each container owns (Docker volume name -> mount path), all writable.
OWN_VOLUMES = {
    "portainer": {"homelab_portainer_data": "/data"},
    "prometheus": {"homelab_prometheus_data": "/prometheus"},
    "alertmanager": {"homelab_alertmanager_data": "/alertmanager"},
    # The backup run records its successes where node-exporter reads them (alerting.py).
    "backup": {"homelab_node_exporter_server_textfile": "/var/lib/node-exporter/textfile"},
    "grafana": {"homelab_grafana_data": "/var/lib/grafana"},
    "postgres": {"homelab_postgres_data": PGDATA},
    "mysql": {"homelab_mysql_data": "/var/lib/mysql"},
    "mattermost-db": {"homelab_mattermost_db_data": PGDATA},
    "drupal-db": {"homelab_drupal_db_data": PGDATA},
    "mattermost": {
        "homelab_mattermost_config": "/mattermost/config",
        "homelab_mattermost_data": "/mattermost/data",
        "homelab_mattermost_logs": "/mattermost/logs",
        "homelab_mattermost_plugins": "/mattermost/plugins",
        "homelab_mattermost_client_plugins": "/mattermost/client/plugins",
        "homelab_mattermost_bleve": "/mattermost/bleve-indexes",
    },
    "drupal": {
        "homelab_drupal_sites": "/var/www/html/sites",
        "homelab_drupal_modules": "/var/www/html/modules",
        "homelab_drupal_profiles": "/var/www/html/profiles",
        "homelab_drupal_themes": "/var/www/html/themes",
    },
    "web": {"homelab_web_html": "/var/www/html", "homelab_web_logs": "/var/log/apache2"},
    "authelia": {"homelab_authelia_data": "/config"},
}
# The directories each container reads staged files from (components/docker/service.py): one
# volume each, filled by the container's stager, mounted read-only.
STAGED_DIRS = {
    "portainer": ["/run/homelab"],
    "prometheus": ["/etc/prometheus"],
    "alertmanager": ["/etc/alertmanager", "/run/homelab"],
    "blackbox-exporter": ["/etc/blackbox_exporter"],
    "grafana": [
        "/etc/grafana/dashboards",
        "/etc/grafana/provisioning/dashboards",
        "/etc/grafana/provisioning/datasources",
        "/run/homelab",
    ],
    "haproxy": ["/usr/local/etc/haproxy"],
    "landing": ["/usr/share/nginx/html"],
    "backup": ["/run/homelab"],
    "mattermost": ["/run/homelab"],
    "mattermost-db": ["/run/homelab"],
    "postgres": ["/run/homelab"],
    "mysql": ["/run/homelab"],
    "drupal-db": ["/run/homelab"],
    "authelia": ["/etc/authelia", "/run/homelab"],
    "resolver": ["/etc/unbound/homelab"],
}
STAGED_VOLUMES = {
    f"homelab_{alias.replace('-', '_')}_files_{i}"
    for alias, dirs in STAGED_DIRS.items()
    for i in range(len(dirs))
}
# Scratch volumes: not backed up, not retained on destroy.
SCRATCH_VOLUMES = {
    "homelab_mattermost_logs",
    "homelab_mattermost_bleve",
    "homelab_web_logs",
    "homelab_node_exporter_server_textfile",
}


# ---- helpers --------------------------------------------------------------------------


def mock_image_id(image: str) -> str:
    """The imageId the harness's mocks give a RemoteImage named `image`."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def env(container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.inputs.get("envs") or [])


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels") or []}


def named_mounts(container) -> list[dict]:
    return [v for v in container.inputs.get("volumes") or [] if "volumeName" in v]


def bind_mounts(container) -> list[dict]:
    return [v for v in container.inputs.get("volumes") or [] if "hostPath" in v]


def env_of(container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.inputs.get("envs") or [])


def socket_mode(container) -> str | None:
    """'ro'/'rw' when the Docker socket is mounted, else None."""
    for mount in bind_mounts(container):
        if mount["hostPath"] == DOCKER_SOCKET:
            assert mount["containerPath"] == DOCKER_SOCKET
            return "ro" if mount.get("readOnly") else "rw"
    return None


def is_pinned(image: str) -> bool:
    """A tag other than 'latest' (after the last '/', so registry ports don't count) or a digest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return example_run(EXAMPLES / "single-host.yaml")


@pytest.fixture(scope="module")
def containers(lab):
    """Containers by alias ('grafana'), from their Docker names ('homelab-grafana')."""
    found = [c for c in lab.of_type(CONTAINER) if not is_stager(c)]  # their stagers: below
    by_alias = {c.inputs["name"].removeprefix(f"{PREFIX}-"): c for c in found}
    assert len(by_alias) == len(found), "two containers share a Docker name"
    return by_alias


@pytest.fixture(scope="module")
def provider_urn(lab):
    providers = lab.providers()
    assert list(providers) == [f"{HOST}-docker"]
    return providers[f"{HOST}-docker"].urn


# ---- the set of containers ------------------------------------------------------------


def test_exactly_the_expected_containers(containers):
    assert sorted(containers) == ALIASES


# ---- images ---------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_container_runs_its_pinned_image(lab, containers, alias):
    image_id = containers[alias].inputs["image"]
    pulled = [r for r in lab.of_type(REMOTE_IMAGE) if mock_image_id(r.inputs["name"]) == image_id]
    assert len(pulled) == 1, f"{alias}: image {image_id} is not the imageId of one RemoteImage"
    assert pulled[0].inputs["name"] == EXPECTED_IMAGES[alias]


def test_each_image_is_pulled_once_and_kept(lab):
    names = [r.inputs["name"] for r in lab.of_type(REMOTE_IMAGE)]
    assert sorted(names) == sorted(set(EXPECTED_IMAGES.values()))
    assert all(r.inputs.get("keepLocally") is True for r in lab.of_type(REMOTE_IMAGE))


def test_no_image_is_latest_or_untagged(lab):
    references = [r.inputs["name"] for r in lab.of_type(REMOTE_IMAGE)] + list(IMAGES.values())
    assert [ref for ref in references if not is_pinned(ref)] == []


@pytest.mark.parametrize("bad", ["nginx", "nginx:latest", "registry:5000/app", "registry:5000/app:latest"])
def test_is_pinned_rejects_unpinned_references(bad):
    assert not is_pinned(bad)


# ---- ports ----------------------------------------------------------------------------


def test_only_the_proxy_and_the_resolver_publish_ports(containers):
    published = {
        alias: sorted((p["external"], p["internal"], p["protocol"]) for p in c.inputs["ports"])
        for alias, c in containers.items()
        if c.inputs.get("ports")
    }
    assert published == {
        "haproxy": [(80, 80, "tcp"), (443, 443, "tcp"), (3307, 3307, "tcp"), (5432, 5432, "tcp")],
        # DNS on the LAN address only (dns.resolver.bind-address).
        "resolver": [(53, 5053, "tcp"), (53, 5053, "udp")],
    }
    assert {p["ip"] for p in containers["resolver"].inputs["ports"]} == {"192.168.1.10"}


# ---- volumes --------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_named_volumes_and_mount_paths(containers, alias):
    own = {
        m["volumeName"]: m["containerPath"] for m in named_mounts(containers[alias]) if not m.get("readOnly")
    }
    assert own == OWN_VOLUMES.get(alias, {})


def test_every_named_volume_is_a_volume_resource(lab):
    declared = {r.inputs["name"] for r in lab.of_type(VOLUME)}
    assert declared == {name for volumes in OWN_VOLUMES.values() for name in volumes} | STAGED_VOLUMES


@pytest.mark.parametrize("alias", sorted(STAGED_DIRS))
def test_staged_files_are_mounted_read_only_where_the_container_reads_them(lab, containers, alias):
    c = containers[alias]
    key = alias.replace("-", "_")
    staged = {m["containerPath"]: m for m in named_mounts(c) if "_files_" in m["volumeName"]}
    assert sorted(staged) == STAGED_DIRS[alias]
    for i, path in enumerate(STAGED_DIRS[alias]):
        assert staged[path] == {
            "volumeName": f"homelab_{key}_files_{i}",
            "containerPath": path,
            "readOnly": True,
        }
    assert not c.inputs.get("uploads"), "the container takes no upload itself"
    stager = stager_of(c)
    assert stager.inputs["name"] == f"homelab-{alias}-files"
    assert [m["containerPath"] for m in stager.inputs["volumes"]] == [
        f"/files{p}" for p in STAGED_DIRS[alias]
    ]
    assert stager.inputs["mustRun"] is False and stager.inputs["attach"] is True
    assert stager.inputs["restart"] == "no" and stager.inputs["networkMode"] == "none"
    assert stager.inputs["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN"]}
    assert stager.inputs["image"] == mock_image_id(IMAGES["backup"])


def test_stateful_volumes_are_retained_and_scratch_volumes_are_not(lab):
    retained = {r.inputs["name"] for r in lab.of_type(VOLUME) if r.retain_on_delete}
    declared = {r.inputs["name"] for r in lab.of_type(VOLUME)}
    assert retained == declared - SCRATCH_VOLUMES - STAGED_VOLUMES


def test_backup_mounts_every_stateful_volume_read_only(lab, containers):
    mounts = named_mounts(containers["backup"])
    sources = [m for m in mounts if m["containerPath"].startswith("/backup/")]
    retained = {r.inputs["name"] for r in lab.of_type(VOLUME) if r.retain_on_delete}
    assert {m["volumeName"]: m["containerPath"] for m in sources} == {
        name: f"/backup/{name}" for name in retained
    }
    assert all(m["readOnly"] for m in sources)
    # Besides its sources, only the textfile directory it records its successes in.
    others = [m["containerPath"] for m in mounts if m not in sources and "_files_" not in m["volumeName"]]
    assert others == ["/var/lib/node-exporter/textfile"]
    target = [m for m in bind_mounts(containers["backup"]) if m["containerPath"] == "/archive"]
    assert target == [{"hostPath": "/srv/backups/homelab", "containerPath": "/archive", "readOnly": False}]


def host_mounts(container) -> dict[str, tuple[str, bool, str | None]]:
    """Host path -> (container path, read-only, propagation), from `volumes` and bind `mounts`."""
    found = {
        m["hostPath"]: (m["containerPath"], bool(m.get("readOnly")), None) for m in bind_mounts(container)
    }
    for m in container.inputs.get("mounts") or []:
        assert m["type"] == "bind"
        propagation = (m.get("bindOptions") or {}).get("propagation")
        found[m["source"]] = (m["target"], bool(m.get("readOnly")), propagation)
    return found


@pytest.mark.parametrize(
    "alias, expected",
    [
        # google/cadvisor README.md @ v0.60.5: the quick start's --volume list, all read-only,
        # but /var/run (the raw Docker socket): cAdvisor reads the API through its proxy.
        (
            "cadvisor",
            {
                "/": ("/rootfs", True, None),
                "/sys": ("/sys", True, None),
                "/var/lib/docker": ("/var/lib/docker", True, None),
                "/dev/disk": ("/dev/disk", True, None),
            },
        ),
        # prometheus/node_exporter README.md @ v1.9.1: -v "/:/host:ro,rslave".
        ("node-exporter", {"/": ("/host", True, "rslave")}),
    ],
)
def test_exporters_mount_host_paths_as_upstream_says(containers, alias, expected):
    assert host_mounts(containers[alias]) == expected


def test_docker_socket_only_where_needed(containers):
    modes = {alias: socket_mode(c) for alias, c in containers.items() if socket_mode(c)}
    # Portainer manages the host; the backup engine and cAdvisor get a proxy each (issue 26).
    assert modes == {"portainer": "rw", "backup-docker-api": "ro", "cadvisor-docker-api": "ro"}
    with_run = {alias for alias, c in containers.items() if "/var/run" in host_mounts(c)}
    assert with_run == set()
    assert env_of(containers["backup"])["DOCKER_HOST"] == "tcp://backup-docker-api:2375"
    assert "--docker=tcp://cadvisor-docker-api:2375" in containers["cadvisor"].inputs["command"]


# ---- network --------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_on_the_stack_network_under_its_alias(containers, alias):
    c = containers[alias]
    (network,) = c.inputs["networksAdvanced"]
    assert network["name"] == PREFIX and network["aliases"][0] == alias
    # Only the proxy answers for more names: each host name it routes, so services reach each
    # other at their URLs on the stack network.
    crt_list = files(c).get(f"{proxy.CONFIG_DIR}/crt-list.txt", "")
    routed = [line.split()[1] for line in crt_list.splitlines()[1:]]  # the fallback name first
    assert network["aliases"][1:] == (routed if alias == "haproxy" else [])
    assert c.inputs["hostname"] == alias


def test_one_stack_network(lab):
    networks = lab.of_type(NETWORK)
    assert [(n.inputs["name"], n.inputs["driver"]) for n in networks] == [(PREFIX, "bridge")]


# ---- environment and secrets ----------------------------------------------------------


def test_grafana_has_no_anonymous_access_nor_sign_up(containers):
    e = env(containers["grafana"])
    assert e["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert e["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert e["GF_SECURITY_ADMIN_USER"] == "admin"


def test_grafana_admin_password_comes_from_a_secret_file(lab, containers):
    grafana = containers["grafana"]
    e = env(grafana)
    assert "GF_SECURITY_ADMIN_PASSWORD" not in e
    path = e["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert files(grafana)[path] in lab.generated_secrets
    assert file_is_secret(grafana, path)


@pytest.mark.parametrize(
    "alias, keys",
    [
        (
            "mattermost",
            [
                "MM_SQLSETTINGS_ATRESTENCRYPTKEY",
                "MM_FILESETTINGS_PUBLICLINKSALT",
                "MM_EMAILSETTINGS_INVITESALT",
            ],
        ),
    ],
)
def test_generated_secrets_reach_env_only_as_secrets(lab, containers, alias, keys):
    c = containers[alias]
    envs = c.inputs["envs"]
    for key in keys:
        index = next(i for i, item in enumerate(envs) if item.startswith(f"{key}="))
        assert any(s in envs[index] for s in lab.generated_secrets), f"{key} holds no generated secret"
        assert is_secret(c, f"envs[{index}]"), f"{alias}: {key} is not secret"


# Database passwords: a `*_FILE` variable names a 0400 file of the database user (uid from
# components/homelab/images.py: postgres 70, mysql 999).
DATABASE_PASSWORD_FILES = {
    "postgres": {"POSTGRES_PASSWORD_FILE": 70},
    "mattermost-db": {"POSTGRES_PASSWORD_FILE": 70},
    "drupal-db": {"POSTGRES_PASSWORD_FILE": 70},
    "mysql": {"MYSQL_PASSWORD_FILE": 999, "MYSQL_ROOT_PASSWORD_FILE": 999},
}


@pytest.mark.parametrize("alias", sorted(DATABASE_PASSWORD_FILES))
def test_database_passwords_are_files_of_the_database_user(lab, containers, alias):
    c = containers[alias]
    for variable, uid in DATABASE_PASSWORD_FILES[alias].items():
        assert variable.removesuffix("_FILE") not in env(c)
        path = env(c)[variable]
        assert files(c)[path] in lab.generated_secrets
        assert file_is_secret(c, path)
        assert file_owner_and_mode(c, path) == (str(uid), "0400")


def password_of(container, variable: str) -> str:
    return files(container)[env(container)[variable]]


def test_mattermost_reads_its_database_password_from_a_pgpass_file(containers):
    mattermost = containers["mattermost"]
    datasource = env(mattermost)["MM_SQLSETTINGS_DATASOURCE"]
    assert datasource.startswith("postgres://mattermost@mattermost-db:5432/mattermost?")
    password = password_of(containers["mattermost-db"], "POSTGRES_PASSWORD_FILE")
    assert password not in datasource
    pgpass = env(mattermost)["PGPASSFILE"]
    assert files(mattermost)[pgpass] == f"mattermost-db:5432:mattermost:mattermost:{password}\n"
    # lib/pq (conn.go, v1.10.9) ignores a pgpass file that group or others may read.
    assert file_owner_and_mode(mattermost, pgpass) == ("2000", "0400")


def test_each_secret_is_distinct(containers):
    values = [
        env(containers["mattermost"])["MM_SQLSETTINGS_ATRESTENCRYPTKEY"],
        env(containers["mattermost"])["MM_FILESETTINGS_PUBLICLINKSALT"],
        env(containers["mattermost"])["MM_EMAILSETTINGS_INVITESALT"],
        password_of(containers["mattermost-db"], "POSTGRES_PASSWORD_FILE"),
        password_of(containers["drupal-db"], "POSTGRES_PASSWORD_FILE"),
        password_of(containers["postgres"], "POSTGRES_PASSWORD_FILE"),
        password_of(containers["mysql"], "MYSQL_PASSWORD_FILE"),
        password_of(containers["mysql"], "MYSQL_ROOT_PASSWORD_FILE"),
    ]
    assert len(set(values)) == len(values)


def test_no_generated_secret_in_plain_text_anywhere(lab):
    assert lab.generated_secrets, "the mocks generated no secret"
    leaks = [
        (r.type, r.name, path)
        for r in lab.resources
        for path, text in plain_strings(r.raw_inputs)
        if any(secret in text for secret in lab.generated_secrets)
    ]
    assert leaks == []


# ---- health, labels, limits, restart --------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_health_check_exactly_where_the_image_supports_one(containers, alias):
    healthcheck = containers[alias].inputs.get("healthcheck")
    if alias in WITHOUT_HEALTHCHECK:
        assert healthcheck is None
    else:
        assert healthcheck is not None
        assert healthcheck["tests"][0] in ("CMD", "CMD-SHELL") and len(healthcheck["tests"]) > 1
        assert healthcheck["retries"] >= 1 and healthcheck["interval"] and healthcheck["timeout"]


@pytest.mark.parametrize("alias", ALIASES)
def test_stack_labels(containers, alias):
    expected = {
        "managed-by": "pulumi-homelab",
        "homelab.stack": "dev",
        "homelab.host": HOST,
        "homelab.container": alias,
    }
    assert labels(containers[alias]).items() >= expected.items()


def test_volumes_and_network_carry_the_stack_labels(lab):
    for r in lab.of_type(VOLUME) + lab.of_type(NETWORK):
        assert labels(r).get("managed-by") == "pulumi-homelab", r.name
        assert labels(r).get("homelab.stack") == "dev", r.name


@pytest.mark.parametrize("alias", sorted(MEMORY_MB))
def test_memory_limit(containers, alias):
    assert containers[alias].inputs.get("memory") == MEMORY_MB[alias]


@pytest.mark.parametrize("alias", ALIASES)
def test_restart_policy(containers, alias):
    assert containers[alias].inputs["restart"] == "unless-stopped"
    assert containers[alias].inputs["mustRun"] is True


# ---- provider -------------------------------------------------------------------------


def test_host_provider_is_the_ssh_host(lab):
    provider = lab.providers()[f"{HOST}-docker"]
    assert provider.inputs["host"] == "ssh://deploy@server.lab.example.com:22"


def test_every_docker_resource_uses_the_host_provider(lab, provider_urn):
    docker_resources = [r for r in lab.resources if r.type.startswith("docker:")]
    assert len(docker_resources) > len(ALIASES)
    wrong = [r.name for r in docker_resources if not (r.provider or "").startswith(provider_urn + "::")]
    assert wrong == []


def test_containers_depend_on_their_database(lab, containers):
    for app, db in (("mattermost", "mattermost-db"), ("drupal", "drupal-db")):
        db_urn = containers[db].urn
        assert db_urn and db_urn in containers[app].dependencies, f"{app} is not created after {db}"
