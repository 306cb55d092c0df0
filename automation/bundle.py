"""The offline release bundle (the `release.yml`/`setup.yml` playbooks).

`release` packs, on a machine with network access, everything a deployment needs into one
`.tar.gz`: the pinned images of the enabled services (`docker save`), the Python wheels of
`requirements.txt` (`pip download`), the Pulumi plugins, and a `manifest.json` with the
sha256 of every file. `setup` unpacks it on the offline side: it verifies the whole bundle
first (every file against the manifest, nothing missing or extra, no unsafe archive member,
each image archive holding the image the manifest records) and only then loads the images
into each Docker host, installs the wheels and copies the plugins. A truncated or altered
bundle is refused before anything is loaded.

Images pinned by digest (`name:tag@sha256:<digest>`). The engine checks the digest when it
pulls; `docker save` / `docker load` do not carry it, so on the classic image store a loaded
image answers neither `name@sha256:...` nor `name:tag@sha256:...` (moby/moby#22011), and a
pull of it fails offline. So `release` pulls each image by its full pin (when not present
already; found locally, a digest reference only answers for an image the engine pulled or
pushed under that digest), tags it `name:tag` and saves it under that tag, so that `docker
load` restores the tag; the manifest records for each pin the tag and the image ID (the
sha256 of the image's config, read from the saved archive). `setup` refuses an archive whose
config or tag differs from the record before loading anything, and after each load checks
that the tag names an image with the recorded ID on that host. The program then finds the
images of a host with `images-from-bundle: true` by their tag (components/docker/host.py).

The ID is the config digest on the classic image store only: on the containerd image store
(the default of fresh Docker Engine 29 installs) `docker image inspect` reports the image's
manifest or index digest as its ID (moby docker-v29.7.2 daemon/containerd/image_inspect.go),
which a bundle made elsewhere cannot predict; `setup` refuses such a host before loading,
saying so, rather than load images it cannot check.

Layout of a bundle:

    manifest.json          {"version": 2, "images": {ref: {"archive": path, "tag": name:tag,
                            "id": sha256:...}}, "files": {path: sha256}}
    images/<name>.tar      one `docker save` archive per image, holding its tag
    wheels/*.whl           when made with requirements
    requirements.txt       the requirements the wheels were downloaded for
    plugins/...            a copy of ~/.pulumi/plugins (lock and partial markers left out)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from components.docker.reference import tagged_name
from components.homelab.images import IMAGES
from stacks.config import StackConfig

MANIFEST = "manifest.json"
VERSION = 2  # 2: each image records its tag and ID (1 had its archive only)
IMAGES_DIR = "images"
WHEELS_DIR = "wheels"
PLUGINS_DIR = "plugins"
REQUIREMENTS = "requirements.txt"
CHUNK = 1 << 20
IMAGE_KEYS = ("archive", "tag", "id")
_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# `docker info`'s DriverStatus on the containerd image store: [["driver-type", this]]
# (moby docker-v29.7.2 daemon/containerd/service.go LayerStoreStatus, daemon/info.go).
CONTAINERD_STORE = "io.containerd.snapshotter.v1"


class BundleError(RuntimeError):
    """A bundle could not be made, is not intact, or could not be set up."""


def images_for(config: StackConfig, all_images: bool) -> list[str]:
    """The pinned images of the enabled services; with `all_images`, every image in IMAGES too."""
    images: set[str] = set()
    if config.layers.homelab:
        from stacks.plan import build_plan

        images |= {c.image for s in build_plan(config).services for c in s.containers}
    if all_images:
        images |= set(IMAGES.values())
    return sorted(images)


def default_plugins_dir() -> Path:
    """Where the Pulumi CLI keeps its plugins (`PULUMI_HOME`, else `~/.pulumi`)."""
    home = os.environ.get("PULUMI_HOME")
    return (Path(home) if home else Path.home() / ".pulumi") / "plugins"


# --- release --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_names(images: list[str]) -> dict[str, str]:
    """Image reference -> file name under images/ (readable, unique, no path separators)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for ref in images:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", ref).strip("._-") or "image"
        name = f"{base}.tar"
        if name in used:
            name = f"{base}-{hashlib.sha256(ref.encode()).hexdigest()[:12]}.tar"
        used.add(name)
        names[ref] = name
    return names


