"""Issue 26, item 3: nothing open to the world by accident. A database's TCP frontend exists
only with `expose: true`, is published on one host address (`bind-address`) and accepts only
the networks `allow-from` lists; a custom tcp route needs the same. Each wrong config is one
problem with its key path, before anything is registered."""

from __future__ import annotations

from typing import Any

import pytest
from test_bad_input import assert_rejected, custom

EXPOSED = {"enabled": True, "expose": True, "bind-address": "192.168.1.10", "allow-from": ["192.168.1.0/24"]}


def postgres(**fields: Any) -> dict[str, Any]:
    return {"services": {"postgres": {**EXPOSED, **fields}}}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"bind-address": None}, "needs bind-address"),
        ({"allow-from": []}, "needs allow-from"),
        ({"bind-address": "0.0.0.0"}, "every interface"),
        ({"bind-address": "::"}, "every interface"),
        ({"bind-address": "lan.example.com"}, "not an IP address"),
        ({"allow-from": ["0.0.0.0/0"]}, "every address"),
        ({"allow-from": ["::/0"]}, "every address"),
        ({"allow-from": ["192.168.1.1/24"]}, "CIDR"),
        ({"expose": False}, "set expose: true"),
    ],
    ids=[
        "no-bind-address",
        "no-sources",
        "wildcard-v4",
        "wildcard-v6",
        "host-name",
        "world-v4",
        "world-v6",
        "host-bits-set",
        "sources-without-expose",
    ],
)
def test_a_database_frontend_must_name_its_address_and_sources(fields, fragment):
    config = postgres(**{k: v for k, v in fields.items() if v is not None})
    for key, value in fields.items():
        if value is None:
            del config["services"]["postgres"][key]
    path = "services.postgres"
    if fields in ({"bind-address": "0.0.0.0"}, {"bind-address": "::"}, {"bind-address": "lan.example.com"}):
        path += ".bind-address"
    elif "allow-from" in fields and fields["allow-from"]:
        path += ".allow-from[0]"
    assert_rejected(config, path, fragment)


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        ({"mode": "tcp", "exposed-port": 7000, "bind-address": "192.168.1.10"}, "needs allow-from"),
        ({"mode": "tcp", "exposed-port": 7000, "allow-from": ["10.0.0.0/8"]}, "needs bind-address"),
        ({"allow-from": ["10.0.0.0/8"]}, "only apply to tcp routes"),
    ],
    ids=["tcp-no-sources", "tcp-no-address", "http-with-sources"],
)
def test_a_custom_tcp_route_must_name_its_address_and_sources(route, fragment):
    config = {"custom-services": [custom("game", routes=[{"hostname": "game", "port": 7000, **route}])]}
    assert_rejected(config, "custom-services[0].routes[0]", fragment)
