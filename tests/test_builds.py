"""Builds that produce the right image, with images whose facts were verified upstream.

- kaniko reads a real directory: git-sync publishes its checkout as a symlink (`--link`), and
  kaniko copies a symlinked context as the link itself (kaniko#1513), so an init container
  copies the tree and kaniko's `--context` is that copy, never the link or a path under it.
- Pulumi's wait for the Job outlasts the Job's own deadline (the default is 10 minutes).
- Every image the pipeline and platform name is the one of its contract, and the Job asks of
  each image only what its contract lists (user, binaries, shell).
- Every example Dockerfile builds as its base image's user: each `RUN` writes only where that
  user may write, by the base image's contract (its user and the directories it owns).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, RecordingMocks, example_secrets, load_stack_file, read_yaml, run_program

from components.contracts import ClusterImageContract, Fact, Seen, User
from components.pipeline import images as pipeline_images
from components.pipeline.manifests import BUILD_CONTEXT, GIT_LINK, BuildSpec, build_job, build_timeout
from components.platform import images as platform_images

JOB_T = "kubernetes:batch/v1:Job"
RELEASE_T = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> RecordingMocks:
    config = load_stack_file(ROOT / "examples" / "apps.yaml")
    return run_program(config, example_secrets(config), key_dir=str(tmp_path_factory.mktemp("keys")))


def jobs(mocks: RecordingMocks) -> list[Any]:
    found = mocks.of_type(JOB_T)
    assert len(found) == 3, [j.name for j in found]
    return found


def pod(job: Any) -> dict[str, Any]:
    return job.inputs["spec"]["template"]["spec"]


def by_name(job: Any) -> dict[str, dict[str, Any]]:
    spec = pod(job)
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def flag(c: dict[str, Any], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith(f"--{name}=")]
    return value


def seconds(duration: str) -> int:
    """A Pulumi custom timeout ("70m", "1h", "90s", "1h10m") in seconds."""
    parts = re.findall(r"(\d+)([hms])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# ---- the build context is a real directory ------------------------------------------------


def test_kaniko_context_is_not_the_git_sync_link(apps):
    for job in jobs(apps):
        containers = by_name(job)
        link = flag(containers["git-sync"], "link")
        context = flag(containers["kaniko"], "context").removeprefix("dir://")
        assert context != link and not context.startswith(link.rstrip("/") + "/"), (job.name, context)
        dockerfile = flag(containers["kaniko"], "dockerfile")
        assert not dockerfile.startswith(link.rstrip("/") + "/"), (job.name, dockerfile)


def test_the_context_is_a_copy_of_the_checked_out_tree_made_before_kaniko_runs(apps):
    for job in jobs(apps):
        spec = pod(job)
        init = [c["name"] for c in spec["initContainers"]]
        assert init == ["git-sync", "context"], init  # init containers run in order
        git_sync, copy, kaniko = (by_name(job)[n] for n in ("git-sync", "context", "kaniko"))
        link = flag(git_sync, "link")
        # cp -a <link>/. <dir>: the trailing /. resolves the link, -a keeps the tree's own links.
        assert copy["command"] == ["cp", "-a", f"{link}/.", BUILD_CONTEXT]
        assert flag(kaniko, "context").removeprefix("dir://").startswith(BUILD_CONTEXT)
        # All three share the workspace volume.
        for c in (git_sync, copy, kaniko):
            assert {"name": "workspace", "mountPath": "/workspace"} in c["volumeMounts"], c["name"]


def test_old_context_was_the_link():
    """The defect, kept as a regression check: the context must differ from the link."""
    job = build_job(
        BuildSpec("a", "p", "git@github.com:o/a.git", "main", "Dockerfile", None, "sub"), "r", "s", None
    )
    kaniko = job["spec"]["template"]["spec"]["containers"][0]
    context = flag(kaniko, "context")
    assert context == f"dir://{BUILD_CONTEXT}/sub"
    assert not context.startswith(f"dir://{GIT_LINK}")


# ---- Pulumi waits as long as the Job may run ----------------------------------------------


def test_job_create_timeout_covers_its_deadline(apps):
    for job in jobs(apps):
        deadline = int(job.inputs["spec"]["activeDeadlineSeconds"])
        timeouts = job.custom_timeouts
        assert "create" in timeouts and "update" in timeouts, (job.name, timeouts)
        assert seconds(timeouts["create"]) >= deadline, (job.name, timeouts, deadline)
        assert seconds(timeouts["update"]) >= deadline, (job.name, timeouts, deadline)


def test_timeout_helper_and_pulumi_default():
    assert seconds(build_timeout(3600)) >= 3600
    assert seconds(build_timeout(7200)) >= 7200
    # pulumi-kubernetes' default wait for a Job (10 minutes) is shorter than the deadline:
    # the old registration, without custom timeouts, failed every longer build.
    assert seconds("10m") < 3600


# ---- image contracts -----------------------------------------------------------------------

CONTRACTS: dict[str, ClusterImageContract] = {**pipeline_images.CONTRACTS, **platform_images.CONTRACTS}
# Pins as verified upstream (the tag in the image's repository): see each contract's sources.
VERIFIED_TAGS = {
    "git-sync": "v4.5.1",  # kubernetes/git-sync tags: v4.5.0, v4.5.1, then v4.6.0
    "kaniko": "v1.28.3",  # osscontainertools/kaniko: newest tag v1.28.3 (no v1.28.4)
    "otel-collector": "0.153.0",  # opentelemetry-collector-releases v0.153.0 = chart appVersion
    "jaeger": "2.20.0",  # jaegertracing/jaeger v2.20.0, the newest release (issue 22: Jaeger v2)
}


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_contract_is_complete_and_sourced(name):
    c = CONTRACTS[name]
    assert c.tag_name == VERIFIED_TAGS[name]
    assert re.match(r"^v?\d+\.\d+\.\d+$", c.tag_name), c.image
    assert c.runs, f"{name}: the program runs something in every image"
    for what, seen in c.facts():
        # A repository, a file in it, and the tag it was read at: never from memory.
        assert re.match(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", seen.repo), (name, what, seen)
        assert seen.path and seen.ref, (name, what, seen)
    # The tag was read at the very tag that is pinned (or the release it belongs to).
    assert c.tag.ref.lstrip("v") == c.tag_name.lstrip("v"), (name, c.tag)


def test_the_job_uses_the_contracted_images_as_their_users(apps):
    images = {c.image: c for c in CONTRACTS.values()}
    for job in jobs(apps):
        spec = pod(job)
        for c in spec.get("initContainers", []) + spec["containers"]:
            contract = images.get(c["image"])
            assert contract is not None, f"{job.name}/{c['name']}: {c['image']} has no contract"
            run_as = c.get("securityContext", {}).get("runAsUser")
            if run_as is not None:
                assert int(run_as) == contract.uid, (c["name"], run_as)
            command = c.get("command")
            if command:
                # The program runs only what the contract lists; no shell where there is none.
                assert contract.runs_program(command[0]), (c["name"], command)
                if command[0] in ("sh", "/bin/sh", "bash"):
                    assert contract.shell.value, c["name"]
            else:
                assert contract.runs_program(contract.runs[0].value)  # the entrypoint


def test_kaniko_reads_its_docker_config_where_the_contract_says(apps):
    contract = pipeline_images.KANIKO_CONTRACT
    for job in jobs(apps):
        kaniko = by_name(job)["kaniko"]
        mount = next(m for m in kaniko["volumeMounts"] if m["name"] == "registry")
        volume = next(v for v in pod(job)["volumes"] if v["name"] == "registry")
        (item,) = volume["secret"]["items"]
        assert contract.allows_read(f"{mount['mountPath']}/{item['path']}")
        assert (contract.env_value("DOCKER_CONFIG") or "").rstrip("/") == mount["mountPath"]


def test_git_sync_reads_its_ssh_files_where_the_contract_says(apps):
    contract = pipeline_images.GIT_SYNC_CONTRACT
    for job in jobs(apps):
        git_sync = by_name(job)["git-sync"]
        assert contract.allows_read(flag(git_sync, "ssh-key-file"))
        assert contract.allows_read(flag(git_sync, "ssh-known-hosts-file"))


def test_collector_image_is_the_contracted_one(apps):
    values = apps.named("tracing-collector", RELEASE_T).inputs["values"]
    contract = platform_images.OTEL_COLLECTOR_CONTRACT
    assert f"{values['image']['repository']}:{values['image']['tag']}" == contract.image
    assert contract.runs_program("/" + values["command"]["name"])


# ---- example Dockerfiles build as their image's user ---------------------------------------


@dataclass(frozen=True)
class BaseImage:
    """What a Dockerfile's RUN may touch in a base image: its user and where that user writes."""

    contract: ClusterImageContract
    writable: tuple[str, ...]  # directories the image's user owns (recursively)