def _tail(text: str | bytes | None, lines: int = 15) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise BundleError(f"{what}: {args[0]} not found ({e.strerror})") from e


def _image_id(ref: str, docker: str, host: str | None = None) -> str | None:
    """The ID the engine reports for `ref`, or None when it has no image of that name."""
    where = ["-H", host] if host else []
    args = [docker, *where, "image", "inspect", "--format", "{{.Id}}", ref]
    result = _run(args, f"docker image inspect {ref}")
    return result.stdout.strip() if result.returncode == 0 else None


def _familiar(name: str) -> str:
    """A Docker Hub name without its implied `docker.io/` and `library/` (as `docker` shows it)."""
    name = name.removeprefix("docker.io/")
    return name.removeprefix("library/") if name.count("/") == 1 else name


def _restores(tags: list[str], tag: str) -> bool:
    """Whether an archive whose RepoTags are `tags` restores `tag` (spelled either way), and no
    other tag: `docker load` would move any other one it names to this image."""
    return {_familiar(t) for t in tags} == {_familiar(tag)}


def archive_image(path: Path) -> tuple[str, list[str]]:
    """(image ID, tags) of the one image a `docker save` archive holds.

    The ID is the sha256 of the image's config as the archive carries it; the tags are the
    `RepoTags` of its `manifest.json`, which `docker load` restores. Only the members that
    `manifest.json` names are read; nothing is extracted.
    """
    try:
        with tarfile.open(path, "r:") as archive:
            # `docker load` unpacks to disk, where a later member of one name (or of `./name`)
            # replaces an earlier one: the config read here would not be the one loaded.
            twice = _repeated(posixpath.normpath(m.name.lstrip("/")) for m in archive.getmembers())
            if twice:
                raise BundleError(f"{path.name}: holds {', '.join(twice[:3])} more than once")
            index = json.load(_tar_member(archive, "manifest.json"))
            if not isinstance(index, list) or len(index) != 1 or not isinstance(index[0], dict):
                count = len(index) if isinstance(index, list) else "no list of"
                raise BundleError(f"{path.name}: holds {count} images; a bundle's image archive holds one")
            config, tags = index[0].get("Config"), index[0].get("RepoTags") or []
            if not isinstance(config, str) or not isinstance(tags, list):
                raise BundleError(f"{path.name}: its manifest.json names no config")
            digest = hashlib.sha256()
            source = _tar_member(archive, config)
            while chunk := source.read(CHUNK):
                digest.update(chunk)
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        raise BundleError(f"{path.name} is not an image archive of `docker save` ({e})") from e
    return f"sha256:{digest.hexdigest()}", [str(t) for t in tags]


def _tar_member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    source = archive.extractfile(name)
    if source is None:
        raise KeyError(f"{name} is not a regular file")
    return source


