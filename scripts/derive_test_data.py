"""Derives what the tests need from the shared reference folder into tests/data/ (committed),
so a clone alone runs every test:

- tests/data/charts/<chart>-<version>.keys.json: the key tree of the chart's default values
  (every key, maps kept as maps, every other value replaced by its type), for the tests that
  check each value the program sets is a key the chart knows;
- tests/data/crds/<group>_<Kind>_<version>.schema.json: the `openAPIV3Schema` of each served
  version of each CRD (descriptions left out), for the tests that validate custom resources;
- tests/data/providers/<provider>.json: each reduced provider schema (resource and provider
  inputs, their types, required inputs) with the SDK overlay applied (sdk-overlay.json: what
  the pinned Python SDK adds to or drops from the nearest stored schema), for the tests that
  check every registered input is a field of the pinned provider, of the right type.

Each file names its source (file, chart version) as the shared folder's READMEs give it.

    python scripts/derive_test_data.py [--shared ../shared] [--check]

`--check` writes nothing and fails when a committed file differs from what it would write
(run it after the shared folder or a chart pin changes; `make test-data` rewrites them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.platform.charts import CHARTS  # noqa: E402

DATA = ROOT / "tests" / "data"


def key_tree(value: Any) -> Any:
    """Maps stay maps (of key trees); anything else becomes the name of its type."""
    if isinstance(value, dict):
        return {str(k): key_tree(v) for k, v in value.items()}
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list"}.get(type(value), "other")


def without_descriptions(schema: Any, in_properties: bool = False) -> Any:
    """An OpenAPI schema without its `description` keywords (a property named so is kept)."""
    if isinstance(schema, list):
        return [without_descriptions(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if in_properties:  # property name -> schema
        return {k: without_descriptions(v) for k, v in schema.items()}
    return {
        k: without_descriptions(v, in_properties=k in ("properties", "patternProperties"))
        for k, v in schema.items()
        if k != "description"
    }


def readme_sources(readme: Path) -> dict[str, str]:
    """File name -> its source, from README lines like "- `a.yaml`, `b.yaml`: chart 1.0 (app 2.0)"
    or "- `a.values.yaml` (chart repo, app 2.0)"."""
    sources: dict[str, str] = {}
    for line in readme.read_text().splitlines():
        match = re.fullmatch(r"- ((?:`[^`]+`(?:, )?)+):? (.+)", line.strip())
        if match:
            for name in re.findall(r"`([^`]+)`", match.group(1)):
                text = match.group(2).strip()
                sources[name] = text[1:-1] if text.startswith("(") and text.endswith(")") else text
    return sources


def chart_files(shared: Path) -> dict[Path, str]:
    sources = readme_sources(shared / "charts" / "README.md")
    out = {}
    for key, chart in sorted(CHARTS.items()):
        source = shared / "charts" / f"{key}-{chart.version}.values.yaml"
        if not source.is_file():
            continue  # a chart whose values no test reads
        document = {
            "source": f"shared/charts/{source.name}",
            "chart": f"{chart.name} {chart.version} ({chart.repo})",
            "upstream": sources.get(source.name, ""),
            "keys": key_tree(yaml.safe_load(source.read_text())),
        }
        out[DATA / "charts" / f"{key}-{chart.version}.keys.json"] = dump(document)
    return out


def crd_files(shared: Path) -> dict[Path, str]:
    sources = readme_sources(shared / "crds" / "README.md")
    out = {}
    for path in sorted((shared / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                document = {
                    "source": f"shared/crds/{path.name}",
                    "upstream": sources.get(path.name, ""),
                    "group": spec["group"],
                    "kind": spec["names"]["kind"],
                    "version": version["name"],
                    "schema": without_descriptions(version["schema"]["openAPIV3Schema"]),
                }
                name = f"{spec['group']}_{spec['names']['kind']}_{version['name']}.schema.json"
                out[DATA / "crds" / name] = dump(document)
    return out


PROVIDERS = ("command", "docker", "github", "harbor", "random", "tls")


def with_overlay(schema: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`schema` as the pinned SDK has it: inputs added or removed, required inputs replaced."""
    for section, properties in (("resources", "inputProperties"), ("types", "properties")):
        for token, change in overlay.get(section, {}).items():
            entry = schema[section][token]
            entry.setdefault(properties, {}).update(change.get("add", {}))
            for name in change.get("remove", []):
                entry[properties].pop(name, None)
            if "requiredInputs" in change:
                entry["requiredInputs" if section == "resources" else "required"] = change["requiredInputs"]
    return schema


def table_sources(readme: Path) -> dict[str, str]:
    """File name -> its source, from a Markdown table whose columns are
    `file | pinned | upstream | path | revision used | exact?` (shared/provider-schemas)."""
    sources: dict[str, str] = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].endswith(".json"):
            name, pinned, upstream, path, revision, exact = cells
            sources[name] = f"{upstream} {path} at {revision} (pinned: {pinned}; exact: {exact})"
    return sources


def provider_files(shared: Path) -> dict[Path, str]:
    sources = table_sources(shared / "provider-schemas" / "README.md")
    overlays = json.loads((shared / "provider-schemas" / "sdk-overlay.json").read_text())
    out = {}
    for provider in PROVIDERS:
        source = shared / "provider-schemas" / f"{provider}.json"
        schema = json.loads(source.read_text())
        kept = {k: schema[k] for k in ("provider", "resources", "types") if k in schema}
        document = {
            "source": f"shared/provider-schemas/{source.name}"
            + (" with sdk-overlay.json" if provider in overlays else ""),
            "upstream": sources.get(source.name, ""),
            "schema": with_overlay(kept, overlays.get(provider, {})),
        }
        out[DATA / "providers" / f"{provider}.json"] = dump(document)
    return out


def dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared folder")
    parser.add_argument("--check", action="store_true", help="fail if tests/data is not current")
    args = parser.parse_args()
    if not all((args.shared / d).is_dir() for d in ("charts", "crds", "provider-schemas")):
        parser.error(f"{args.shared} has no charts/, crds/ and provider-schemas/: give --shared")
    wanted = {**chart_files(args.shared), **crd_files(args.shared), **provider_files(args.shared)}
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    extra = [p for p in DATA.glob("*/*.json") if p not in wanted]
    if args.check:
        for path in stale + extra:
            print(f"not current: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for path in extra:
        path.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(wanted)} files under {DATA.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
