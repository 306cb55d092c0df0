"""Support windows (issue 21): every pin has its line, the line's end of support and where that
was read; `python -m automation lifecycle` judges pins on a fixed day; the upgrade-path guard
refuses the image moves of stateful services that their vendors document as unsafe.

Dates are fixed here (`--on`); the command itself uses today's.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, example_files, example_run, load_stack_file

from automation import cli, preflight, support, upgrades
from automation.preflight import GuardOptions
from automation.workspace import StackOptions
from components.homelab.images import CONTRACTS, UPGRADES
from components.lifecycle import line_of, upgrade_findings, version_numbers
from components.platform.charts import CHARTS, KUBERNETES_VERSION
from stacks.checks import validate
from stacks.config_platform import PlatformConfig

TODAY = date(2026, 12, 7)  # the day the tables were read
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
RELEASE = "kubernetes:helm.sh/v3:Release"


def lifecycle(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["lifecycle", *args], out=out, err=io.StringIO())
    return code, out.getvalue()


# ---- the tables -----------------------------------------------------------------------------------


def test_every_pin_of_the_code_has_a_support_window():
    rows = support.report(support.table_pins(), TODAY)
    kinds = {r.pin.kind for r in rows}
    assert kinds == {"image", "chart", "kubernetes", "runtime"}
    assert len([r for r in rows if r.pin.kind == "chart"]) == len(CHARTS)
    assert [r.pin.reference for r in rows if r.status == support.UNKNOWN] == []


def windows() -> list[tuple[str, Any]]:
    found: dict[int, tuple[str, Any]] = {}
    for product in support.products().values():
        for w in product.windows:
            found[id(w)] = (product.name, w)
    return list(found.values())


@pytest.mark.parametrize(("product", "window"), windows(), ids=lambda v: getattr(v, "line", v))
def test_every_window_names_its_source_and_its_newest_release(product, window):
    seen = window.source
    # a GitHub repository (owner/name), or a vendor's own site where no repository keeps the text
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", seen.repo) or re.fullmatch(r"[a-z0-9.-]+\.[a-z]+", seen.repo)
    if seen.path.startswith("#"):
        assert re.fullmatch(r"#\d+", seen.path) and seen.ref == ""
    elif "/" in seen.repo:
        assert re.fullmatch(r"[0-9a-f]{12}|v?\d+\.\d+\.\d+", seen.ref), seen
    assert window.read <= date.today()
    if window.ends is None:
        assert window.note, f"{product} {window.line}: no end date, so the note must say why"
    digits = support.products()[product].digits
    assert line_of(window.newest, digits) == window.line, (product, window.newest)


def test_every_pinned_image_and_chart_is_the_newest_release_of_its_line_known():
    for row in support.report(support.table_pins(), TODAY):
        if row.pin.kind in ("image", "chart"):
            assert row.window is not None
            assert version_numbers(row.pin.version) == version_numbers(row.window.newest), row.pin


def test_the_config_default_kubernetes_version_is_the_tables():
    assert PlatformConfig.model_fields["kubernetes_version"].default == KUBERNETES_VERSION


def test_no_homelab_pin_is_on_an_ended_line_for_the_coming_months():
    """The homelab's lines run at least until spring 2027 (Portainer 2.45 LTS, May 2027)."""
    homelab = [support.image_pin(k, c.image) for k, c in CONTRACTS.items()]
    rows = support.report(homelab, TODAY, within=150)
    assert support.failing(rows) == []


# ---- the command ------------------------------------------------------------------------------


def homelab_examples() -> list[Path]:
    return [p for p in example_files() if not load_stack_file(p).get("layers", {}).get("platform")]


@pytest.mark.parametrize("path", homelab_examples(), ids=lambda p: p.name)
def test_homelab_examples_are_on_supported_lines_today(path):
    code, text = lifecycle("--file", str(path), "--on", TODAY.isoformat())
    assert code == 0, text
    assert "0 past or within 60 day(s)" in text


def test_the_platform_example_is_on_supported_lines_but_cloudnative_pg_ends_soon():
    """Jaeger v2 and Envoy Gateway replaced Jaeger v1 and ingress-nginx (issue 22). The
    CloudNativePG line pinned (operator 1.30) ends '~ Dec 2026', and no newer release could be read
    upstream: the report says so (60 days ahead), and nothing has ended."""
    path = str(ROOT / "examples" / "platform.yaml")
    code, text = lifecycle("--file", path, "--on", TODAY.isoformat(), "--json")
    report = json.loads(text)
    assert code == 1
    failing = {(p["component"], p["status"]) for p in report["pins"] if p["status"] in ("ended", "expiring")}
    assert failing == {("chart cloudnative-pg", "expiring")}
    assert lifecycle("--file", path, "--on", TODAY.isoformat(), "--within", "0")[0] == 0


