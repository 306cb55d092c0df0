"""The GitHub workflows: valid against the workflow schema, previews with the policy pack on
pull requests, deploys with it on main behind the production environment, every secret they
use documented. The supply chain (pinned actions, token permissions, zizmor and actionlint) is
checked in test_supply_chain.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
DOCS = ROOT / "docs" / "policies.md"
# Provided by GitHub to every run; nothing to set up or document.
BUILT_IN_SECRETS = {"GITHUB_TOKEN"}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in document["jobs"].items() for step in job.get("steps") or []]


def pulumi_steps(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, s) for job, s in steps(document) if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_both_workflows_exist():
    assert {p.name for p in workflow_files()} == {"pull-request.yml", "deploy.yml"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(path):
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_request_workflow_tests_and_previews_with_the_pack():
    document = load(PULL_REQUEST)
    assert "pull_request" in document["on"]
    runs = [str(s.get("run", "")) for _, s in steps(document)]
    assert any(re.search(r"(^|\s)\.ci/run(\s|$)", run) for run in runs), runs
    previews = pulumi_steps(document)
    assert len(previews) == 1
    job, step = previews[0]
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["policyPacks"] == "policies"
    assert inputs["comment-on-pr"] is True
    # The preview only runs once the tests passed.
    needs = document["jobs"][job].get("needs")
    assert needs and ".ci/run" in " ".join(
        str(s.get("run", ""))
        for name, s in steps(document)
        if name in ([needs] if isinstance(needs, str) else needs)
    )
    # Commenting needs write access to pull requests: the preview job has it, nothing else.
    assert document["jobs"][job]["permissions"].get("pull-requests") == "write"
    assert "pull-requests" not in document["permissions"]


def test_deploy_workflow_runs_up_on_main_behind_production():
    document = load(DEPLOY)
    push = document["on"]["push"]
    assert "main" in push["branches"]
    assert "pull_request" not in document["on"]
    ups = pulumi_steps(document)
    assert len(ups) == 1
    job, step = ups[0]
    environment = document["jobs"][job]["environment"]
    name = environment["name"] if isinstance(environment, dict) else environment
    assert name == "production"
    assert step["with"]["command"] == "up"
    assert step["with"]["policyPacks"] == "policies"
    # One deploy at a time, never cancelled half-way.
    assert document["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_the_policy_pack_is_installed_before_pulumi_runs(path):
    document = load(path)
    for job, step in pulumi_steps(document):
        earlier = []
        for name, s in steps(document):
            if (name, s) == (job, step):
                break
            if name == job:
                earlier.append(str(s.get("run", "")))
        assert any("policies/requirements.txt" in run for run in earlier), path.name


def test_every_secret_used_is_documented():
    docs = DOCS.read_text()
    used = {
        name
        for path in workflow_files()
        for name in re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text())
    }
    assert used - BUILT_IN_SECRETS
    missing = sorted(name for name in used - BUILT_IN_SECRETS if f"`{name}`" not in docs)
    assert missing == []
