"""The offline release bundle: which images go in, release -> setup round trip on a real Docker
engine, and refusal of altered, truncated or unsafe bundles before anything is loaded.

The Docker tests create a tiny local image with `docker import` (nothing is pulled) and skip
when `docker info` fails (`scripts/start-dockerd.sh` starts an engine where one is installed).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    EXAMPLES,
    ROOT,
    assert_one_problem,
    example_secrets,
    free_port,
    load_stack_file,
    run_program,
)

from automation import bundle
from automation.bundle import BundleError, images_for, release, setup, verify
from components.homelab.images import IMAGES
from stacks.checks import validate

WHOAMI = "traefik/whoami:v1.11.0"  # the single-host example's custom service
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
PLUGIN = "resource-fake-v1.0.0"
PLUGIN_BINARY = f"{PLUGIN}/pulumi-resource-fake"


def example(name: str):
    return validate(load_stack_file(EXAMPLES / name))


# --- images_for -----------------------------------------------------------------------------


def test_images_single_host_is_every_enabled_service_image() -> None:
    config = example("single-host.yaml")
    from stacks.plan import build_plan

    expected = {c.image for s in build_plan(config).services for c in s.containers}
    images = images_for(config, all_images=False)
    assert images == sorted(expected)
    # Every built-in is enabled in this example, plus the custom whoami; its certificates are
    # generated (tls.mode generated) and it has no tunnel, so the ACME renewer's, cloudflared's
    # and Tailscale's images are not among them.
    opt_in = {IMAGES["acme"], IMAGES["tunnel"], IMAGES["tailscale"]}
    assert images == sorted((set(IMAGES.values()) - opt_in) | {WHOAMI})
    assert images_for(config, all_images=True) == sorted({*images, *opt_in})


def test_the_backup_engine_image_is_bundled_for_every_host_with_backups() -> None:
    for name in ("single-host.yaml", "multi-host.yaml"):
        images = images_for(example(name), all_images=False)
        assert "offen/docker-volume-backup:v2.48.2" in images
        assert not [i for i in images if "volumerize" in i]


def test_images_all_adds_every_pinned_image() -> None:
    config = example("multi-host.yaml")  # no Drupal in this one
    enabled = images_for(config, all_images=False)
    assert IMAGES["drupal"] not in enabled
    assert IMAGES["postgres"] in enabled and IMAGES["haproxy"] in enabled
    assert images_for(config, all_images=True) == sorted(set(IMAGES.values()) | set(enabled))


def test_images_without_homelab_layer() -> None:
    config = example("single-host.yaml")
    config = config.model_copy(update={"layers": config.layers.model_copy(update={"homelab": False})})
    assert images_for(config, all_images=False) == []
    assert images_for(config, all_images=True) == sorted(set(IMAGES.values()))


# --- helpers --------------------------------------------------------------------------------


def fake_plugins(folder: Path) -> Path:
    """A Pulumi plugin tree with one plugin (a shell script) and Pulumi's lock file."""
    plugins = folder / "pulumi-plugins"
    binary = plugins / PLUGIN_BINARY
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho fake plugin\n")
    binary.chmod(0o755)
    (plugins / f"{PLUGIN}.lock").write_text("")  # Pulumi's lock file: left out of the bundle
    return plugins


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    return fake_plugins(tmp_path)


def members(path: Path) -> dict[str, bytes | None]:
    """name -> content of a regular member (None for directories)."""
    with tarfile.open(path, "r:gz") as archive:
        out: dict[str, bytes | None] = {}
        for m in archive.getmembers():
            f = archive.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else None
        return out


