"""The tests need nothing outside the repository: what they take from the shared reference
folder (chart value keys, CRD schemas) is derived into tests/data by
scripts/derive_test_data.py, committed, and names where it came from."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness import DATA, ROOT, chart_keys

from components.platform.charts import CHARTS

TESTS = ROOT / "tests"


def test_no_test_reads_the_shared_folder() -> None:
    outside = re.compile(r"""parent\s*/\s*["']shared["']|["']\.\./shared|/work/shared""")
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(TESTS.glob("*.py"))
        if path.name != "test_test_data.py"  # the pattern above
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert offenders == []


def test_every_data_file_names_its_source() -> None:
    files = sorted(DATA.glob("*/*.json"))
    assert {p.parent.name for p in files} == {"charts", "crds", "providers"}
    for path in files:
        document = json.loads(path.read_text())
        assert document["source"].startswith("shared/"), path.name
        assert document["upstream"], f"{path.name} does not say which chart/CRD version it is"


def test_chart_key_trees_are_those_of_the_pinned_versions() -> None:
    for path in sorted((DATA / "charts").glob("*.keys.json")):
        chart, version = path.name.removesuffix(".keys.json").rsplit("-", 1)
        assert CHARTS[chart].version == version, f"{path.name}: {chart} is pinned at {CHARTS[chart].version}"
        assert chart_keys(chart), path.name


def test_key_trees_keep_maps_and_name_the_other_types() -> None:
    keys = chart_keys("argo-cd")
    assert isinstance(keys["server"]["ingress"], dict)
    assert keys["server"]["ingress"]["enabled"] == "bool"
    assert isinstance(keys["notifications"]["notifiers"], dict)


def _skip_reasons() -> list[str]:
    # pytest.skip("...") and skipif(..., reason="..."); not other `reason=` (alert labels).
    pattern = re.compile(r"""(?:\bskip\(|\bskipif\((?:[^"']|"[^"]*"|'[^']*')*?reason=)\s*f?(["'])(.*?)\1""")
    return [
        m.group(2)
        for p in sorted(TESTS.glob("test_*.py"))
        if p.name != "test_test_data.py"  # the pattern above
        for m in pattern.finditer(p.read_text())
    ]


def test_skips_are_only_for_tools_a_machine_may_lack() -> None:
    """A clone alone runs every test: the only skips left are for a missing tool or engine
    (installed by `make tools` and .ci/run) or one older than a check needs (Debian's amtool),
    never for a folder outside the repository."""
    reasons = _skip_reasons()
    assert reasons, "the scan found no skip at all: it no longer reads the tests"
    for reason in reasons:
        assert re.search(r"install|docker|engine|Docker|predates|busybox|BusyBox", reason), reason
        assert "shared" not in reason and "folder" not in reason, reason


def test_test_data_is_under_the_tests_folder() -> None:
    assert DATA == TESTS / "data" and Path(DATA).is_dir()
