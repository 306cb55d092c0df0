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
from datetime import date

from components.contracts import Fact, Seen, User
from components.docker.spec import Privileges
from components.lifecycle import Product, UpgradeRule, Window

__all__ = [
    "CONTRACTS",
    "IMAGES",
    "SUPPORT",
    "UPGRADES",
    "Fact",
    "ImageContract",
    "Seen",
    "User",
    "contract_of",
]


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
    # Least privilege (issue 26): the capabilities the image needs with every other one
    # dropped, each with the line that needs it; whether the program runs it with a read-only
    # root filesystem (None: it does not; an upload needs a writable one, see
    # components.docker.spec.Privileges), and then the paths it writes outside its volumes.
    capabilities: tuple[Fact[str], ...] = ()
    read_only: Seen | None = None
    tmpfs: tuple[Fact[str], ...] = ()

    def privileges(self) -> Privileges:
        return Privileges(
            capabilities=tuple(sorted(f.value for f in self.capabilities)),
            read_only=self.read_only is not None,
            tmpfs=tuple(f.value for f in self.tmpfs),
        )

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
SOCKET_PROXY_REPO, SOCKET_PROXY_AT = "wollomatic/socket-proxy", "bc6606ade30b"  # tag 1.13.1
AUTHELIA_REPO, AUTHELIA_AT = "authelia/authelia", "v4.39.20"
LEGO_REPO, LEGO_AT = "go-acme/lego", "v5.3.1"
CLOUDFLARED_REPO, CLOUDFLARED_AT = "cloudflare/cloudflared", "733bfb939963"  # tag 2026.8.2
TAILSCALE_REPO, TAILSCALE_AT = "tailscale/tailscale", "v1.102.3"
MAN_PAGES, MAN_PAGES_AT = "mkerrisk/man-pages", "ae6b221882ce"
UNBOUND_IMAGE_REPO, UNBOUND_IMAGE_AT = "klutchell/unbound-docker", "v1.26.0"
# NLnetLabs/unbound tag release-1.26.0 is commit a45da353d3fe.
UNBOUND_REPO, UNBOUND_AT = "NLnetLabs/unbound", "a45da353d3fe"
# docker-library/repo-info repos/<image>/remote/<tag>.md: "docker pull <image>@sha256:..." of
# the tag's image index (all platforms), at the commit named beside each pin.
REPO_INFO = "docker-library/repo-info"

_POSTGRES_ENTRYPOINT = Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT)
_MYSQL_ENTRYPOINT = Seen(MYSQL_REPO, "8.4/docker-entrypoint.sh", MYSQL_AT)

SECRETS = "/run/homelab/"  # where the program uploads secret files (components.docker.spec)

