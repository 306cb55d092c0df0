"""The guard on stateful changes, from recorded engine events.

The events are what the engine sends the Automation API (`resourcePreEvent` JSON, read with
`pulumi.automation.events.EngineEvent.from_json` as the SDK reads the CLI's event log): a
replacement is a `create-replacement`, `replace` and `delete-replaced` step of one URN with
the replacing properties in `keys` and `detailedDiff`; a resource removed from the program is
a `delete` with only its old state.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation import events

from automation import cli, guard, preflight
from automation.guard import REMOVED, classify, judge
from automation.preflight import GuardOptions
from automation.workspace import StackOptions
from stacks.config_base import duration_seconds

STACK = "urn:pulumi:dev::homelab::"
VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
PROVIDER = "urn:pulumi:dev::homelab::pulumi:providers:docker::local-docker::0c6d7a4e"


def labels(service: str, **extra: str) -> list[dict[str, str]]:
    found = {"homelab.service": service, "homelab.host": "local", "managed-by": "pulumi-homelab", **extra}
    return [{"label": k, "value": v} for k, v in sorted(found.items())]


def volume_inputs(service: str, name: str, stateful: bool = True) -> dict[str, Any]:
    safety = {"homelab.stateful": "true", "homelab.data-safety": "retain"} if stateful else {}
    return {"name": name, "labels": labels(service, **(safety or {"homelab.stateful": "false"}))}


def container_inputs(service: str, name: str, image: str, mounts: list[tuple[str, bool]]) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "labels": labels(service, **{"homelab.container": name.removeprefix("homelab-")}),
        "volumes": [{"volumeName": v, "containerPath": f"/data/{v}", "readOnly": ro} for v, ro in mounts],
    }


def state(type_: str, name: str, inputs: dict[str, Any], retain: bool = False) -> dict[str, Any]:
    return {
        "type": type_,
        "urn": urn(type_, name),
        "id": f"id-{name}",
        "parent": STACK + "homelab:services:Service::x",
        "provider": PROVIDER,
        "custom": True,
        "retainOnDelete": retain,
        "inputs": inputs,
        "outputs": inputs,
    }


def urn(type_: str, name: str) -> str:
    return f"{STACK}homelab:services:Service${type_}::{name}"


def step(
    op: str,
    type_: str,
    name: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    retain: bool = False,
    keys: list[str] | None = None,
    detailed: dict[str, str] | None = None,
) -> events.EngineEvent:
    metadata: dict[str, Any] = {"op": op, "urn": urn(type_, name), "type": type_, "provider": PROVIDER}
    if old is not None:
        metadata["old"] = state(type_, name, old, retain)
    if new is not None:
        metadata["new"] = state(type_, name, new, retain)
    if keys is not None:
        metadata["keys"] = keys
        metadata["diffs"] = keys
    if detailed is not None:
        metadata["detailedDiff"] = {k: {"diffKind": v, "inputDiff": True} for k, v in detailed.items()}
    return events.EngineEvent.from_json(
        {"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": metadata, "planning": True}}
    )


def summary(**counts: int) -> events.EngineEvent:
    return events.EngineEvent.from_json(
        {
            "sequence": 99,
            "timestamp": 0,
            "summaryEvent": {"maybeCorrupt": False, "durationSeconds": 3, "resourceChanges": counts},
        }
    )


MYSQL_DATA = volume_inputs("mysql", "homelab_mysql_data")
GRAFANA_DATA = volume_inputs("grafana", "homelab_grafana_data")
OLD_MYSQL = container_inputs("mysql", "homelab-mysql", "mysql:8.4.5", [("homelab_mysql_data", False)])
NEW_MYSQL = container_inputs("mysql", "homelab-mysql", "mysql:8.4.6", [("homelab_mysql_data", False)])
BACKUP = container_inputs(
    "backup-local",
    "homelab-backup",
    "offen/docker-volume-backup:v2.48.2",
    [("homelab_mysql_data", True), ("homelab_grafana_data", True)],
)
LANDING_OLD = container_inputs("landing", "homelab-landing", "nginx:1.29.1-alpine", [])
LANDING_NEW = container_inputs("landing", "homelab-landing", "nginx:1.29.2-alpine", [])

# A database container's image bump: the three steps of a replacement, beside unchanged volumes.
DATABASE_REPLACED = [
    step("same", VOLUME, "mysql-mysql-data", MYSQL_DATA, MYSQL_DATA, retain=True),
    step("same", VOLUME, "grafana-grafana-data", GRAFANA_DATA, GRAFANA_DATA, retain=True),
    step("create-replacement", CONTAINER, "mysql", OLD_MYSQL, NEW_MYSQL, keys=["image"]),
    step(
        "replace",
        CONTAINER,
        "mysql",
        OLD_MYSQL,
        NEW_MYSQL,
        keys=["image"],
        detailed={"image": "update-replace"},
    ),
    step("delete-replaced", CONTAINER, "mysql", OLD_MYSQL, NEW_MYSQL),
    summary(replace=1, same=2),
]

# Grafana removed from the config: its retained volume is deleted from the stack.
RETAINED_VOLUME_DELETED = [
    step("same", VOLUME, "mysql-mysql-data", MYSQL_DATA, MYSQL_DATA, retain=True),
    step("delete", VOLUME, "grafana-grafana-data", old=GRAFANA_DATA, retain=True),
    summary(delete=1, same=1),
]

# Only stateless changes: the landing page's image, the backup run (read-only mounts), a
# scratch volume, and an in-place update of a database volume's neighbour.
STATELESS_ONLY = [
    step("same", VOLUME, "mysql-mysql-data", MYSQL_DATA, MYSQL_DATA, retain=True),
    step("same", VOLUME, "grafana-grafana-data", GRAFANA_DATA, GRAFANA_DATA, retain=True),
    step("create-replacement", CONTAINER, "landing", LANDING_OLD, LANDING_NEW, keys=["image"]),
    step("replace", CONTAINER, "landing", LANDING_OLD, LANDING_NEW, keys=["image"]),
    step("delete-replaced", CONTAINER, "landing", LANDING_OLD, LANDING_NEW),
    step("replace", CONTAINER, "backup-local", BACKUP, {**BACKUP, "image": "offen/x:v2"}, keys=["image"]),
    step("delete", VOLUME, "cache", old=volume_inputs("web", "homelab_web_cache", stateful=False)),
    step(
        "update", CONTAINER, "mysql", NEW_MYSQL, {**NEW_MYSQL, "memory": 1024}, detailed={"memory": "update"}
    ),
    summary(replace=2, delete=1, update=1, same=2),
]


def metas(recorded: list[events.EngineEvent]) -> list[events.StepEventMetadata]:
    return [e.resource_pre_event.metadata for e in recorded if e.resource_pre_event is not None]


# ---- which steps touch data -------------------------------------------------------------------


def test_a_database_image_bump_is_one_replace_caused_by_image() -> None:
    [change] = classify(metas(DATABASE_REPLACED))
    assert change.action == "replace"
    assert change.type == CONTAINER
    assert change.service == "mysql"
    assert change.host == "local"
    assert change.what == "container homelab-mysql (writes homelab_mysql_data)"
    assert change.causes == ("image",)


def test_a_retained_volume_removed_from_the_program_is_a_delete() -> None:
    [change] = classify(metas(RETAINED_VOLUME_DELETED))
    assert (change.action, change.type, change.service) == ("delete", VOLUME, "grafana")
    assert change.what == "volume homelab_grafana_data"
    assert change.causes == (REMOVED,)


def test_stateless_changes_are_not_listed() -> None:
    assert classify(metas(STATELESS_ONLY)) == []


def test_the_cause_comes_from_the_detailed_diff_when_keys_are_missing() -> None:
    recorded = [
        step("same", VOLUME, "mysql-mysql-data", MYSQL_DATA, MYSQL_DATA),
        step(
            "replace",
            CONTAINER,
            "mysql",
            OLD_MYSQL,
            {**OLD_MYSQL, "envs": ["A=1"]},
            detailed={"envs": "add-replace", "memory": "update"},
        ),
    ]
    [change] = classify(metas(recorded))
    assert change.causes == ("envs",)


def test_a_volume_retained_on_delete_counts_without_its_label() -> None:
    unlabelled = {"name": "homelab_legacy", "labels": labels("legacy")}
    recorded = [step("delete", VOLUME, "legacy", old=unlabelled, retain=True)]
    [change] = classify(metas(recorded))
    assert change.what == "volume homelab_legacy"


@pytest.mark.parametrize(
    ("type_", "what"),
    [
        ("kubernetes:core/v1:PersistentVolumeClaim", "PersistentVolumeClaim idp-system/data-harbor-redis-0"),
        ("kubernetes:postgresql.cnpg.io/v1:Cluster", "CloudNativePG Cluster idp-system/data-harbor-redis-0"),
    ],
)
def test_claims_and_the_cnpg_cluster_are_stateful(type_: str, what: str) -> None:
    manifest = {"metadata": {"name": "data-harbor-redis-0", "namespace": "idp-system"}}
    recorded = [
        step("replace", type_, "claim", manifest, manifest, keys=["spec"]),
        step("delete", type_, "gone", old=manifest),
    ]
    replaced, deleted = classify(metas(recorded))
    assert (replaced.action, replaced.what, replaced.causes, replaced.host) == (
        "replace",
        what,
        ("spec",),
        None,
    )
    assert (deleted.action, deleted.causes) == ("delete", (REMOVED,))


# ---- the verdicts ------------------------------------------------------------------------------


class Ledger:
    def __init__(self, newest: dict[tuple[str, str], float]) -> None:
        self.newest = newest
        self.asked: list[tuple[str, str]] = []

    def newest_backup(self, host: str, service: str) -> float | None:
        self.asked.append((host, service))
        return self.newest.get((host, service))


NOW = 1_800_000_000.0


def test_a_fresh_backup_allows_and_a_stale_or_missing_one_refuses() -> None:
    [change] = classify(metas(DATABASE_REPLACED))
    fresh = judge([change], ledger=Ledger({("local", "mysql"): NOW - 3600}), max_age=86400, now=NOW)
    assert [(v.allowed, v.reason) for v in fresh.verdicts] == [(True, "backup 1h 0m old (limit 1d 0h)")]
    stale = judge([change], ledger=Ledger({("local", "mysql"): NOW - 2 * 86400}), max_age=86400, now=NOW)
    assert not stale.verdicts[0].allowed
    assert "newest backup is 2d 0h old (limit 1d 0h)" in stale.verdicts[0].reason
    assert "--allow-replace mysql" in stale.verdicts[0].reason
    missing = judge([change], ledger=Ledger({}), max_age=86400, now=NOW)
    assert "no backup of mysql found" in missing.verdicts[0].reason


def test_kubernetes_data_needs_the_name_backups_of_docker_hosts_do_not_cover_it() -> None:
    manifest = {"metadata": {"name": "platform-db", "namespace": "idp-system"}}
    changes = classify(
        metas([step("delete", "kubernetes:postgresql.cnpg.io/v1:Cluster", "db", old=manifest)])
    )
    ledger = Ledger({})
    report = judge(changes, ledger=ledger, now=NOW)
    assert not report.verdicts[0].allowed
    assert "no backup engine covers it" in report.verdicts[0].reason
    assert ledger.asked == []
    assert judge(changes, allow=["idp-system/platform-db"], now=NOW).verdicts[0].allowed


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("7d", 604800), ("1d12h", 129600), ("90m", 5400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


def test_a_bad_duration_is_an_error() -> None:
    with pytest.raises(ValueError, match="'1 day' is not a duration"):
        duration_seconds("1 day")


# ---- up and preview through the CLI's run_operation -------------------------------------------


class RecordedStack:
    """What `open_stack` returns: preview and up replay recorded events."""

    def __init__(self, recorded: list[events.EngineEvent]) -> None:
        self.recorded = recorded
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _run(self, operation: str, on_event: Any, kwargs: dict[str, Any]) -> None:
        self.calls.append((operation, kwargs))
        for event in self.recorded:
            on_event(event)

    def preview(self, on_event: Any, **kwargs: Any) -> None:
        self._run("preview", on_event, kwargs)

    def export_stack(self) -> Any:  # the state the upgrade guard reads: nothing deployed yet
        from pulumi.automation import Deployment

        return Deployment(version=3, deployment={"resources": []})

    def up(self, on_event: Any, **kwargs: Any) -> None:
        self._run("up", on_event, kwargs)


def project(tmp_path: Path, data: dict[str, Any] | None = None) -> StackOptions:
    config = {"homelab:data": data} if data else {}
    (tmp_path / "Pulumi.guard.yaml").write_text(yaml.safe_dump({"config": config}))
    return StackOptions("guard", project_dir=tmp_path)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(recorded: list[events.EngineEvent], ledger: Any = None) -> RecordedStack:
        stack = RecordedStack(recorded)
        monkeypatch.setattr(cli, "open_stack", lambda options, passphrase: stack)
        monkeypatch.setattr(preflight, "backup_ledger", lambda config: ledger)
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
        return stack

    return install


def up(tmp_path: Path, options: GuardOptions, data: dict[str, Any] | None = None) -> tuple[int, str]:
    """Exit code, and what `up` wrote: the report on stdout, then the refusal on stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_operation("up", project(tmp_path, data), out, guard_options=options, err=err)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    ("recorded", "service", "line"),
    [
        (
            DATABASE_REPLACED,
            "mysql",
            "  REPLACE container homelab-mysql (writes homelab_mysql_data) (service mysql on local): image",
        ),
        (
            RETAINED_VOLUME_DELETED,
            "grafana",
            f"  DELETE  volume homelab_grafana_data (service grafana on local): {REMOVED}",
        ),
    ],
    ids=["database-replaced", "retained-volume-deleted"],
)
def test_up_refuses_without_allow_replace_and_goes_ahead_with_it(
    tmp_path: Path, opened: Any, recorded: list[events.EngineEvent], service: str, line: str
) -> None:
    stack = opened(recorded)
    code, text = up(tmp_path, GuardOptions())
    assert code == 1
    assert [c for c, _ in stack.calls] == ["preview"]  # nothing ran
    assert text.startswith("Stateful data replaced or deleted (1):\n")
    assert line + " -> REFUSED: backups were not checked; pass --allow-replace " + service in text
    assert "up refused before any change: 1 change(s)" in text
    assert f"--allow-replace {service}\n" in text

    stack = opened(recorded)
    code, text = up(tmp_path, GuardOptions(allow_replace=(service,)))
    assert code == 0, text
    [(_, preview_kwargs), (_, up_kwargs)] = stack.calls
    assert [c for c, _ in stack.calls] == ["preview", "up"]
    # The update is held to the plan the guard judged.
    assert preview_kwargs["plan"] == up_kwargs["plan"]
    assert up_kwargs["plan"].endswith("plan.json")
    assert f"{line} -> allowed: --allow-replace {service}" in text


