import gc
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property-based tests (tests/test_properties.py): `ci` is the default, a fixed number of cases
# with a fixed seed so a run is repeatable and bounded; `make fuzz` runs `long` (a new seed
# each run, HYPOTHESIS_EXAMPLES cases per test).
_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=60, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "2000")), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_finish(session):  # type: ignore[no-untyped-def]
    """The garbage collector, tuned for this suite (per process: each xdist worker too).

    A program run under mocks leaves tens of thousands of objects in reference cycles (the
    SDK's Outputs, futures and tasks), so with the default thresholds the collector runs a
    full collection every few runs, and each one walks everything alive: the imported SDKs,
    the collected tests, the module fixtures. Measured on nine of the heaviest modules in one
    process (properties, apps, hosts, alerting, ...): 12.6 s of collection with the default
    thresholds, 2.8 s with these.
    Everything alive after collection is moved out of the collector's sight (`gc.freeze`:
    it lives until the end anyway), and the young generation is collected every 10,000
    allocations instead of 700, so fewer objects survive into the older generations. No
    test sees a difference: garbage is still collected, only less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """The property tests' case counts and outcomes (sent back by xdist workers too)."""
    lines = []
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "hypothesis-cases" and report.when == "call":
                lines.append(", ".join(f"{k}={v}" for k, v in value.items()))
    if lines:
        terminalreporter.section("property-based tests")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def machine_trusts_the_example_cas(tmp_path_factory):
    """The test machine trusts the private CAs the examples use, as a user would have installed
    them (the platform refuses a private CA Pulumi's machine does not trust): a CA bundle in
    SSL_CERT_FILE and no other trust directory. Tests of the refusal change these variables."""
    from harness import TRUSTED_CA_PEMS

    folder = tmp_path_factory.mktemp("trust")
    bundle = folder / "ca-certificates.crt"
    bundle.write_text("".join(TRUSTED_CA_PEMS))
    saved = {key: os.environ.get(key) for key in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ["SSL_CERT_FILE"] = str(bundle)
    os.environ["SSL_CERT_DIR"] = str(folder / "no-such-directory")
    yield bundle
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory):
    """One busybox image per session for the engine tests (tests/engine.py); they skip, saying
    why, without a Docker engine or busybox-static."""
    from engine import docker, engine_problem, import_busybox_image

    problem = engine_problem()
    if problem is not None:
        pytest.skip(problem)
    ref, problem = import_busybox_image(tmp_path_factory.mktemp("busybox"))
    if ref is None:
        pytest.skip(problem)
    try:
        yield ref
    finally:
        docker("rmi", "-f", ref, check=False)


@pytest.fixture(autouse=True)
def restore_journal_here(tmp_path_factory, monkeypatch):
    """Each test keeps the restore journal (automation/backup.py Journal) in a folder of its
    own, never in the user's ~/.local/state."""
    monkeypatch.setenv("HOMELAB_STATE_DIR", str(tmp_path_factory.mktemp("state")))
