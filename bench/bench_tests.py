"""Benchmark: how long the whole test suite takes on two workers (the README's `make test` runs
it as `pytest -q -n 2 --dist worksteal`), against the target of 45 s on 2 cores.

    python bench/bench_tests.py             # 3 runs, a line each, then the median
    python bench/bench_tests.py --runs 5 --json

Each run is a fresh pytest process; the time is pytest's own ("in 41.23s"), plus the counts of
passed and skipped tests, so a run that skipped the engine or SSH tests is told apart from one
that ran them. The machine's speed varies from hour to hour: compare runs made together.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 45.0
SUMMARY = re.compile(r"(?P<passed>\d+) passed(?:, (?P<skipped>\d+) skipped)?.* in (?P<seconds>[\d.]+)s")


def one_run() -> dict[str, float | int]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "worksteal", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    found = None
    for line in reversed(result.stdout.splitlines()):
        found = SUMMARY.search(line)
        if found:
            break
    if result.returncode != 0 or found is None:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-2000:])
        raise SystemExit(f"the suite failed (exit {result.returncode}): no time to report")
    return {
        "pytest_seconds": float(found["seconds"]),
        "wall_seconds": round(wall, 2),
        "passed": int(found["passed"]),
        "skipped": int(found["skipped"] or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        run = one_run()
        runs.append(run)
        if args.json:
            print(json.dumps({"run": i + 1, **run}))
        else:
            print(
                f"run {i + 1}: pytest {run['pytest_seconds']:.1f} s (wall {run['wall_seconds']:.1f} s), "
                f"{run['passed']} passed, {run['skipped']} skipped"
            )
    median = statistics.median(r["pytest_seconds"] for r in runs)
    verdict = "within" if median <= TARGET_SECONDS else "over"
    if args.json:
        print(
            json.dumps(
                {"median_pytest_seconds": median, "target_seconds": TARGET_SECONDS, "verdict": verdict}
            )
        )
    else:
        print(f"median {median:.1f} s: {verdict} the {TARGET_SECONDS:.0f} s target (2 workers)")


if __name__ == "__main__":
    main()