def test_allowing_another_service_does_not_allow_this_one(tmp_path: Path, opened: Any) -> None:
    stack = opened(DATABASE_REPLACED)
    code, text = up(tmp_path, GuardOptions(allow_replace=("grafana",)))
    assert code == 1
    assert [c for c, _ in stack.calls] == ["preview"]


def test_up_with_only_stateless_changes_goes_ahead(tmp_path: Path, opened: Any) -> None:
    stack = opened(STATELESS_ONLY)
    code, text = up(tmp_path, GuardOptions())
    assert code == 0, text
    assert [c for c, _ in stack.calls] == ["preview", "up"]
    assert text.startswith("Stateful data: no volume, database or claim is replaced or deleted.\n")


def test_a_fresh_backup_lets_up_go_ahead_and_the_age_comes_from_config(tmp_path: Path, opened: Any) -> None:
    import time

    ledger = Ledger({("local", "mysql"): time.time() - 5 * 3600})
    stack = opened(DATABASE_REPLACED, ledger)
    code, text = up(tmp_path, GuardOptions())
    assert code == 0, text
    assert "-> allowed: backup 5h 0m old (limit 1d 0h)" in text
    assert ledger.asked == [("local", "mysql")]

    stack = opened(DATABASE_REPLACED, ledger)
    code, text = up(tmp_path, GuardOptions(), data={"max-backup-age": "4h"})
    assert code == 1
    assert "newest backup is 5h 0m old (limit 4h 0m)" in text
    assert [c for c, _ in stack.calls] == ["preview"]