def test_exit_codes_at_fixed_dates():
    single = str(ROOT / "examples" / "single-host.yaml")
    assert lifecycle("--file", single, "--on", "2026-12-07")[0] == 0
    # Mattermost's 11.7 ESR ends 2027-05-15; 60 days before, the report warns.
    code, text = lifecycle("--file", single, "--on", "2027-03-17")
    assert code == 1
    assert "mattermost: mattermost 11.7 ends 2027-05-15" in text
    code, text = lifecycle("--file", single, "--on", "2027-03-17", "--within", "0")
    assert code == 0, "nothing has ended yet"
    code, text = lifecycle("--file", single, "--on", "2027-05-16", "--within", "0")
    assert code == 1
    assert "mattermost: mattermost 11.7 ended 2027-05-15" in text
    assert "move to" not in text.split("mattermost 11.7 ended")[1].splitlines()[0], "no newer ESR known"


def test_json_gives_each_pin_its_line_end_days_and_source():
    code, text = lifecycle("--all", "--on", TODAY.isoformat(), "--json", "--within", "0")
    report = json.loads(text)
    by = {p["component"]: p for p in report["pins"]}
    postgres = by["postgres"]
    assert postgres["line"] == "17" and postgres["ends"] == "2029-11-08"
    assert postgres["days-left"] == (date(2029, 11, 8) - TODAY).days
    assert postgres["source"].startswith("endoflife-date/endoflife.date")
    assert by["chart envoy-gateway"]["ends"] == "2027-02-14" and by["chart envoy-gateway"]["status"] == "ok"
    assert by["drupal"]["ends"] is None and "next-but-one minor" in by["drupal"]["note"]
    assert code == 0 and report["failing"] == 0  # nothing has ended; within 0 days, nothing ends


def test_a_custom_image_on_an_ended_line_is_reported_and_an_unknown_one_is_listed():
    config = validate(
        {
            "hosts": [{"name": "server", "address": "local"}],
            "custom-services": [
                {"name": "old", "image": "nginx:1.28.0-alpine"},
                {"name": "mine", "image": "example.org/team/tool:2.1.0"},
            ],
        }
    )
    rows = {r.pin.component: r for r in support.report(support.config_pins(config), TODAY)}
    assert rows["old"].status == support.ENDED and rows["old"].line == "1.28"
    assert rows["old"].newest_supported == "1.30.5"
    assert rows["mine"].status == support.UNKNOWN
    text = support.render_text(list(rows.values()), TODAY, 60)
    assert "old: nginx 1.28 ended 2026-04-14" in text and "move to 1.30.5" in text
    assert "mine: example.org/team/tool:2.1.0: no support window known for this product" in text


def test_bad_arguments_are_clear_errors():
    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return cli.main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()

    code, out, err = run("lifecycle", "--within", "soon")
    assert (code, out) == (cli.USAGE_ERROR, "") and "'soon' is not a whole number of days" in err
    for day in ("07.12.2026", "20261207", "2026-W50-1", "2026-02-30"):
        code, out, err = run("lifecycle", "--on", day, "--json")
        assert code == 64 and f"'{day}' is not a date (YYYY-MM-DD)" in err
        assert json.loads(out)["error"] == {
            "kind": "usage",
            "message": f"argument --on: '{day}' is not a date (YYYY-MM-DD)",
        }


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_the_report_covers_every_image_and_chart_the_program_registers(path):
    registered = example_run(path)
    images = {r.inputs["name"] for r in registered.of_type(REMOTE_IMAGE)}
    # an OCI chart is registered by its reference (oci://<registry>/<path>/<chart>)
    charts = {
        (r.inputs["chart"].rsplit("/", 1)[-1], r.inputs["version"]) for r in registered.of_type(RELEASE)
    }
    config = validate(load_stack_file(path))
    pins = support.config_pins(config)
    cluster = {c.image for c in _cluster_contracts()}
    # Docker images are pulled as RemoteImages; the cluster's run in pods the charts do not pin
    assert {p.reference for p in pins if p.kind == "image"} - cluster == images
    assert {tuple(p.reference.split(" ")) for p in pins if p.kind == "chart"} == charts


def _cluster_contracts() -> list[Any]:
    from components.pipeline.images import CONTRACTS as PIPELINE
    from components.platform.images import CONTRACTS as PLATFORM

    return [*PIPELINE.values(), *PLATFORM.values()]


