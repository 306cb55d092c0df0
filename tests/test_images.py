"""The image contracts (components/homelab/images.py) and the containers that rely on them.

Every built-in container runs a pinned image with a contract: its health check runs only a
program the contract lists, its uploads go only to paths the contract lists, its secret
files belong to the image's user alone, its `*_FILE` variables are ones the image reads,
and no database password is in any container's environment. Each defect of issue 9 has a
test here that fails on the old behaviour; the upstream file behind each expectation is
named beside it (components/homelab/images.py has the commits).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from harness import (
    ROOT,
    SECRET_MARK,
    _fake,
    example_files,
    example_run,
    example_secrets,
    file_is_secret,
    file_owner_and_mode,
    files,
    is_stager,
    load_stack_file,
    run_program,
    stager_of,
)

from components.docker.spec import http_check
from components.homelab import alerting
from components.homelab.images import CONTRACTS, IMAGES, ImageContract, Seen, contract_of
from stacks.checks import validate
from stacks.config_homelab import MysqlConfig
from stacks.plan import build_plan

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
PASSWORD = "random:index/randomPassword:RandomPassword"

# Every built-in service on one host, TLS on.
EVERYTHING: dict[str, Any] = {
    "domain": "lab.example.com",
    "hosts": [{"name": "server", "address": "local"}],
    "services": {
        "mattermost": {"enabled": True},
        "postgres": {"enabled": True},
        "mysql": {"enabled": True},
        "drupal": {"enabled": True},
        "web": {"enabled": True},
    },
}

# The pins of issue 9, each the newest patch release of its line that was seen upstream.
VERIFIED_PINS = {
    # issue 21: every line supported on 2026-12-07 (components/homelab/images.py SUPPORT)
    "portainer": "portainer/portainer-ce:2.45.0",  # 2.45 LTS, portainer discussions #13272
    "prometheus": "prom/prometheus:v3.13.2",  # prometheus/prometheus tag v3.13.2 (3.13 LTS)
    "grafana": "grafana/grafana:12.4.9",  # 12.4, the last minor of Grafana 12
    "cadvisor": "ghcr.io/google/cadvisor:v0.60.5",  # google/cadvisor tag v0.60.5
    "node-exporter": "prom/node-exporter:v1.12.1",  # prometheus/node_exporter tag v1.12.1
    "alertmanager": "prom/alertmanager:v0.34.0",  # prometheus/alertmanager tag v0.34.0 (issue 13)
    "blackbox-exporter": "prom/blackbox-exporter:v0.28.0",  # prometheus/blackbox_exporter tag v0.28.0
    "haproxy": "haproxy:3.2.22-alpine",  # docker-library/official-images library/haproxy
    # issue 26: wollomatic/socket-proxy tag 1.13.1 (bc6606ade30b, 2026-08-15), the newest
    "docker-api-proxy": "wollomatic/socket-proxy:1.13.1",
    # issue 24: authelia/authelia tag v4.39.20 (1b524f7f4bbf, 2026-05-26), the newest release
    "authelia": "authelia/authelia:4.39.20",
    # issue 25: klutchell/unbound-docker tag v1.26.0 (7dfe42db83f0, 2026-08-10), Unbound 1.26.0
    "resolver": "klutchell/unbound:v1.26.0",
    # issue 25: go-acme/lego tag v5.3.1 (589c84af4f26, 2026-07-21), the newest release
    "acme": "goacme/lego:v5.3.1",
    # issue 25: cloudflare/cloudflared tag 2026.8.2 (733bfb939963, 2026-08-14), the newest release
    "tunnel": "cloudflare/cloudflared:2026.8.2",
    # issue 25: tailscale/tailscale tag v1.102.3 (53a0d659afa5, 2026-08-19)
    "tailscale": "tailscale/tailscale:v1.102.3",
    "backup": "offen/docker-volume-backup:v2.48.2",  # offen/docker-volume-backup tag v2.48.2
    "mattermost": "mattermost/mattermost-team-edition:11.7.16",  # 11.7 ESR, release v11.7.16
    "postgres": "postgres:17.11-alpine",  # library/postgres
    "mysql": "mysql:8.4.11",  # library/mysql
    "drupal": "drupal:11.4.7-php8.4-apache-bookworm",  # repo-info, newest of 11.4
    "web": "php:8.4.26-apache",  # repo-info, newest of 8.4
    "landing": "nginx:1.30.5-alpine",  # repo-info, newest of the 1.30 stable line
}


# ---- helpers --------------------------------------------------------------------------


def mock_image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def image_of(lab, container) -> str:
    ids = {mock_image_id(r.inputs["name"]): r.inputs["name"] for r in lab.of_type(REMOTE_IMAGE)}
    return ids[container.inputs["image"]]


def env(container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.inputs.get("envs") or [])


def alias(container) -> str:
    return container.inputs["networksAdvanced"][0]["aliases"][0]


def contracted(lab) -> Iterator[tuple[Any, ImageContract]]:
    """Every container of a built-in service with the contract of its image."""
    for c in lab.of_type(CONTAINER):
        if is_stager(c):
            continue
        contract = contract_of(image_of(lab, c))
        if contract is not None:
            yield c, contract


def facts(contract: ImageContract) -> list[Seen]:
    seen = [contract.tag, contract.user.seen, contract.shell.seen, contract.probes.seen]
    seen += [w.seen for w in contract.writes]
    seen += [f.seen for f in contract.capabilities + contract.tmpfs]
    seen += [contract.read_only] if contract.read_only else []
    seen += [contract.digest] if contract.digest else []
    return seen + ([contract.file_env.seen] if contract.file_env else [])


def healthcheck_program(test: list[str]) -> str:
    """The program a Docker health check runs: the exec form's first word, or the shell's."""
    if test[0] == "CMD":
        return test[1]
    assert test[0] == "CMD-SHELL", test
    return shlex.split(test[1])[0]


# ---- fixtures -------------------------------------------------------------------------


RUNS = [*example_files(), "everything"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    runs: dict[str, tuple[dict[str, Any], Any]] = {}

    def run(which: Path | str):
        key = str(which)
        if key not in runs:
            if which == "everything":
                config = EVERYTHING
                lab = run_program(
                    config, example_secrets(config), key_dir=str(tmp_path_factory.mktemp("keys"))
                )
            else:  # an unchanged example: run once per session, shared with other modules
                config, lab = load_stack_file(Path(which)), example_run(Path(which))
            runs[key] = (config, lab)
        return runs[key]

    return run


@pytest.fixture(scope="module", params=RUNS, ids=lambda p: p if isinstance(p, str) else p.name)
def case(request, runner):
    return runner(request.param)


@pytest.fixture(scope="module")
def everything(runner):
    return runner("everything")


@pytest.fixture(scope="module")
def by_alias(everything):
    _, lab = everything
    return {alias(c): c for c in lab.of_type(CONTAINER) if not is_stager(c)}


# ---- the table ------------------------------------------------------------------------


def test_every_pin_has_a_contract():
    assert set(IMAGES) == set(CONTRACTS)
    assert all(IMAGES[key] == contract.image for key, contract in CONTRACTS.items())


def test_pins_are_the_verified_releases():
    assert {key: c.image.split("@")[0] for key, c in CONTRACTS.items()} == VERIFIED_PINS


# The image index digests recorded by docker-library/repo-info for these tags (issue 15).
VERIFIED_DIGESTS = {
    "haproxy": "sha256:79799e8b2977e60802774fa53d29e6b54e045402cdd8a8b9fe43923e7095a047",
    "postgres": "sha256:b0f9560a2de083e2cc7382e75f808c7381a32852a7ec49117deedb300e552b24",
    "mysql": "sha256:85b9bf2e29cf836ecb8c2a15a935d4ba0c606631dff1dd79531a11983c638f2a",
    "drupal": "sha256:0dbe92b0132d244f1b34fa2e3bd926defe2016bff868f4f8461423f7fe2e4410",
    "web": "sha256:b10b6b65fd2a02fd091968c106bdfd8859052e89815921b96825b12d934f1d63",
    "landing": "sha256:0985e772fb9f729e6fa0980da05fca5d9c468e870eed43071545afa9d2e27d94",
}


def test_digests_are_pinned_where_upstream_records_them():
    """Tag and digest where docker-library/repo-info records the tag's index digest; the
    others are pinned by tag and get their digest from Renovate (pinDigests, renovate.json)."""
    pinned = {key: c.image.split("@", 1)[1] for key, c in CONTRACTS.items() if "@" in c.image}
    assert pinned == VERIFIED_DIGESTS
    for key, contract in CONTRACTS.items():
        if key not in pinned:
            assert contract.digest is None, key
            continue
        name, tag = contract.image.split("@")[0].rsplit(":", 1)
        assert contract.digest is not None, key
        assert contract.digest.repo == "docker-library/repo-info"
        assert contract.digest.path == f"repos/{name}/remote/{tag}.md", key
        assert re.fullmatch(r"[0-9a-f]{12}", contract.digest.ref), key


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_tags_are_exact_releases(key):
    tag = CONTRACTS[key].tag_name
    # X.Y.Z, or X.Y where that is the release scheme (PostgreSQL: major.minor).
    assert re.match(r"^v?\d+\.\d+(\.\d+)?(-|$)", tag), f"{key}: {tag} is not an exact release"
    assert "latest" not in tag


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_every_fact_names_its_upstream_file(key):
    for seen in facts(CONTRACTS[key]):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", seen.repo), seen
        if seen.path.startswith("#"):
            assert re.fullmatch(r"#\d+", seen.path) and seen.ref == "", seen  # an issue or PR
        else:
            assert re.fullmatch(r"[\w./-]+", seen.path), seen
            # read at a commit (12 hex digits) or at a release tag
            assert re.fullmatch(r"[0-9a-f]{12}|v?\d+\.\d+\.\d+", seen.ref), seen


def test_contract_lookup_is_by_exact_reference():
    assert contract_of(CONTRACTS["postgres"].image) is CONTRACTS["postgres"]
    # The tag alone is another reference: an override the user vouches for.
    assert contract_of("postgres:17.11-alpine") is None
    assert contract_of("postgres:17-alpine") is None


# ---- what every container relies on, in every example ---------------------------------


def test_every_built_in_container_has_a_contract(case):
    _, lab = case
    without = {alias(c) for c in lab.of_type(CONTAINER) if contract_of(image_of(lab, c)) is None}
    custom = {s.name for s in build_plan(validate(case[0])).services if s.kind == "CustomService"}
    assert without <= custom


def test_health_checks_use_only_tools_the_image_has(case):
    _, lab = case
    for c, contract in contracted(lab):
        check = c.inputs.get("healthcheck")
        if not contract.probes.value:
            assert check is None, f"{alias(c)}: {contract.image} has nothing to run a check with"
            continue
        assert check is not None, alias(c)
        if check["tests"][0] == "CMD-SHELL":
            assert contract.shell.value, f"{alias(c)}: {contract.image} has no shell"
        program = healthcheck_program(check["tests"])
        assert program in contract.probes.value, f"{alias(c)}: {program} is not in {contract.image}"


def test_health_checks_probe_the_ipv4_loopback(case):
    """BusyBox wget tries ::1 for `localhost` first: every server here binds IPv4."""
    _, lab = case
    for c, _ in contracted(lab):
        for word in (c.inputs.get("healthcheck") or {}).get("tests", []):
            if "://" in word:
                assert urlsplit(word).hostname == "127.0.0.1", f"{alias(c)}: {word}"


def test_uploads_go_only_where_the_image_reads(case):
    _, lab = case
    for c, contract in contracted(lab):
        for path in files(c):
            assert contract.allows_write(path), f"{alias(c)}: {path} ({contract.image})"


def test_secret_files_belong_to_the_image_user_alone(case):
    _, lab = case
    checked = 0
    for c, contract in contracted(lab):
        for path, content in files(c).items():
            # Every value the mocks generate, and every config secret, carries SECRET_MARK.
            if SECRET_MARK in content:
                assert file_is_secret(c, path), alias(c)
                assert file_owner_and_mode(c, path) == (str(contract.uid), "0400"), f"{alias(c)}: {path}"
                checked += 1
    assert checked, "no secret file in this example"


def test_file_variables_are_read_by_the_image(case):
    _, lab = case
    for c, contract in contracted(lab):
        read = set(files(c))
        for key, value in env(c).items():
            if key.endswith("_FILE") or key == "PGPASSFILE":
                assert value in read, f"{alias(c)}: {key} names no uploaded file"
            if key.endswith("_FILE"):
                assert contract.reads_file_env(key), f"{alias(c)}: {contract.image} does not read {key}"


def test_no_database_password_in_any_environment(case):
    config, lab = case
    names = {
        f"{spec.name}-{secret.name}"
        for spec in build_plan(validate(config)).services
        if spec.kind != "CustomService"
        for secret in spec.secrets
        if "password" in secret.name
    }
    values = {n: _fake("password", lab.named(n, PASSWORD).name) for n in names}
    assert set(values.values()) <= lab.generated_secrets
    for c in lab.of_type(CONTAINER):
        for item in c.inputs.get("envs") or []:
            leaked = [n for n, v in values.items() if v in item]
            assert not leaked, f"{alias(c)}: {item.split('=', 1)[0]} carries {leaked}"


# ---- the defects of issue 9, one by one ------------------------------------------------


def test_mattermost_checks_itself_with_mmctl_not_curl(by_alias):
    # The image has no shell and no curl since 10.10/10.11 (mattermost/mattermost#33839);
    # its own HEALTHCHECK is `mmctl system status --local` (#31136), over local mode.
    mattermost = by_alias["mattermost"]
    assert mattermost.inputs["healthcheck"]["tests"] == [
        "CMD",
        "/mattermost/bin/mmctl",
        "system",
        "status",
        "--local",
    ]
    assert env(mattermost)["MM_SERVICESETTINGS_ENABLELOCALMODE"] == "true"


def test_haproxy_probe_reaches_its_ipv4_only_stats_bind(by_alias):
    haproxy = by_alias["haproxy"]
    config = next(content for path, content in files(haproxy).items() if path.endswith("haproxy.cfg"))
    stats = config.split("frontend stats", 1)[1].split("\nfrontend ", 1)[0]
    [bind] = re.findall(r"^\s*bind (\S+)", stats, re.M)
    host, _, port = bind.rpartition(":")
    assert host == "", "the stats frontend binds the IPv4 wildcard only"
    url = haproxy.inputs["healthcheck"]["tests"][-1]
    assert (urlsplit(url).hostname, urlsplit(url).port) == ("127.0.0.1", int(port))


class _Forbidden(http.server.BaseHTTPRequestHandler):
    """What the php image's Apache answers on an empty document root: 403."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_web_health_check_passes_on_an_empty_document_root(by_alias):
    """The real curl, run with the container's health check against a server answering 403."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = f"http://127.0.0.1:{server.server_address[1]}/"
        test = by_alias["web"].inputs["healthcheck"]["tests"]
        assert test[0] == "CMD" and test[-1] == "http://127.0.0.1/"
        result = subprocess.run([*test[1:-1], local], capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr
        # The check it replaces (curl -fsS) is unhealthy on the same answer.
        old = subprocess.run(["curl", "-fsS", "-o", "/dev/null", local], capture_output=True, timeout=30)
        assert old.returncode != 0
    finally:
        server.shutdown()


def test_node_exporter_runs_as_its_readme_says(by_alias):
    node = by_alias["node-exporter"]
    # prometheus/node_exporter README.md @ v1.9.1: --pid="host", -v "/:/host:ro,rslave",
    # --path.rootfs=/host. No mount-point exclusion of our own: the default
    # (collector/filesystem_linux.go) already leaves out /var/lib/docker/..., and mount
    # points are reported as host paths, so a "rootfs/..." pattern never matched.
    assert node.inputs["pidMode"] == "host"
    # The host has a backup run: node-exporter also reads the textfile directory where the run
    # records its last success (components/homelab/alerting.py, tests/test_alerting.py).
    assert node.inputs["command"] == [
        "--path.rootfs=/host",
        f"--collector.textfile.directory={alerting.TEXTFILE_DIR}",
    ]
    assert node.inputs["mounts"] == [
        {
            "type": "bind",
            "source": "/",
            "target": "/host",
            "readOnly": True,
            "bindOptions": {"propagation": "rslave"},
        }
    ]
    assert [v["containerPath"] for v in node.inputs.get("volumes") or []] == [alerting.TEXTFILE_DIR]


def test_cadvisor_runs_as_its_readme_says(by_alias):
    cadvisor = by_alias["cadvisor"]
    # google/cadvisor README.md @ v0.60.5: the quick start's volumes and --device=/dev/kmsg.
    mounts = {(m["hostPath"], m["containerPath"], m["readOnly"]) for m in cadvisor.inputs["volumes"]}
    # Not its /var/run (the raw Docker socket): the Docker API through its proxy (issue 26).
    assert mounts == {
        ("/", "/rootfs", True),
        ("/sys", "/sys", True),
        ("/var/lib/docker", "/var/lib/docker", True),
        ("/dev/disk", "/dev/disk", True),
    }
    assert [d["hostPath"] for d in cadvisor.inputs["devices"]] == ["/dev/kmsg"]
    assert not cadvisor.inputs.get("privileged")


def test_cadvisor_knows_the_containerd_image_store():
    # containerd-snapshotter support (google/cadvisor 7eda1904, "fix(3643)") is in v0.54.0
    # and later; those images are published on ghcr.io, not gcr.io.
    image = CONTRACTS["cadvisor"].image
    assert image.startswith("ghcr.io/google/cadvisor:")
    version = tuple(int(x) for x in image.rsplit(":v", 1)[1].split("."))
    assert version >= (0, 54, 0)


def test_prometheus_lifecycle_api_is_off(by_alias):
    prometheus = by_alias["prometheus"]
    assert not [arg for arg in prometheus.inputs["command"] if arg.startswith("--web.enable-lifecycle")]
    # A changed prometheus.yml still takes effect: it is an upload of its stager, which the
    # provider replaces when an upload changes (kreuzwerker/terraform-provider-docker
    # internal/provider/resource_docker_container.go: "upload" is ForceNew), and the new
    # stager's ID in the label homelab.files-run replaces Prometheus in turn.
    assert "/etc/prometheus/prometheus.yml" in files(prometheus)
    labels = {item["label"]: item["value"] for item in prometheus.inputs["labels"]}
    assert labels["homelab.files-run"] == f"{stager_of(prometheus).name}-id"  # the mocks' ID


def test_mysql_is_off_unless_enabled(tmp_path):
    assert MysqlConfig().enabled is False
    dev = run_program(load_stack_file(ROOT / "Pulumi.dev.yaml"), key_dir=str(tmp_path))
    assert "homelab-mysql" not in dev.containers()
    published = {p["external"] for c in dev.of_type(CONTAINER) for p in c.inputs.get("ports") or []}
    assert 3307 not in published


def test_drupal_database_credentials_are_a_secret_output(everything, by_alias):
    _, lab = everything
    # The image takes no database settings; its installer asks for them (docker-library/docs
    # drupal/content.md, "Set up database").
    db = by_alias["drupal-db"]
    password = files(db)[env(db)["POSTGRES_PASSWORD_FILE"]]
    assert lab.outputs["drupal-credentials"] == {
        "database-type": "PostgreSQL",
        "database-name": env(db)["POSTGRES_DB"],
        "database-username": env(db)["POSTGRES_USER"],
        "database-password": password,
        "database-host": "drupal-db",
        "database-port": "5432",
    }
    assert "drupal-credentials" in lab.secret_outputs
    assert not any(k.endswith("-credentials") for k in run_program_outputs_without_drupal())


def run_program_outputs_without_drupal() -> list[str]:
    config = {**EVERYTHING, "services": {**EVERYTHING["services"], "drupal": {"enabled": False}}}
    return list(run_program(config, example_secrets(config)).outputs)


def test_http_check_refuses_localhost():
    with pytest.raises(ValueError, match="127.0.0.1"):
        http_check("http://localhost:8404/healthz")
    with pytest.raises(ValueError, match="curl"):
        http_check("http://127.0.0.1/", tool="wget", any_status=True)