def _save_images(images: list[str], staging: Path, docker: str) -> dict[str, dict[str, str]]:
    """Save each pin under its tag; ref -> {"archive": path, "tag": name:tag, "id": sha256:...}."""
    (staging / IMAGES_DIR).mkdir()
    records: dict[str, dict[str, str]] = {}
    for ref, name in _safe_names(images).items():
        if not ref or ref.startswith("-"):
            raise BundleError(f"invalid image reference {ref!r}")
        tag = tagged_name(ref)
        if tag is None:
            raise BundleError(
                f"image {ref} has no tag: a bundle restores each image under its name:tag "
                "(docker load keeps no digest); pin it as name:tag@sha256:<digest>"
            )
        if _image_id(ref, docker) is None:
            # A digest reference answers locally only for an image the engine pulled (or
            # pushed) under that digest; pulling it is where the engine checks the digest.
            pulled = _run([docker, "pull", ref], f"docker pull {ref}")
            if pulled.returncode != 0:
                raise BundleError(
                    f"docker pull {ref} failed: release saves the image a pin names, present "
                    f"locally or pulled from its registry\n{_tail(pulled.stderr)}"
                )
        if tag != ref:
            tagged = _run([docker, "tag", ref, tag], f"docker tag {ref}")
            if tagged.returncode != 0:
                raise BundleError(f"docker tag {ref} {tag} failed:\n{_tail(tagged.stderr)}")
        rel = f"{IMAGES_DIR}/{name}"
        # Saved by its tag: the archive's RepoTags then hold it, and `docker load` restores it.
        result = _run([docker, "save", "-o", str(staging / rel), tag], f"docker save {tag}")
        if result.returncode != 0:
            raise BundleError(f"docker save {tag} failed:\n{_tail(result.stderr)}")
        image_id, tags = archive_image(staging / rel)
        if not _restores(tags, tag):
            raise BundleError(f"docker save {tag} wrote an archive without that tag (it has {tags})")
        if _image_id(tag, docker) != _image_id(ref, docker):
            raise BundleError(f"{tag} was tagged anew while the bundle was made: make it again")
        records[ref] = {"archive": rel, "tag": tag, "id": image_id}
    return records


def _download_wheels(requirements: Path, staging: Path) -> None:
    if not requirements.is_file():
        raise BundleError(f"no requirements file {requirements}")
    shutil.copyfile(requirements, staging / REQUIREMENTS)
    wheels = staging / WHEELS_DIR
    wheels.mkdir()
    args = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:"]
    result = _run([*args, "-r", str(requirements), "-d", str(wheels)], "pip download")
    if result.returncode != 0:
        raise BundleError(f"pip download -r {requirements} failed:\n{_tail(result.stderr)}")


def _copy_plugins(plugins_dir: Path, staging: Path) -> None:
    shutil.copytree(
        plugins_dir,
        staging / PLUGINS_DIR,
        symlinks=False,  # the bundle holds regular files only: links are copied as their targets
        ignore=shutil.ignore_patterns("*.lock", "*.partial"),
        ignore_dangling_symlinks=True,
    )


def _file_hashes(root: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST or path.is_dir():
            continue
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"{rel}: not a regular file; a bundle holds regular files only")
        files[rel] = _sha256(path)
    return files


def _pack_pigz(staging: Path, entries: list[str], out: Path, jobs: int, tar: str, pigz: str) -> None:
    with tempfile.TemporaryFile() as tar_err, tempfile.TemporaryFile() as pigz_err, out.open("wb") as f:
        packer = subprocess.Popen(
            [tar, "-cf", "-", "-C", str(staging), *entries], stdout=subprocess.PIPE, stderr=tar_err
        )
        assert packer.stdout is not None
        try:
            compressor = subprocess.Popen(
                [pigz, "-p", str(jobs), "-c"], stdin=packer.stdout, stdout=f, stderr=pigz_err
            )
        finally:
            packer.stdout.close()  # pigz holds the read end; tar gets SIGPIPE if pigz dies
        pigz_rc, tar_rc = compressor.wait(), packer.wait()
        for name, rc, err in (("tar", tar_rc, tar_err), ("pigz", pigz_rc, pigz_err)):
            if rc != 0:
                err.seek(0)
                raise BundleError(f"{name} failed while writing {out} (exit {rc}):\n{_tail(err.read())}")


def _reset_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _pack_tarfile(staging: Path, entries: list[str], out: Path) -> None:
    with tarfile.open(out, "w:gz", compresslevel=6) as archive:
        for entry in entries:
            archive.add(staging / entry, arcname=entry, filter=_reset_owner)


