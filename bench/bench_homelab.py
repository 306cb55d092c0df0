"""Benchmark: how long the program takes to evaluate under Pulumi mocks, and how much memory.

Each scenario runs in its own Python process (so peak RSS is its own) and prints:
evaluation time, resources registered, peak RSS, and the ratio of the time to registering
the same number of plain resources directly (the cost of the Pulumi SDK itself).

    python bench/bench_homelab.py            # all scenarios, a table
    python bench/bench_homelab.py --json     # the same, as JSON lines

Scenarios:
- single-host: examples/single-host.yaml (every built-in service plus one custom service, and
  Authelia with 2 users);
- single-host-identity: the same with 5 users (issue 24): argon2id hashing of
  every password (t=3, 64 MiB, p=4) is part of the evaluation time; Authelia's container gets
  256 MB (its documented argon2 memory is 64 MiB per hash: docs/content/configuration/
  first-factor/file.md @ v4.39.20);
- single-host-networking: the same with tls.mode acme (lego beside the proxy), a Cloudflare
  Tunnel for two names and a Tailscale node (issue 25): the Cloudflare SDK's import (about
  2.6 s: pulumi_cloudflare loads every module) is part of the evaluation time;
- synthetic: 10 SSH hosts, every built-in service enabled, exporters on all 10 hosts,
  and 200 custom services (route, metrics, stateful volume, a secret) spread over the hosts;
- apps: the platform layer with 5 projects and 100 apps (20 each; a third with an inline
  Dockerfile, a third with secret env and files), homelab layer off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


# A real-format host public key for the synthetic SSH hosts (tests/harness.py).
from harness import HOST_KEY  # noqa: E402


def synthetic_config(hosts: int = 10, customs: int = 200) -> tuple[dict[str, Any], dict[str, str]]:
    names = [f"node{i:02d}" for i in range(hosts)]
    config: dict[str, Any] = {
        "domain": "bench.example.com",
        "hosts": [
            {
                "name": n,
                "address": f"deploy@{n}.bench.example.com",
                "private-key-secret": f"{n}-key",
                "host-key": HOST_KEY,
            }
            for n in names
        ],
        "services": {
            "mattermost": {"enabled": True, "host": names[1]},
            "postgres": {"enabled": True, "host": names[2]},
            "mysql": {"enabled": True, "host": names[3]},
            "drupal": {"enabled": True, "host": names[4]},
            "web": {"enabled": True, "host": names[5]},
        },
        "custom-services": [
            {
                "name": f"app{i:03d}",
                "image": "traefik/whoami:v1.11.0",
                "host": names[i % hosts],
                "routes": [{"hostname": f"app{i:03d}", "port": 80}],
                "metrics": [{"port": 80, "host-port": 20000 + i}],
                "volumes": [{"name": "data", "path": "/data"}],
                "secrets": [{"name": "token", "env": "APP_TOKEN"}],
            }
            for i in range(customs)
        ],
    }
    secrets = {
        f"{n}-key": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{n}\n-----END OPENSSH PRIVATE KEY-----\n"
        for n in names
    }
    return config, secrets


def apps_config(projects: int = 5, apps: int = 100) -> tuple[dict[str, Any], dict[str, str]]:
    names = [f"team-{i}" for i in range(projects)]
    config: dict[str, Any] = {
        "domain": "bench.example.com",
        "layers": {"homelab": False, "platform": True, "apps": True},
        "platform": {
            "kubeconfig-secret": "kubeconfig",
            "github-owner": "bench",
            "github-token-secret": "github-token",
            "gitops": {"repository": "bench/gitops"},
            "tls": {"mode": "acme", "acme": {"email": "ops@bench.example.com", "solver": "http01"}},
            "projects": [
                {"name": n, "members": {"admin": [f"lead-{n}"], "developer": [f"dev-{n}"]}} for n in names
            ],
        },
        "apps": [],
    }
    secrets = {"kubeconfig": "apiVersion: v1\nkind: Config\n", "github-token": "ghp_bench"}
    for i in range(apps):
        app: dict[str, Any] = {"name": f"app{i:03d}", "project": names[i % projects], "port": 8080}
        if i % 3 == 0:
            app["source"] = {"create": True}
            app["dockerfile-inline"] = f"FROM nginx:1.28.0-alpine\nLABEL app=app{i:03d}\n"
        else:
            app["source"] = {"repository": f"bench/app{i:03d}", "ref": "main"}
        if i % 3 == 1:
            app["secret-env"] = {"API_TOKEN": f"app{i:03d}-token"}
            app["files"] = {"/etc/app/config.yaml": f"id: {i}\n"}
            secrets[f"app{i:03d}-token"] = f"token-{i}"
        config["apps"].append(app)
    return config, secrets


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_scenario(name: str, key_dir: str) -> dict[str, Any]:
    import harness  # the tests' mocks harness: the real program, recorded

    if name.startswith("single-host"):
        config = harness.load_stack_file(ROOT / "examples" / "single-host.yaml")
        if name == "single-host-identity":
            users = [
                {"name": f"user{i}", "email": f"user{i}@lab.example.com",
                 "groups": ["admins"] if i == 0 else [], "password-secret": f"user{i}-password"}
                for i in range(5)
            ]  # fmt: skip
            config["identity"] = {"enabled": True, "users": users}
        secrets = harness.example_secrets(config)
        if name == "single-host-networking":
            # ACME on every proxy host, a Cloudflare Tunnel for two names, a Tailscale node.
            config["tls"] = {
                "mode": "acme",
                "acme": {"email": "admin@lab.example.com", "dns-provider": "cloudflare",
                         "credentials": {"CF_DNS_API_TOKEN": "cf-token"}},
            }  # fmt: skip
            config["tunnel"] = {
                "cloudflare": {"account-id": "0" * 32, "zone-id": "1" * 32,
                               "api-token-secret": "cf-token", "routes": ["@", "home"]},
                "tailscale": {"api-key-secret": "ts-key", "routes": ["192.168.1.0/24"]},
            }  # fmt: skip
            secrets |= {"cf-token": "bench-cf", "ts-key": "bench-ts"}
    elif name == "apps":
        config, secrets = apps_config()
    else:
        config, secrets = synthetic_config()
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    mocks = harness.run_program(config, secrets, key_dir=key_dir)
    elapsed = time.perf_counter() - start
    heavy = sorted(
        {
            m.split(".")[0]
            for m in sys.modules
            if m.split(".")[0]
            in ("pulumi_kubernetes", "pulumi_github", "pulumi_cloudflare", "pulumi_tailscale")
        }
    )
    return {
        "scenario": name,
        "resources": len(mocks.resources),
        "seconds": round(elapsed, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_mb": round(rss_before, 1),
        "heavy_sdks_imported": heavy,
    }


def run_baseline(count: int) -> dict[str, Any]:
    """Register `count` plain resources directly, with the same mocks and no homelab code."""
    import harness
    import pulumi
    import pulumi_random as random

    mocks = harness.RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="bench", stack="bench", preview=False)
    start = time.perf_counter()
    for i in range(count):
        random.RandomId(f"r{i}", byte_length=8)
    harness.drain()
    elapsed = time.perf_counter() - start
    return {
        "scenario": f"baseline-{count}",
        "resources": len(mocks.resources),
        "seconds": round(elapsed, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario")
    parser.add_argument("--baseline", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    key_dir = os.environ.get("HOMELAB_SSH_KEY_DIR") or str(Path("/tmp") / f"homelab-bench-keys-{os.getpid()}")
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, key_dir)))
        return
    if args.baseline:
        print(json.dumps(run_baseline(args.baseline)))
        return

    rows = []
    for scenario in ("single-host", "single-host-identity", "single-host-networking", "synthetic", "apps"):
        result = _child(["--scenario", scenario])
        base = _child(["--baseline", str(result["resources"])])
        result["baseline_seconds"] = base["seconds"]
        result["ratio_to_direct"] = round(result["seconds"] / base["seconds"], 2) if base["seconds"] else None
        rows.append(result)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    header = (
        f"{'scenario':<12} {'resources':>9} {'eval s':>8} {'direct s':>9} {'ratio':>6} "
        f"{'peak RSS MB':>12}  heavy SDKs"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        heavy = ", ".join(r["heavy_sdks_imported"]) or "none"
        print(
            f"{r['scenario']:<12} {r['resources']:>9} {r['seconds']:>8.2f} {r['baseline_seconds']:>9.2f} "
            f"{r['ratio_to_direct']:>6} {r['peak_rss_mb']:>12.1f}  {heavy}"
        )


if __name__ == "__main__":
    main()
