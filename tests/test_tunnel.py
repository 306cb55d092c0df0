"""Remote access without open ports (issue 25, items 2 and 3): a Cloudflare Tunnel for the
routes `homelab:tunnel.cloudflare.routes` names, their public DNS records, cloudflared beside
the proxy. The Cloudflare resources are built with pulumi-cloudflare 6.23.1's own argument
classes (an unknown argument is a TypeError there); their inputs are asserted here. The
provider's schema is not in ../shared/provider-schemas, so tests/test_provider_schemas.py
cannot hold them to it (said in the closing note).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from harness import (
    HOST_KEY,
    file_is_secret,
    file_owner_and_mode,
    files,
    is_stager,
    plain_strings,
    run_program,
)
from test_bad_input import assert_rejected
from test_policies import as_res

from components.homelab import tunnel
from policies.rules import evaluate

CONTAINER = "docker:index/container:Container"
TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
RECORD = "cloudflare:index/dnsRecord:DnsRecord"
API_TOKEN = "MOCKSECRET-cloudflare-api-token"
ACCOUNT, ZONE = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
CONFIG: dict[str, Any] = {
    "domain": "lab.example.com",
    "services": {"landing": {"enabled": True}, "web": {"enabled": True, "hostname": "@"}},
    "proxy": {"without-sign-in": ["metrics", "alerts"]},
    "tunnel": {
        "cloudflare": {
            "account-id": ACCOUNT,
            "zone-id": ZONE,
            "api-token-secret": "cloudflare-api",
            "routes": ["@", "home"],
        }
    },
}
SECRETS = {"cloudflare-api": API_TOKEN}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return run_program(CONFIG, SECRETS, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_a_remotely_managed_tunnel_with_a_random_secret(lab):
    (t,) = lab.of_type(TUNNEL)
    assert t.inputs["accountId"] == ACCOUNT and t.inputs["configSrc"] == "cloudflare"
    assert "tunnelSecret" in t.secret_paths or t.inputs["tunnelSecret"]  # 32 random bytes, base64
    (secret,) = [r for r in lab.resources if r.name == "tunnel-secret"]
    assert secret.inputs["length"] == 32
    (provider,) = lab.of_type("pulumi:providers:cloudflare")
    # The API token: only ever a secret input.
    assert provider.inputs["apiToken"] == API_TOKEN and not list(plain_strings(provider.raw_inputs))
    assert provider.urn in (t.provider or "")


def test_ingress_rules_send_each_public_name_to_the_proxy_with_its_name_as_sni(lab):
    (config,) = lab.of_type(TUNNEL_CONFIG)
    rules = config.inputs["config"]["ingresses"]
    assert rules[:-1] == [
        {
            "hostname": fqdn,
            "service": "https://haproxy:443",
            "originRequest": {"originServerName": fqdn, "caPool": tunnel.CA_FILE},
        }
        for fqdn in ("lab.example.com", "home.lab.example.com")
    ]
    assert rules[-1] == {"service": "http_status:404"}  # the catch-all cloudflared requires


def test_each_public_name_gets_a_proxied_cname_to_the_tunnel(lab):
    records = {r.inputs["name"]: r.inputs for r in lab.of_type(RECORD)}
    assert sorted(records) == ["home.lab.example.com", "lab.example.com"]
    for record in records.values():
        assert record["zoneId"] == ZONE and record["type"] == "CNAME" and record["proxied"] is True
        assert record["content"] == "tunnel-tunnel-id.cfargotunnel.com"  # the mock's tunnel ID


def test_cloudflared_runs_with_its_token_from_a_file(lab):
    (c,) = [
        c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-cloudflared" and not is_stager(c)
    ]
    env = dict(e.split("=", 1) for e in c.inputs["envs"])
    assert c.inputs["command"] == ["tunnel", "run"]
    assert "TUNNEL_TOKEN" not in env
    path = env["TUNNEL_TOKEN_FILE"]
    assert file_is_secret(c, path) and file_owner_and_mode(c, path) == ("65532", "0400")
    assert files(c)[path] in lab.generated_secrets  # the token the data source returned
    assert files(c)[tunnel.CA_FILE].startswith("-----BEGIN CERTIFICATE-----")
    assert c.inputs["readOnly"] is True and c.inputs["capabilities"] == {"drops": ["ALL"]}
    assert not c.inputs.get("ports")  # nothing listens on the host for the public names
    for r in lab.resources:
        for where, text in plain_strings(r.raw_inputs):
            assert API_TOKEN not in text and files(c)[path] not in text, (r.name, where)


def test_the_stack_passes_the_policies_and_scrapes_cloudflared(lab):
    assert {k: v for k, v in evaluate([as_res(r) for r in lab.resources]).items() if v} == {}


def with_tunnel(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["tunnel"]["cloudflare"].update(changes)
    return config


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        (with_tunnel(routes=["nowhere"]), "tunnel.cloudflare.routes[0]", "no service is routed at nowhere"),
        (with_tunnel(routes=[]), "tunnel.cloudflare.routes", "at least 1"),
        (with_tunnel(**{"account-id": "acme"}), "tunnel.cloudflare.account-id", "pattern"),
        (with_tunnel(host="router"), "tunnel.cloudflare.host", "unknown host 'router'"),
        ({**with_tunnel(), "tls": {"enabled": False}}, "tunnel.cloudflare", "turn tls.enabled on"),
    ],
    ids=["unrouted", "no-routes", "account-id", "unknown-host", "no-tls"],
)
def test_bad_tunnel_config_is_named(config, path, fragment):
    assert_rejected(config, path, fragment, SECRETS)


def test_missing_credentials_are_named():
    assert_rejected(CONFIG, "tunnel.cloudflare.api-token-secret", "'cloudflare-api' is not set", {})


def test_a_route_on_another_host_is_named():
    config = copy.deepcopy(CONFIG)
    config["hosts"] = [
        {"name": "local"},
        {"name": "nas", "address": "deploy@192.168.1.20", "host-key": HOST_KEY},
    ]
    config["services"]["landing"]["host"] = "nas"
    assert_rejected(config, "tunnel.cloudflare.routes[1]", "cloudflared on 'local'", SECRETS)


def test_no_tunnel_no_cloudflare_sdk(tmp_path):
    config = {k: v for k, v in CONFIG.items() if k != "tunnel"}
    lab = run_program(config, {}, key_dir=str(tmp_path))
    assert not [r for r in lab.resources if r.type.startswith(("cloudflare", "pulumi:providers:cloudflare"))]


# ---- public records for routes served straight from a host (dns.public) ---------------------


def with_public(routes: list[str], **host: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["hosts"] = [{"name": "local", **host}]
    config["services"]["mattermost"] = {"enabled": True}
    config["dns"] = {
        "public": {
            "provider": "cloudflare",
            "zone-id": ZONE,
            "api-token-secret": "cloudflare-api",
            "routes": routes,
        }
    }
    return config


def test_a_public_route_gets_a_record_at_its_hosts_public_address(tmp_path):
    lab = run_program(
        with_public(["mattermost"], **{"public-address": "203.0.113.10"}), SECRETS, key_dir=str(tmp_path)
    )
    records = {r.inputs["name"]: r.inputs for r in lab.of_type(RECORD)}
    # The tunnel's two CNAMEs, and one A record, not proxied, for the public route.
    assert records["mattermost.lab.example.com"] == {
        "zoneId": ZONE,
        "name": "mattermost.lab.example.com",
        "type": "A",
        "content": "203.0.113.10",
        "ttl": 300,
        "proxied": False,
        "comment": "homelab public route (managed by Pulumi)",
    }
    assert sorted(records) == ["home.lab.example.com", "lab.example.com", "mattermost.lab.example.com"]


@pytest.mark.parametrize(
    ("routes", "host", "path", "fragment"),
    [
        (["mattermost"], {}, "hosts[0].public-address", "has no public address"),
        (
            ["wiki"],
            {"public-address": "203.0.113.10"},
            "dns.public.routes[0]",
            "no service is routed at wiki",
        ),
        (["home"], {"public-address": "203.0.113.10"}, "dns.public.routes[0]", "through the tunnel already"),
    ],
    ids=["no-public-address", "unrouted", "also-tunneled"],
)
def test_bad_public_dns_config_is_named(routes, host, path, fragment):
    assert_rejected(with_public(routes, **host), path, fragment, SECRETS)


# ---- Tailscale (tunnel.tailscale) -------------------------------------------------------------

TS_KEY = "MOCKSECRET-tailscale-api-key"
TAILSCALE: dict[str, Any] = {
    "domain": "lab.example.com",
    "proxy": {"without-sign-in": ["metrics", "alerts"]},
    "tunnel": {
        "tailscale": {"api-key-secret": "ts-api", "routes": ["192.168.1.0/24"], "tags": ["tag:homelab"]}
    },
}


@pytest.fixture(scope="module")
def ts_lab(tmp_path_factory):
    return run_program(TAILSCALE, {"ts-api": TS_KEY}, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_a_single_use_preauthorized_key_for_a_tagged_node(ts_lab):
    (key,) = ts_lab.of_type("tailscale:index/tailnetKey:TailnetKey")
    assert (key.inputs["reusable"], key.inputs["ephemeral"], key.inputs["preauthorized"]) == (
        False,
        False,
        True,
    )
    assert key.inputs["tags"] == ["tag:homelab"]
    (provider,) = ts_lab.of_type("pulumi:providers:tailscale")
    assert provider.inputs["tailnet"] == "-"
    assert provider.inputs["apiKey"] == TS_KEY and TS_KEY not in str(list(plain_strings(provider.raw_inputs)))


def test_the_node_logs_in_once_with_the_key_from_a_file_and_routes_the_lan(ts_lab):
    (c,) = [
        c for c in ts_lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-tailscale" and not is_stager(c)
    ]
    env = dict(e.split("=", 1) for e in c.inputs["envs"])
    path = env["TS_AUTHKEY"].removeprefix("file:")
    assert env["TS_AUTHKEY"].startswith("file:") and file_is_secret(c, path)
    assert file_owner_and_mode(c, path) == ("0", "0400")
    assert files(c)[path] in ts_lab.generated_secrets  # the TailnetKey's key
    assert (env["TS_AUTH_ONCE"], env["TS_USERSPACE"], env["TS_ROUTES"]) == ("true", "true", "192.168.1.0/24")
    assert c.inputs["capabilities"] == {"drops": ["ALL"]} and not c.inputs.get("ports")
    (state,) = [v for v in c.inputs["volumes"] if v.get("containerPath") == "/var/lib/tailscale"]
    assert state["volumeName"] == "homelab_tailscale_state"  # stateful: kept and backed up
    assert c.inputs["healthcheck"]["tests"][-1] == "http://127.0.0.1:9002/healthz"
    for r in ts_lab.resources:
        for where, text in plain_strings(r.raw_inputs):
            assert TS_KEY not in text, (r.name, where)
    assert {k: v for k, v in evaluate([as_res(r) for r in ts_lab.resources]).items() if v} == {}


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"tags": ["homelab"]}, "tunnel.tailscale.tags[0]", "pattern"),
        ({"routes": ["not-a-network"]}, "tunnel.tailscale.routes[0]", ""),
        ({"host": "router"}, "tunnel.tailscale.host", "unknown host 'router'"),
    ],
    ids=["tag", "route", "host"],
)
def test_bad_tailscale_config_is_named(change, path, fragment):
    config = copy.deepcopy(TAILSCALE)
    config["tunnel"]["tailscale"].update(change)
    assert_rejected(config, path, fragment, {"ts-api": TS_KEY})


def test_a_missing_tailscale_api_key_is_named():
    assert_rejected(TAILSCALE, "tunnel.tailscale.api-key-secret", "'ts-api' is not set", {})


def test_only_names_the_stack_ca_signed_are_verified_with_it(tmp_path):
    """A name with your own certificate (a public CA's) is verified with the system's roots."""
    config = copy.deepcopy(CONFIG)
    config["tls"] = {"certificates": {"home.lab.example.com": "home-cert"}}
    secrets = {**SECRETS, "home-cert": "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n"}
    lab = run_program(config, secrets, key_dir=str(tmp_path))
    (tunnel_config,) = lab.of_type(TUNNEL_CONFIG)
    origins = {r.get("hostname"): r.get("originRequest") for r in tunnel_config.inputs["config"]["ingresses"]}
    assert origins["lab.example.com"] == {"originServerName": "lab.example.com", "caPool": tunnel.CA_FILE}
    assert origins["home.lab.example.com"] == {"originServerName": "home.lab.example.com"}