# ---- the upgrade-path guard -------------------------------------------------------------------


def findings(product: str, old: str, new: str) -> list[tuple[str, str, str]]:
    return upgrade_findings(UPGRADES, product, old, new)


def test_a_postgres_major_is_refused_with_the_way_through():
    [(action, reason, way)] = findings("postgres", "17.11-alpine", "18.1-alpine")
    assert action == "refuse"
    assert "internal data storage format is subject to change" in reason
    assert "pg_upgrade" in way and "pg_dumpall" in way


def test_a_downgrade_of_a_stateful_image_is_refused():
    [(action, reason, way)] = findings("postgres", "17.11-alpine", "17.9-alpine")
    assert action == "refuse" and "17.11-alpine -> 17.9-alpine is a downgrade" in reason
    assert "restore" in way
    assert findings("grafana", "12.4.9", "12.3.11")[0][0] == "refuse"


def test_mattermosts_documented_forbidden_jump_is_refused():
    [(action, reason, way)] = findings("mattermost", "10.11.20", "11.7.2")
    assert action == "refuse" and "database migration numbers" in reason
    assert way == "upgrade to 11.7.3 or later instead"
    assert findings("mattermost", "10.11.20", "11.7.3") == []
    assert findings("mattermost", "10.11.16", "11.7.2") == [], "the window starts at 10.11.17"
    assert findings("mattermost", "10.11.23", "11.7.16") == [], "this project's own move"


def test_patch_bumps_go_through_and_drupal_says_what_to_run_after():
    assert findings("postgres", "17.9-alpine", "17.11-alpine") == []
    assert findings("mysql", "8.4.8", "8.4.11") == []
    assert findings("mysql", "8.4.11", "9.7.0")[0][0] == "refuse"
    # A new Drupal line waits for --allow-upgrade and says what to run after; a patch only says it.
    refuse, after = findings("drupal", "11.2.14-php8.4-apache-bookworm", "11.4.7-php8.4-apache-bookworm")
    assert refuse[0] == "refuse" and "--allow-upgrade drupal" in refuse[2] and "/update.php" in refuse[2]
    assert after[0] == "after" and "/update.php" in after[2]
    [(action, _, way)] = findings("drupal", "11.4.5-php8.4-apache-bookworm", "11.4.7-php8.4-apache-bookworm")
    assert action == "after" and "/update.php" in way


def deployment(*containers: tuple[str, str, str]) -> dict[str, Any]:
    """State with a pulled image and a container per (service, container name, image)."""
    resources: list[dict[str, Any]] = []
    for i, (service, name, image) in enumerate(containers):
        resources.append(
            {
                "type": upgrades.REMOTE_IMAGE,
                "id": f"img{i}",
                "inputs": {"name": image},
                "outputs": {"imageId": f"sha256:{i}"},
            }
        )
        labels = [{"label": "homelab.service", "value": service}, {"label": "homelab.host", "value": "local"}]
        resources.append(
            {"type": upgrades.CONTAINER, "inputs": {"name": name, "image": f"sha256:{i}", "labels": labels}}
        )
    return {"resources": resources}