# Apache's parent runs as root: it binds port 80 (without relying on Docker's
# ip_unprivileged_port_start default), switches its children to www-data (mod_unixd: setgid,
# initgroups, setuid) and signals them for a graceful stop (prefork). httpd read at tag
# 2.4.62 = f4c1e18ead5d. The drupal and web (php) images run the same Apache.
_APACHE_CAPABILITIES = (
    Fact("KILL", Seen("apache/httpd", "server/mpm/prefork/prefork.c", "f4c1e18ead5d")),
    Fact("NET_BIND_SERVICE", Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
    Fact("SETGID", Seen("apache/httpd", "modules/arch/unix/mod_unixd.c", "f4c1e18ead5d")),
    Fact("SETUID", Seen("apache/httpd", "modules/arch/unix/mod_unixd.c", "f4c1e18ead5d")),
)
# gosu (tianon/gosu tag 1.19 = 6456aaa0f3c8): Setgroups, Setgid, Setuid as root; it refuses
# to be setuid itself.
_GOSU = Seen("tianon/gosu", "setup-user.go", "6456aaa0f3c8")

CONTRACTS: dict[str, ImageContract] = {
    "portainer": ImageContract(
        # 2.45 is the LTS line supported on 2026-12-07 (2.33 LTS ended May 2026, 2.39 LTS Nov
        # 2026: portainer/portainer-docs start/lifecycle.md @ 019ec08e9976); "Portainer 2.45.0
        # LTS is now available!" (portainer discussions #13272) is its newest release seen.
        image="portainer/portainer-ce:2.45.0",
        tag=Seen("portainer/portainer", "#13272"),
        user=Fact(User("root", 0), Seen("portainer/portainer", "build/linux/Dockerfile", "cc75167437c0")),
        # "our images except the ones that are tagged with alpine are based on scratch"
        shell=Fact(False, Seen("portainer/portainer", "#7264")),
        probes=Fact((), Seen("portainer/portainer", "#7264")),
        writes=(
            # --admin-password-file names the file (api/cli/cli.go)
            Fact(SECRETS, Seen("portainer/portainer", "api/cli/cli.go", "cc75167437c0")),
        ),
        # VOLUME /data holds its state; /tmp takes the temporary files of its Kubernetes, Helm and
        # Git features (os.CreateTemp / os.MkdirTemp with the default directory).
        read_only=Seen("portainer/portainer", "build/linux/Dockerfile", "17b2322b9254"),
        tmpfs=(
            Fact(
                "/tmp", Seen("portainer/portainer", "api/http/handler/helm/helm_install.go", "cc75167437c0")
            ),
        ),
    ),
    "prometheus": ImageContract(
        # Newest tag of the 3.13 LTS line (release-3.13 has nothing after v3.13.2). The plain
        # tags stay on busybox; the distroless build has its own `-distroless` tags (CHANGELOG
        # 3.10.0: "The busybox image remains the default with no suffix").
        image="prom/prometheus:v3.13.2",
        tag=Seen("prometheus/prometheus", "VERSION", "v3.13.2"),
        user=Fact(User("nobody", None), Seen("prometheus/prometheus", "Dockerfile", "v3.13.2")),
        # FROM quay.io/prometheus/busybox: BusyBox sh and wget
        shell=Fact(True, Seen("prometheus/prometheus", "Dockerfile", "v3.13.2")),
        probes=Fact(("wget",), Seen("prometheus/prometheus", "Dockerfile", "v3.13.2")),
        writes=(
            Fact("/etc/prometheus/prometheus.yml", Seen("prometheus/prometheus", "Dockerfile", "v3.13.2")),
            # "Rule files specifies a list of globs. Rules and alerts are read from all matching
            # files" (rule_files): the alert rules of components/homelab/alerting.py
            Fact(
                "/etc/prometheus/rules/",
                Seen("prometheus/prometheus", "docs/configuration/configuration.md", "v3.13.2"),
            ),
        ),
        # The server writes only its storage path (the TSDB and queries.active under it); its
        # files are staged read-only, so its root filesystem is read-only.
        read_only=Seen("prometheus/prometheus", "promql/query_logger.go", "v3.13.2"),
    ),
    "grafana": ImageContract(
        # 12.4 is the last minor of Grafana 12, supported 15 months (to 2027-05-24); 12.4.9 is
        # the newest release of the line seen (endoflife-date/release-data releases/grafana.json
        # @ 26ef641f9f87, which mirrors grafana.com's table; see SUPPORT below).
        image="grafana/grafana:12.4.9",
        tag=Seen("endoflife-date/release-data", "releases/grafana.json", "26ef641f9f87"),
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
        # Data, logs and plugins live in /var/lib/grafana (a volume); run.sh logs to the console
        # and writes elsewhere only for GF_AWS_PROFILES. /tmp takes plugin downloads
        # (pkg/plugins/repo/client.go: os.CreateTemp("", "*.zip")).
        read_only=Seen("grafana/grafana", "packaging/docker/run.sh", "07754534fbaf"),
        tmpfs=(Fact("/tmp", Seen("grafana/grafana", "pkg/plugins/repo/client.go", "130af5d7a32c")),),
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
        # Root, but no capability of Docker's default set except one: the disk-usage walk of
        # each container's writable layer (filepath.Walk under /rootfs/var/lib/docker) reads
        # directories of any owner (a permission error is logged and that metric goes stale).
        # No SYSLOG: reading /dev/kmsg for OOM events needs it only where dmesg_restrict=1, and
        # is best-effort (cmd/internal/api/oom.go). It logs to stderr and writes no file
        # (deploy/entrypoint.sh: -logtostderr), so its root filesystem is read-only.
        capabilities=(Fact("DAC_READ_SEARCH", Seen("google/cadvisor", "lib/fs/fs.go", "v0.60.5")),),
        read_only=Seen("google/cadvisor", "deploy/entrypoint.sh", "v0.60.5"),
    ),
    "node-exporter": ImageContract(
        image="prom/node-exporter:v1.12.1",  # the newest release (fixes ship only in new ones)
        tag=Seen("prometheus/node_exporter", "VERSION", "v1.12.1"),
        user=Fact(User("nobody", None), Seen("prometheus/node_exporter", "Dockerfile", "v1.12.1")),
        shell=Fact(True, Seen("prometheus/node_exporter", "Dockerfile", "v1.12.1")),
        probes=Fact(("wget",), Seen("prometheus/node_exporter", "Dockerfile", "v1.12.1")),
        # USER nobody, no capability (README: only the timex collector may want SYS_TIME, and
        # a permission error there is "no data", collector/timex.go); it writes no file.
        read_only=Seen("prometheus/node_exporter", "README.md", "v1.12.1"),
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
        # Writes only its data directory (nflog, silences, and their temp files beside them).
        read_only=Seen("prometheus/alertmanager", "app/app.go", "v0.34.0"),
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
        # Writes no file (TCP probes only here; ICMP would try an unprivileged socket first).
        read_only=Seen("prometheus/blackbox_exporter", "prober/icmp.go", "v0.28.0"),
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
        # The entrypoint only execs haproxy; the generated config sets no pidfile, stats socket
        # or chroot, so nothing is written outside its staged files.
        read_only=Seen(HAPROXY_REPO, "3.2/alpine/docker-entrypoint.sh", HAPROXY_AT),
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
        # Root: it archives volumes whose files belong to other users (PostgreSQL's 0700 data
        # directory, uid 70), and any EACCES of its WalkDir fails the whole run; it chowns
        # nothing. Not read-only: it takes uploads, and writes the archive to /tmp.
        capabilities=(Fact("DAC_READ_SEARCH", Seen(OFFEN_REPO, "cmd/backup/create_archive.go", OFFEN_AT)),),
    ),
    "docker-api-proxy": ImageContract(
        # Tags are pushed by the release workflow as docker.io/wollomatic/socket-proxy:<tag>
        # (and :1); 1.13.1 is the newest tag (2026-08-15).
        image="wollomatic/socket-proxy:1.13.1",
        tag=Seen(SOCKET_PROXY_REPO, ".github/workflows/docker-image-release.yaml", SOCKET_PROXY_AT),
        # FROM scratch, USER 65534:65534; the program runs it as root without capabilities
        # (components/homelab/docker_api.py says why).
        user=Fact(User("nobody", 65534), Seen(SOCKET_PROXY_REPO, "Dockerfile", SOCKET_PROXY_AT)),
        shell=Fact(False, Seen(SOCKET_PROXY_REPO, "Dockerfile", SOCKET_PROXY_AT)),
        # COPY --from=build ./healthcheck ./socket-proxy /: cmd/healthcheck asks
        # http://127.0.0.1:55555/health, which -allowhealthcheck opens.
        probes=Fact(("/healthcheck",), Seen(SOCKET_PROXY_REPO, "cmd/healthcheck/main.go", SOCKET_PROXY_AT)),
        # No capability, no file written: upstream's own example runs it read_only, cap_drop ALL
        # and no-new-privileges (README.md).
        read_only=Seen(SOCKET_PROXY_REPO, "README.md", SOCKET_PROXY_AT),
    ),
    "acme": ImageContract(
        # goreleaser pushes goacme/lego:{{ .Tag }} (dockers_v2 in .goreleaser.yml); v5.3.1 is
        # the newest release (2026-07-21).
        image="goacme/lego:v5.3.1",
        tag=Seen(LEGO_REPO, ".goreleaser.yml", LEGO_AT),
        # FROM alpine:3 (BusyBox: sh, cat, mv, chown, chmod, kill, sleep), ENTRYPOINT ["/lego"],
        # no USER: root, as the renewer runs (components/homelab/acme.py).
        user=Fact(User("root", 0), Seen(LEGO_REPO, "buildx.Dockerfile", LEGO_AT)),
        shell=Fact(True, Seen(LEGO_REPO, "buildx.Dockerfile", LEGO_AT)),
        probes=Fact((), Seen(LEGO_REPO, "buildx.Dockerfile", LEGO_AT)),
        writes=(
            # `--config` names the file (cmd/internal/flags/names.go FlgConfig).
            Fact("/etc/lego/", Seen(LEGO_REPO, "cmd/internal/flags/names.go", LEGO_AT)),
            # challenges.<name>.dns.envFile: "The path to the dotenv file containing the credentials".
            Fact(SECRETS, Seen(LEGO_REPO, "docs/content/references/ref-file/_index.md", LEGO_AT)),
        ),
        # The deploy hook gives HAProxy's user (uid 99) the PEM: chown; and signals HAProxy's
        # master, a process of uid 99, from uid 0: without CAP_KILL the kernel refuses a signal
        # to another user's process (kill(2), "Permissions").
        capabilities=(
            Fact("CHOWN", Seen(MAN_PAGES, "man2/chown.2", MAN_PAGES_AT)),
            Fact("KILL", Seen(MAN_PAGES, "man2/kill.2", MAN_PAGES_AT)),
        ),
        # lego writes only its storage (a volume: `storage:` in the file reference).
        read_only=Seen(LEGO_REPO, "docs/content/references/ref-file/_index.md", LEGO_AT),
    ),
    "tunnel": ImageContract(
        # .docker-images: the image `cloudflared` pushed to docker.io/cloudflare, tagged with the
        # release (2026.8.2, 2026-08-14, the newest tag), built from Dockerfile.$ARCH.
        image="cloudflare/cloudflared:2026.8.2",
        tag=Seen(CLOUDFLARED_REPO, ".docker-images", CLOUDFLARED_AT),
        # FROM gcr.io/distroless/base-debian13:nonroot, USER 65532:65532; no shell, no probe.
        user=Fact(User("nonroot", 65532), Seen(CLOUDFLARED_REPO, "Dockerfile.amd64", CLOUDFLARED_AT)),
        shell=Fact(False, Seen(CLOUDFLARED_REPO, "Dockerfile.amd64", CLOUDFLARED_AT)),
        probes=Fact((), Seen(CLOUDFLARED_REPO, "Dockerfile.amd64", CLOUDFLARED_AT)),
        writes=(
            # TUNNEL_TOKEN_FILE: "Filepath at which to read the tunnel token".
            Fact(SECRETS, Seen(CLOUDFLARED_REPO, "cmd/cloudflared/tunnel/subcommands.go", CLOUDFLARED_AT)),
            # The ingress rules' caPool: a file the origin's certificate is verified with.
            Fact("/etc/cloudflared/", Seen(CLOUDFLARED_REPO, "ingress/config.go", CLOUDFLARED_AT)),
        ),
        # It dials out and keeps its state in memory: nothing to write.
        read_only=Seen(CLOUDFLARED_REPO, "Dockerfile.amd64", CLOUDFLARED_AT),
    ),
    "tailscale": ImageContract(
        # build_docker.sh pushes tailscale/tailscale with the tags v${VERSION_SHORT} and
        # v${VERSION_MINOR}; v1.102.3 is the newest release tag seen (2026-08-19).
        image="tailscale/tailscale:v1.102.3",
        tag=Seen(TAILSCALE_REPO, "build_docker.sh", TAILSCALE_AT),
        # mkctr on tailscale/alpine-base:3.22 (DEFAULT_BASE), entrypoint containerboot, no user
        # set: root; BusyBox sh and wget from the Alpine base.
        user=Fact(User("root", 0), Seen(TAILSCALE_REPO, "build_docker.sh", TAILSCALE_AT)),
        shell=Fact(True, Seen(TAILSCALE_REPO, "build_docker.sh", TAILSCALE_AT)),
        probes=Fact(("wget",), Seen(TAILSCALE_REPO, "build_docker.sh", TAILSCALE_AT)),
        # TS_AUTHKEY "file:<path>": the key as a file (cmd/containerboot/main.go).
        writes=(Fact(SECRETS, Seen(TAILSCALE_REPO, "cmd/containerboot/main.go", TAILSCALE_AT)),),
        # Userspace networking is containerboot's default (TS_USERSPACE true: settings.go): no
        # capability. Not read-only: tailscaled's LocalAPI socket is /tmp/tailscaled.sock and the
        # image's other writes were not checked.
    ),
    "resolver": ImageContract(
        # Each git tag is pushed as an image tag of docker.io/klutchell/unbound (docker_images of
        # .github/workflows/flowzone.yml); v1.26.0 builds Unbound 1.26.0 (ARG UNBOUND_VERSION),
        # the newest Unbound release (NLnetLabs/unbound tag release-1.26.0, 2026-07-24).
        image="klutchell/unbound:v1.26.0",
        tag=Seen(UNBOUND_IMAGE_REPO, ".github/workflows/flowzone.yml", UNBOUND_IMAGE_AT),
        # FROM scratch with no USER; `adduser -S ... -u 101 ... unbound`: the program runs it as
        # 101:102 on an unprivileged port with `username: ""`, so nothing needs root.
        user=Fact(User("unbound", 101), Seen(UNBOUND_IMAGE_REPO, "Dockerfile", UNBOUND_IMAGE_AT)),
        shell=Fact(False, Seen(UNBOUND_IMAGE_REPO, "Dockerfile", UNBOUND_IMAGE_AT)),
        # COPY --from=drill-hc /src/drill-hc /usr/bin/drill-hc: drill, exit code 0 or 1.
        probes=Fact(("drill-hc",), Seen(UNBOUND_IMAGE_REPO, "Dockerfile", UNBOUND_IMAGE_AT)),
        # ENTRYPOINT ["unbound"]; `-c file` names the configuration (doc/unbound.8.in).
        writes=(Fact("/etc/unbound/homelab/", Seen(UNBOUND_REPO, "doc/unbound.8.in", UNBOUND_AT)),),
        # No pidfile, log file or trust anchor written (components/homelab/resolver.py): the
        # image's own configuration runs the same way (pidfile "", logfile "").
        read_only=Seen(UNBOUND_IMAGE_REPO, "rootfs_overlay/etc/unbound/unbound.conf", UNBOUND_IMAGE_AT),
    ),
    "authelia": ImageContract(
        # The release script pushes authelia/authelia:<X.Y.Z> (and X.Y, X) for each vX.Y.Z tag;
        # 4.39.20 is the newest release (2026-05-26; no 4.40 tag).
        image="authelia/authelia:4.39.20",
        tag=Seen(AUTHELIA_REPO, "cmd/authelia-scripts/cmd/docker.go", AUTHELIA_AT),
        # No USER: the entrypoint starts as root, chowns /config to PUID:PGID and runs authelia
        # through su-exec (entrypoint.sh), as postgres does with gosu; the program sets PUID and
        # PGID to 8000, the uid of the docs' own example (integration/deployment/docker.md).
        user=Fact(User("authelia", 8000), Seen(AUTHELIA_REPO, "entrypoint.sh", AUTHELIA_AT)),
        # FROM authelia/base: Chisel-cut Ubuntu with BusyBox (sh, wget), su-exec, no curl.
        shell=Fact(True, Seen("authelia/baseimage", "README.md", "494f0cdfcce8")),
        probes=Fact(("wget",), Seen("authelia/baseimage", "README.md", "494f0cdfcce8")),
        writes=(
            # --config names the file; the program keeps /config for the data (the volume).
            Fact("/etc/authelia/", Seen(AUTHELIA_REPO, "entrypoint.sh", AUTHELIA_AT)),
            Fact(SECRETS, Seen(AUTHELIA_REPO, "docs/content/configuration/methods/secrets.md", AUTHELIA_AT)),
        ),
        # "take the expected environment variable ... with the _FILE suffix" (secrets.md); the
        # names are those of docs/data/configkeys.json.
        file_env=Fact(
            (
                "AUTHELIA_IDENTITY_VALIDATION_RESET_PASSWORD_JWT_SECRET",
                "AUTHELIA_SESSION_SECRET",
                "AUTHELIA_STORAGE_ENCRYPTION_KEY",
            ),
            Seen(AUTHELIA_REPO, "docs/data/configkeys.json", AUTHELIA_AT),
        ),
        # The entrypoint's `chown -R "${PUID}:${PGID}" /config` and su-exec (setgroups, setgid,
        # setuid). Not read-only: at start Authelia writes /app/.healthcheck.env
        # (internal/middlewares/startup.go, writeHealthCheckEnv).
        capabilities=(
            Fact("CHOWN", Seen(AUTHELIA_REPO, "entrypoint.sh", AUTHELIA_AT)),
            Fact("SETGID", Seen(AUTHELIA_REPO, "entrypoint.sh", AUTHELIA_AT)),
            Fact("SETUID", Seen(AUTHELIA_REPO, "entrypoint.sh", AUTHELIA_AT)),
        ),
    ),
    "mattermost": ImageContract(
        # 11.7 is the ESR supported on 2026-12-07 (to 2027-05-15; 10.11 ended 2026-08-15):
        # mattermost/docs source/product-overview/release-policy.md @ 80ee18051d41. v11.7.16 is
        # its newest release (the v11.7.16 release of mattermost/mattermost, 1 December).
        image="mattermost/mattermost-team-edition:11.7.16",
        tag=Seen("mattermost/mattermost", "releases/tag/v11.7.16", "v11.7.16"),
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
        # Started as root, the entrypoint reads the *_FILE secrets (0400, owned by uid 70), gives
        # the data and socket directories to postgres, then re-runs itself through gosu (tianon/gosu
        # 1.19 = 6456aaa0f3c8: Setgroups, Setgid, Setuid; gosu refuses to be setuid itself).
        capabilities=(
            Fact("CHOWN", Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT)),
            Fact("DAC_READ_SEARCH", Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT)),
            Fact("SETGID", _GOSU),
            Fact("SETUID", _GOSU),
        ),
        # Read-only: PGDATA is a volume, the socket and lock directory (/var/run/postgresql,
        # where DEFAULT_PGSOCKET_DIR points) is in memory and given to postgres by the
        # entrypoint, and /tmp takes the entrypoint's here-documents.
        read_only=Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT),
        tmpfs=(
            Fact("/var/run/postgresql", Seen(POSTGRES_REPO, "17/alpine3.23/Dockerfile", POSTGRES_AT)),
            Fact("/tmp", Seen(POSTGRES_REPO, "17/alpine3.23/docker-entrypoint.sh", POSTGRES_AT)),
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
        # As postgres: file_env reads the secrets as root, find -exec chown, then gosu mysql.
        capabilities=(
            Fact("CHOWN", _MYSQL_ENTRYPOINT),
            Fact("DAC_READ_SEARCH", _MYSQL_ENTRYPOINT),
            Fact("SETGID", _GOSU),
            Fact("SETUID", _GOSU),
        ),
        # Not read-only: mysqld's tmpdir (/tmp) takes on-disk temporary tables and sort files,
        # whose size a small in-memory /tmp would cap.
    ),
    "drupal": ImageContract(
        # The newest tag of the 11.4 line (11.2 left the library as end of life, docker-library/
        # drupal 7b4a1dd2c3fb "Remove end of life versions: 10.5 and 11.2"), same PHP and Debian.
        image="drupal:11.4.7-php8.4-apache-bookworm@sha256:0dbe92b0132d244f1b34fa2e3bd926defe2016bff868f4f8461423f7fe2e4410",  # noqa: E501 (one string: Renovate reads it whole)
        tag=Seen(REPO_INFO, "repos/drupal/remote/11.4.7-php8.4-apache-bookworm.md", "0bbf4bba366d"),
        digest=Seen(REPO_INFO, "repos/drupal/remote/11.4.7-php8.4-apache-bookworm.md", "0bbf4bba366d"),
        # FROM php:8.4-apache-bookworm, no USER: Apache starts as root, serves as www-data.
        # Composer only, no drush (composer create-project drupal/recommended-project).
        user=Fact(
            User("root", 0),
            Seen("docker-library/drupal", "11.4/php8.4/apache-bookworm/Dockerfile", "305e3e2acd51"),
        ),
        shell=Fact(True, Seen(PHP_REPO, "8.4/bookworm/apache/Dockerfile", PHP_AT)),
        probes=Fact(("curl",), Seen(PHP_REPO, "8.4/bookworm/apache/Dockerfile", PHP_AT)),
        capabilities=_APACHE_CAPABILITIES,
    ),
    "web": ImageContract(
        image="php:8.4.26-apache@sha256:b10b6b65fd2a02fd091968c106bdfd8859052e89815921b96825b12d934f1d63",
        tag=Seen(REPO_INFO, "repos/php/remote/8.4.26-apache.md", "720356a405b4"),
        digest=Seen(REPO_INFO, "repos/php/remote/8.4.26-apache.md", "720356a405b4"),
        user=Fact(User("root", 0), Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
        shell=Fact(True, Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
        # curl is a runtime dependency; docker-php.conf sets "Options -Indexes" on /var/www/
        probes=Fact(("curl",), Seen(PHP_REPO, "8.4/trixie/apache/Dockerfile", PHP_AT)),
        capabilities=_APACHE_CAPABILITIES,
        # No uploads: the root filesystem is read-only. apache2-foreground recreates its run
        # and lock directories (APACHE_RUN_DIR /var/run/apache2, APACHE_LOCK_DIR /var/lock/apache2,
        # both under /run on Debian) with `mkdir -p`; /tmp is PHP's temporary directory.
        read_only=Seen(PHP_REPO, "8.4/trixie/apache/apache2-foreground", PHP_AT),
        tmpfs=(
            Fact("/run", Seen(PHP_REPO, "8.4/trixie/apache/apache2-foreground", PHP_AT)),
            # php_get_temporary_directory: sys_temp_dir, else $TMPDIR, else P_tmpdir, else
            # "/tmp" (read at an old commit; the PHP 7 copy has the same fallback chain)
            Fact("/tmp", Seen("php/php-src", "main/php_open_temporary_file.c", "0203cc3d446b")),
        ),
    ),
    "landing": ImageContract(
        # The newest tag of the 1.30 stable line (1.28 left the library with "Updated stable
        # nginx to 1.30.0", official-images 71567fbcfa79, 2026-04-14).
        image="nginx:1.30.5-alpine@sha256:0985e772fb9f729e6fa0980da05fca5d9c468e870eed43071545afa9d2e27d94",
        tag=Seen(REPO_INFO, "repos/nginx/remote/1.30.5-alpine.md", "35d0d2e1b833"),
        digest=Seen(REPO_INFO, "repos/nginx/remote/1.30.5-alpine.md", "35d0d2e1b833"),
        # no USER: the master runs as root, workers as nginx (uid 101)
        user=Fact(
            User("root", 0), Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "0d7f4380c735")
        ),
        # FROM alpine: BusyBox sh and wget (the -alpine image adds curl too)
        shell=Fact(True, Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "0d7f4380c735")),
        probes=Fact(("wget",), Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "0d7f4380c735")),
        writes=(Fact("/usr/share/nginx/html/", Seen(DOCS_REPO, "nginx/content.md", DOCS_AT)),),
        # The master (root) creates its temp directories under /var/cache/nginx and gives them to
        # the worker user (ngx_create_paths: chown), binds port 80, then setgid/setuid to nginx
        # (nginx/nginx tag release-1.30.4 = 017cf98dcce2).
        capabilities=(
            Fact("CHOWN", Seen("nginx/nginx", "src/core/ngx_file.c", "017cf98dcce2")),
            Fact(
                "NET_BIND_SERVICE",
                Seen("nginx/docker-nginx", "stable/alpine-slim/Dockerfile", "0d7f4380c735"),
            ),
            Fact("SETGID", Seen("nginx/nginx", "src/os/unix/ngx_process_cycle.c", "017cf98dcce2")),
            Fact("SETUID", Seen("nginx/nginx", "src/os/unix/ngx_process_cycle.c", "017cf98dcce2")),
        ),
        # Read-only with the master's temp directories and pid file in memory: --http-client-body-
        # temp-path=/var/cache/nginx/client_temp (and proxy, fastcgi, uwsgi, scgi), `pid
        # /run/nginx.pid`; the entrypoint scripts skip their edits on a read-only filesystem
        # (10-listen-on-ipv6-by-default.sh: "can not modify ... (read-only file system?)").
        read_only=Seen("nginx/docker-nginx", "entrypoint/10-listen-on-ipv6-by-default.sh", "0d7f4380c735"),
        tmpfs=(
            Fact("/var/cache/nginx", Seen("nginx/pkg-oss", "alpine/Makefile", "e6727633b9dd")),
            Fact("/run", Seen("nginx/pkg-oss", "alpine/alpine/nginx.conf", "e6727633b9dd")),
        ),
    ),
}

