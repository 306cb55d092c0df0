"""Writes the JSON schema of a `Pulumi.<stack>.yaml` file of this project, for editors.

The `homelab:` keys come from `stacks.config.StackConfig` (kebab-case, by alias, unknown keys
rejected at every level). Any other `homelab:` key may hold a secret the config refers to by
name (`{secure: ...}` once encrypted), so those are allowed as strings or objects.

    python scripts/export_schema.py [OUTPUT]      # stdout without OUTPUT
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks.config import NAMESPACE, StackConfig  # noqa: E402

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def stack_file_schema() -> dict[str, Any]:
    model = StackConfig.model_json_schema(by_alias=True, mode="validation")
    defs = model.pop("$defs", {})
    keys = list(model["properties"])
    properties = {f"{NAMESPACE}:{key}": schema for key, schema in model["properties"].items()}
    # Secret keys: any other name a config key may have (see stacks.config._SECRET_KEY_RE).
    # Plain alternation (kebab-case keys need no escaping; `\-` is not valid ECMA-262 with /u).
    assert all(re.fullmatch(r"[a-z][a-z-]*", k) for k in keys), keys
    not_a_model_key = "|".join(keys)
    secret_key = rf"^{NAMESPACE}:(?!(?:{not_a_model_key})$)[a-zA-Z][a-zA-Z0-9_-]*$"
    return {
        "$schema": DRAFT,
        "title": "homelab Pulumi stack config",
        "description": model.get("description", ""),
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "patternProperties": {
                    secret_key: {
                        "description": "A secret the config refers to by name "
                        "(pulumi config set --secret <key>).",
                        "type": ["string", "object"],
                    }
                },
                "additionalProperties": False,
            },
            "encryptionsalt": {"type": "string"},
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Write the JSON schema of a stack file (stdout without OUTPUT)."
    )
    parser.add_argument("output", nargs="?", type=Path, help="file to write, e.g. schema/homelab.schema.json")
    out = parser.parse_args(argv[1:]).output
    text = json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