# nginx/docker-nginx-unprivileged stable/alpine-slim/Dockerfile @ e26803b6ff7c, the 1.30.4
# stable line (issue 21: 1.28 ended when 1.30.0 became stable; the -alpine image is
# FROM its -alpine-slim, stable/alpine/Dockerfile): ARG UID=101, `USER $UID`,
# `chown -R $UID:0 /var/cache/nginx` and `chown -R $UID:0 /etc/nginx`; nothing else is chowned
# (/usr/share/nginx/html stays root's). /tmp is world-writable in every image.
NGINX_SLIM = Seen("nginx/docker-nginx-unprivileged", "stable/alpine-slim/Dockerfile", "e26803b6ff7c")
BASE_IMAGES = {
    "nginxinc/nginx-unprivileged:1.30.4-alpine": BaseImage(
        ClusterImageContract(
            image="nginxinc/nginx-unprivileged:1.30.4-alpine",
            # the workflow tags <major>.<minor>.<patch>-alpine from stable/alpine's NGINX_VERSION
            tag=Seen(
                "nginx/docker-nginx-unprivileged", ".github/workflows/alpine-stable.yml", "e26803b6ff7c"
            ),
            user=Fact(User("nginx", 101), NGINX_SLIM),
            shell=Fact(True, NGINX_SLIM),  # FROM alpine
            runs=(Fact("nginx", NGINX_SLIM),),
        ),
        writable=("/etc/nginx", "/var/cache/nginx", "/tmp"),
    )
}


