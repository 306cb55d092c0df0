"""No admin tool routed without sign-in unless the config says so (issue 25, item 4): the
program labels each admin tool with how its routes sign users in, the `admin-sign-in` policy
holds the label to the proxies' real haproxy.cfg, and `proxy.without-sign-in` is the explicit
way to serve one open (checked against the routes)."""

from __future__ import annotations

from typing import Any

import pytest
from harness import is_stager, run_program
from test_bad_input import assert_rejected
from test_identity import CONFIG as IDENTITY_CONFIG
from test_identity import PASSWORDS
from test_policies import as_res

from policies.rules import evaluate

CONTAINER = "docker:index/container:Container"
LAB: dict[str, Any] = {"domain": "lab.example.com", "services": {"portainer": {"enabled": True}}}


def labels_of(lab, name: str) -> dict[str, str]:
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == name and not is_stager(c)]
    return {x["label"]: x["value"] for x in c.inputs["labels"]}


def violations(lab) -> list[str]:
    return evaluate([as_res(r) for r in lab.resources])["admin-sign-in"]


def test_without_identity_the_admin_tools_fail_the_policy(tmp_path):
    lab = run_program(LAB, {}, key_dir=str(tmp_path))
    assert labels_of(lab, "homelab-prometheus")["homelab.sign-in"] == "none"
    assert labels_of(lab, "homelab-portainer")["homelab.sign-in"] == "own-login"
    found = violations(lab)
    assert len(found) == 2 and any("metrics.lab.example.com" in m for m in found)
    assert any("alerts.lab.example.com" in m for m in found)


def test_serving_them_open_is_said_explicitly(tmp_path):
    lab = run_program({**LAB, "proxy": {"without-sign-in": ["metrics", "alerts"]}}, {}, key_dir=str(tmp_path))
    assert labels_of(lab, "homelab-prometheus")["homelab.sign-in"] == "open-by-config"
    assert violations(lab) == []


def test_with_identity_forward_auth_covers_them(tmp_path):
    lab = run_program(IDENTITY_CONFIG, PASSWORDS, key_dir=str(tmp_path))
    tags = labels_of(lab, "homelab-prometheus")
    assert tags["homelab.sign-in"] == "forward-auth" and tags["homelab.routes"] == "metrics.lab.example.com"
    assert violations(lab) == []
    # Made public in identity.forward-auth: open on purpose too.
    config = {
        **IDENTITY_CONFIG,
        "identity": {**IDENTITY_CONFIG["identity"], "forward-auth": {"metrics": {"policy": "public"}}},
    }
    lab = run_program(config, PASSWORDS, key_dir=str(tmp_path / "public"))
    assert labels_of(lab, "homelab-prometheus")["homelab.sign-in"] == "open-by-config"
    assert violations(lab) == []


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["nowhere"], "no service is routed at nowhere.lab.example.com"),
        (["monitoring"], "has a login of its own"),
        (["home"], "is not an admin tool"),
    ],
    ids=["unrouted", "own-login", "not-admin"],
)
def test_bad_without_sign_in_is_named(names, fragment):
    config = {**LAB, "services": {"portainer": {"enabled": True}, "landing": {"enabled": True}}}
    assert_rejected({**config, "proxy": {"without-sign-in": names}}, "proxy.without-sign-in[0]", fragment, {})


def test_an_open_name_behind_forward_auth_is_named():
    config = {**IDENTITY_CONFIG, "proxy": {"without-sign-in": ["metrics"]}}
    assert_rejected(config, "proxy.without-sign-in[0]", "make it public in identity.forward-auth", PASSWORDS)
