"""Benchmark: Docker API calls over the Docker provider's SSH transport, with and without the
shared (multiplexed) SSH connection.

Starts a real sshd on a loopback port (tests/sshd.py; needs root, Debian's openssh-server and
a Docker engine), runs the program under mocks with one SSH host pinned to that sshd's key,
and takes the Docker provider's registered `host` and `sshOpts`. Each call is what the
provider does for a new connection: start `ssh <options> <host> docker system dial-stdio`
(docker/cli v28.5.2 connhelper) and send `GET /_ping` over it. N calls run one after another
with the options as registered (ControlMaster/ControlPath/ControlPersist: the first call
opens the connection, the rest reuse it), then N with the same options minus those three
(a new SSH connection, key exchange and login per call, as before multiplexing).

    python bench/bench_ssh.py              # N=50, a table
    python bench/bench_ssh.py -n 200 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sshd  # noqa: E402
from harness import run_program  # noqa: E402

from components.docker.ssh import dial_stdio_command  # noqa: E402

CONTROL = ("ControlMaster", "ControlPath", "ControlPersist")


def registered_transport(server: sshd.Sshd, user_key: Path, key_dir: Path) -> tuple[str, list[str]]:
    """The Docker provider's host URL and ssh options for a host on `server`."""
    config = {
        "hosts": [
            {
                "name": "bench",
                "address": f"root@127.0.0.1:{server.port}",
                "private-key-secret": "bench-key",
                "host-key": server.host_key,
            }
        ]
    }
    lab = run_program(config, {"bench-key": user_key.read_text()}, stack="bench", key_dir=str(key_dir))
    provider = lab.providers()["bench-docker"]
    opts = provider.inputs["sshOpts"]
    return provider.inputs["host"], json.loads(opts) if isinstance(opts, str) else list(opts)


def run_calls(argv: list[str], n: int) -> float:
    """Seconds for `n` sequential Docker API calls over `argv`; raises if one fails."""
    start = time.perf_counter()
    for i in range(n):
        call = sshd.docker_ping(argv)
        if not call.ok:
            raise RuntimeError(f"call {i + 1} failed: {call}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="calls per mode (default 50)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    reason = sshd.unavailable()
    if reason is not None:
        print(f"bench_ssh: skipped: {reason}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="bssh") as tmp:
        folder = Path(tmp)
        user_key, user_pub = sshd.keypair(folder, "user_key")
        server = sshd.Sshd(folder / "sshd", [user_pub]).start()
        docker_host, opts = registered_transport(server, user_key, folder / "keys")
        control_path = next(o.split("=", 1)[1] for o in opts if o.startswith("ControlPath="))
        try:
            shared = run_calls(dial_stdio_command(docker_host, opts), args.n)
            connections_shared = server.connections()
            sshd.close_master(control_path)
            plain_opts = sshd.without_options(opts, *CONTROL)
            fresh = run_calls(dial_stdio_command(docker_host, plain_opts), args.n)
            connections_fresh = server.connections() - connections_shared
        finally:
            sshd.close_master(control_path)
            server.stop()
    result = {
        "calls": args.n,
        "multiplexed_calls_per_s": round(args.n / shared, 2),
        "fresh_calls_per_s": round(args.n / fresh, 2),
        "speedup": round(fresh / shared, 2),
        "multiplexed_ssh_connections": connections_shared,
        "fresh_ssh_connections": connections_fresh,
    }
    if args.json:
        print(json.dumps(result))
    else:
        rows = [
            ("multiplexed (as registered)", shared, connections_shared),
            ("a connection per call", fresh, connections_fresh),
        ]
        print(f"{'mode':<28}{'calls':>7}{'seconds':>10}{'calls/s':>10}{'ssh connections':>17}")
        for mode, seconds, connections in rows:
            print(f"{mode:<28}{args.n:>7}{seconds:>10.2f}{args.n / seconds:>10.1f}{connections:>17}")
        print(f"multiplexed / per-call: {fresh / shared:.2f}x the calls per second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