def test_no_plan_runs_up_unconstrained(tmp_path: Path, opened: Any) -> None:
    stack = opened(STATELESS_ONLY)
    assert up(tmp_path, GuardOptions(use_plan=False, policy_packs=("policies",)))[0] == 0
    [(_, preview_kwargs), (_, up_kwargs)] = stack.calls
    assert preview_kwargs == up_kwargs == {"policy_packs": ["policies"]}


def test_preview_lists_the_stateful_changes_first(tmp_path: Path, opened: Any) -> None:
    opened([*STATELESS_ONLY[:-1], *DATABASE_REPLACED])
    out = io.StringIO()
    comment = tmp_path / "comment.md"
    options = GuardOptions(comment=comment)
    assert cli.run_operation("preview", project(tmp_path), out, guard_options=options) == 0
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "Stateful data replaced or deleted (1):"
    assert lines[1].startswith("  REPLACE container homelab-mysql")
    assert lines[1].endswith("-> up would refuse: backups were not checked; pass --allow-replace mysql")
    # The steps and the summary come after.
    assert lines[2].startswith("[")
    assert "landing" in text.split(lines[1], 1)[1]
    markdown = comment.read_text()
    assert markdown.startswith("### :warning: Stateful data replaced or deleted (1)\n")
    assert (
        "| **replace** | container homelab-mysql (writes homelab_mysql_data) | mysql on local | `image` |"
        in markdown
    )
    assert markdown.index("Stateful data") < markdown.index("### Changes")


