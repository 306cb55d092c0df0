"""Every container image of the homelab, pinned, with the contract the program relies on.

One `ImageContract` per pin: the tag and where it was seen to exist, the user the image runs
as, whether it has a shell, the programs a health check may run in it, the paths the program
writes into it, and the `*_FILE` variables its entrypoint reads. Every fact names the
upstream file (repository, path, and the commit or tag it was read at) it was verified in;
`tests/test_images.py` checks the services against these facts, and docs/reference.md lists
them. Override one image per service with `image:` in the stack config: the override is
then yours to vouch for.

A path in `writes` that ends in "/" is a directory the program writes files into.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.contracts import Fact, Seen, User

__all__ = ["CONTRACTS", "IMAGES", "Fact", "ImageContract", "Seen", "User", "contract_of"]


@dataclass(frozen=True)
class ImageContract:
    image: str
    tag: Seen  # where this exact tag was seen to exist
    user: Fact[User]
    shell: Fact[bool]
    probes: Fact[tuple[str, ...]]  # executables a health check may run (first word of the test)
    writes: tuple[Fact[str], ...] = ()  # paths the program uploads to; a "/" suffix is a directory
    file_env: Fact[tuple[str, ...]] | None = None  # variables whose `_FILE` form the image reads
    # Where the `@sha256:` index digest of the pin was read (docker-library/repo-info records
    # it for official images); None for images pinned by tag, whose digest Renovate adds.
    digest: Seen | None = None

    @property
    def uid(self) -> int:
        """The uid secret files are given to; only for images whose uid was verified."""
        if self.user.value.uid is None:
            raise ValueError(f"{self.image}: its uid is not part of the contract")
        return self.user.value.uid

    @property
    def tag_name(self) -> str:
        return self.image.split("@", 1)[0].rsplit(":", 1)[1]

    def allows_write(self, path: str) -> bool:
        return any(
            path.startswith(w.value) if w.value.endswith("/") else path == w.value for w in self.writes
        )

    def reads_file_env(self, variable: str) -> bool:
        """Whether `variable` (e.g. POSTGRES_PASSWORD_FILE) is a `_FILE` form this image reads."""
        if self.file_env is None:
            return False
        for name in self.file_env.value:
            if name.endswith("*") and variable.startswith(name[:-1]) and variable.endswith("__FILE"):
                return True  # Grafana: any GF_<SECTION>_<KEY>__FILE
            if variable == f"{name}_FILE":
                return True
        return False


# ---- upstream snapshots the facts were read in -----------------------------------------

LIBRARY = "docker-library/official-images"
LIBRARY_AT = "37079fb336f5"  # 2026-08-21
POSTGRES_REPO, POSTGRES_AT = "docker-library/postgres", "6edb0a8c4def"
MYSQL_REPO, MYSQL_AT = "docker-library/mysql", "7f30fdb07380"
HAPROXY_REPO, HAPROXY_AT = "docker-library/haproxy", "ec437dd2a365"
PHP_REPO, PHP_AT = "docker-library/php", "445bf414f1d5"
DOCS_REPO, DOCS_AT = "docker-library/docs", "c4a9ba414434"
MATTERMOST_DOCS, MATTERMOST_DOCS_AT = "mattermost/docs", "9dd1c713ed5e"
OFFEN_REPO, OFFEN_AT = "offen/docker-volume-backup", "v2.48.2"
# docker-library/repo-info repos/<image>/remote/<tag>.md: "docker pull <image>@sha256:..." of
# the tag's image index (all platforms), at the commit named beside each pin.
REPO_INFO = "docker-library/repo-info"

_POSTGRES_ENTRYPOINT = Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT)
_MYSQL_ENTRYPOINT = Seen(MYSQL_REPO, "8.4/docker-entrypoint.sh", MYSQL_AT)

SECRETS = "/run/homelab/"  # where the program uploads secret files (components.docker.spec)

CONTRACTS: dict[str, ImageContract] = {
    "portainer": ImageContract(
        image="portainer/portainer-ce:2.33.7",
        # The chart's "Update for 2.33.7 release"; the next chart releases move to the 2.39 LTS.
        tag=Seen("portainer/k8s", "charts/portainer/values.yaml", "7cac8178cc3b"),
        user=Fact(User("root", 0), Seen("portainer/portainer", "build/linux/Dockerfile", "cc75167437c0")),
        # "our images except the ones that are tagged with alpine are based on scratch"
        shell=Fact(False, Seen("portainer/portainer", "#7264")),
        probes=Fact((), Seen("portainer/portainer", "#7264")),
        writes=(
            # --admin-password-file names the file (api/cli/cli.go)
            Fact(SECRETS, Seen("portainer/portainer", "api/cli/cli.go", "cc75167437c0")),
        ),
    ),
    "prometheus": ImageContract(
        image="prom/prometheus:v3.5.5",  # newest tag of the 3.5 LTS line
        tag=Seen("prometheus/prometheus", "VERSION", "v3.5.5"),
        user=Fact(User("nobody", None), Seen("prometheus/prometheus", "Dockerfile", "v3.5.5")),
        # FROM quay.io/prometheus/busybox: BusyBox sh and wget
        shell=Fact(True, Seen("prometheus/prometheus", "Dockerfile", "v3.5.5")),
        probes=Fact(("wget",), Seen("prometheus/prometheus", "Dockerfile", "v3.5.5")),
        writes=(
            Fact("/etc/prometheus/prometheus.yml", Seen("prometheus/prometheus", "Dockerfile", "v3.5.5")),
            # "Rule files specifies a list of globs. Rules and alerts are read from all matching
            # files" (rule_files): the alert rules of components/homelab/alerting.py
            Fact(
                "/etc/prometheus/rules/",
                Seen("prometheus/prometheus", "docs/configuration/configuration.md", "v3.5.5"),
            ),
        ),
    ),
    "grafana": ImageContract(
        # 12.3.6+security-01 is the newest release of the 12.3 line; Docker tags spell "+" as "-"
        # (grafana/helm-charts#3722 moved the chart to the image "12.0.0-security-01").
        image="grafana/grafana:12.3.6-security-01",
        tag=Seen("grafana/grafana", "#121177"),
        # ARG GF_UID="472" ... USER "$GF_UID"
        user=Fact(User("grafana", 472), Seen("grafana/grafana", "Dockerfile", "78515af65f03")),
        # alpine base: apk add ... bash curl; BusyBox wget
        shell=Fact(True, Seen("grafana/grafana", "Dockerfile", "78515af65f03")),
        probes=Fact(("wget", "curl"), Seen("grafana/grafana", "Dockerfile", "78515af65f03")),
        writes=(
            Fact("/etc/grafana/provisioning/", Seen("grafana/grafana", "Dockerfile", "78515af65f03")),
            # a file provider's options.path names the dashboards folder
            Fact(
                "/etc/grafana/dashboards/",
                Seen("grafana/grafana", "conf/provisioning/dashboards/sample.yaml", "06aca5e8b5f3"),
            ),
            Fact(SECRETS, Seen("grafana/grafana", "packaging/docker/run.sh", "07754534fbaf")),
        ),
        # run.sh: every GF_<SECTION>_<KEY>__FILE, read as the grafana user
        file_env=Fact(("GF_*",), Seen("grafana/grafana", "packaging/docker/run.sh", "07754534fbaf")),
    ),
    "cadvisor": ImageContract(
        # v0.54.0 is the first release with containerd-snapshotter support (commit 7eda1904,
        # "fix(3643)"); images from v0.53.0 are on ghcr.io (README.md), and a pushed tag vX.Y.Z
        # is published as both X.Y.Z and vX.Y.Z (the publish workflow's metadata tags).
        image="ghcr.io/google/cadvisor:v0.60.5",
        tag=Seen("google/cadvisor", ".github/workflows/publish-container.yml", "v0.60.5"),
        user=Fact(User("root", 0), Seen("google/cadvisor", "deploy/Dockerfile", "v0.60.5")),
        shell=Fact(True, Seen("google/cadvisor", "deploy/Dockerfile", "v0.60.5")),
        # its own HEALTHCHECK runs deploy/healthcheck.sh, which runs BusyBox wget
        probes=Fact(("wget",), Seen("google/cadvisor", "deploy/healthcheck.sh", "v0.60.5")),
    ),
    "node-exporter": ImageContract(
        image="prom/node-exporter:v1.9.1",  # newest tag of the 1.9 line
        tag=Seen("prometheus/node_exporter", "VERSION", "v1.9.1"),
        user=Fact(User("nobody", None), Seen("prometheus/node_exporter", "Dockerfile", "v1.9.1")),
        shell=Fact(True, Seen("prometheus/node_exporter", "Dockerfile", "v1.9.1")),
        probes=Fact(("wget",), Seen("prometheus/node_exporter", "Dockerfile", "v1.9.1")),
    ),
    "alertmanager": ImageContract(
        # CHANGELOG "0.34.0 / 2026-08-16"; the release workflow publishes prom/alertmanager:<tag>
        # (promci publish_release, Makefile DOCKER_IMAGE_NAME alertmanager).
        image="prom/alertmanager:v0.34.0",
        tag=Seen("prometheus/alertmanager", "VERSION", "v0.34.0"),
        # USER nobody (Dockerfile @ v0.34.0), FROM quay.io/prometheus/busybox, built FROM the
        # busybox image, whose /etc/passwd is buildroot's skeleton (docker-library/busybox
        # latest/*/Dockerfile.builder): nobody:x:65534:65534.
        user=Fact(
            User("nobody", 65534), Seen("buildroot/buildroot", "system/skeleton/etc/passwd", "2026.05.1")
        ),
        # FROM quay.io/prometheus/busybox: BusyBox sh and wget
        shell=Fact(True, Seen("prometheus/alertmanager", "Dockerfile", "v0.34.0")),
        probes=Fact(("wget",), Seen("prometheus/alertmanager", "Dockerfile", "v0.34.0")),
        writes=(
            Fact("/etc/alertmanager/", Seen("prometheus/alertmanager", "Dockerfile", "v0.34.0")),
            # slack_configs.api_url_file / webhook_configs.url_file name any readable file
            Fact(SECRETS, Seen("prometheus/alertmanager", "config/notifiers.go", "v0.34.0")),
        ),
    ),
    "blackbox-exporter": ImageContract(
        # Makefile DOCKER_IMAGE_NAME blackbox-exporter, published as prom/blackbox-exporter:<tag>
        image="prom/blackbox-exporter:v0.28.0",
        tag=Seen("prometheus/blackbox_exporter", "VERSION", "v0.28.0"),
        # no USER in the Dockerfile: the exporter runs as root
        user=Fact(User("root", 0), Seen("prometheus/blackbox_exporter", "Dockerfile", "v0.28.0")),
        shell=Fact(True, Seen("prometheus/blackbox_exporter", "Dockerfile", "v0.28.0")),
        probes=Fact(("wget",), Seen("prometheus/blackbox_exporter", "Dockerfile", "v0.28.0")),
        writes=(
            # COPY blackbox.yml /etc/blackbox_exporter/config.yml
            Fact(
                "/etc/blackbox_exporter/config.yml",
                Seen("prometheus/blackbox_exporter", "Dockerfile", "v0.28.0"),
            ),
        ),
    ),
    "haproxy": ImageContract(
        image="haproxy:3.2.22-alpine@sha256:79799e8b2977e60802774fa53d29e6b54e045402cdd8a8b9fe43923e7095a047",
        tag=Seen(LIBRARY, "library/haproxy", LIBRARY_AT),
        digest=Seen(REPO_INFO, "repos/haproxy/remote/3.2.22-alpine.md", "554ab75db2d9"),
        # adduser --uid 99 haproxy ... USER haproxy
        user=Fact(User("haproxy", 99), Seen(HAPROXY_REPO, "3.2/alpine/Dockerfile", HAPROXY_AT)),
        shell=Fact(True, Seen(HAPROXY_REPO, "3.2/alpine/Dockerfile", HAPROXY_AT)),
        probes=Fact(("wget",), Seen(HAPROXY_REPO, "3.2/alpine/Dockerfile", HAPROXY_AT)),
        writes=(
            # mkdir -p /usr/local/etc/haproxy; CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
            Fact("/usr/local/etc/haproxy/", Seen(HAPROXY_REPO, "3.2/alpine/Dockerfile", HAPROXY_AT)),
        ),
    ),
    "backup": ImageContract(
        # The newest v2 release tag; .github/workflows/release.yml at that tag pushes
        # offen/docker-volume-backup:<tag> for amd64, arm64 and arm/v7.
        image="offen/docker-volume-backup:v2.48.2",
        tag=Seen(OFFEN_REPO, ".github/workflows/release.yml", OFFEN_AT),
        # FROM alpine:3.24, no USER: root, which stopping containers through the socket needs
        user=Fact(User("root", 0), Seen(OFFEN_REPO, "Dockerfile", OFFEN_AT)),
        shell=Fact(True, Seen(OFFEN_REPO, "Dockerfile", OFFEN_AT)),
        # the program adds no health check: the engine is a cron daemon with no endpoint
        probes=Fact((), Seen(OFFEN_REPO, "Dockerfile", OFFEN_AT)),
        writes=(Fact(SECRETS, Seen(OFFEN_REPO, "cmd/backup/config_provider.go", OFFEN_AT)),),
        # loadConfig: every setting may be given as <NAME>_FILE (the file is read as is)
        file_env=Fact(
            (
                "AGE_PUBLIC_KEYS",
                "NOTIFICATION_URLS",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "WEBDAV_PASSWORD",
            ),
            Seen(OFFEN_REPO, "cmd/backup/config_provider.go", OFFEN_AT),
        ),
    ),
    "mattermost": ImageContract(
        image="mattermost/mattermost-team-edition:10.11.23",  # "10.11.23, released 2026-08-13"
        tag=Seen(MATTERMOST_DOCS, "source/product-overview/mattermost-v10-changelog.md", MATTERMOST_DOCS_AT),
        # chown -R 2000:2000 for the volumes the image writes
        user=Fact(
            User("mattermost", 2000),
            Seen(
                MATTERMOST_DOCS,
                "source/deployment-guide/server/containers/install-docker.rst",
                MATTERMOST_DOCS_AT,
            ),
        ),
        # Distroless since 10.10/10.11: no shell, no curl (mattermost/mattermost#33839). The
        # image's own check became `mmctl system status --local` (#31136) and later tags ship
        # none (NethServer/dev#7895: 10.11.12); mmctl itself is part of every distribution
        # (bin/, per the mmctl docs) and exits non-zero on failure since 10.11.4 (changelog).
        shell=Fact(False, Seen("mattermost/mattermost", "#33839")),
        probes=Fact(
            ("/mattermost/bin/mmctl",),
            Seen(
                MATTERMOST_DOCS,
                "source/administration-guide/manage/mmctl-command-line-tool.rst",
                MATTERMOST_DOCS_AT,
            ),
        ),
        writes=(
            # PGPASSFILE: lib/pq (server/go.mod: v1.10.9) reads the password from it when the
            # data source has none, and only if the file is not readable by group or others.
            Fact(SECRETS, Seen("lib/pq", "conn.go", "v1.10.9")),
        ),
    ),
    "postgres": ImageContract(
        image="postgres:17.11-alpine@sha256:b0f9560a2de083e2cc7382e75f808c7381a32852a7ec49117deedb300e552b24",
        tag=Seen(LIBRARY, "library/postgres", LIBRARY_AT),
        digest=Seen(REPO_INFO, "repos/postgres/remote/17.11-alpine.md", "14ad5cc17dd0"),
        # uid 70; the entrypoint starts as root, reads *_FILE, then re-runs itself with gosu
        user=Fact(User("postgres", 70), Seen(POSTGRES_REPO, "17/alpine3.23/Dockerfile", POSTGRES_AT)),
        shell=Fact(True, Seen(POSTGRES_REPO, "17/alpine3.23/Dockerfile", POSTGRES_AT)),
        # make install-world-bin installs the client programs, pg_isready among them
        probes=Fact(("pg_isready",), Seen(POSTGRES_REPO, "17/alpine3.23/Dockerfile", POSTGRES_AT)),
        writes=(Fact(SECRETS, _POSTGRES_ENTRYPOINT),),
        file_env=Fact(
            ("POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_INITDB_ARGS"),
            _POSTGRES_ENTRYPOINT,
        ),
    ),
    "mysql": ImageContract(
        image="mysql:8.4.11@sha256:85b9bf2e29cf836ecb8c2a15a935d4ba0c606631dff1dd79531a11983c638f2a",
        tag=Seen(LIBRARY, "library/mysql", LIBRARY_AT),
        digest=Seen(REPO_INFO, "repos/mysql/remote/8.4.11.md", "0f0c69aaf7d3"),
        # uid 999; the entrypoint starts as root, reads *_FILE, then re-runs itself with gosu
        user=Fact(User("mysql", 999), Seen(MYSQL_REPO, "8.4/Dockerfile.oracle", MYSQL_AT)),
        shell=Fact(True, _MYSQL_ENTRYPOINT),
        # the entrypoint itself stops its temporary server with mysqladmin
        probes=Fact(("mysqladmin",), _MYSQL_ENTRYPOINT),
        writes=(Fact(SECRETS, _MYSQL_ENTRYPOINT),),
        file_env=Fact(
            ("MYSQL_ROOT_HOST", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"),
            _MYSQL_ENTRYPOINT,
        ),
    ),
    "drupal": ImageContract(
        # The last tag of the 11.2 line before the library dropped it.
        image="drupal:11.2.14-php8.4-apache-bookworm@sha256:33fc62144ec9c4bbde0f1d59e2cc41ed7c8097ece531b44c1922b4289733a3e2",  # noqa: E501 (one string: Renovate reads it whole)
        tag=Seen(LIBRARY, "library/drupal", "03a4a82966b8"),
        digest=Seen(REPO_INFO, "repos/drupal/remote/11.2.14-php8.4-apache-bookworm.md", "0930a5e3bab3"),
        # FROM php:8.4-apache-bookworm: Apache starts as root, serves as www-data
        user=Fact(
            User("root", 0),
            Seen("docker-library/drupal", "11.2/php8.4/apache-bookworm/Dockerfile", "39a0e4ddb799"),
        ),
        shell=Fact(True, Seen(PHP_REPO, "8.4/bookworm/apache/Dockerfile", PHP_AT)),
        probes=Fact(("curl",), Seen(PHP_REPO, "8.4/bookworm/apache/Dockerfile", PHP_AT)),
    ),
    "web": ImageContract(
        image="php:8.4.24-apache@sha256:a62ab16a276f8819db63ec3a4fc86b8a3a0d2da1cb201f174b7a4a84fc2776e9",
        tag=Seen(LIBRARY, "library/php", LIBRARY_AT),
        digest=Seen(REPO_INFO, "repos/php/remote/8.4.24-apache.md", "e5886e775b56"),
        user=Fact(User("root", 0), Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
        shell=Fact(True, Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
        # curl is a runtime dependency; docker-php.conf sets "Options -Indexes" on /var/www/
        probes=Fact(("curl",), Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
    ),
    "landing": ImageContract(
        # The last tag of the 1.28 stable line: the library moved stable to 1.30.0 next.
        image="nginx:1.28.3-alpine",
        tag=Seen(LIBRARY, "library/nginx", "f486d54b6d08"),
        # no USER: the master runs as root, workers as nginx (uid 101)
        user=Fact(
            User("root", 0), Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "30c9ebf5aba1")
        ),
        # FROM alpine: BusyBox sh and wget (curl is a build dependency, removed again)
        shell=Fact(True, Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "30c9ebf5aba1")),
        probes=Fact(("wget",), Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "30c9ebf5aba1")),
        writes=(Fact("/usr/share/nginx/html/", Seen(DOCS_REPO, "nginx/content.md", DOCS_AT)),),
    ),
}

IMAGES: dict[str, str] = {
    **{key: contract.image for key, contract in CONTRACTS.items()},
}


def contract_of(image: str) -> ImageContract | None:
    """The contract of a pinned image reference, None for any other image."""
    return next((c for c in CONTRACTS.values() if c.image == image), None)
