"""Least privilege per container (issue 26 item 1).

Under mocks: every container of every example drops every capability and adds back exactly
what its image contract lists (components/homelab/images.py), runs with no-new-privileges and
is never privileged; the containers without uploads run read-only with the contract's tmpfs;
a custom service gets the same defaults (its image's contract where the program knows it),
relaxed only by its `security` keys, and a wrong key is one problem naming it.

On the real engine, with the settings the program registers for a custom service (translated
one to one into `docker run` flags): the container starts, writes only to its volume and its
tmpfs, cannot chown, and cannot gain a capability through a file capability, which the same
binary does gain with Docker's defaults.
"""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import example_files, example_run, run_program
from test_bad_input import assert_rejected, custom
from test_images import contracted

from components.docker.spec import ContainerSpec, FileUpload, Privileges, Volume

CONTAINER = "docker:index/container:Container"


def caps(container) -> tuple[list[str], list[str]]:
    value = container.inputs.get("capabilities") or {}
    return value.get("drops") or [], value.get("adds") or []


# ---- every example -----------------------------------------------------------------------


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_container_is_confined(path: Path) -> None:
    containers = example_run(path).of_type(CONTAINER)
    assert containers
    for c in containers:
        assert c.inputs.get("securityOpts") == ["no-new-privileges=true"], c.name
        assert caps(c)[0] == ["ALL"], c.name
        assert not c.inputs.get("privileged"), c.name


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_contracted_containers_keep_exactly_their_contracts_capabilities(path: Path) -> None:
    lab = example_run(path)
    seen = 0
    for c, contract in contracted(lab):
        expected = contract.privileges()
        assert caps(c)[1] == list(expected.capabilities), c.name
        assert bool(c.inputs.get("readOnly")) == expected.read_only, c.name
        assert sorted(c.inputs.get("tmpfs") or {}) == sorted(expected.tmpfs), c.name
        if expected.read_only:
            assert not c.inputs.get("uploads"), c.name
        seen += 1
    assert seen


def test_which_built_ins_run_read_only():
    """The single-host example: every container whose image allows it, its files staged."""
    lab = example_run(Path(__file__).resolve().parent.parent / "examples" / "single-host.yaml")
    read_only = {
        c.inputs["name"]: sorted(c.inputs.get("tmpfs") or {})
        for c in lab.of_type(CONTAINER)
        if c.inputs.get("readOnly")
    }
    assert read_only == {
        "homelab-backup-docker-api": [],
        "homelab-cadvisor-docker-api": [],
        "homelab-cadvisor": [],
        "homelab-node-exporter": [],
        "homelab-prometheus": [],
        "homelab-alertmanager": [],
        "homelab-blackbox-exporter": [],
        "homelab-haproxy": [],
        "homelab-resolver": [],
        "homelab-grafana": ["/tmp"],
        "homelab-portainer": ["/tmp"],
        "homelab-landing": ["/run", "/var/cache/nginx"],
        "homelab-postgres": ["/tmp", "/var/run/postgresql"],
        "homelab-mattermost-db": ["/tmp", "/var/run/postgresql"],
        "homelab-drupal-db": ["/tmp", "/var/run/postgresql"],
        "homelab-web": ["/run", "/tmp"],
        "homelab-whoami": ["/tmp"],
    }
    # Writable, each for a reason its contract gives: MySQL's temporary tables, Mattermost's
    # client files, Drupal's Composer, the backup engine's archive in /tmp; and the stagers.
    # The database containers keep what their entrypoints need before gosu, and no more.
    adds = {c.inputs["name"]: caps(c)[1] for c in lab.of_type(CONTAINER)}
    assert adds["homelab-postgres"] == ["CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"]
    assert adds["homelab-grafana"] == [] and adds["homelab-haproxy"] == []