def example_dockerfiles() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        config = read_yaml(path.read_text())["config"]
        for app in config.get("homelab:apps", []):
            if app.get("dockerfile-inline"):
                out.append((f"{path.name}:{app['name']}", app["dockerfile-inline"]))
    return out


def dockerfile_steps(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) with line continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def written_paths(command: str) -> list[str]:
    """Paths a shell command writes: redirection targets, mkdir/touch/cp/install/tee/sed -i
    operands. Enough for Dockerfile one-liners; an unknown writer fails the test instead."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    segments: list[list[str]] = [[]]
    out: list[str] = []
    for i, token in enumerate(tokens):
        if token in (">", ">>") and i + 1 < len(tokens):
            out.append(tokens[i + 1])
        if token in ("&&", "||", ";", "|", ">", ">>"):
            segments.append([])
        else:
            segments[-1].append(token)
    for words in segments:
        if not words or words[0] in out:
            continue
        verb, operands = words[0], [w for w in words[1:] if not w.startswith("-")]
        if verb in ("mkdir", "touch", "tee"):
            out += operands
        elif verb in ("cp", "mv", "install", "ln") and operands or verb == "sed" and "-i" in words:
            out.append(operands[-1])
        elif verb in ("chmod", "chown", "rm", "apk", "apt-get", "useradd", "adduser"):
            raise AssertionError(f"{verb} in a RUN: say in the test what it may touch")
    return [p for p in out if not p.startswith("&")]


def writable_by(path: str, base: BaseImage) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in base.writable)


def build_problems(dockerfile: str) -> list[str]:
    problems, base, user = [], None, None
    for instruction, rest in dockerfile_steps(dockerfile):
        if instruction == "FROM":
            base = BASE_IMAGES.get(rest.split()[0])
            if base is None:
                return [f"{rest}: no contract for this base image"]
            user = str(base.contract.uid)
        elif instruction == "USER":
            user = rest
        elif instruction == "RUN":
            assert base is not None
            if user in ("0", "root"):
                continue
            if user != str(base.contract.uid):
                problems.append(f"RUN as {user}: the contract knows only uid {base.contract.uid}")
                continue
            problems += [
                f"RUN writes {p} as uid {user}, which does not own it"
                for p in written_paths(rest)
                if not writable_by(p, base)
            ]
    return problems


def test_examples_have_inline_dockerfiles():
    assert [name for name, _ in example_dockerfiles()] == ["apps.yaml:hello"]


@pytest.mark.parametrize(("name", "dockerfile"), example_dockerfiles())
def test_example_dockerfile_builds_as_its_images_user(name, dockerfile):
    assert build_problems(dockerfile) == [], name
    # And it stays the image's (non-root) user: the pod runs with runAsNonRoot.
    users = [rest for instruction, rest in dockerfile_steps(dockerfile) if instruction == "USER"]
    assert not users or users[-1] not in ("0", "root"), name


def test_the_old_hello_dockerfile_is_caught():
    old = (
        "FROM nginxinc/nginx-unprivileged:1.30.4-alpine\n"
        "RUN echo 'hello from the homelab platform' > /usr/share/nginx/html/index.html\n"
        "EXPOSE 8080\n"
    )
    assert build_problems(old) == [
        "RUN writes /usr/share/nginx/html/index.html as uid 101, which does not own it"
    ]
    assert build_problems(old.replace("1.30.4", "1.28.0")) == [
        "nginxinc/nginx-unprivileged:1.28.0-alpine: no contract for this base image"
    ]


# ---- ... and really build, with Docker, on a stand-in of the base image --------------------
#
# The base image cannot be pulled here, so the test builds a stand-in from the facts of its
# contract: a static BusyBox for the shell and tools, the image's user (uid 101) as the last
# USER, /etc/nginx owned by that user and /usr/share/nginx/html by root (the upstream
# Dockerfile's `chown -R $UID:0 /etc/nginx`). Docker then runs each RUN as that user, so a
# write the user may not make fails the build, as it would in kaniko.

BUSYBOX = "/bin/busybox"


def docker(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder: nothing to pull for FROM scratch
    return subprocess.run(["docker", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Iterator[str]:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on PATH")
    try:
        info = docker("info")
    except subprocess.TimeoutExpired:
        pytest.skip("`docker info` timed out: no Docker engine (scripts/start-dockerd.sh)")
    if info.returncode != 0:
        pytest.skip(f"no Docker engine (scripts/start-dockerd.sh): {info.stderr.strip()}")
    if not Path(BUSYBOX).is_file():
        pytest.skip(f"no static BusyBox at {BUSYBOX} (scripts/install-tools.sh installs busybox-static)")
    base = BASE_IMAGES["nginxinc/nginx-unprivileged:1.30.4-alpine"]
    uid = base.contract.uid
    folder = tmp_path_factory.mktemp("stand-in")
    root = folder / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        f"root:x:0:0::/root:/bin/sh\nnginx:x:{uid}:{uid}::/nonexistent:/bin/false\n"
    )
    (root / "usr" / "share" / "nginx" / "html").mkdir(parents=True)
    (root / "usr" / "share" / "nginx" / "html" / "index.html").write_text("upstream page\n")
    owned = folder / "etc-nginx"
    (owned / "conf.d").mkdir(parents=True)
    (owned / "conf.d" / "default.conf").write_text("server {\n  listen 8080;\n}\n")
    (folder / "Dockerfile").write_text(
        f"FROM scratch\nCOPY rootfs/ /\nCOPY --chown={uid}:0 etc-nginx/ /etc/nginx/\nUSER {uid}\n"
    )
    tag = f"homelab-test-nginx-stand-in:{os.getpid()}"
    built = docker("build", "-q", "-t", tag, ".", cwd=str(folder))
    assert built.returncode == 0, built.stderr
    yield tag
    docker("rmi", "-f", tag)


def build_on(stand_in: str, dockerfile: str, folder: Path) -> subprocess.CompletedProcess[str]:
    lines = dockerfile.splitlines()
    assert lines[0].startswith("FROM ")
    (folder / "Dockerfile").write_text("\n".join([f"FROM {stand_in}", *lines[1:]]) + "\n")
    tag = f"homelab-test-example-build:{os.getpid()}-{folder.name}"
    # --force-rm: the classic builder keeps a failed RUN step's container unless told ("Always
    # remove intermediate containers, even after unsuccessful builds. The default is false.",
    # the docker build manual page). --network none: the RUN steps fetch nothing.
    result = docker("build", "--no-cache", "--force-rm", "--network", "none", "-t", tag, ".", cwd=str(folder))
    docker("rmi", "-f", tag)
    return result


@pytest.mark.parametrize(("name", "dockerfile"), example_dockerfiles())
def test_example_dockerfile_builds_with_docker_as_the_images_user(stand_in, tmp_path, name, dockerfile):
    result = build_on(stand_in, dockerfile, tmp_path)
    assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"


def test_the_old_hello_dockerfile_fails_with_docker(stand_in, tmp_path):
    old = (
        "FROM nginxinc/nginx-unprivileged:1.28.0-alpine\n"
        "RUN echo 'hello from the homelab platform' > /usr/share/nginx/html/index.html\n"
        "EXPOSE 8080\n"
    )
    result = build_on(stand_in, old, tmp_path)
    assert result.returncode != 0
    assert "Permission denied" in result.stdout + result.stderr