def test_preview_json_lines_start_with_the_guard(tmp_path: Path, opened: Any) -> None:
    # The delete step's end too: in --json mode a step prints a line only when it ends.
    deleted = RETAINED_VOLUME_DELETED[1].resource_pre_event
    assert deleted is not None
    outputs = events.ResOutputsEvent(metadata=deleted.metadata, planning=True)
    ended = events.EngineEvent(sequence=2, timestamp=0, res_outputs_event=outputs)
    opened([*RETAINED_VOLUME_DELETED[:2], ended, RETAINED_VOLUME_DELETED[2]])
    out = io.StringIO()
    assert cli.run_operation("preview", project(tmp_path), out, json_lines=True) == 0
    first, *rest = out.getvalue().splitlines()
    [record] = json.loads(first)["guard"]
    assert record["action"] == "delete" and record["service"] == "grafana" and not record["allowed"]
    assert rest and all("guard" not in json.loads(line) for line in rest)
    assert any(json.loads(line).get("op") == "delete" for line in rest)


def test_the_markdown_comment_says_so_when_nothing_stateful_changes(tmp_path: Path, opened: Any) -> None:
    opened(STATELESS_ONLY)
    comment = tmp_path / "comment.md"
    cli.run_operation(
        "preview", project(tmp_path), io.StringIO(), guard_options=GuardOptions(comment=comment)
    )
    text = comment.read_text()
    assert text.startswith("### Stateful data\n\nNo volume, database or claim is replaced or deleted.\n")
    assert "- `replace` docker:index/container:Container **landing**" in text