def write_tar_gz(path: Path, entries: dict[str, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return path


def manifest_of(path: Path) -> dict:
    content = members(path)["manifest.json"]
    assert content is not None
    return json.loads(content)


def assert_refused(path: Path, work: Path, *needles: str) -> None:
    work.mkdir(exist_ok=True)
    with pytest.raises(BundleError) as caught:
        verify(path, workdir=work)
    for needle in needles:
        assert needle in str(caught.value)
    assert list(work.iterdir()) == [], "a refused bundle leaves nothing extracted behind"


@pytest.fixture
def plain_bundle(tmp_path: Path, plugins_dir: Path) -> Path:
    """A bundle without images (no Docker needed): the plugin tree and its manifest."""
    return release(tmp_path / "out" / "plain.tar.gz", [], None, plugins_dir)


# --- manifest, compression, verification (no Docker) ----------------------------------------


def test_manifest_lists_every_file_with_its_sha256(plain_bundle: Path) -> None:
    content = members(plain_bundle)
    manifest = manifest_of(plain_bundle)
    files = {n: hashlib.sha256(d).hexdigest() for n, d in content.items() if d is not None}
    del files["manifest.json"]
    assert manifest == {"version": 2, "images": {}, "files": files}
    assert list(files) == [f"plugins/{PLUGIN_BINARY}"]  # the .lock file is left out
    assert next(iter(content)) == "manifest.json"  # first, ahead of the images


def test_verify_extracts_and_keeps_exec_bit(plain_bundle: Path) -> None:
    root, manifest = verify(plain_bundle)
    try:
        binary = root / "plugins" / PLUGIN_BINARY
        assert binary.read_text().startswith("#!/bin/sh")
        assert os.access(binary, os.X_OK)
        assert manifest["version"] == 2
    finally:
        shutil.rmtree(root)


def _popen_spy(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = subprocess.Popen

    def spy(args, *a, **kw):
        calls.append([str(x) for x in args])
        return real(args, *a, **kw)

    monkeypatch.setattr(bundle.subprocess, "Popen", spy)
    return calls


@pytest.mark.skipif(shutil.which("pigz") is None, reason="pigz is not installed")
def test_pigz_compresses_when_present(tmp_path: Path, plugins_dir: Path, monkeypatch) -> None:
    calls = _popen_spy(monkeypatch)
    out = release(tmp_path / "b.tar.gz", [], None, plugins_dir, jobs=3)
    pigz = [c for c in calls if Path(c[0]).name == "pigz"]
    assert pigz and pigz[0][1:3] == ["-p", "3"]
    assert any(Path(c[0]).name == "tar" for c in calls)
    shutil.rmtree(verify(out)[0])


def test_tarfile_compresses_without_pigz(tmp_path: Path, plugins_dir: Path, monkeypatch) -> None:
    calls = _popen_spy(monkeypatch)
    monkeypatch.setattr(bundle.shutil, "which", lambda *a, **kw: None)
    out = release(tmp_path / "b.tar.gz", [], None, plugins_dir)
    assert calls == []
    root, manifest = verify(out)
    shutil.rmtree(root)
    assert list(manifest["files"]) == [f"plugins/{PLUGIN_BINARY}"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "staging removed"


def test_release_into_directory_and_missing_plugins_dir(tmp_path: Path) -> None:
    out = release(tmp_path, [], None, tmp_path / "no-such-plugins")
    assert out == tmp_path / "homelab-bundle.tar.gz"
    assert manifest_of(out) == {"version": 2, "images": {}, "files": {}}


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../evil", tarfile.REGTYPE, "leaves the bundle"),
        ("plugins/../../evil", tarfile.REGTYPE, "leaves the bundle"),
        ("/tmp/evil-absolute", tarfile.REGTYPE, "absolute path"),
        ("evil-link", tarfile.SYMTYPE, "link"),
        ("evil-hardlink", tarfile.LNKTYPE, "link"),
        ("evil-device", tarfile.CHRTYPE, "device"),
        ("evil-fifo", tarfile.FIFOTYPE, "special file"),
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, name: str, kind: bytes, reason: str) -> None:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = json.dumps({"version": 2, "images": {}, "files": {}}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = "/etc/passwd"
        payload = b"" if kind != tarfile.REGTYPE else b"pwned"
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    work = tmp_path / "work"
    assert_refused(path, work, "unsafe member", repr(name), reason)
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()


def test_missing_and_extra_files_are_refused(plain_bundle: Path, tmp_path: Path) -> None:
    content = members(plain_bundle)
    missing = {n: d for n, d in content.items() if n != f"plugins/{PLUGIN_BINARY}"}
    path = write_tar_gz(tmp_path / "missing.tar.gz", missing)
    assert_refused(path, tmp_path / "w1", f"plugins/{PLUGIN_BINARY}: listed in manifest.json but missing")

    path = write_tar_gz(tmp_path / "extra.tar.gz", content | {"plugins/extra.sh": b"echo surprise\n"})
    assert_refused(path, tmp_path / "w2", "plugins/extra.sh: in the bundle but not listed")

    changed = content | {f"plugins/{PLUGIN_BINARY}": b"#!/bin/sh\necho tampered\n"}
    path = write_tar_gz(tmp_path / "changed.tar.gz", changed)
    assert_refused(path, tmp_path / "w3", f"plugins/{PLUGIN_BINARY}: sha256 mismatch")

    twice = tmp_path / "twice.tar.gz"
    with tarfile.open(twice, "w:gz") as archive:
        for name in ("manifest.json", "manifest.json"):
            data = content["manifest.json"] or b""
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert_refused(twice, tmp_path / "w4", "manifest.json: appears more than once")


def test_bad_manifest_is_refused(plain_bundle: Path, tmp_path: Path) -> None:
    content = members(plain_bundle)
    without = {n: d for n, d in content.items() if n != "manifest.json"}
    assert_refused(write_tar_gz(tmp_path / "a.tar.gz", without), tmp_path / "w1", "has no manifest.json")
    bad = content | {"manifest.json": b"{not json"}
    assert_refused(write_tar_gz(tmp_path / "b.tar.gz", bad), tmp_path / "w2", "not valid JSON")
    # A bundle of version 1 records no image IDs: refused, to be made again.
    v1 = content | {"manifest.json": json.dumps({"version": 1, "images": {}, "files": {}}).encode()}
    assert_refused(
        write_tar_gz(tmp_path / "c.tar.gz", v1), tmp_path / "w3", "unsupported manifest.json version 1"
    )
    image = {"archive": "images/x_1.tar", "tag": "x:1", "id": "sha256:" + "0" * 64}
    dangling = {"version": 2, "images": {"x:1": image}, "files": {}}
    path = write_tar_gz(tmp_path / "d.tar.gz", {"manifest.json": json.dumps(dangling).encode()})
    assert_refused(path, tmp_path / "w4", "image x:1: its archive images/x_1.tar is not listed")
    v1_images = {"version": 2, "images": {"x:1": "images/x_1.tar"}, "files": {}}
    path = write_tar_gz(tmp_path / "e.tar.gz", {"manifest.json": json.dumps(v1_images).encode()})
    assert_refused(path, tmp_path / "w5", "no 'images' table of reference -> {archive, tag, id}")
    wrong = {"x:1@sha256:" + "1" * 64: image | {"tag": "y:1", "id": "md5:00"}}
    bad_images = {"version": 2, "images": wrong, "files": {"images/x_1.tar": "0" * 64}}
    path = write_tar_gz(tmp_path / "f.tar.gz", {"manifest.json": json.dumps(bad_images).encode()})
    assert_refused(
        path, tmp_path / "w6", "recorded under tag 'y:1', not its own", "id 'md5:00' is not sha256"
    )


def test_truncated_and_garbage_bundles_are_refused(plain_bundle: Path, tmp_path: Path) -> None:
    data = plain_bundle.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    assert_refused(cut, tmp_path / "w1", "truncated or corrupt")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a gzip file at all")
    assert_refused(garbage, tmp_path / "w2", "truncated or corrupt")
    with pytest.raises(BundleError, match="no bundle at"):
        verify(tmp_path / "nope.tar.gz")


# --- wheels (offline: a local wheel, pip pointed at it through its environment) -------------


def make_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel, built by hand (no build backend, no network)."""
    dist, version = "homelab_bundle_probe", "0.1"
    files = {
        "homelab_bundle_probe/__init__.py": b"VALUE = 42\n",
        f"{dist}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: homelab-bundle-probe\nVersion: {version}\n".encode()
        ),
        f"{dist}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist}-{version}.dist-info/RECORD", "", ""])
    files[f"{dist}-{version}.dist-info/RECORD"] = record.getvalue().encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


def test_wheels_are_bundled_and_installed_offline(tmp_path: Path, monkeypatch) -> None:
    index = tmp_path / "index"
    wheel = make_wheel(index)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("homelab-bundle-probe==0.1\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    out = release(tmp_path / "b.tar.gz", [], requirements, None)
    files = manifest_of(out)["files"]
    assert files["requirements.txt"] == hashlib.sha256(requirements.read_bytes()).hexdigest()
    assert files[f"wheels/{wheel.name}"] == hashlib.sha256(wheel.read_bytes()).hexdigest()

    monkeypatch.delenv("PIP_FIND_LINKS")  # setup must find it in the bundle alone
    site = tmp_path / "site"
    monkeypatch.setenv("PIP_TARGET", str(site))
    summary = setup(out, [], install_wheels=True)
    assert summary["wheels"] == [wheel.name] and summary["wheels_installed"]
    assert (site / "homelab_bundle_probe" / "__init__.py").read_text() == "VALUE = 42\n"

    summary = setup(out, [], install_wheels=False)
    assert summary["wheels_installed"] is False


def test_release_fails_clearly_when_pip_download_fails(tmp_path: Path, monkeypatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("homelab-bundle-probe==0.1\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(BundleError, match="pip download"):
        release(tmp_path / "out" / "b.tar.gz", [], requirements, None)
    assert list((tmp_path / "out").iterdir()) == [], "no partial bundle, no staging left behind"


# --- Docker round trip ----------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


def image_present(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def image_id(ref: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture(scope="module")
def docker_engine() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on PATH")
    try:
        info = docker("info", check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("`docker info` timed out: no Docker engine answers (scripts/start-dockerd.sh)")
    if info.returncode != 0:
        pytest.skip(
            f"`docker info` failed, no Docker engine (scripts/start-dockerd.sh): {info.stderr.strip()}"
        )


@pytest.fixture
def local_image(docker_engine: None, tmp_path: Path) -> Iterator[str]:
    """A tiny image made here with `docker import` (one file, unique content): its reference."""
    tag = uuid.uuid4().hex[:12]
    ref = f"tbd-bundle-test:{tag}"
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as archive:
        data = f"homelab bundle test {tag}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    docker("import", str(rootfs), ref)
    try:
        yield ref
    finally:
        docker("rmi", "-f", ref, check=False)


def repack(src: Path, dst: Path, change: Callable[[str, bytes], bytes]) -> Path:
    """The same members (and the old manifest), each file's content passed through `change`."""
    content = members(src)
    return write_tar_gz(dst, {n: (change(n, d) if d is not None else None) for n, d in content.items()})


@pytest.fixture
def image_bundle(local_image: str, tmp_path: Path, plugins_dir: Path) -> Path:
    out = release(tmp_path / "out" / "bundle.tar.gz", [local_image], None, plugins_dir)
    docker("rmi", local_image)
    assert not image_present(local_image)
    return out


def test_release_then_setup_restores_image_and_plugins(
    image_bundle: Path, local_image: str, tmp_path: Path
) -> None:
    manifest = manifest_of(image_bundle)
    record = manifest["images"][local_image]
    tar_path = record["archive"]
    assert tar_path.startswith("images/") and tar_path.endswith(".tar") and "/" not in tar_path[7:]
    assert set(manifest["files"]) == {tar_path, f"plugins/{PLUGIN_BINARY}"}
    assert record["tag"] == local_image  # a pin by tag alone is saved under itself

    target = tmp_path / "target-plugins"
    summary = setup(image_bundle, [DOCKER_HOST], plugins_target=target)
    assert image_id(local_image) == record["id"]
    assert summary["images"] == {DOCKER_HOST: [local_image]}
    assert summary["plugins"] == [PLUGIN]
    assert summary["wheels"] == []
    binary = target / PLUGIN_BINARY
    assert binary.read_text() == "#!/bin/sh\necho fake plugin\n"
    assert os.access(binary, os.X_OK)


def test_modified_image_tar_is_refused_before_loading(
    image_bundle: Path, local_image: str, tmp_path: Path
) -> None:
    tar_path = manifest_of(image_bundle)["images"][local_image]["archive"]

    def flip_one_byte(name: str, data: bytes) -> bytes:
        if name != tar_path:
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]

    altered = repack(image_bundle, tmp_path / "altered.tar.gz", flip_one_byte)
    with pytest.raises(BundleError, match=f"{tar_path}: sha256 mismatch") as caught:
        setup(altered, [DOCKER_HOST], plugins_target=tmp_path / "target")
    assert "nothing was loaded" in str(caught.value)
    assert not image_present(local_image)
    assert not (tmp_path / "target").exists()


def test_truncated_bundle_is_refused_before_loading(
    image_bundle: Path, local_image: str, tmp_path: Path
) -> None:
    data = image_bundle.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or corrupt"):
        setup(cut, [DOCKER_HOST], plugins_target=tmp_path / "target")
    assert not image_present(local_image)
    assert not (tmp_path / "target").exists()


def test_release_names_the_missing_image(docker_engine: None, tmp_path: Path) -> None:
    # Not present here, and its registry (a closed loopback port) does not answer.
    ref = f"127.0.0.1:{free_port()}/tbd-absent:{uuid.uuid4().hex[:12]}"
    with pytest.raises(BundleError) as caught:
        release(tmp_path / "out" / "b.tar.gz", [ref], None, None)
    assert f"docker pull {ref} failed" in str(caught.value)
    assert "connection refused" in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == [], "no partial bundle, no staging left behind"


def test_setup_reports_a_failing_host(image_bundle: Path, local_image: str) -> None:
    with pytest.raises(
        BundleError, match="docker -H unix:///nonexistent.sock info failed, nothing was loaded"
    ):
        setup(image_bundle, ["unix:///nonexistent.sock"])


# --- images pinned by tag and digest, through a real registry -------------------------------
#
# A pin `name:tag@sha256:<digest>` is checked by the engine when it pulls; `docker save` and
# `docker load` do not carry the digest. These tests push a tiny image to Debian's
# docker-registry (distribution 2.8, started here on a free loopback port: the engine speaks
# plain HTTP to a loopback registry, which moby counts as insecure by default,
# daemon/pkg/registry/config.go) to get a real digest, release a bundle of the pin, remove
# the image and set the bundle up again.

BUSYBOX = Path("/bin/busybox")


@pytest.fixture(scope="module")
def classic_store(docker_engine: None) -> None:
    """The round trips below need the classic image store (setup refuses the containerd one)."""
    status = docker("info", "--format", "{{json .DriverStatus}}").stdout
    if bundle.CONTAINERD_STORE in status:
        pytest.skip("this engine uses the containerd image store, which setup refuses")


@pytest.fixture(scope="module")
def registry(classic_store: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`localhost:PORT` of a docker-registry of its own (temporary storage), stopped after."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("Debian's docker-registry is not installed (scripts/install-tools.sh installs it)")
    port = free_port()
    root = tmp_path_factory.mktemp("tbd-registry")
    config = root / "config.yml"
    # distribution's configuration format (version 0.1): filesystem storage, one HTTP listener
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if process.poll() is not None:
                pytest.fail(f"docker-registry exited: {(root / 'registry.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not answer on /v2/ within 10 s")
        yield f"localhost:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass(frozen=True)
class Pinned:
    ref: str  # localhost:PORT/tbd-...:1.0@sha256:<digest>
    tag: str  # localhost:PORT/tbd-...:1.0
    digest_ref: str  # localhost:PORT/tbd-...@sha256:<digest>
    id: str  # the image ID (its config digest), as `docker import` printed it


def busybox_rootfs(path: Path, token: str) -> Path:
    """Debian's static BusyBox and a file that makes the image (and its ID) unique."""
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("bin")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        archive.add(BUSYBOX, "bin/busybox")
        data = f"tbd bundle digest test {token}\n".encode()
        info = tarfile.TarInfo("token.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def remove_image(image: str) -> None:
    """Every reference to the image (tags and digests) goes with `rmi -f <ID>`."""
    docker("rmi", "-f", image, check=False)


@contextlib.contextmanager
def pushed(registry: str, folder: Path) -> Iterator[Pinned]:
    """A busybox image pushed to the registry, then removed here: its pin by tag and digest."""
    if not BUSYBOX.is_file():
        pytest.skip("busybox is not installed (scripts/install-tools.sh installs busybox-static)")
    token = uuid.uuid4().hex[:12]
    tag = f"{registry}/tbd-bundle-{token}:1.0"
    imported = docker("import", str(busybox_rootfs(folder / "rootfs.tar", token)), tag).stdout.strip()
    try:
        docker("push", tag)
        digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", tag).stdout)
        (digest_ref,) = digests  # the registry's manifest digest, recorded by the push
        digest = digest_ref.partition("@")[2]
        remove_image(imported)
        assert not image_present(tag) and not image_present(digest_ref)
        yield Pinned(f"{tag}@{digest}", tag, digest_ref, imported)
    finally:
        remove_image(imported)


@pytest.fixture
def pinned(registry: str, tmp_path: Path) -> Iterator[Pinned]:
    with pushed(registry, tmp_path) as image:
        yield image


def test_a_pin_by_tag_and_digest_goes_through_a_bundle(
    pinned: Pinned, tmp_path: Path, plugins_dir: Path
) -> None:
    # release pulls the pin from its registry (the engine checks the digest) ...
    out = release(tmp_path / "out" / "bundle.tar.gz", [pinned.ref], None, plugins_dir)
    record = manifest_of(out)["images"][pinned.ref]
    # ... and records the tag it is saved under and the image's ID (its config digest).
    assert record["tag"] == pinned.tag
    assert record["id"] == pinned.id
    assert archive_tags(out, record["archive"]) == [pinned.tag]
    remove_image(pinned.id)
    assert not image_present(pinned.tag)

    target = tmp_path / "target-plugins"
    summary = setup(out, [DOCKER_HOST], plugins_target=target)
    assert summary["images"] == {DOCKER_HOST: [pinned.ref]}
    assert summary["plugins"] == [PLUGIN]
    # The loaded image answers to its tag, with the ID recorded at release ...
    assert image_id(pinned.tag) == record["id"] == pinned.id
    # ... but to no digest reference: a host set up from a bundle must find it by tag
    # (hosts[].images-from-bundle), or the Docker provider would try to pull it.
    for ref in (pinned.ref, pinned.digest_ref):
        missing = docker("image", "inspect", ref, check=False)
        assert missing.returncode != 0 and "No such image" in missing.stderr


def test_release_saves_what_the_digest_names_not_what_the_tag_held(
    pinned: Pinned, local_image: str, tmp_path: Path
) -> None:
    docker("tag", local_image, pinned.tag)  # the tag held another image here
    out = release(tmp_path / "out" / "bundle.tar.gz", [pinned.ref], None, None)
    record = manifest_of(out)["images"][pinned.ref]
    assert record["id"] == pinned.id != image_id(local_image)
    assert image_id(pinned.tag) == pinned.id


def test_release_refuses_a_digest_the_registry_does_not_have(pinned: Pinned, tmp_path: Path) -> None:
    other = "sha256:" + hashlib.sha256(b"not this image").hexdigest()
    wrong = f"{pinned.tag}@{other}"
    with pytest.raises(BundleError, match=re.escape(f"docker pull {wrong} failed")):
        release(tmp_path / "out" / "bundle.tar.gz", [wrong], None, None)
    assert list((tmp_path / "out").iterdir()) == [], "no bundle, no staging left behind"
    assert not image_present(pinned.tag)


def test_a_pin_without_a_tag_cannot_be_bundled(tmp_path: Path) -> None:
    ref = "localhost:5000/tbd-untagged@sha256:" + "a" * 64
    with pytest.raises(BundleError, match="has no tag: a bundle restores each image under its name:tag"):
        release(tmp_path / "out" / "bundle.tar.gz", [ref], None, None)


def with_manifest(src: Path, dst: Path, change: Callable[[dict], None]) -> Path:
    """The same bundle with its manifest.json changed (every file hash still right)."""

    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        change(manifest)
        return json.dumps(manifest).encode()

    return repack(src, dst, edit)


@dataclass(frozen=True)
class PinnedBundle:
    pinned: Pinned
    path: Path


@pytest.fixture(scope="module")
def pinned_bundle(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PinnedBundle]:
    """A bundle of a pinned image, released once per module (per xdist worker), the image
    removed here after. The tests forge copies of it; the one that loads its image removes
    it again, so each finds the image absent."""
    folder = tmp_path_factory.mktemp("pinned-bundle")
    with pushed(registry, folder) as pinned:
        out = release(folder / "out" / "bundle.tar.gz", [pinned.ref], None, fake_plugins(folder))
        remove_image(pinned.id)
        yield PinnedBundle(pinned, out)


def claiming_id(pinned_bundle: PinnedBundle, other: str, dst: Path) -> Path:
    """The module's bundle, its manifest recording image ID `other` for the pinned image."""

    def claim_other_id(manifest: dict) -> None:
        manifest["images"][pinned_bundle.pinned.ref]["id"] = other

    return with_manifest(pinned_bundle.path, dst, claim_other_id)


def test_a_bundle_whose_image_id_does_not_match_is_refused_before_loading(
    pinned_bundle: PinnedBundle, local_image: str, tmp_path: Path
) -> None:
    pinned = pinned_bundle.pinned
    other = image_id(local_image)
    forged = claiming_id(pinned_bundle, other, tmp_path / "forged.tar.gz")
    with pytest.raises(BundleError) as caught:
        setup(forged, [DOCKER_HOST], plugins_target=tmp_path / "target")
    message = str(caught.value)
    assert f"image {pinned.ref}: its archive holds image {pinned.id}, manifest.json has {other}" in message
    assert "nothing was loaded" in message
    assert not image_present(pinned.tag)
    assert not (tmp_path / "target").exists()


def test_the_loaded_image_must_carry_the_recorded_id(
    pinned_bundle: PinnedBundle, local_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the archive check (switched off here), the engine's own answer is checked too."""
    pinned = pinned_bundle.pinned
    other = image_id(local_image)
    forged = claiming_id(pinned_bundle, other, tmp_path / "forged.tar.gz")
    monkeypatch.setattr(bundle, "_archive_problems", lambda *a: [])
    try:
        with pytest.raises(BundleError) as caught:
            setup(forged, [DOCKER_HOST], plugins_target=tmp_path / "target")
    finally:
        remove_image(pinned.id)  # loaded, then refused: gone again for the next test
    assert (
        f"host {DOCKER_HOST}: after loading {manifest_of(forged)['images'][pinned.ref]['archive']}, "
        f"{pinned.tag} is image {pinned.id}, but the bundle records {other} for {pinned.ref}: refused"
    ) in str(caught.value)
    assert not (tmp_path / "target").exists(), "plugins left as they were"


def test_an_archive_without_the_recorded_tag_is_refused(pinned_bundle: PinnedBundle, tmp_path: Path) -> None:
    pinned = pinned_bundle.pinned

    def claim_other_tag(manifest: dict) -> None:
        image = manifest["images"].pop(pinned.ref)
        manifest["images"][pinned.ref.replace(":1.0@", ":2.0@")] = image | {
            "tag": pinned.tag.replace(":1.0", ":2.0")
        }

    forged = with_manifest(pinned_bundle.path, tmp_path / "forged.tar.gz", claim_other_tag)
    with pytest.raises(
        BundleError, match=re.escape(f"does not restore the tag {pinned.tag.replace(':1.0', ':2.0')}")
    ):
        setup(forged, [DOCKER_HOST])
    assert not image_present(pinned.tag)


def archive_tags(bundle_path: Path, archive: str) -> list[str]:
    """The RepoTags of a `docker save` archive inside a bundle."""
    content = members(bundle_path)[archive]
    assert content is not None
    with tarfile.open(fileobj=io.BytesIO(content)) as saved:
        index = saved.extractfile("manifest.json")
        assert index is not None
        (entry,) = json.load(index)
    return entry["RepoTags"]


def test_a_host_on_the_containerd_image_store_is_refused_before_loading(
    tmp_path: Path, plugins_dir: Path
) -> None:
    """What `docker info` reports there (moby docker-v29.7.2 daemon/containerd/service.go), from
    a stand-in docker command that logs what it is asked."""
    calls = tmp_path / "calls.log"
    fake = tmp_path / "docker"
    status = json.dumps([["driver-type", "io.containerd.snapshotter.v1"]])
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\necho '{status}'\n")
    fake.chmod(0o755)
    image = members_with_image(tmp_path)
    with pytest.raises(BundleError, match="host ssh://x: its Docker engine uses the containerd image store"):
        setup(image, ["ssh://x"], docker=str(fake), plugins_target=tmp_path / "target")
    assert calls.read_text().splitlines() == ["-H ssh://x info --format {{json .DriverStatus}}"]
    assert not (tmp_path / "target").exists()


def members_with_image(tmp_path: Path) -> Path:
    """A bundle whose one image archive is a hand-made `docker save` archive (no engine)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    config_id = hashlib.sha256(config).hexdigest()
    index = json.dumps([{"Config": f"{config_id}.json", "RepoTags": ["tbd-x:1"], "Layers": []}]).encode()
    saved = io.BytesIO()
    with tarfile.open(fileobj=saved, mode="w") as archive:
        for name, data in ((f"{config_id}.json", config), ("manifest.json", index)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = saved.getvalue()
    files = {"images/tbd-x_1.tar": hashlib.sha256(data).hexdigest()}
    image = {"archive": "images/tbd-x_1.tar", "tag": "tbd-x:1", "id": f"sha256:{config_id}"}
    manifest = {"version": 2, "images": {"tbd-x:1": image}, "files": files}
    return write_tar_gz(
        tmp_path / "handmade.tar.gz",
        {"manifest.json": json.dumps(manifest).encode(), "images/tbd-x_1.tar": data},
    )


# --- the program, on hosts that take their images from a bundle (Pulumi mocks) --------------

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"


def flagged(config: dict, host: str) -> dict:
    hosts = [h | {"images-from-bundle": True} if h["name"] == host else h for h in config["hosts"]]
    return config | {"hosts": hosts}


def remote_images(lab) -> dict[str, dict[str, str]]:
    """host -> {resource name: the image name the provider looks up}."""
    found: dict[str, dict[str, str]] = {}
    for r in lab.of_type(REMOTE_IMAGE):
        found.setdefault(r.name.split("-image-", 1)[0], {})[r.name] = r.inputs["name"]
    return found


@pytest.fixture(scope="module")
def bundle_hosts(tmp_path_factory: pytest.TempPathFactory):
    """The multi-host example as it is, and with `apps` taking its images from a bundle."""
    config = load_stack_file(EXAMPLES / "multi-host.yaml")
    keys = str(tmp_path_factory.mktemp("keys"))
    online = remote_images(run_program(config, example_secrets(config), key_dir=keys))
    config = flagged(config, "apps")
    lab = run_program(config, example_secrets(config), key_dir=keys)
    return online, remote_images(lab), lab


def test_a_host_with_images_from_bundle_looks_images_up_by_tag(bundle_hosts) -> None:
    online, offline, _ = bundle_hosts
    apps = offline["apps"]
    assert apps and not [n for n in apps.values() if "@" in n]
    # Each is the pinned reference without its digest: the tag the bundle restores.
    assert sorted(apps.values()) == sorted(n.split("@", 1)[0] for n in online["apps"].values())
    assert "postgres:17.11-alpine" in apps.values() and "haproxy:3.2.22-alpine" in apps.values()
    # The same resources (no replacement by name when a host changes sides).
    assert apps.keys() == online["apps"].keys()


def test_other_hosts_keep_the_digest(bundle_hosts) -> None:
    online, offline, _ = bundle_hosts
    assert offline["ops"] == online["ops"]
    assert IMAGES["haproxy"] in offline["ops"].values() and "@sha256:" in IMAGES["haproxy"]


def test_containers_run_the_image_the_tag_lookup_found(bundle_hosts) -> None:
    """A container's image is its RemoteImage's image_id (the mocks make it sha256(name))."""
    _, offline, lab = bundle_hosts

    def found_as(name: str) -> str:
        return f"sha256:{hashlib.sha256(name.encode()).hexdigest()}"

    by_tag = {found_as(n) for n in offline["apps"].values()}
    on_apps = [
        c
        for c in lab.of_type("docker:index/container:Container")
        if {"label": "homelab.host", "value": "apps"} in (c.inputs.get("labels") or [])
    ]
    assert on_apps and {c.inputs["image"] for c in on_apps} <= by_tag
    assert found_as(IMAGES["postgres"].split("@", 1)[0]) in {c.inputs["image"] for c in on_apps}


def test_a_pin_without_a_tag_is_refused_on_such_a_host(tmp_path: Path) -> None:
    config = flagged(load_stack_file(EXAMPLES / "multi-host.yaml"), "apps")
    untagged = "nginx@sha256:" + "c" * 64
    config["custom-services"] = [config["custom-services"][0] | {"image": untagged}]
    assert_one_problem(
        config,
        example_secrets(load_stack_file(EXAMPLES / "multi-host.yaml")),
        str(tmp_path),
        # At the image's own key, not the host's flag (issue 23: the fix is made there).
        "custom-services[0].image",
        f"{untagged!r} has no tag, and host 'apps' takes its images from a bundle",
    )


def test_backup_and_drill_helpers_run_the_tag_on_such_a_host() -> None:
    from automation.backup import host_backup

    raw = flagged(load_stack_file(EXAMPLES / "multi-host.yaml"), "apps")
    pin = "offen/docker-volume-backup:v2.48.2@sha256:" + "d" * 64
    raw["backup"] = raw.get("backup", {}) | {"image": pin}
    config = validate(raw)
    apps, ops = host_backup(config, "apps"), host_backup(config, "ops")
    assert apps.image == "offen/docker-volume-backup:v2.48.2" and ops.image == pin
    assert apps.image_on_host(IMAGES["postgres"]) == IMAGES["postgres"].split("@", 1)[0]
    assert ops.image_on_host(IMAGES["postgres"]) == IMAGES["postgres"]


def image_archive(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_an_image_archive_that_holds_a_name_twice_is_refused(tmp_path: Path) -> None:
    """`docker load` unpacks to disk, where the later `./<config>.json` replaces the one whose
    digest was checked: the image loaded would not be the image verified."""
    config = b'{"config": {"Cmd": ["/bin/true"]}}'
    name = hashlib.sha256(config).hexdigest() + ".json"
    index = json.dumps([{"Config": name, "RepoTags": ["x:1"], "Layers": []}]).encode()
    good = image_archive(tmp_path / "good.tar", [("manifest.json", index), (name, config)])
    assert bundle.archive_image(good) == ("sha256:" + name.removesuffix(".json"), ["x:1"])
    evil = [("manifest.json", index), (name, config), (f"./{name}", b'{"config": {"Cmd": ["/evil"]}}')]
    with pytest.raises(BundleError, match=re.escape(f"holds {name} more than once")):
        bundle.archive_image(image_archive(tmp_path / "evil.tar", evil))


def test_an_image_archive_restores_its_recorded_tag_and_no_other() -> None:
    """Another tag in RepoTags would move that tag, on the host, to this image."""
    assert bundle._restores(["docker.io/library/x:1"], "x:1")
    assert not bundle._restores(["x:1", "postgres:17.11-alpine"], "x:1")
    assert not bundle._restores([], "x:1")


def test_a_manifest_that_gives_a_key_twice_is_refused(plain_bundle: Path, tmp_path: Path) -> None:
    """json.loads keeps the last value: a file listed twice, once with a wrong hash, passed."""
    text = members(plain_bundle)["manifest.json"]
    assert text is not None
    twice = text.decode().replace('"files": {', '"files": {"plugins/x": "0", "plugins/x": "1", ', 1)
    bad = members(plain_bundle) | {"manifest.json": twice.encode()}
    assert_refused(write_tar_gz(tmp_path / "twice.tar.gz", bad), tmp_path / "w", "given more than once")


def test_setup_stopped_by_sigterm_removes_what_it_extracted(plain_bundle: Path, tmp_path: Path) -> None:
    """A timer's SIGTERM (or Ctrl-C) while the bundle is extracted: the extracted copy (as large
    as the bundle) is removed and the command says so, instead of dying with it left in /tmp."""
    import signal
    import subprocess
    import sys
    import time

    stack_file = tmp_path / "Pulumi.b.yaml"
    stack_file.write_text("config:\n  homelab:domain: lab.example.com\n")
    started = tmp_path / "extracting"
    script = f"""
import pathlib, sys, time
sys.path.insert(0, {str(ROOT)!r})
from automation import bundle, cli
from automation import validate as offline
def slow(path, root):
    (root / "big").write_bytes(b"x" * 1000)
    pathlib.Path({str(started)!r}).touch()
    time.sleep(60)
bundle._extract = slow
original, stack_file = offline.load, pathlib.Path({str(stack_file)!r})
offline.load = lambda project_dir, stack, *a, **k: original(project_dir, stack, path=stack_file)
sys.exit(cli.main(["setup", {str(plain_bundle)!r}, "--stack", "b"]))
"""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if started.exists():
            break
        time.sleep(0.05)
    assert started.exists(), process.stderr.read() if process.poll() is not None and process.stderr else ""
    assert [p.name for p in temp.iterdir() if p.name.startswith("homelab-bundle-")]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    assert "setup was interrupted: what it had extracted is removed" in stderr
    assert [p.name for p in temp.iterdir() if p.name.startswith("homelab-bundle-")] == []
