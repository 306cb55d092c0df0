"""Benchmark: a restore on the real Docker engine against the floor of the same work done
with nothing in between (`age -d | tar -xz` into a directory), and how long the service is
down.

Makes what tests/test_restore.py makes (a busybox image imported from Debian's static busybox,
tests/engine.py; a stack file with one stateful custom service; its volume and running
container), fills an archive in the backup engine's layout (`/backup/<volume>/...`, gzip,
age-encrypted to an ssh-ed25519 key) with FILES files of MB megabytes in all (random data: no
compression gains), then times, ROUNDS times each:

- floor: `age --decrypt -i KEY ARCHIVE | tar -xz -C DIR` on this machine (decrypt, gunzip,
  write every file), into an empty directory;
- restore: `python -m automation restore --archive ARCHIVE [--via V]` (one pass: decrypt,
  check and stage the files beside the old ones while the service runs; then stop it, swap,
  start it);
- down: the first service's `stop` to the last one's `start`, from the engine's events;
- by name: `restore --archive NAME`: on this local engine the archive is read where it is
  in the host's backup directory (automation/backup.py archive_here);
- copy out: what an SSH host's archive costs first, `copy_out` (`docker cp` out of a
  container never started) of the same archive, in MB/s.

The median of each and the ratios restore/floor and down/floor are printed. Needs a Docker
engine (scripts/start-dockerd.sh), busybox-static and age; takes about ROUNDS x 3 x the
floor.

    python bench/bench_restore.py                   # 200 MB in 4000 files, 3 rounds
    python bench/bench_restore.py --mb 1300 --files 22000 --json
    python bench/bench_restore.py --volumes 6         # a whole host: 6 services' volumes
    python bench/bench_restore.py --via helper        # staged by a helper container (SSH hosts)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from engine import docker, engine_problem, import_busybox_image, ssh_age_key  # noqa: E402

SERVICE = ("sh", "-c", 'trap "exit 0" TERM; sleep 100000 & wait')


def write_archive(path: Path, volumes: list[str], mb: int, files: int, recipient: str, folder: Path) -> None:
    """An engine-layout archive of `files` random files, `mb` MB in all, spread evenly over
    `volumes`, encrypted with age."""
    size = max(1, mb * 1_000_000 // files)
    plain = folder / "plain.tar.gz"
    with gzip.open(plain, "wb", compresslevel=1) as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        for name in ("/backup", *(f"/backup/{v}" for v in volumes)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            volume = volumes[i * len(volumes) // files]
            if i % 100 == 0:
                info = tarfile.TarInfo(f"/backup/{volume}/d{i // 100}")
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            info = tarfile.TarInfo(f"/backup/{volume}/d{i // 100}/f{i}")
            info.size, info.mode, info.uid, info.gid = size, 0o600, 70, 70
            tar.addfile(info, io.BytesIO(os.urandom(size)))
    recipients = folder / "recipients.txt"
    recipients.write_text(recipient + "\n")
    subprocess.run(["age", "-R", str(recipients), "-o", str(path), str(plain)], check=True)
    plain.unlink()


def floor(archive: Path, key: Path, folder: Path) -> float:
    target = folder / "floor"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    start = time.perf_counter()
    subprocess.run(
        f"set -o pipefail; age --decrypt -i {key} {archive} | tar -xz -C {target} 2>/dev/null",
        shell=True,
        check=True,
        executable="/bin/bash",
    )
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def restore(
    archive: Path | str, key: Path, stack_file: Path, image: str, containers: list[str], via: str = "auto"
) -> tuple[float, float]:
    """(the restore's time, the time from the first service's stop to the last one's start)."""
    since = time.time()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "automation", "restore", "--archive", str(archive), "--identity", str(key),
         "--helper-image", image, "--host", "local", "--file", str(stack_file), "--via", via],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"restore failed: {result.stderr}")
    seen = docker(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.1:.3f}",
        *(a for c in containers for a in ("--filter", f"container={c}")),
        "--format", "{{.TimeNano}} {{.Action}}",
    ).stdout.decode().split("\n")  # fmt: skip
    events = [(int(n) / 1e9, action) for n, action in (line.split() for line in seen if line)]
    stops = [t for t, action in events if action == "stop"]
    starts = [t for t, action in events if action == "start"]
    return elapsed, max(starts) - min(stops)


