"""Renovate: every pin of the image tables, the chart table, the platform/pipeline images, the
example configs and the workflows is found by a manager (the custom managers' own patterns,
run here over the real files), and Renovate's own validator accepts renovate.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import EXAMPLES, ROOT

from components.homelab.images import IMAGES
from components.pipeline import images as pipeline_images
from components.platform.charts import CHARTS

RENOVATE = ROOT / "renovate.json"
VALIDATOR_DIR = ROOT / ".ci" / "renovate"
VALIDATOR = VALIDATOR_DIR / "node_modules" / ".bin" / "renovate-config-validator"
# Renovate's built-in managers' default file patterns (renovate 44.121.2,
# dist/modules/manager/{pip_requirements,github-actions}/index.js).
PIP_REQUIREMENTS = re.compile(r"(^|/)[\w-]*requirements([-._]\w+)?\.(txt|pip)$")
GITHUB_ACTIONS = re.compile(
    r"(^|/)(workflow-templates|\.(?:github|gitea|forgejo)/(?:workflows|actions))/.+\.ya?ml$"
)


def config() -> dict[str, Any]:
    return json.loads(RENOVATE.read_text())


def python_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript/RE2) pattern as a Python one: named groups are spelled (?P<...>)."""
    return re.compile(re.sub(r"\(\?<([A-Za-z]\w*)>", r"(?P<\1>", pattern))


def file_pattern(pattern: str) -> re.Pattern[str]:
    assert pattern.startswith("/") and pattern.endswith("/"), f"{pattern}: use a /regex/, not a glob"
    return python_regex(pattern[1:-1])


def repo_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [f for f in listed if (ROOT / f).is_file()]


def extracted() -> list[dict[str, str]]:
    """What the custom managers extract from the repository: one dict per match."""
    found = []
    files = repo_files()
    for manager in config()["customManagers"]:
        patterns = [file_pattern(p) for p in manager["managerFilePatterns"]]
        for path in files:
            if not any(p.search(path) for p in patterns):
                continue
            text = (ROOT / path).read_text()
            for match_string in manager["matchStrings"]:
                for m in python_regex(match_string).finditer(text):
                    dep = {k: v for k, v in m.groupdict().items() if v is not None}
                    dep.setdefault("depName", manager.get("depNameTemplate", ""))
                    dep["datasource"] = manager["datasourceTemplate"]
                    dep["file"] = path
                    dep["match"] = m.group(0)
                    found.append(dep)
    return found


def image_deps(file: str) -> set[str]:
    return {
        f"{d['depName']}:{d['currentValue']}" + (f"@{d['currentDigest']}" if "currentDigest" in d else "")
        for d in extracted()
        if d["file"] == file and d["datasource"] == "docker"
    }


# ---- every pin is found ------------------------------------------------------------------


def test_every_homelab_image_pin_is_found():
    assert IMAGES
    assert image_deps("components/homelab/images.py") == set(IMAGES.values())


def test_every_pipeline_image_pin_is_found():
    pins = {
        value
        for name, value in vars(pipeline_images).items()
        if name.isupper()
        and isinstance(value, str)
        and re.fullmatch(r"[a-z0-9./_-]+:[\w.-]+(@sha256:\w+)?", value)
    }
    assert pins >= {pipeline_images.GIT_SYNC, pipeline_images.KANIKO}
    assert image_deps("components/pipeline/images.py") == pins


def test_every_chart_pin_is_found():
    charts = {
        (d["registryUrl"], d["depName"], d["currentValue"]) for d in extracted() if d["datasource"] == "helm"
    }
    # OCI charts (Envoy Gateway's) as the OCI artifacts they are
    charts |= {
        (f"oci://{d['packageName']}", d["depName"], d["currentValue"])
        for d in extracted()
        if d["datasource"] == "docker" and d["file"] == "components/platform/charts.py"
    }
    assert charts == {(c.repo, c.name, c.version) for c in CHARTS.values()}


def test_every_image_of_the_example_configs_is_found():
    for path in [*sorted(EXAMPLES.glob("*.yaml")), ROOT / "Pulumi.dev.yaml"]:
        document = yaml.safe_load(path.read_text()) or {}
        images = {
            service["image"]
            for key, value in (document.get("config") or {}).items()
            if key.endswith(":custom-services")
            for service in value
        }
        assert image_deps(str(path.relative_to(ROOT))) == images, path.name