IMAGES: dict[str, str] = {
    **{key: contract.image for key, contract in CONTRACTS.items()},
}


def contract_of(image: str) -> ImageContract | None:
    """The contract of a pinned image reference, None for any other image."""
    return next((c for c in CONTRACTS.values() if c.image == image), None)


def contract_of_tag(image: str) -> ImageContract | None:
    """The contract of the pinned tag `image` names, with or without the pin's digest (a custom
    service may run `nginx:1.30.5-alpine`): the facts are the tag's, the digest pins its index."""
    tag = image.split("@", 1)[0]
    return next(
        (
            c
            for c in CONTRACTS.values()
            if c.image.split("@", 1)[0] == tag and (image == tag or image == c.image)
        ),
        None,
    )


# ---- support windows (issue 21): how long each line above gets fixes ----------------------
#
# One `Product` per image above (components/lifecycle.py says how lines are named). A window
# whose line is no longer pinned stays in the table: `python -m automation lifecycle` then
# tells a config that still uses it (a custom service, an `image:` override) that it ended.

_NO_END_PROMETHEUS = (
    "No support window is published for the exporters and Alertmanager: security fixes are "
    'released "best-effort" as new releases (prometheus/docs docs/operating/security.md), so '
    "only the newest release gets them."
)


SUPPORT: dict[str, Product] = {
    "portainer": Product(
        name="portainer",
        policy="An LTS line is supported until the next LTS plus three months; an STS line only "
        "until the next release. Dates are given as months, 'for guidance only'.",
        windows=(
            Window(
                "2.33",
                date(2026, 5, 31),
                Seen("portainer/portainer-docs", "start/lifecycle.md", "019ec08e9976"),
                "2.33.7",
                "May 2026",
            ),
            Window(
                "2.39",
                date(2026, 11, 30),
                Seen("portainer/portainer-docs", "start/lifecycle.md", "019ec08e9976"),
                "2.39.4",
                "Nov 2026",
            ),
            Window(
                "2.45",
                date(2027, 5, 31),
                Seen("portainer/portainer-docs", "start/lifecycle.md", "019ec08e9976"),
                "2.45.0",
                "'May 2027' (the table's month, planned)",
            ),
        ),
        names=("portainer/portainer-ce", "portainer/portainer-ee"),
    ),
    "authelia": Product(
        name="authelia",
        policy="Bug fixes go to the latest minor version only; vulnerability fixes to the last three "
        "minors on request; no period is given.",
        windows=(
            Window(
                "4.39",
                None,
                Seen(AUTHELIA_REPO, "docs/content/policies/versioning.md", AUTHELIA_AT),
                "4.39.20",
                "no end published: 'bug fixes (as a patch) to the latest minor version'",
            ),
        ),
        names=("authelia/authelia", "ghcr.io/authelia/authelia"),
    ),
    "acme": Product(
        name="lego",
        policy="No support window is published; fixes ship in new releases of the current major "
        "line only (v4 had its last release, v4.35.2, on 2026-04-24, before v5.0.0).",
        windows=(
            Window(
                "5.3",
                None,
                Seen(LEGO_REPO, "CHANGELOG.md", LEGO_AT),
                "v5.3.1",
                "no end published: the newest release is the maintained one",
            ),
        ),
        names=("goacme/lego",),
    ),
    "tunnel": Product(
        name="cloudflared",
        policy="Versions within one year of the most recent release are supported.",
        windows=(
            Window(
                "2026.8",
                date(2027, 8, 14),
                Seen(CLOUDFLARED_REPO, "README.md", CLOUDFLARED_AT),
                "2026.8.2",
                "one year after its release (2026-08-14) at the latest: 'within one year of the most "
                "recent release'",
            ),
        ),
        names=("cloudflare/cloudflared",),
    ),
    "tailscale": Product(
        name="tailscale",
        policy="No support window is published in the repository; fixes ship in new stable "
        "releases of the client.",
        windows=(
            Window(
                "1.102",
                None,
                Seen(TAILSCALE_REPO, "VERSION.txt", TAILSCALE_AT),
                "v1.102.3",
                "no end published: only the newest stable release gets fixes",
            ),
        ),
        names=("tailscale/tailscale",),
    ),
    "resolver": Product(
        name="unbound",
        policy="Support is for the latest release only (the highest minor and patch); no "
        "backports to older minors.",
        windows=(
            Window(
                "1.26",
                None,
                Seen(UNBOUND_REPO, "SECURITY.md", UNBOUND_AT),
                "v1.26.0",
                "no end published: 'Support is provided in respect of the latest release'",
            ),
        ),
        names=("klutchell/unbound", "ghcr.io/klutchell/unbound"),
    ),
    "docker-api-proxy": Product(
        name="socket-proxy",
        policy="Only the most recent version is supported; no breaking changes are planned.",
        windows=(
            Window(
                "1.13",
                None,
                Seen(SOCKET_PROXY_REPO, "SECURITY.md", SOCKET_PROXY_AT),
                "1.13.1",
                "'only the most recent version is supported'",
            ),
        ),
        names=("wollomatic/socket-proxy", "ghcr.io/wollomatic/socket-proxy"),
    ),
    "prometheus": Product(
        name="prometheus",
        policy="An LTS release is chosen about once a year and supported for one year; other "
        "minor releases only until the next one (six weeks).",
        windows=(
            Window(
                "3.5",
                date(2026, 7, 31),
                Seen("prometheus/docs", "docs/introduction/release-cycle.md", "b07a46e827c6"),
                "v3.5.5",
            ),
            Window(
                "3.13",
                date(2027, 7, 31),
                Seen("prometheus/docs", "docs/introduction/release-cycle.md", "b07a46e827c6"),
                "v3.13.2",
            ),
        ),
        names=("prom/prometheus", "quay.io/prometheus/prometheus"),
    ),
    "grafana": Product(
        name="grafana",
        policy="Each minor release is supported for nine months, the last minor of a major for "
        "fifteen (grafana/grafana docs/sources/upgrade-guide/when-to-upgrade/index.md @ "
        "31367f6763bb).",
        windows=(
            Window(
                "12.3",
                date(2026, 8, 18),
                Seen(
                    "grafana/grafana", "docs/sources/upgrade-guide/when-to-upgrade/index.md", "31367f6763bb"
                ),
                "12.3.11",
            ),
            Window(
                "12.4",
                date(2027, 5, 24),
                Seen("endoflife-date/release-data", "releases/grafana.json", "26ef641f9f87"),
                "12.4.9",
                "grafana.com's table, read through the endoflife.date mirror (no upstream file of "
                "the 12.4 row could be read); 12.4 is the last minor of 12: 15 months from 2026-02-24",
            ),
        ),
        names=("grafana/grafana", "grafana/grafana-oss"),
    ),
    "cadvisor": Product(
        name="cadvisor",
        policy="No support window is published; the README asks for the latest release.",
        windows=(
            Window(
                "0.60",
                None,
                Seen("google/cadvisor", "README.md", "v0.60.5"),
                "v0.60.5",
                "no end published: 'use the latest release version'",
            ),
        ),
        names=("ghcr.io/google/cadvisor", "gcr.io/cadvisor/cadvisor"),
    ),
    "node-exporter": Product(
        name="node-exporter",
        policy=_NO_END_PROMETHEUS,
        windows=(
            Window(
                "1.12",
                None,
                Seen("prometheus/docs", "docs/operating/security.md", "c105550aad07"),
                "v1.12.1",
                "no end published; fixes ship in new releases only",
            ),
        ),
        names=("prom/node-exporter", "quay.io/prometheus/node-exporter"),
    ),
    "alertmanager": Product(
        name="alertmanager",
        policy=_NO_END_PROMETHEUS,
        windows=(
            Window(
                "0.34",
                None,
                Seen("prometheus/docs", "docs/operating/security.md", "c105550aad07"),
                "v0.34.0",
                "no end published; fixes ship in new releases only",
            ),
        ),
        names=("prom/alertmanager", "quay.io/prometheus/alertmanager"),
    ),
    "blackbox-exporter": Product(
        name="blackbox-exporter",
        policy=_NO_END_PROMETHEUS,
        windows=(
            Window(
                "0.28",
                None,
                Seen("prometheus/docs", "docs/operating/security.md", "c105550aad07"),
                "v0.28.0",
                "no end published; fixes ship in new releases only",
            ),
        ),
        names=("prom/blackbox-exporter", "quay.io/prometheus/blackbox-exporter"),
    ),
    "haproxy": Product(
        name="haproxy",
        policy="Even-numbered May/June releases are LTS branches with about five years of fixes.",
        windows=(
            Window(
                "3.2",
                date(2030, 6, 30),
                Seen("haproxy/haproxy", "include/haproxy/version.h", "v3.2.0"),
                "3.2.22",
                "'will stop receiving fixes around Q2 2030' (the quarter's last day)",
            ),
        ),
        names=("haproxy", "haproxytech/haproxy-alpine"),
    ),
    "docker-volume-backup": Product(
        name="docker-volume-backup",
        policy="No support window is published; v2 is the maintained major (v1 lives on a branch).",
        windows=(
            Window("2.48", None, Seen(OFFEN_REPO, "README.md", OFFEN_AT), "v2.48.2", "no end published"),
        ),
        names=("offen/docker-volume-backup",),
    ),
    "mattermost": Product(
        name="mattermost",
        policy="An Extended Support Release comes every nine months and is supported for twelve; "
        "a monthly feature release for about three months.",
        windows=(
            Window(
                "10.11",
                date(2026, 8, 15),
                Seen(MATTERMOST_DOCS, "source/product-overview/release-policy.md", "80ee18051d41"),
                "10.11.23",
            ),
            Window(
                "11.7",
                date(2027, 5, 15),
                Seen(MATTERMOST_DOCS, "source/product-overview/release-policy.md", "80ee18051d41"),
                "11.7.16",
            ),
        ),
        names=("mattermost/mattermost-team-edition", "mattermost/mattermost-enterprise-edition"),
    ),
    "postgres": Product(
        name="postgres",
        policy="A major version is supported for five years after its first release, then gets a "
        "final minor release (postgres/pgweb templates/support/versioning.html @ 11988adfc2cd).",
        windows=(
            Window(
                "17",
                date(2029, 11, 8),
                Seen("endoflife-date/endoflife.date", "products/postgresql.md", "285ccbbd5f33"),
                "17.11",
                "17.0 was released 2024-09-26; the final-minor date is postgresql.org's, read "
                "through the endoflife.date mirror",
            ),
        ),
        digits=1,
        names=("postgres",),
    ),
    "mysql": Product(
        name="mysql",
        policy="An LTS series gets about five years of Premier and three of Extended Support; "
        "Innovation releases only until the next one.",
        windows=(
            Window(
                "8.4",
                date(2032, 4, 30),
                Seen("endoflife-date/endoflife.date", "products/mysql.md", "b79ea7a45f9f"),
                "8.4.11",
                "Extended Support end (Premier ends 2029-04-30), from Oracle's Lifetime Support "
                "policy through the endoflife.date mirror",
            ),
        ),
        names=("mysql",),
    ),
    "drupal": Product(
        name="drupal",
        policy="A minor release gets security coverage until the release of the next-but-one "
        "minor (CORE_MINORS_WITH_SECURITY_COVERAGE = 2, drupal/core "
        "modules/update/src/ProjectSecurityData.php).",
        windows=(
            Window(
                "11.2",
                date(2026, 7, 6),
                Seen("docker-library/drupal", "versions.json", "7b4a1dd2c3fb"),
                "11.2.14",
                "removed from the library as end of life (commit 7b4a1dd2c3fb, 'Remove end of "
                "life versions: 10.5 and 11.2')",
            ),
            Window(
                "11.3",
                None,
                Seen("drupal/core", "modules/update/src/ProjectSecurityData.php", "f20b2bcb5c65"),
                "11.3.17",
                "no date published: coverage ends with the release of 12.0.0, planned 'early "
                "December 2026' (drupal.org issue 3449806)",
            ),
            Window(
                "11.4",
                None,
                Seen("drupal/core", "modules/update/src/ProjectSecurityData.php", "a07143587a57"),
                "11.4.7",
                "no date published: covered until the next-but-one minor is released",
            ),
        ),
        names=("drupal",),
    ),
    "php": Product(
        name="php",
        policy="Two years of active support, then security fixes until four years after the "
        "release, each rounded to 31 December (php/web-php include/branches.inc).",
        windows=(
            Window(
                "8.4",
                date(2028, 12, 31),
                Seen("php/web-php", "include/branches.inc", "049c59fcf247"),
                "8.4.26",
                "security fixes only from 2027-01-01",
            ),
        ),
        names=("php",),
    ),
    "nginx": Product(
        name="nginx",
        policy="Stable branches get only critical fixes backported from mainline; a stable branch "
        "stops when the next even-numbered one is released (about each April).",
        windows=(
            Window(
                "1.28",
                date(2026, 4, 14),
                Seen(LIBRARY, "library/nginx", "71567fbcfa79"),
                "1.28.3",
                "superseded by 1.30.0 ('Updated stable nginx to 1.30.0'); stable-1.28 has no "
                "commit since 1.28.3",
            ),
            Window(
                "1.30",
                None,
                Seen("nginx/nginx", "SECURITY.md", "ad8c94a63537"),
                "1.30.5",
                "no date published: 'Security fixes will be applied to all supported stable "
                "releases'; by branch history it ends when 1.32 is released (about April 2027)",
            ),
        ),
        names=("nginx", "nginxinc/nginx-unprivileged"),
    ),
}