def copy_out_seconds(stack_file: Path, image: str, archive: Path, folder: Path) -> float:
    """automation/backup.py copy_out of `archive` from the host's backup directory."""
    from automation import backup as backups
    from automation import validate as offline

    hb = backups.host_backup(offline.load(stack_file.parent, "bench", stack_file, False), "local")
    dest = folder / "copied"
    start = time.perf_counter()
    backups.copy_out(hb, backups.DockerCli(hb.docker_host), image, archive.name, dest)
    elapsed = time.perf_counter() - start
    dest.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=1, help="services, one volume each, sharing the files")
    parser.add_argument(
        "--via",
        choices=("auto", "host", "helper"),
        default="auto",
        help="restore --via (how files are staged)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    problem = engine_problem() or (None if shutil.which("age") else "the age tool is not installed")
    if problem:
        raise SystemExit(f"cannot run: {problem}")
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        folder = Path(tmp)
        image, why = import_busybox_image(folder)
        if image is None:
            raise SystemExit(f"cannot run: {why}")
        prefix = f"b27-{uuid.uuid4().hex[:8]}"
        services = [f"s{i}" for i in range(args.volumes)]
        volumes = [f"{prefix}_{s}_db".replace("-", "_") for s in services]
        containers = [f"{prefix}-{s}" for s in services]
        key_file = folder / "backup.key"
        recipient = ssh_age_key(key_file)
        off = {"enabled": False}
        builtins = ("portainer", "prometheus", "grafana", "cadvisor", "node-exporter", "mysql", "landing")
        config = {
            "homelab:name": prefix,
            "homelab:hosts": [{"name": "local", "address": "local", "root": str(folder)}],
            "homelab:tls": {"enabled": False},
            "homelab:backup": {"directory": str(folder / "archives")},
            "homelab:services": {name: off for name in builtins},
            "homelab:custom-services": [
                {"name": s, "image": image, "volumes": [{"name": "db", "path": "/var/lib/db"}]}
                for s in services
            ],
        }
        stack_file = folder / "Pulumi.bench.yaml"
        stack_file.write_text(yaml.safe_dump({"config": config}))
        (folder / "archives").mkdir()
        archive = folder / "archives" / f"{prefix}-local-2026-01-01T04-00-00.tar.gz.age"
        try:
            for volume, container in zip(volumes, containers, strict=True):
                docker("volume", "create", volume)
                mount = f"{volume}:/var/lib/db"
                docker("run", "-d", "--network", "none", "--name", container, "-v", mount, image, *SERVICE)
            write_archive(archive, volumes, args.mb, args.files, recipient, folder)
            archive_size = archive.stat().st_size
            floors, restores, downs, by_name, copies = [], [], [], [], []
            for _ in range(args.rounds):
                floors.append(floor(archive, key_file, folder))
                elapsed, down = restore(archive, key_file, stack_file, image, containers, args.via)
                restores.append(elapsed)
                downs.append(down)
                by_name.append(restore(archive.name, key_file, stack_file, image, containers, args.via)[0])
                copies.append(copy_out_seconds(stack_file, image, archive, folder))
        finally:
            docker("rm", "-f", *containers, check=False)
            docker("volume", "rm", "-f", *volumes, check=False)
            docker("rmi", "-f", image, check=False)
    result = {
        "archive_mb": args.mb,
        "files": args.files,
        "volumes": args.volumes,
        "rounds": args.rounds,
        "via": args.via,
        "floor_s": round(statistics.median(floors), 2),
        "restore_s": round(statistics.median(restores), 2),
        "down_s": round(statistics.median(downs), 2),
        "by_name_s": round(statistics.median(by_name), 2),
    }
    result["copy_out_mb_per_s"] = round(archive_size / 1e6 / max(0.01, statistics.median(copies)))
    result["restore_over_floor"] = round(result["restore_s"] / result["floor_s"], 2)
    result["down_over_floor"] = round(result["down_s"] / result["floor_s"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"archive: {args.mb} MB in {args.files} files over {args.volumes} volume(s) (age, gzip), "
        f"{args.rounds} rounds, medians, --via {args.via}"
    )
    print(f"  floor   (age -d | tar -xz)  {result['floor_s']:7.2f} s")
    ratio = result["restore_over_floor"]
    print(f"  restore (python -m automation restore)  {result['restore_s']:7.2f} s  ({ratio}x)")
    print(f"  service down (stop -> start)  {result['down_s']:7.2f} s  ({result['down_over_floor']}x)")
    print(f"  by name (read in the host's backup directory)  {result['by_name_s']:7.2f} s")
    print(f"  copy out (docker cp, as for an SSH host)  {result['copy_out_mb_per_s']} MB/s")


if __name__ == "__main__":
    main()