def test_the_workflows_pulumi_cli_is_found_with_the_sdk():
    deps = [d for d in extracted() if d["datasource"] == "pypi"]
    versions = set(re.findall(r"pulumi-version: (\S+)", "".join(p.read_text() for p in WORKFLOW_FILES)))
    assert versions
    assert {(d["depName"], d["currentValue"]) for d in deps} == {("pulumi", v) for v in versions}
    # The same package the pip manager finds in requirements.txt, so both move in one PR.
    rule = next(r for r in config()["packageRules"] if "pulumi" in r.get("matchPackageNames", []))
    assert rule["groupName"] and rule["matchDatasources"] == ["pypi"]


WORKFLOW_FILES = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_requirements_and_workflows_are_in_the_built_in_managers_reach():
    files = repo_files()
    requirements = [f for f in files if f.endswith(".txt") and "requirements" in f]
    assert {"requirements.txt", "requirements-dev.txt", "policies/requirements.txt"} <= set(requirements)
    assert all(PIP_REQUIREMENTS.search(f) for f in requirements)
    for f in requirements:
        for line in (ROOT / f).read_text().splitlines():
            if line and not line.startswith(("#", "-r")):
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line), f"{f}: {line!r} is not pinned"
    assert WORKFLOW_FILES and all(GITHUB_ACTIONS.search(str(p.relative_to(ROOT))) for p in WORKFLOW_FILES)
    package = json.loads((VALIDATOR_DIR / "package.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"]["renovate"])
    assert (VALIDATOR_DIR / "package-lock.json").is_file()


def test_the_pattern_check_can_fail(tmp_path):
    """An image written in a form no manager reads would be reported as missing."""
    pattern = python_regex(config()["customManagers"][0]["matchStrings"][0])
    assert pattern.search('"haproxy:3.2.6-alpine"')
    assert pattern.search('"haproxy:3.2.6-alpine@sha256:' + "a" * 64 + '"').group("currentDigest")
    assert not pattern.search("'haproxy' + ':3.2.6-alpine'")
    assert not pattern.search('"https://helm.goharbor.io"')
    assert not pattern.search('user="65533:65533"')  # a uid:gid in an image contract


def test_digest_replacement_rebuilds_the_matched_string():
    """autoReplaceStringTemplate (Handlebars) with the extracted values gives back the match,
    and with a new digest adds `@sha256:...` (what pinDigests writes on the first run)."""

    def render(template: str, values: dict[str, str]) -> str:
        template = re.sub(
            r"\{\{#if (\w+)\}\}(.*?)\{\{/if\}\}",
            lambda m: m.group(2) if values.get(m.group(1)) else "",
            template,
        )
        return re.sub(r"\{\{\{(\w+)\}\}\}", lambda m: values[m.group(1)], template)

    managers = [m for m in config()["customManagers"] if "autoReplaceStringTemplate" in m]
    assert managers
    # (OCI charts are replaced by version alone, Renovate's default: no template.)
    deps = [
        d for d in extracted() if d["datasource"] == "docker" and d["file"] != "components/platform/charts.py"
    ]
    assert deps
    digest = "sha256:" + "b" * 64
    for dep in deps:
        manager = next(
            m for m in managers if any(python_regex(s).fullmatch(dep["match"]) for s in m["matchStrings"])
        )
        values = {
            "depName": dep["depName"],
            "newValue": dep["currentValue"],
            "newDigest": dep.get("currentDigest", ""),
        }
        assert render(manager["autoReplaceStringTemplate"], values) == dep["match"]
        pinned = render(manager["autoReplaceStringTemplate"], {**values, "newDigest": digest})
        reference = f"{dep['depName']}:{dep['currentValue']}"
        old = reference + (f"@{dep['currentDigest']}" if "currentDigest" in dep else "")
        assert pinned == dep["match"].replace(old, f"{reference}@{digest}")


def test_container_images_get_their_digest_pinned():
    rules = config()["packageRules"]
    assert any(r.get("matchDatasources") == ["docker"] and r.get("pinDigests") is True for r in rules)
    charts = "/(^|/)components/platform/charts\\.py$/"
    for manager in config()["customManagers"]:
        if manager["datasourceTemplate"] == "docker" and manager["managerFilePatterns"] != [charts]:
            assert "currentDigest" in manager["matchStrings"][0]
            assert "newDigest" in manager["autoReplaceStringTemplate"]
    # An OCI chart keeps its version alone: the rule for it comes after the one that pins digests.
    docker = [i for i, r in enumerate(rules) if r.get("matchDatasources") == ["docker"] and "pinDigests" in r]
    assert [rules[i]["pinDigests"] for i in docker] == [True, False]
    assert rules[docker[1]]["matchFileNames"] == ["components/platform/charts.py"]