# ---- upgrade paths (issue 21): what the vendors document about moving stateful data ---------

UPGRADES: tuple[UpgradeRule, ...] = (
    UpgradeRule(
        product="postgres",
        change="major",
        action="refuse",
        reason="a new PostgreSQL major cannot start on the old major's data directory: 'For major "
        "releases of PostgreSQL, the internal data storage format is subject to change'",
        way="dump with the old major (pg_dumpall) and restore into a new volume, or run "
        "pg_upgrade with both majors' binaries; then pass --allow-upgrade with the new data in place",
        source=Seen("postgres/postgres", "doc/src/sgml/runtime.sgml", "183bbd1b6d43"),
    ),
    UpgradeRule(
        product="mysql",
        change="major",
        action="refuse",
        reason="MySQL upgrades a data directory in place only from one LTS series to the next, or "
        "to an Innovation release before it; any other jump needs two steps",
        way="check with MySQL Shell's util.checkForServerUpgrade(), move one supported step at a "
        "time (8.4 LTS -> the next LTS), and pass --allow-upgrade for each step",
        # Table 3.1 "Upgrade Paths for MySQL Server" (the manual is not kept in a repository)
        source=Seen("dev.mysql.com", "doc/refman/8.4/en/upgrade-paths.html"),
    ),
    UpgradeRule(
        product="mattermost",
        change="window",
        action="refuse",
        reason="'Customers should not upgrade from >=10.11.17 to <=11.7.2 due to a bug that causes "
        "an issue with database migration numbers. The bug is fixed in v11.7.3.'",
        way="upgrade to 11.7.3 or later instead",
        source=Seen(MATTERMOST_DOCS, "source/upgrade/important-upgrade-notes.rst", "b8085fa2f3c5"),
        from_versions=("10.11.17", "10.11.9999"),
        to_versions=("11.0.0", "11.7.2"),
    ),
    UpgradeRule(
        product="drupal",
        change="minor",
        action="refuse",
        reason="a new minor or major of Drupal core runs its database updates only when told to: "
        "until then the status report shows an error and the site runs new code on an old schema",
        way="pass --allow-upgrade drupal (the pre-upgrade backup runs first), then open "
        "https://<drupal host>/update.php as the site's administrator and clear the caches",
        source=Seen("drupal/core", "modules/system/src/Hook/SystemRequirementsHooks.php", "a07143587a57"),
    ),
    UpgradeRule(
        product="drupal",
        change="any",
        action="after",
        reason="core updates ship hook_update_N and post_update functions; the status report shows "
        "an error until they ran",
        way="sign in as the site's administrator and open https://<drupal host>/update.php (the "
        "image ships no drush), then clear the caches",
        source=Seen("drupal/core", "modules/system/src/Hook/SystemRequirementsHooks.php", "a07143587a57"),
    ),
)
