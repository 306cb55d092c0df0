"""The `platform:` section: each invalid platform config stops the program with one
`pulumi.RunError` naming the key path, before any resource exists; and a platform-only stack
registers nothing of the Docker homelab."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import harness
import pytest
from harness import CONFIG_CA_PEM, ROOT, example_secrets, load_stack_file, run_program

EXAMPLE = ROOT / "examples" / "platform.yaml"

Change = Callable[[dict[str, Any], dict[str, str]], None]


def example() -> tuple[dict[str, Any], dict[str, str]]:
    config = load_stack_file(EXAMPLE)
    return copy.deepcopy(config), dict(example_secrets(config))


def at(*path: Any, value: Any) -> Change:
    """Set `value` at `path` under the config."""

    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        node = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def project(index: int, key: str, value: Any) -> Change:
    return at("platform", "projects", index, key, value=value)


def identity_without_the_group(config: dict[str, Any], secrets: dict[str, str]) -> None:
    """The stack's own identity provider on, which does not declare the example's `auditors`."""
    config["identity"] = {
        "enabled": True,
        "groups": ["admins", "team-a"],
        "users": [
            {
                "name": "alice",
                "email": "alice@lab.example.com",
                "groups": ["admins"],
                "password-secret": "alice-pw",
            }
        ],
    }
    secrets["alice-pw"] = f"{harness.SECRET_MARK}-alice"
    del config["platform"]["projects"][1]["groups"]


def drop_kubeconfig(config: dict[str, Any], secrets: dict[str, str]) -> None:
    del config["platform"]["kubeconfig-secret"]
    del secrets["kubeconfig"]


def drop_platform(config: dict[str, Any], secrets: dict[str, str]) -> None:
    del config["platform"]
    secrets.clear()  # nothing references them any more


def drop_github_token(config: dict[str, Any], secrets: dict[str, str]) -> None:
    del secrets["github-token"]


def drop_tls(config: dict[str, Any], secrets: dict[str, str]) -> None:
    del config["platform"]["tls"]
    secrets.pop("node-ssh-key")


def tls(value: dict[str, Any], **new_secrets: str) -> Change:
    """platform.tls replaced by `value` (the nodes' SSH key goes with the old one)."""

    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        config["platform"]["tls"] = value
        secrets.pop("node-ssh-key")
        secrets.update(new_secrets)

    return change


UNTRUSTED_CA_PEM = "-----BEGIN CERTIFICATE-----\nMG5vdC10cnVzdGVk\n-----END CERTIFICATE-----\n"


def homelab_off(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["layers"]["homelab"] = False


def kubeconfig_in_plain_config(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["kubeconfig"] = secrets.pop("kubeconfig")


def both_kubeconfigs(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["platform"]["kubeconfig-path"] = "/etc/homelab/kubeconfig"


# (id, change, key path, message fragment)
INVALID: list[tuple[str, Change, str, str]] = [
    (
        "unknown-role",
        project(0, "members", {"owner": ["x"]}),
        "platform.projects[0].members.owner",
        "'admin', 'developer' or 'viewer'",
    ),
    (
        "member-in-two-roles",
        project(0, "members", {"admin": ["alice"], "viewer": ["alice"]}),
        "platform.projects[0].members.viewer[0]",
        "already has role 'admin'",
    ),
    (
        "member-in-two-roles-other-case",
        project(0, "members", {"developer": ["bob", "carol"], "viewer": ["dave", "Carol"]}),
        "platform.projects[0].members.viewer[1]",
        "already has role 'developer'",
    ),
    (
        "group-in-two-roles",
        project(0, "groups", {"developer": ["team-a"], "viewer": ["team-a"]}),
        "platform.projects[0].groups.viewer[0]",
        "already has role 'developer'",
    ),
    (
        "group-the-identity-provider-lacks",
        identity_without_the_group,
        "platform.projects[0].groups.viewer[0]",
        "unknown group 'auditors'",
    ),
    ("name-not-a-dns-label", project(0, "name", "Team_A"), "platform.projects[0].name", "DNS label"),
    ("kubeconfig-missing", drop_kubeconfig, "platform.kubeconfig-secret", "needs a cluster"),
    ("platform-section-missing", drop_platform, "platform", "platform section is missing"),
    ("github-token-not-set", drop_github_token, "platform.github-token-secret", "'github-token' is not set"),
    ("duplicate-project", project(1, "name", "team-a"), "platform.projects[1].name", "declared twice"),
    (
        "project-named-like-the-platform-namespace",
        project(0, "name", "idp-system"),
        "platform.projects[0].name",
        "reserved for the platform",
    ),
    ("project-named-kube", project(1, "name", "kube-system"), "platform.projects[1].name", "reserved"),
    (
        "bad-quota-quantity",
        at("platform", "projects", 0, "quota", "cpu", value="lots"),
        "platform.projects[0].quota.cpu",
        "not a Kubernetes quantity",
    ),
    ("tls-missing", drop_tls, "platform.tls", "say who signs the platform's certificates"),
    (
        "acme-without-email",
        tls({"mode": "acme", "acme": {"solver": "http01"}}),
        "platform.tls.acme.email",
        "Field required",
    ),
    (
        "dns01-without-token",
        tls({"mode": "acme", "acme": {"email": "ops@example.com"}}),
        "platform.tls.acme",
        "needs cloudflare-api-token-secret",
    ),
    (
        "private-ca-without-ca",
        tls({"mode": "private-ca", "nodes-trust-ca": True}),
        "platform.tls",
        "needs the ca section",
    ),
    (
        # The defect: nodes that do not trust Harbor's CA end in ImagePullBackOff.
        "private-ca-nodes-unreachable",
        tls({"mode": "private-ca", "ca": {"source": "homelab"}}),
        "platform.tls.nodes",
        "/etc/containerd/certs.d/harbor.idp.lab.example.com/ca.crt",
    ),
    (
        "config-ca-without-key",
        tls({"mode": "private-ca", "ca": {"certificate": CONFIG_CA_PEM}, "nodes-trust-ca": True}),
        "platform.tls.ca.key-secret",
        "signs with the CA's private key",
    ),
    (
        # The defect: the Harbor provider cannot be given a CA; this machine must trust it.
        "config-ca-not-trusted-here",
        tls(
            {
                "mode": "private-ca",
                "ca": {"certificate": UNTRUSTED_CA_PEM, "key-secret": "ca-key"},
                "nodes-trust-ca": True,
            },
            **{"ca-key": "MOCKSECRET-ca-key"},
        ),
        "platform.tls.ca.certificate",
        "Install the CA on the machine running Pulumi",
    ),
    ("homelab-ca-without-homelab", homelab_off, "platform.tls.ca.source", "needs layers.homelab"),
    (
        "kubeconfig-not-a-secret",
        kubeconfig_in_plain_config,
        "platform.kubeconfig-secret",
        "must be set with --secret",
    ),
    ("kubeconfig-secret-and-path", both_kubeconfigs, "platform.kubeconfig-path", "not both"),
]


@pytest.mark.parametrize(
    ("change", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_platform_config_stops_before_any_resource(tmp_path, change, path, fragment):
    config, secrets = example()
    change(config, secrets)
    harness.assert_one_problem(config, secrets, str(tmp_path), path, fragment)


def test_the_unchanged_example_is_valid(tmp_path):
    config, secrets = example()
    assert run_program(config, secrets, key_dir=str(tmp_path)).resources


def test_platform_only_stack_registers_no_docker_resource(tmp_path):
    config, secrets = example()
    config["layers"] = {"homelab": False, "platform": True}
    # Without the homelab layer the private CA comes from config (trusted here: conftest).
    config["platform"]["tls"]["ca"] = {"certificate": CONFIG_CA_PEM, "key-secret": "ca-key"}
    secrets["ca-key"] = "MOCKSECRET-ca-key"
    mocks = run_program(config, secrets, key_dir=str(tmp_path))
    types = {r.type for r in mocks.resources}
    assert "pulumi:providers:kubernetes" in types, "the platform is built"
    docker = sorted(
        t for t in types if t.startswith(("docker:", "pulumi:providers:docker", "homelab:docker:"))
    )
    assert docker == []
    assert not any(t.startswith("homelab:services:") for t in types), sorted(types)
    assert "platform" in mocks.outputs
