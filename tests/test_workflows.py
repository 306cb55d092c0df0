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
    """Steps that run a Pulumi command through pulumi/actions (not those that only install it)."""
    return [
        (job, s)
        for job, s in steps(document)
        if str(s.get("uses", "")).startswith("pulumi/actions@") and "command" in (s.get("with") or {})
    ]


def test_the_workflows_exist():
    assert {p.name for p in workflow_files()} == {
        "pull-request.yml",
        "deploy.yml",
        "drift.yml",
        "lifecycle.yml",
    }


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
    # The preview is the project's own command: the guard on stateful data first, the pack's
    # violations, then the steps, as one Markdown file.
    previews = [(job, s) for job, s in steps(document) if "-m automation preview" in str(s.get("run", ""))]
    assert len(previews) == 1
    job, step = previews[0]
    command = step["run"].split()
    assert command[command.index("--policy-pack") + 1] == "policies"
    comment_file = command[command.index("--comment") + 1]
    # ...which the next step posts on the pull request, also when the preview failed.
    job_steps = document["jobs"][job]["steps"]
    poster = job_steps[job_steps.index(step) + 1]
    assert poster["run"].startswith("gh pr comment ")
    assert f"--body-file {comment_file}" in poster["run"]
    assert "!cancelled()" in poster["if"]
    assert poster["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
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
    # The policy pack's environment is installed before the preview runs.
    earlier = [str(s.get("run", "")) for s in job_steps[: job_steps.index(step)]]
    assert any("policies/requirements.txt" in run for run in earlier)


def test_deploy_workflow_runs_up_on_main_behind_production():
    document = load(DEPLOY)
    push = document["on"]["push"]
    assert "main" in push["branches"]
    assert "pull_request" not in document["on"]
    # `up` goes through the tool, whose guard refuses unbacked-up data loss (issue 16), with
    # the policy pack; the pulumi/actions `up` would skip the guard.
    assert pulumi_steps(document) == []
    ups = [(job, s) for job, s in steps(document) if "python -m automation up" in str(s.get("run", ""))]
    assert len(ups) == 1
    job, step = ups[0]
    environment = document["jobs"][job]["environment"]
    name = environment["name"] if isinstance(environment, dict) else environment
    assert name == "production"
    assert "--policy-pack policies" in step["run"] and "--yes" in step["run"]
    # The services a deploy may replace come from the dispatch input through the environment,
    # never expanded into the script.
    assert "${{" not in step["run"]
    assert step["env"]["ALLOW_REPLACE"] == "${{ inputs.allow-replace }}"
    assert "allow-replace" in document["on"]["workflow_dispatch"]["inputs"]
    earlier = [str(s.get("run", "")) for j, s in steps(document) if j == job]
    assert any("policies/requirements.txt" in run for run in earlier[: earlier.index(step["run"])])
    # One deploy at a time, never cancelled half-way.
    assert document["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_the_policy_pack_is_installed_before_pulumi_runs(path):
    document = load(path)
    packed = [(job, s) for job, s in steps(document) if "--policy-pack" in str(s.get("run", ""))]
    # Previews and deploys run Pulumi through the tool with the pack; drift's preview and the
    # lifecycle report run without one.
    assert bool(packed) is (path.name in ("pull-request.yml", "deploy.yml")), path.name
    for job, step in packed + pulumi_steps(document):
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


# ---- drift detection -------------------------------------------------------------------

DRIFT = WORKFLOWS / "drift.yml"


def test_drift_runs_on_a_schedule_and_by_hand():
    on = load(DRIFT)["on"]
    [schedule] = on["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert "workflow_dispatch" in on
    assert "pull_request" not in on and "push" not in on


def test_drift_previews_the_real_infrastructure_expecting_no_changes():
    document = load(DRIFT)
    runs = [str(s.get("run", "")) for _, s in steps(document)]
    [preview] = [r for r in runs if "pulumi preview" in r]
    # --refresh reads the real resources first; --expect-no-changes fails on any difference
    # (pulumi/pulumi pkg/cmd/pulumi/operations/preview.go); nothing is written to the state.
    for flag in ("--refresh", "--expect-no-changes", '--stack "$STACK"', "--non-interactive"):
        assert flag in preview
    assert "pulumi up" not in " ".join(runs) and "pulumi refresh" not in " ".join(runs)
    # Drift (the CLI's own message) is told apart from a failed run, which fails the job.
    assert "no changes were expected" in preview and 'exit "$status"' in preview


def test_drift_opens_updates_and_closes_one_issue():
    document = load(DRIFT)
    by_name = {s.get("name"): s for _, s in steps(document)}
    report = by_name["Open or update the drift issue"]
    close = by_name["Close the drift issue once the stack matches"]
    assert report["if"] == "steps.drift.outputs.drift == 'true'"
    assert close["if"] == "steps.drift.outputs.drift == 'false'"
    assert "gh issue create" in report["run"] and "gh issue edit" in report["run"]
    assert "gh issue close" in close["run"]
    # One issue per stack: found by its exact title before a new one is opened.
    assert report["run"].index("gh issue list") < report["run"].index("gh issue create")


def test_drift_reads_the_code_and_writes_only_issues():
    """Pins, persisted credentials and expressions in scripts: tests/test_supply_chain.py."""
    [job] = load(DRIFT)["jobs"].values()
    assert job["permissions"] == {"contents": "read", "issues": "write"}


def test_drift_installs_the_cli_of_the_pinned_sdk():
    """The CLI the drift check runs is the release of the SDK in requirements.txt."""
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert sdk
    [install] = [s for _, s in steps(load(DRIFT)) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert "command" not in install["with"], "without a command the action only installs the CLI"
    assert str(install["with"]["pulumi-version"]) == sdk.group(1)


# ---- support windows ---------------------------------------------------------------------

LIFECYCLE = WORKFLOWS / "lifecycle.yml"


def test_lifecycle_runs_weekly_and_by_hand():
    on = load(LIFECYCLE)["on"]
    [schedule] = on["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit(), "once a week"
    assert "workflow_dispatch" in on
    assert "pull_request" not in on and "push" not in on


def test_lifecycle_judges_every_pin_offline_and_tells_a_failure_from_a_finding():
    runs = [str(s.get("run", "")) for _, s in steps(load(LIFECYCLE))]
    [check] = [r for r in runs if "-m automation lifecycle" in r]
    assert "--all" in check and "--within 60" in check
    # exit 1 is a finding (an issue); any other non-zero exit fails the job
    assert '"$status" -eq 1' in check and 'exit "$status"' in check
    assert "pulumi" not in " ".join(runs).replace("-m automation", ""), "no stack, no CLI"


def test_lifecycle_opens_updates_and_closes_one_issue():
    by_name = {s.get("name"): s for _, s in steps(load(LIFECYCLE))}
    report = by_name["Open or update the lifecycle issue"]
    close = by_name["Close the lifecycle issue once every line is supported"]
    assert report["if"] == "steps.lifecycle.outputs.ended == 'true'"
    assert close["if"] == "steps.lifecycle.outputs.ended == 'false'"
    assert "gh issue create" in report["run"] and "gh issue edit" in report["run"]
    assert "gh issue close" in close["run"]
    assert report["run"].index("gh issue list") < report["run"].index("gh issue create")
    [job] = load(LIFECYCLE)["jobs"].values()
    assert job["permissions"] == {"contents": "read", "issues": "write"}
    assert "secrets." not in LIFECYCLE.read_text(), "it needs no secret"
