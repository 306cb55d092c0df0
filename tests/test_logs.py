"""Bounded logs (issue 26 item 2): every container the program registers rotates its logs
with the driver and sizes of `logs` (Docker's `local` driver, 5 files of 20 MB, by default),
bad values are refused naming the key, and the real engine accepts the registered options and
keeps a chatty container's logs within them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import (
    assert_one_problem,
    example_files,
    example_run,
    example_secrets,
    load_stack_file,
    run_program,
)

CONTAINER = "docker:index/container:Container"


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_container_of_every_example_rotates_its_logs(path: Path) -> None:
    containers = [r for r in example_run(path).resources if r.type == CONTAINER]
    assert containers
    for c in containers:
        assert c.inputs.get("logDriver") == "local", c.name
        assert c.inputs.get("logOpts") == {"max-size": "20m", "max-file": "5"}, c.name


def test_the_config_sets_driver_and_sizes(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "single-host.yaml"
    config = load_stack_file(path)
    config["logs"] = {"driver": "json-file", "max-size": "10m", "max-file": 3}
    mocks = run_program(config, example_secrets(config), key_dir=str(tmp_path))
    containers = [r for r in mocks.resources if r.type == CONTAINER]
    assert containers
    assert {(c.inputs["logDriver"], tuple(sorted(c.inputs["logOpts"].items()))) for c in containers} == {
        ("json-file", (("max-file", "3"), ("max-size", "10m")))
    }


@pytest.mark.parametrize(
    ("logs", "path", "fragment"),
    [
        ({"max-size": "10"}, "logs.max-size", "should match pattern"),
        ({"max-size": "0m"}, "logs.max-size", "should match pattern"),
        ({"max-size": "10 MB"}, "logs.max-size", "should match pattern"),
        ({"max-file": 0}, "logs.max-file", "greater than or equal to 1"),
        ({"driver": "syslog"}, "logs.driver", "'local' or 'json-file'"),
        ({"max-sise": "10m"}, "logs.max-sise", "unknown key"),
    ],
)
def test_bad_log_settings_name_the_key(tmp_path: Path, logs: dict, path: str, fragment: str) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "single-host.yaml"
    config = load_stack_file(example)
    secrets = example_secrets(config)
    config["logs"] = logs
    assert_one_problem(config, secrets, str(tmp_path), path, fragment)


# ---- the real engine -----------------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=120)


def log_options(args: list[str]) -> list[str]:
    """`docker run` options for what the program registers (components/docker/service.py)."""
    from components.docker.service import LogLimits

    limits = LogLimits(*args) if args else LogLimits()
    return [
        "--log-driver",
        limits.driver,
        *(a for k, v in limits.options().items() for a in ("--log-opt", f"{k}={v}")),
    ]


def test_the_engine_takes_the_registered_options_and_keeps_logs_bounded(busybox_image: str) -> None:
    """The defaults as the engine records them; then a container printing about 2 MB with
    `max-size: 100k, max-file: 2` keeps at most about 200 kB of logs on disk."""
    name = "t26-logs-" + busybox_image.rsplit(":", 1)[-1]
    docker("rm", "-f", name, check=False)
    docker("create", "--name", name, "--network", "none", *log_options([]), busybox_image, "true")
    try:
        config = docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", name).stdout.decode().strip()
        assert config == '{"Type":"local","Config":{"max-file":"5","max-size":"20m"}}'
    finally:
        docker("rm", "-f", name, check=False)

    line = "echo line $i of a chatty service $i $i $i $i $i $i $i $i"
    script = f"i=0; while [ $i -lt 20000 ]; do {line}; i=$((i+1)); done"
    run = docker(
        "run",
        "--name",
        name,
        "--network",
        "none",
        *log_options(["local", "100k", 2]),
        busybox_image,
        "sh",
        "-c",
        script,
    )
    try:
        assert run.returncode == 0
        logs = docker("logs", name).stdout
        assert logs.count(b"\n") < 20000  # rotated away: not every line is kept
        assert b"line 19999 " in logs  # the newest are
        root = docker("info", "-f", "{{.DockerRootDir}}").stdout.decode().strip()
        container_id = docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        on_disk = sum(
            f.stat().st_size for f in (Path(root) / "containers" / container_id).rglob("*log*") if f.is_file()
        )
        # Two files of 100 kB at most, the rotated one compressed (and found: not a vacuous bound).
        assert 10 * 1024 < on_disk < 2 * 100 * 1024 + 64 * 1024, on_disk
    finally:
        docker("rm", "-f", name, check=False)