class DeployedStack:
    """What `open_stack` returns: a state with the given containers; preview and up do nothing."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls: list[str] = []

    def export_stack(self) -> Any:
        from pulumi.automation import Deployment

        return Deployment(version=3, deployment=self.state)

    def preview(self, on_event: Any, **kwargs: Any) -> None:
        self.calls.append("preview")

    def up(self, on_event: Any, **kwargs: Any) -> None:
        self.calls.append("up")


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    def install(state: dict[str, Any]) -> tuple[DeployedStack, StackOptions]:
        stack = DeployedStack(state)
        monkeypatch.setattr(cli, "open_stack", lambda options, passphrase: stack)
        monkeypatch.setattr(preflight, "backup_ledger", lambda config: None)
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
        config = {
            "homelab:hosts": [{"name": "local", "address": "local"}],
            "homelab:services": {"postgres": {"enabled": True}, "drupal": {"enabled": True}},
        }
        (tmp_path / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": config}))
        return stack, StackOptions("lab", project_dir=tmp_path)

    return install


def run(operation: str, options: StackOptions, allow: tuple[str, ...] = ()) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_operation(
        operation, options, out, guard_options=GuardOptions(allow_upgrade=allow, check_backups=False), err=err
    )
    return code, out.getvalue() + err.getvalue()


def test_up_refuses_a_postgres_major_and_goes_ahead_when_named(deployed):
    stack, options = deployed(deployment(("postgres", "homelab-postgres", "postgres:16.4-alpine")))
    code, text = run("up", options)
    assert code == 1 and stack.calls == ["preview"], "nothing changed"
    new = CONTRACTS["postgres"].image
    assert f"UPGRADE postgres:16.4-alpine -> {new} (service postgres on local) -> REFUSED" in text
    assert "up refused before any change: 1 image change(s) of stateful services" in text
    assert "--allow-upgrade postgres" in text
    code, text = run("up", options, allow=("postgres",))
    assert code == 0 and stack.calls[-1] == "up"
    assert "-> allowed (--allow-upgrade)" in text


def test_preview_says_it_and_up_refuses_a_downgrade(deployed):
    stack, options = deployed(deployment(("postgres", "homelab-postgres", "postgres:17.99-alpine")))
    code, text = run("preview", options)
    assert code == 0 and "up would refuse: 17.99-alpine ->" in text and "is a downgrade" in text
    assert run("up", options)[0] == 1


def test_up_refuses_a_new_drupal_line_until_named_and_says_what_to_run_after(deployed):
    old = "drupal:11.2.14-php8.4-apache-bookworm"
    stack, options = deployed(deployment(("drupal", "homelab-drupal", old)))
    code, text = run("up", options)
    assert code == 1 and stack.calls == ["preview"]
    assert "--allow-upgrade drupal" in text
    code, text = run("up", options, allow=("drupal",))
    assert code == 0 and stack.calls[-1] == "up"
    assert f"AFTER   {old} -> {CONTRACTS['drupal'].image} (service drupal on local)" in text
    assert "/update.php" in text


def test_a_drupal_patch_goes_ahead_and_says_what_to_run_after(deployed):
    new = CONTRACTS["drupal"].image
    old = new.split("@")[0].replace("11.4.7", "11.4.5")
    stack, options = deployed(deployment(("drupal", "homelab-drupal", old)))
    code, text = run("up", options)
    assert code == 0 and stack.calls[-1] == "up"
    assert "AFTER" in text and "UPGRADE" not in text


def test_a_new_stack_and_unchanged_images_say_nothing(deployed):
    stack, options = deployed({"resources": []})
    code, text = run("up", options)
    assert code == 0 and "Upgrade paths" not in text
    stack, options = deployed(deployment(("postgres", "homelab-postgres", CONTRACTS["postgres"].image)))
    code, text = run("up", options)
    assert code == 0 and "Upgrade paths" not in text


def test_the_charts_a_platform_config_installs_are_the_programs():
    """`ComponentsConfig.charts()` (what the lifecycle report reads) against a program run."""
    path = ROOT / "examples" / "platform.yaml"
    registered = {r.inputs["chart"].rsplit("/", 1)[-1] for r in example_run(path).of_type(RELEASE)}
    config = validate(load_stack_file(path))
    assert config.platform is not None
    assert {CHARTS[k].name for k in config.platform.components.charts(config.platform.routing)} == registered


def state_of(mocks: Any) -> dict[str, Any]:
    """The deployment a real `up` of this program run leaves: each pulled image with the ID the
    containers name, and the containers as registered (what `export_stack` gives the guard)."""
    from harness import mock_image_id

    resources = [
        {
            "type": upgrades.REMOTE_IMAGE,
            "inputs": r.inputs,
            "outputs": {"imageId": mock_image_id(r.inputs["name"])},
        }
        for r in mocks.of_type(upgrades.REMOTE_IMAGE)
    ]
    resources += [{"type": upgrades.CONTAINER, "inputs": r.inputs} for r in mocks.of_type(upgrades.CONTAINER)]
    return {"resources": resources}


def test_the_guard_reads_the_state_the_program_leaves():
    """Against the state of the single-host example: the same config changes no image; the
    config with PostgreSQL 18 is the one major the guard refuses."""
    from harness import load_stack_file

    path = ROOT / "examples" / "single-host.yaml"
    state = state_of(example_run(path))
    deployed = upgrades.deployed_images(state)
    assert deployed[("server", "homelab-postgres")] == CONTRACTS["postgres"].image
    config = validate(load_stack_file(path))
    assert upgrades.image_changes(deployed, upgrades.planned_images(config)) == []
    raw = load_stack_file(path)
    raw["services"]["postgres"] = {**raw["services"].get("postgres", {}), "image": "postgres:18.1-alpine"}
    changes = upgrades.image_changes(deployed, upgrades.planned_images(validate(raw)))
    assert [(c.service, c.old, c.new) for c in changes] == [
        ("postgres", CONTRACTS["postgres"].image, "postgres:18.1-alpine")
    ]
    [verdict] = upgrades.judge_upgrades(changes)
    assert verdict.action == "refuse" and not verdict.allowed
