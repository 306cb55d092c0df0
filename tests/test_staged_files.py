"""Staged files on the real engine (issue 26 item 1, issue 23 item 3).

Grafana's stager as the single-host example registers it (its script, user, network,
capabilities, volumes and uploads), run on the Docker engine here with the busybox image: the
uploads go in through the archive API at "/", as the provider puts them (a tar of every file
by its full path: kreuzwerker/terraform-provider-docker internal/provider/
resource_docker_container_funcs.go, `dstPath := "/"`). Then a container with Grafana's
registered mounts, user 472 and a read-only root filesystem reads its admin password, which
belongs to it alone (0400), cannot write where its files are, and another user cannot read it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
from harness import ROOT, example_run, files, stager_of

CONTAINER = "docker:index/container:Container"
PASSWORD = "/run/homelab/admin-password"


def docker(*args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=120, input=stdin)


def as_tar(uploads: list[dict]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for u in uploads:
            data = u["content"].encode()
            info = tarfile.TarInfo(u["file"].lstrip("/"))
            info.size, info.mode = len(data), 0o755 if u.get("executable") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def grafana():
    lab = example_run(ROOT / "examples" / "single-host.yaml")
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-grafana"]
    return c


@pytest.fixture
def volumes():
    made: list[str] = []

    def make() -> str:
        name = f"t26-files-{uuid.uuid4().hex[:8]}"
        docker("volume", "create", name)
        made.append(name)
        return name

    yield make
    for name in made:
        docker("volume", "rm", "-f", name, check=False)


def run_stager(stager, busybox_image: str, volume_of: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    i = stager.inputs
    caps = i["capabilities"]
    flags = ["--entrypoint", i["entrypoints"][0], "-u", i["user"], "--network", i["networkMode"]]
    flags += [f"--security-opt={o}" for o in i["securityOpts"]]
    flags += [f"--cap-drop={c}" for c in caps["drops"]] + [f"--cap-add={c}" for c in caps.get("adds", [])]
    flags += [f"-v{volume_of[v['volumeName']]}:{v['containerPath']}" for v in i["volumes"]]
    name = f"t26-stager-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", name, *flags, busybox_image, *i["entrypoints"][1:], *i["command"])
    try:
        docker("cp", "-", f"{name}:/", stdin=as_tar(i["uploads"]))
        return docker("start", "-a", name, check=False)
    finally:
        docker("rm", "-f", name, check=False)


def test_the_engine_stages_files_with_their_owner_and_a_read_only_container_reads_them(
    busybox_image, grafana, volumes
):
    stager = stager_of(grafana)
    volume_of = {v["volumeName"]: volumes() for v in stager.inputs["volumes"]}
    # A file an older config staged: the stager's run removes it.
    first = next(iter(volume_of.values()))
    docker("run", "--rm", "-v", f"{first}:/v", busybox_image, "sh", "-c", "echo old > /v/stale.yaml")

    run = run_stager(stager, busybox_image, volume_of)
    assert run.returncode == 0, run.stderr.decode()

    mounts = [
        f"-v{volume_of[m['volumeName']]}:{m['containerPath']}:ro"
        for m in grafana.inputs["volumes"]
        if m.get("volumeName") in volume_of
    ]
    assert len(mounts) == len(volume_of)
    dirs = " ".join(sorted({str(Path(p).parent) for p in files(grafana)}))
    script = (
        f"cat {PASSWORD}; echo; stat -c '%u %a' {PASSWORD}; "
        f"(echo x > {PASSWORD}.new) 2>/dev/null && echo writable || echo read-only; "
        f"ls {dirs}"
    )
    base = ["run", "--rm", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges=true", *mounts]
    seen = docker(*base, "-u", "472", busybox_image, "sh", "-c", script).stdout.decode().splitlines()
    want = files(grafana)
    assert seen[0] == want[PASSWORD]
    assert seen[1:3] == ["472 400", "read-only"]
    listed = set(seen[3:])
    for path in want:
        if path != PASSWORD:
            assert Path(path).name in listed, path
    assert (
        "stale.yaml" not in listed
        and "stale.yaml"
        not in docker("run", "--rm", "-v", f"{first}:/v", busybox_image, "ls", "/v").stdout.decode()
    )
    # Another user (nobody) cannot read Grafana's password.
    other = docker(*base, "-u", "65534", busybox_image, "cat", PASSWORD, check=False)
    assert other.returncode != 0 and want[PASSWORD].encode() not in other.stdout