def test_patterns_avoid_what_re2_lacks():
    """Renovate runs the patterns with RE2: no lookaround, no backreferences."""
    for manager in config()["customManagers"]:
        for pattern in manager["matchStrings"] + manager["managerFilePatterns"]:
            assert not re.search(r"\(\?[=!]|\(\?<[=!]|\\[1-9]", pattern), pattern


# ---- Renovate's own validator ----------------------------------------------------------------


def validate(folder: Path) -> subprocess.CompletedProcess[str]:
    """Renovate's own validator on `folder`/renovate.json, strict, as `make renovate-check`."""
    return subprocess.run(
        [str(VALIDATOR), "--strict", "--no-global", "renovate.json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_renovate_validator_accepts_the_config():
    if not VALIDATOR.exists():
        if os.environ.get("CI"):
            pytest.fail(
                "Renovate's validator is not installed: scripts/install-tools.sh (npm ci in .ci/renovate)"
            )
        pytest.skip("Renovate's validator is not installed (scripts/install-tools.sh); CI runs this test")
    result = validate(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config validated successfully" in result.stdout


def test_renovate_validator_rejects_a_broken_config(tmp_path):
    if not VALIDATOR.exists():
        pytest.skip("Renovate's validator is not installed (scripts/install-tools.sh)")
    broken = config()
    broken["packageRules"][0]["matchDatasourcez"] = ["docker"]
    (tmp_path / "renovate.json").write_text(json.dumps(broken))
    result = validate(tmp_path)
    assert result.returncode != 0
    assert "matchDatasourcez" in result.stdout + result.stderr


def test_installed_validator_is_the_pinned_release():
    if not VALIDATOR.exists():
        pytest.skip("Renovate's validator is not installed (scripts/install-tools.sh)")
    installed = json.loads((VALIDATOR_DIR / "node_modules" / "renovate" / "package.json").read_text())[
        "version"
    ]
    assert (
        installed == json.loads((VALIDATOR_DIR / "package.json").read_text())["devDependencies"]["renovate"]
    )


# ---- Renovate follows the support windows (issue 21) ----------------------------------------


def held_pins(rule: dict[str, Any]) -> list[Any]:
    """The pins of the code a rule with `allowedVersions` holds back (matched by package name:
    an image repository, or a chart's name)."""
    from automation.support import table_pins

    names = set(rule.get("matchPackageNames") or [])
    return [
        p
        for p in table_pins()
        if p.product in names or p.product.removeprefix("chart:") in names and p.kind == "chart"
    ]


def test_no_rule_holds_a_dependency_on_a_line_past_its_end_of_support():
    from datetime import date

    from automation.support import ENDED, report

    rules = [r for r in config()["packageRules"] if "allowedVersions" in r]
    for rule in rules:
        held = held_pins(rule)
        assert held, f"{rule['description']}: holds no pin of the code"
        ended = [r.pin.reference for r in report(held, date(2026, 12, 7)) if r.status == ENDED]
        assert ended == [], f"{rule['description']}: keeps {ended} on a dead line"


def test_the_old_jaeger_hold_would_be_caught():
    rule = {"description": "jaeger below 4", "matchPackageNames": ["jaeger"], "allowedVersions": "<4.0.0"}
    old = [p for p in held_pins(rule)]
    assert [p.reference for p in old] == [f"jaeger {CHARTS['jaeger'].version}"]
    # On the day the hold was in place (chart 3.4.1, Jaeger v1), the check fails it.
    from datetime import date

    from automation.support import ENDED, Pin, report

    stale = Pin("chart jaeger", "chart", "jaeger 3.4.1", "chart:jaeger", "3.4.1")
    assert report([stale], date(2026, 12, 7))[0].status == ENDED


def test_stateful_majors_wait_for_approval_and_link_their_upgrade_rule():
    from components.homelab.images import CONTRACTS, UPGRADES

    rules = config()["packageRules"]
    for product in sorted({u.product for u in UPGRADES}):
        repository = CONTRACTS[product].image.split("@")[0].rsplit(":", 1)[0]
        notes = [
            note
            for r in rules
            if repository in (r.get("matchPackageNames") or [])
            for note in r.get("prBodyNotes") or []
        ]
        assert notes and all("docs/concepts.md#upgrade-paths" in n for n in notes), product
    majors = [r for r in rules if r.get("matchUpdateTypes") == ["major"]]
    assert all(r.get("dependencyDashboardApproval") is True for r in majors)
    assert (ROOT / "docs" / "concepts.md").read_text().count("## Upgrade paths") == 1