def release(
    out: Path,
    images: list[str],
    requirements: Path | None,
    plugins_dir: Path | None,
    docker: str = "docker",
    jobs: int | None = None,
) -> Path:
    """Write the bundle to `out` (a `.tar.gz`; a directory gets `homelab-bundle.tar.gz`).

    Compressed with `pigz -p <jobs>` when pigz is on PATH, else with Python's gzip. The file
    appears only when complete (written next to it, then renamed).
    """
    out = Path(out)
    if out.is_dir():
        out = out / "homelab-bundle.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Staging next to the output: images are large and /tmp is often small (or tmpfs).
    staging = Path(tempfile.mkdtemp(prefix=".homelab-bundle-", dir=out.parent))
    partial = out.with_name(out.name + ".partial")
    try:
        image_records = _save_images(sorted(set(images)), staging, docker)
        if requirements is not None:
            _download_wheels(Path(requirements), staging)
        if plugins_dir is not None and Path(plugins_dir).is_dir():
            _copy_plugins(Path(plugins_dir), staging)
        manifest = {"version": VERSION, "images": image_records, "files": _file_hashes(staging)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # manifest.json first, so a reader meets it before the (large) images.
        entries = [MANIFEST] + sorted(p.name for p in staging.iterdir() if p.name != MANIFEST)
        pigz, tar = shutil.which("pigz"), shutil.which("tar")
        if pigz and tar:
            _pack_pigz(staging, entries, partial, jobs or os.cpu_count() or 1, tar, pigz)
        else:
            _pack_tarfile(staging, entries, partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return out


# --- verify ---------------------------------------------------------------------------------


def _member_path(member: tarfile.TarInfo) -> str:
    """The member's relative path, or BundleError for anything that could escape or is not data."""
    name = member.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise BundleError(f"unsafe member {name!r}: absolute path")
    if ".." in path.parts or "\\" in name:
        raise BundleError(f"unsafe member {name!r}: path leaves the bundle")
    if not (member.isreg() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        raise BundleError(f"unsafe member {name!r}: {kind}; a bundle holds regular files only")
    rel = path.as_posix()
    if rel == "." and not member.isdir():
        raise BundleError(f"unsafe member {name!r}: a file without a name")
    return rel


def _copy_member(source: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    with target.open("xb") as f:  # "x": a name seen twice is refused, never overwritten
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def _extract(bundle: Path, root: Path) -> dict[str, str]:
    """Extract in one pass, hashing as it goes: relative path -> sha256 of every file."""
    hashes: dict[str, str] = {}
    dirs: set[str] = set()
    try:
        with tarfile.open(bundle, "r|gz") as archive:
            for member in archive:
                rel = _member_path(member)
                if rel in hashes or (member.isreg() and rel in dirs):
                    raise BundleError(f"{rel}: appears more than once in the bundle")
                target = root / rel
                if member.isdir():
                    dirs.add(rel)
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                hashes[rel] = _copy_member(source, target)
                target.chmod(0o755 if member.mode & 0o100 else 0o644)
    except BundleError:
        raise
    except FileExistsError as e:
        raise BundleError(f"{e.filename}: appears more than once in the bundle") from e
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise BundleError(f"bundle {bundle} is truncated or corrupt ({e}); make it again with release") from e
    except OSError as e:
        raise BundleError(f"could not extract bundle {bundle}: {e}") from e
    return hashes


def _repeated(names: Iterable[str]) -> list[str]:
    """The names given more than once, sorted."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (json.loads would keep the last)."""
    twice = _repeated(k for k, _ in pairs)
    if twice:
        raise ValueError(f"the key {twice[0]!r} is given more than once")
    return dict(pairs)


def _check_manifest(bundle: Path, root: Path, hashes: dict[str, str]) -> dict[str, Any]:
    if MANIFEST not in hashes:
        raise BundleError(f"bundle {bundle} has no {MANIFEST}")
    try:
        manifest = json.loads((root / MANIFEST).read_text(), object_pairs_hook=_no_repeated_keys)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle {bundle}: {MANIFEST} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        version = manifest.get("version") if isinstance(manifest, dict) else None
        raise BundleError(f"bundle {bundle}: unsupported {MANIFEST} version {version!r} (expected {VERSION})")
    files, images = manifest.get("files"), manifest.get("images")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BundleError(f"bundle {bundle}: {MANIFEST} has no 'files' table of path -> sha256")
    if not isinstance(images, dict) or not all(
        isinstance(v, dict) and all(isinstance(v.get(k), str) for k in IMAGE_KEYS) for v in images.values()
    ):
        raise BundleError(
            f"bundle {bundle}: {MANIFEST} has no 'images' table of reference -> {{archive, tag, id}}"
        )
    problems = []
    for rel, expected in sorted(files.items()):
        actual = hashes.get(rel)
        if actual is None:
            problems.append(f"{rel}: listed in {MANIFEST} but missing from the bundle")
        elif actual != expected:
            problems.append(f"{rel}: sha256 mismatch (manifest {expected}, bundle {actual})")
    for rel in sorted(set(hashes) - set(files) - {MANIFEST}):
        problems.append(f"{rel}: in the bundle but not listed in {MANIFEST}")
    for ref, image in sorted(images.items()):
        if image["archive"] not in files:
            problems.append(f"image {ref}: its archive {image['archive']} is not listed in {MANIFEST}")
        elif image["archive"] in hashes and files[image["archive"]] == hashes[image["archive"]]:
            problems += _archive_problems(ref, image, root)
        if tagged_name(ref) != image["tag"]:
            problems.append(f"image {ref}: recorded under tag {image['tag']!r}, not its own name:tag")
        if not _ID_RE.match(image["id"]):
            problems.append(f"image {ref}: id {image['id']!r} is not sha256:<64 hex digits>")
    if problems:
        raise BundleError(
            f"bundle {bundle} failed verification, nothing was loaded ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems)
        )
    return manifest


def _archive_problems(ref: str, image: dict[str, str], root: Path) -> list[str]:
    """What is wrong with the archive of `ref`: another image, or without the recorded tag."""
    try:
        image_id, tags = archive_image(root / image["archive"])
    except BundleError as e:
        return [f"image {ref}: {e}"]
    problems = []
    if image_id != image["id"]:
        problems.append(f"image {ref}: its archive holds image {image_id}, {MANIFEST} has {image['id']}")
    if not _restores(tags, image["tag"]):
        problems.append(f"image {ref}: its archive does not restore the tag {image['tag']} (it has {tags})")
    return problems


def verify(bundle: Path, *, workdir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Extract `bundle` into a new temporary directory (under `workdir` when given) and check it.

    Returns (that directory, the manifest); the caller removes the directory. Raises
    `BundleError` (and leaves nothing behind) for an unsafe member, a truncated or corrupt
    archive, any file missing, extra or different from the manifest, or an image archive
    holding another image (by ID) or not the tag the manifest records.
    """
    bundle = Path(bundle)
    if not bundle.is_file():
        raise BundleError(f"no bundle at {bundle}")
    root = Path(tempfile.mkdtemp(prefix="homelab-bundle-", dir=workdir))
    try:
        manifest = _check_manifest(bundle, root, _extract(bundle, root))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root, manifest


# --- setup ----------------------------------------------------------------------------------


def _check_image_stores(hosts: dict[str, str], docker: str) -> None:
    """Refuse, before loading anything, a host whose engine reports image IDs setup cannot check."""
    for host, url in hosts.items():
        info = _run([docker, "-H", url, "info", "--format", "{{json .DriverStatus}}"], f"docker info {host}")
        if info.returncode != 0:
            raise BundleError(f"docker -H {host} info failed, nothing was loaded:\n{_tail(info.stderr)}")
        try:
            status = json.loads(info.stdout)
        except ValueError:
            status = None
        if isinstance(status, list) and ["driver-type", CONTAINERD_STORE] in status:
            raise BundleError(
                f"host {host}: its Docker engine uses the containerd image store, where an image's ID "
                "is its manifest digest, not the config digest the bundle records, so setup cannot "
                "check what it loads there; nothing was loaded. On a fresh host, switch the engine to "
                'the classic store ("features": {"containerd-snapshotter": false} in '
                "/etc/docker/daemon.json, then restart it) and run setup again."
            )


def _load_images(
    root: Path, images: dict[str, dict[str, str]], hosts: dict[str, str], docker: str
) -> dict[str, list[str]]:
    """Load every image into every host; after each load its tag must name the recorded ID."""
    loaded: dict[str, list[str]] = {}
    for host, url in hosts.items():
        loaded[host] = []
        for ref, image in sorted(images.items()):
            rel, tag = image["archive"], image["tag"]
            result = _run([docker, "-H", url, "load", "-i", str(root / rel)], f"docker load {ref}")
            if result.returncode != 0:
                raise BundleError(f"docker -H {host} load of {ref} ({rel}) failed:\n{_tail(result.stderr)}")
            found = _image_id(tag, docker, url)
            if found != image["id"]:
                raise BundleError(
                    f"host {host}: after loading {rel}, {tag} is image {found or 'missing'}, but the "
                    f"bundle records {image['id']} for {ref}: refused (wheels and plugins left as they were)"
                )
            loaded[host].append(ref)
    return loaded


def _install_wheels(root: Path, requirements_name: str) -> list[str]:
    wheels = sorted((root / WHEELS_DIR).glob("*.whl"))
    args = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index"]
    args += ["--find-links", str(root / WHEELS_DIR)]
    requirements = root / requirements_name
    # Without a requirements file in the bundle, install the wheels it carries as they are.
    args += ["-r", str(requirements)] if requirements.is_file() else [str(w) for w in wheels]
    result = _run(args, "pip install")
    if result.returncode != 0:
        raise BundleError(f"pip install from the bundle's wheels failed:\n{_tail(result.stderr)}")
    return [w.name for w in wheels]


def setup(
    bundle: Path,
    docker_hosts: list[str] | Mapping[str, str],
    install_wheels: bool = True,
    plugins_target: Path | None = None,
    docker: str = "docker",
    requirements_name: str = REQUIREMENTS,
) -> dict[str, Any]:
    """Verify `bundle`, then load its images into every Docker host (`unix://...`,
    `ssh://user@host:22`; or host -> the URL to reach it by, such as the local socket of an
    ssh bridge), install its wheels and copy its Pulumi plugins.

    Each image is loaded under the tag the manifest records, and that tag must then name the
    recorded image ID on the host; a host on the containerd image store is refused before
    anything is loaded (see the module docstring).

    Returns {"images": {host: [refs]}, "wheels": [names], "wheels_installed": bool,
    "plugins": [names]}.
    """
    root, manifest = verify(bundle)
    try:
        summary: dict[str, Any] = {"bundle": str(bundle)}
        targets = dict(docker_hosts) if isinstance(docker_hosts, Mapping) else {h: h for h in docker_hosts}
        if manifest["images"]:
            _check_image_stores(targets, docker)
        summary["images"] = _load_images(root, manifest["images"], targets, docker)
        wheels = sorted(p.name for p in (root / WHEELS_DIR).glob("*.whl"))
        summary["wheels"] = wheels
        summary["wheels_installed"] = False
        if wheels and install_wheels:
            _install_wheels(root, requirements_name)
            summary["wheels_installed"] = True
        summary["plugins"] = []
        plugins = root / PLUGINS_DIR
        if plugins_target is not None and plugins.is_dir():
            target = Path(plugins_target)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(plugins, target, dirs_exist_ok=True)
            summary["plugins"] = sorted(p.name for p in plugins.iterdir())
        return summary
    finally:
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["BundleError", "default_plugins_dir", "images_for", "release", "setup", "verify"]