def test_policy_violations_go_into_the_comment_after_the_guard(tmp_path: Path, opened: Any) -> None:
    violation = events.EngineEvent.from_json(
        {
            "sequence": 5,
            "timestamp": 0,
            "policyEvent": {
                "message": "mysql: image 'mysql' has no tag",
                "color": "never",
                "policyName": "pinned-images",
                "policyPackName": "homelab",
                "policyPackVersion": "",
                "policyPackVersionTag": "",
                "enforcementLevel": "mandatory",
                "resourceUrn": urn(CONTAINER, "mysql"),
            },
        }
    )
    opened([*DATABASE_REPLACED, violation])
    comment = tmp_path / "comment.md"
    cli.run_operation(
        "preview", project(tmp_path), io.StringIO(), guard_options=GuardOptions(comment=comment)
    )
    text = comment.read_text()
    assert "- **mandatory** `pinned-images` (mysql): mysql: image 'mysql' has no tag" in text
    assert text.index("Stateful data") < text.index("Policy violations") < text.index("### Changes")


def test_the_cli_parses_the_guard_options() -> None:
    args = cli._parser().parse_args(
        [
            "up",
            "--allow-replace",
            "mysql",
            "--allow-replace",
            "grafana",
            "--policy-pack",
            "policies",
            "--no-plan",
        ]
    )
    assert preflight.guard_options_from(args) == GuardOptions(
        allow_replace=("mysql", "grafana"), policy_packs=("policies",), use_plan=False
    )
    args = cli._parser().parse_args(["preview", "--comment", "out.md"])
    assert preflight.guard_options_from(args).comment == Path("out.md")
    with pytest.raises(cli.UsageError):
        cli._parser().parse_args(["destroy", "--allow-replace", "mysql"])


