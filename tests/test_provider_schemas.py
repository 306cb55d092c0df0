"""Every input the program registers is one the pinned provider takes, of the right type.

For each example stack (and the dev stack), every resource of the docker, command, random,
tls, github and harbor providers, and each of their provider resources, is checked against
the provider's reduced schema as the pinned Python SDK has it (tests/data/providers, derived
from shared/provider-schemas with its SDK overlay by scripts/derive_test_data.py): the
resource type exists, every input is a known field, required inputs are set, and each value
has the schema's type, nested objects (`$ref` types) included. A misspelled input, a number
given as a string or a list where the provider wants one value fails here, before a real
`pulumi up` would.

Providers without a stored schema (kubernetes: its objects are checked by
kubernetes_validate; pulumiverse-time) are not covered here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import example_files, example_run, provider_schema

PROVIDERS = ("command", "docker", "github", "harbor", "random", "tls")
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int, float),  # numbers reach the mocks as floats
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def type_errors(value: Any, spec: dict[str, Any], types: dict[str, Any], path: str) -> list[str]:
    """What is wrong with `value` against a schema property `spec` (empty when it fits)."""
    if value is None:
        return []
    if "$ref" in spec:
        ref = spec["$ref"]
        if ref.startswith("pulumi.json#/"):  # Any, Archive, Asset: anything goes
            return []
        target = types[ref.removeprefix("#/types/")]
        if "enum" in target:
            allowed = [e["value"] if isinstance(e, dict) else e for e in target["enum"]]
            return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]
        return object_errors(value, target, types, path)
    if "oneOf" in spec:
        if any(not type_errors(value, option, types, path) for option in spec["oneOf"]):
            return []
        return [f"{path}: {value!r} fits none of {spec['oneOf']}"]
    kind = spec.get("type")
    if kind is None:
        return []
    if not isinstance(value, JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{path}: {type(value).__name__} {value!r:.60} where the provider takes {kind}"]
    if kind == "integer" and isinstance(value, float) and not value.is_integer():
        return [f"{path}: {value} is not a whole number"]
    if kind == "array" and "items" in spec:
        return [
            e for i, item in enumerate(value) for e in type_errors(item, spec["items"], types, f"{path}[{i}]")
        ]
    if kind == "object" and "additionalProperties" in spec:
        extra = spec["additionalProperties"]
        return [e for k, item in value.items() for e in type_errors(item, extra, types, f"{path}.{k}")]
    return []


def object_errors(value: Any, target: dict[str, Any], types: dict[str, Any], path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__} where the provider takes an object"]
    properties = target.get("properties", {})
    errors = [f"{path}.{key}: not a field of the provider's type" for key in value if key not in properties]
    errors += [
        f"{path}.{key}: required, not set" for key in target.get("required", []) if value.get(key) is None
    ]
    for key, item in value.items():
        if key in properties:
            errors += type_errors(item, properties[key], types, f"{path}.{key}")
    return errors


def resource_errors(kind: str, inputs: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """`kind` is a resource token, or `provider` for the provider resource itself."""
    entry = schema["provider"] if kind == "provider" else schema["resources"].get(kind)
    if entry is None:
        return [f"{where}: {kind} is not a resource of the pinned provider"]
    target = {"properties": entry.get("inputProperties", {}), "required": entry.get("requiredInputs", [])}
    return object_errors(inputs, target, schema.get("types", {}), where)


def _config_value(value: Any, spec: dict[str, Any]) -> Any:
    if isinstance(value, str) and spec.get("type", "string") != "string":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def registered_errors(mocks: Any) -> tuple[list[str], set[str]]:
    schemas = {p: provider_schema(p) for p in PROVIDERS}
    errors: list[str] = []
    checked: set[str] = set()
    for r in mocks.resources:
        if r.type.startswith("pulumi:providers:"):
            package, kind = r.type.removeprefix("pulumi:providers:"), "provider"
        else:
            package, kind = r.type.split(":", 1)[0], r.type
        if package not in schemas:
            continue
        inputs = {k: v for k, v in r.inputs.items() if not k.startswith("__")}
        if kind == "provider":
            inputs.pop("version", None)  # the SDK's plugin version, not a provider input
            # Provider inputs travel as strings, non-strings JSON-encoded (the SDK's provider
            # resources serialize them so; the engine hands them to the plugin as config).
            properties = schemas[package]["provider"].get("inputProperties", {})
            inputs = {k: _config_value(v, properties.get(k, {})) for k, v in inputs.items()}
        errors += resource_errors(kind, inputs, schemas[package], f"{r.type} {r.name}")
        checked.add(r.type)
    return errors, checked


@pytest.mark.parametrize("path", example_files(), ids=lambda p: Path(p).name)
def test_every_registered_input_is_a_field_of_the_pinned_provider(path):
    errors, checked = registered_errors(example_run(path))
    assert checked, "the example registers resources of these providers"
    assert errors == []


def test_the_check_catches_a_wrong_name_a_wrong_type_and_a_missing_required_input():
    docker = provider_schema("docker")
    token = "docker:index/container:Container"
    good = {"name": "c", "image": "sha256:0", "ports": [{"internal": 80.0, "external": 8080.0}]}
    assert resource_errors(token, good, docker, "c") == []
    assert resource_errors(token, {**good, "imageName": "x"}, docker, "c") == [
        "c.imageName: not a field of the provider's type"
    ]
    assert resource_errors(token, {**good, "ports": [{"internal": "80"}]}, docker, "c") == [
        "c.ports[0].internal: str '80' where the provider takes integer"
    ]
    assert resource_errors(token, {"name": "c"}, docker, "c") == ["c.image: required, not set"]
    assert resource_errors("docker:index/nope:Nope", {}, docker, "n") == [
        "n: docker:index/nope:Nope is not a resource of the pinned provider"
    ]
