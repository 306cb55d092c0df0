import os
import sys
from pathlib import Path

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