def test_max_backup_age_is_validated(tmp_path: Path) -> None:
    from stacks.config import ConfigError, parse

    with pytest.raises(ConfigError, match=r"data.max-backup-age: 'soon' is not a duration"):
        parse({"data": {"max-backup-age": "soon"}})
    assert parse({}).data.max_backup_age == "24h"


def test_the_guard_module_reads_no_config() -> None:
    # The rule itself is plain: it works from the events and the ledger alone.
    assert "stacks" not in Path(guard.__file__).read_text()


def test_up_shows_the_archive_of_each_pre_upgrade_backup(tmp_path: Path, opened: Any) -> None:
    run = "command:local:Command"
    line = (
        "pre-upgrade backup of mysql: archive homelab-local-pre-upgrade-mysql-2026-11-25T22-00-00.tar.gz.age"
    )
    done = events.EngineEvent.from_json(
        {
            "sequence": 7,
            "timestamp": 0,
            "resOutputsEvent": {
                "metadata": {
                    "op": "create-replacement",
                    "urn": f"{STACK}homelab:backup:PreUpgradeBackup${run}::mysql-pre-upgrade-backup-run",
                    "type": run,
                    "provider": "",
                    "new": {
                        "type": run,
                        "urn": "x",
                        "id": "y",
                        "parent": "",
                        "provider": "",
                        "outputs": {"stdout": line + "\n", "stderr": "engine log"},
                    },
                }
            },
        }
    )
    opened([*STATELESS_ONLY, done])
    code, text = up(tmp_path, GuardOptions())
    assert code == 0, text
    assert f"\n{line}\n" in text


def test_a_ledger_that_cannot_answer_refuses_saying_why() -> None:
    class Unreachable:
        def newest_backup(self, host: str, service: str) -> float | None:
            raise RuntimeError("ssh: connect to host nas port 22: Connection refused")

    [change] = classify(metas(DATABASE_REPLACED))
    [verdict] = judge([change], ledger=Unreachable(), now=NOW).verdicts
    assert not verdict.allowed
    assert verdict.reason == (
        "backups could not be checked (ssh: connect to host nas port 22: Connection refused); "
        "pass --allow-replace mysql"
    )


# ---- errors on stderr, a JSON error object with --json (issue 12's CLI hygiene) ---------------


class FailingPreview(RecordedStack):
    def preview(self, on_event: Any, **kwargs: Any) -> None:
        from pulumi.automation import CommandResult
        from pulumi.automation import errors as auto_errors

        self.calls.append(("preview", kwargs))
        raise auto_errors.CommandError(CommandResult(stdout="", stderr="error: boom\n", code=255))


def test_up_refusal_is_on_stderr_and_a_json_error_object(tmp_path: Path, opened: Any) -> None:
    opened(DATABASE_REPLACED)
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation("up", project(tmp_path), out, json_lines=True, err=err) == 1
    assert err.getvalue().startswith("up refused before any change: 1 change(s)")
    first, last = out.getvalue().splitlines()
    assert json.loads(first)["guard"][0]["service"] == "mysql"  # the report stays on stdout
    error = json.loads(last)["error"]
    assert error["kind"] == "refused" and error["message"] == err.getvalue().strip()


@pytest.mark.parametrize("operation", ["preview", "up"])
def test_a_failed_preview_is_on_stderr_and_a_json_error_object(
    tmp_path: Path, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = FailingPreview([])
    monkeypatch.setattr(cli, "open_stack", lambda options, passphrase: stack)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    out, err = io.StringIO(), io.StringIO()
    assert cli.run_operation(operation, project(tmp_path), out, json_lines=True, err=err) == 1
    said = "preview failed: error: boom" if operation == "preview" else "its preview failed: error: boom"
    assert said in err.getvalue()
    error = json.loads(out.getvalue().splitlines()[-1])["error"]
    assert error["kind"] == "operation" and said in error["message"]
    assert [c for c, _ in stack.calls] == ["preview"]


def test_a_comment_file_that_cannot_be_written_is_an_error_not_a_traceback(
    tmp_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened(STATELESS_ONLY)
    monkeypatch.setattr(cli, "PROJECT_DIR", tmp_path)
    project(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["preview", "--stack", "guard", "--json", "--comment", str(tmp_path)], out=out, err=err)
    assert code == 1
    assert "Is a directory" in err.getvalue()
    assert json.loads(out.getvalue().splitlines()[-1])["error"]["kind"] == "os"