def test_a_read_only_container_takes_its_files_staged_only():
    with pytest.raises(ValueError, match="cannot take uploads"):
        ContainerSpec(
            "app",
            "nginx:1.30.5-alpine",
            uploads=(FileUpload("/etc/x", "y"),),
            privileges=Privileges(read_only=True),
            stage_files=False,
        )
    staged = ContainerSpec(
        "app",
        "nginx:1.30.5-alpine",
        uploads=(FileUpload("/etc/x", "y"),),
        privileges=Privileges(read_only=True),
    )
    assert staged.staged_dirs() == ("/etc",)
    # A staged directory inside a volume would be hidden by it (or hide it).
    with pytest.raises(ValueError, match="would sit in a volume"):
        ContainerSpec(
            "app", "x:1", uploads=(FileUpload("/data/conf/x", "y"),), volumes=(Volume("d", "/data"),)
        )


def test_privileges_refuse_unknown_capabilities_and_stray_tmpfs():
    with pytest.raises(ValueError, match="unknown capabilities"):
        Privileges(capabilities=("CAP_CHOWN",))
    with pytest.raises(ValueError, match="read-only"):
        Privileges(tmpfs=("/tmp",))


# ---- custom services ----------------------------------------------------------------------


def custom_container(tmp_path: Path, **fields: Any):
    config = {"custom-services": [custom("app", **fields)]}
    lab = run_program(config, key_dir=str(tmp_path / "keys"))
    return next(c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-app")


def test_a_custom_service_of_an_unknown_image_gets_the_strict_defaults(tmp_path: Path) -> None:
    c = custom_container(tmp_path)
    assert caps(c) == (["ALL"], [])
    assert c.inputs["readOnly"] is True and c.inputs["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}
    assert c.inputs["securityOpts"] == ["no-new-privileges=true"]


def test_a_custom_service_of_a_contracted_image_gets_its_contract(tmp_path: Path) -> None:
    c = custom_container(tmp_path, image="nginx:1.30.5-alpine")
    assert caps(c)[1] == ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"]
    assert c.inputs["readOnly"] is True and sorted(c.inputs["tmpfs"]) == ["/run", "/var/cache/nginx"]
    c = custom_container(tmp_path, image="mysql:8.4.11")
    assert not c.inputs.get("readOnly") and not c.inputs.get("tmpfs")


def test_security_keys_relax_each_default(tmp_path: Path) -> None:
    security = {
        "capabilities": ["NET_ADMIN", "CHOWN"],
        "no-new-privileges": False,
        "read-only": True,
        "tmpfs": ["/var/cache/app", "/run"],
    }
    c = custom_container(tmp_path, security=security)
    assert caps(c) == (["ALL"], ["CHOWN", "NET_ADMIN"])
    assert not c.inputs.get("securityOpts")
    assert sorted(c.inputs["tmpfs"]) == ["/run", "/var/cache/app"]
    c = custom_container(tmp_path, security={"read-only": False})
    assert not c.inputs.get("readOnly") and not c.inputs.get("tmpfs")


@pytest.mark.parametrize(
    ("image", "security", "path", "fragment"),
    [
        (None, {"capabilities": ["CAP_CHOWN"]}, "security.capabilities[0]", "write 'CAP_CHOWN' as 'CHOWN'"),
        (None, {"capabilities": ["chown"]}, "security.capabilities[0]", "not a capability name"),
        (None, {"capabilities": ["FLY"]}, "security.capabilities", "not Linux capabilities: FLY"),
        (None, {"read-only": False, "tmpfs": ["/tmp"]}, "security", "only for a read-only root"),
        (None, {"privileged": True}, "security.privileged", "unknown key"),
        (
            "nginx:1.30.5-alpine",
            {"capabilities": ["CHOWN"]},
            "security.capabilities",
            "needs NET_BIND_SERVICE, SETGID, SETUID",
        ),
        ("mysql:8.4.11", {"tmpfs": ["/run"]}, "security.tmpfs", "set read-only: true too"),
    ],
    ids=[
        "cap-prefix",
        "lower-case",
        "unknown",
        "tmpfs-writable",
        "privileged",
        "contract-needs",
        "tmpfs-contract",
    ],
)
def test_bad_security_keys_are_named(image, security, path, fragment):
    fields: dict[str, Any] = {"security": security}
    if image:
        fields["image"] = image
    assert_rejected({"custom-services": [custom("app", **fields)]}, f"custom-services[0].{path}", fragment)


# ---- the real engine ------------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=120)


def run_flags(c) -> list[str]:
    """The registered inputs as `docker run` flags, one to one."""
    flags = [f"--security-opt={o}" for o in c.inputs.get("securityOpts") or []]
    drops, adds = caps(c)
    flags += [f"--cap-drop={x}" for x in drops] + [f"--cap-add={x}" for x in adds]
    flags += ["--read-only"] if c.inputs.get("readOnly") else []
    flags += [f"--tmpfs={path}:{options}" for path, options in (c.inputs.get("tmpfs") or {}).items()]
    return flags


# vfs_cap_data, revision 2 (linux include/uapi/linux/capability.h): magic_etc with the effective
# flag, then (permitted, inheritable) for capabilities 0-31 and 32-63. CAP_CHOWN is bit 0.
FILE_CAP_CHOWN = struct.pack("<IIIII", 0x02000000 | 0x000001, 1 << 0, 0, 0, 0)

SCRIPT = """
echo data > /data/ok && echo volume-writable
echo tmp > /tmp/ok && echo tmpfs-writable
(echo x > /etc/nope) 2>/dev/null && echo root-writable || echo root-read-only
(chown 1:1 /tmp/ok) 2>/dev/null && echo chown-allowed || echo chown-refused
grep -E '^(NoNewPrivs|CapEff):' /proc/self/status
"""


@pytest.fixture
def volume():
    name = f"t26-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


def test_the_engine_confines_a_container_with_the_registered_settings(busybox_image, volume, tmp_path):
    c = custom_container(tmp_path, image=busybox_image, volumes=[{"name": "data", "path": "/data"}])
    assert c.inputs["readOnly"] is True
    run = docker("run", "--rm", "-v", f"{volume}:/data", *run_flags(c), busybox_image, "sh", "-c", SCRIPT)
    out = run.stdout.decode().split()
    assert out[:4] == ["volume-writable", "tmpfs-writable", "root-read-only", "chown-refused"], out
    assert dict(zip(out[4::2], out[5::2], strict=True)) == {"NoNewPrivs:": "1", "CapEff:": "0000000000000000"}
    # The same container with CHOWN kept (security.capabilities): only that changes.
    c = custom_container(
        tmp_path,
        image=busybox_image,
        volumes=[{"name": "data", "path": "/data"}],
        security={"capabilities": ["CHOWN"]},
    )
    run = docker("run", "--rm", "-v", f"{volume}:/data", *run_flags(c), busybox_image, "sh", "-c", SCRIPT)
    assert "chown-allowed" in run.stdout.decode().split()


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="not root: the Docker engine tests write a file capability into a volume on the host",
)
def test_no_new_privileges_stops_a_file_capability(busybox_image, volume, tmp_path):
    """A copy of busybox with the file capability CAP_CHOWN, run as nobody: with Docker's
    defaults it gains CHOWN and chowns a root-owned file; with the registered settings
    (no-new-privileges, and with every capability dropped) it does not; no-new-privileges
    alone, with Docker's default capabilities, stops it too."""
    mountpoint = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.decode().strip())
    binary = mountpoint / "busybox"
    binary.write_bytes(Path("/bin/busybox").read_bytes())
    binary.chmod(0o755)
    os.setxattr(binary, "security.capability", FILE_CAP_CHOWN)
    c = custom_container(tmp_path, image=busybox_image)

    def chown_as_nobody(*flags: str) -> bool:
        (mountpoint / "target").write_text("root's\n")
        os.chown(mountpoint / "target", 0, 0)
        docker(
            "run",
            "--rm",
            "-u",
            "65534",
            "-v",
            f"{volume}:/data",
            *flags,
            busybox_image,
            "/data/busybox",
            "chown",
            "65534",
            "/data/target",
            check=False,
        )
        return (mountpoint / "target").stat().st_uid == 65534

    assert chown_as_nobody() is True  # the binary really gains CHOWN: the check can fail
    assert chown_as_nobody(*[f for f in run_flags(c) if f != "--read-only"]) is False
    assert chown_as_nobody(*[f for f in run_flags(c) if f.startswith("--security-opt")]) is False
