"""scripts/export_schema.py: a valid JSON Schema of a stack file that accepts every example
and rejects what the program rejects key by key."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
from harness import HOST_KEY, ROOT, example_files
from jsonschema import Draft202012Validator

from automation.validate import load_yaml
from stacks.config import StackConfig

SCRIPT = ROOT / "scripts" / "export_schema.py"


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("schema") / "sub" / "homelab.schema.json"
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def validator(schema) -> Draft202012Validator:
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_stdout_is_the_same_schema(schema):
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == schema


def test_is_a_valid_draft_2020_12_schema(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_wraps_the_config_model_as_a_stack_file(schema):
    assert set(schema["properties"]) >= {"config", "encryptionsalt", "secretsprovider"}
    config = schema["properties"]["config"]
    aliases = {f.alias or n for n, f in StackConfig.model_fields.items()}
    assert set(config["properties"]) == {f"homelab:{a}" for a in aliases}
    assert config["additionalProperties"] is False
    assert config["patternProperties"], "secret keys are allowed by pattern"


def test_every_property_name_is_kebab_case(schema):
    def names(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = list(node.get("properties", {})) if isinstance(node.get("properties"), dict) else []
            return found + [n for v in node.values() for n in names(v)]
        if isinstance(node, list):
            return [n for v in node for n in names(v)]
        return []

    all_names = names(schema)
    assert "custom-services" in {n.partition(":")[2] for n in all_names}
    assert {"node-exporter", "self-signed", "exposed-port", "private-key-secret"} <= set(all_names)
    assert not [n for n in all_names if "_" in n]


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_validates(validator, path):
    document = load_yaml(path)  # strictly, as the tool reads stack files
    assert errors(validator, document) == []


def dev_document() -> dict[str, Any]:
    return load_yaml(ROOT / "Pulumi.dev.yaml")


def test_secret_keys_and_pulumi_metadata_validate(validator):
    document = dev_document()
    document["encryptionsalt"] = "v1:abc:def"
    document["config"]["homelab:hosts"] = [
        {
            "name": "server",
            "address": "deploy@server.example.com",
            "private-key-secret": "server-ssh-key",
            "host-key": HOST_KEY,
        }
    ]
    document["config"]["homelab:server-ssh-key"] = {"secure": "v1:AAAA"}
    document["config"]["homelab:my-cert"] = {"secure": "v1:BBBB"}
    assert errors(validator, document) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        pytest.param(
            lambda c: c["homelab:services"].update(grafana={"colour": "red"}),
            "homelab:services",
            id="unknown-service-key",
        ),
        pytest.param(
            lambda c: c["homelab:services"].update(nginx={"enabled": True}),
            "homelab:services",
            id="unknown-service",
        ),
        pytest.param(
            lambda c: c["homelab:services"].update(node_exporter={"enabled": False}),
            "homelab:services",
            id="snake-case-key",
        ),
        pytest.param(
            lambda c: c.update({"homelab:hosts": {"name": "x"}}), "homelab:hosts", id="hosts-not-a-list"
        ),
        pytest.param(lambda c: c.update({"homelab:hosts": []}), "homelab:hosts", id="no-hosts"),
        pytest.param(
            lambda c: c.update({"homelab:proxy": {"https-port": 70000}}),
            "homelab:proxy",
            id="port-out-of-range",
        ),
        pytest.param(
            lambda c: c.update({"homelab:tls": {"self-signed": "maybe"}}), "homelab:tls", id="not-a-boolean"
        ),
        pytest.param(
            lambda c: c.update({"homelab:custom-services": [{"name": "x"}]}),
            "homelab:custom-services",
            id="custom-without-image",
        ),
        pytest.param(
            lambda c: c.update({"homelab:services": ["grafana"]}),
            "homelab:services",
            id="services-not-an-object",
        ),
        pytest.param(lambda c: c.update({"other:key": "value"}), "config", id="other-namespace"),
        pytest.param(lambda c: c.update({"homelab:bad key": "value"}), "config", id="not-a-key-name"),
    ],
)
def test_invalid_documents_are_rejected(validator, change, where):
    document = copy.deepcopy(dev_document())
    change(document["config"])
    found = errors(validator, document)
    assert found, "the schema accepted an invalid stack file"
    assert any(e.startswith(f"config/{where}") or e.startswith(f"{where}:") for e in found), found


def test_unknown_key_under_services_does_not_validate(validator):
    document = dev_document()
    document["config"]["homelab:services"]["grafana"]["colour"] = "red"
    (error,) = list(validator.iter_errors(document))
    assert list(error.absolute_path) == ["config", "homelab:services", "grafana"]
    assert "colour" in error.message


def test_committed_schema_is_current(schema):
    committed = json.loads((ROOT / "schema" / "homelab.schema.json").read_text())
    assert committed == schema, "run: make schema"
