"""The `apps:` section: each invalid apps config, made from the apps example by one change,
stops the program with one `pulumi.RunError` naming the key path, before any resource exists."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import harness
import pytest
from harness import ROOT, example_secrets, load_stack_file, run_program

EXAMPLE = ROOT / "examples" / "apps.yaml"

Change = Callable[[dict[str, Any], dict[str, str]], None]


@pytest.fixture(scope="module")
def example_config() -> dict[str, Any]:
    return load_stack_file(EXAMPLE)


def app(index: int, key: str, value: Any) -> Change:
    """Set `key` of the app at `index` (the example: 0 web, 1 hello, 2 shop)."""

    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        config["apps"][index][key] = value

    return change


def both(*changes: Change) -> Change:
    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        for c in changes:
            c(config, secrets)

    return change


def platform_on_the_homelab_domain(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["platform"]["domain"] = config["domain"]


def adopt_and_create(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["apps"][0]["source"]["create"] = True


def apps_without_platform(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["layers"]["platform"] = False
    # The platform's secrets are referenced by nothing now: unset them as a user would.
    del secrets["kubeconfig"], secrets["github-token"], secrets["cloudflare-token"]


def application_names_clash(config: dict[str, Any], secrets: dict[str, str]) -> None:
    """team-a/b-api and team-a-b/api would both be the Argo CD Application `team-a-b-api`."""
    config["platform"]["projects"].append({"name": "team-a-b", "members": {"admin": ["alice"]}})
    config["apps"] += [
        {"name": "b-api", "project": "team-a", "source": {"repository": "acme-lab/api"}},
        {"name": "api", "project": "team-a-b", "source": {"repository": "acme-lab/api"}},
    ]


def drop_stripe_key(config: dict[str, Any], secrets: dict[str, str]) -> None:
    del secrets["shop-stripe-key"]


def platform(key: str, value: Any) -> Change:
    def change(config: dict[str, Any], secrets: dict[str, str]) -> None:
        section = config["platform"]
        *parents, last = key.split(".")
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value

    return change


def hello_in_another_project(config: dict[str, Any], secrets: dict[str, str]) -> None:
    config["apps"].append({"name": "hello", "project": "team-b", "source": {"create": True}})


# (id, change, key path, message fragment)
INVALID: list[tuple[str, Change, str, str]] = [
    ("name-not-a-dns-label", app(0, "name", "Web_App"), "apps[0].name", "not a DNS label"),
    (
        "duplicate-name-in-project",
        both(app(1, "name", "web"), app(1, "hostname", "hello")),
        "apps[1].name",
        "declared twice in project 'team-a'",
    ),
    ("unknown-project", app(2, "project", "team-c"), "apps[2].project", "unknown project 'team-c'"),
    ("inline-dockerfile-and-path", app(1, "dockerfile", "Dockerfile"), "apps[1]", "not both"),
    ("port-out-of-range", app(0, "port", 70000), "apps[0].port", "65535"),
    ("port-zero", app(2, "port", 0), "apps[2].port", "greater than or equal to 1"),
    ("same-hostname-twice", app(1, "hostname", "web"), "apps[1].hostname", "already claimed by apps[0]"),
    (
        "hostname-of-a-homelab-route",
        both(platform_on_the_homelab_domain, app(1, "name", "monitoring")),
        "apps[1].hostname",
        "'monitoring.lab.example.com' is already claimed by homelab service grafana",
    ),
    (
        "app-named-argocd",
        app(0, "name", "argocd"),
        "apps[0].hostname",
        "'argocd.idp.lab.example.com' is already claimed by platform.components.argocd",
    ),
    ("source-adopted-and-created", adopt_and_create, "apps[0].source", "either repository"),
    ("application-names-clash", application_names_clash, "apps[4].name", "'team-a-b-api' would clash"),
    ("apps-without-platform", apps_without_platform, "layers.apps", "needs the platform layer"),
    (
        "an-app-repository-created-twice",
        both(hello_in_another_project, app(3, "hostname", "hello-b")),
        "apps[3].source.create",
        "repository 'acme-lab/hello' would be created twice (also apps[1])",
    ),
    (
        "an-app-repository-that-is-the-gitops-one",
        platform("gitops.repository", "acme-lab/hello"),
        "apps[1].source.create",
        "repository 'acme-lab/hello' would be created twice (also gitops.repository)",
    ),
    (
        "two-components-one-host-name",
        platform("components.tracing.hostname", "harbor"),
        "platform.components.tracing.hostname",
        "'harbor.idp.lab.example.com' is already claimed by platform.components.harbor",
    ),
    (
        "a-component-on-a-homelab-route",
        both(platform_on_the_homelab_domain, platform("components.argocd.hostname", "monitoring")),
        "platform.components.argocd.hostname",
        "'monitoring.lab.example.com' is already claimed by homelab service grafana",
    ),
    (
        "two-files-one-configmap-key",
        app(0, "files", {"/etc/a:b": "x", "/etc/a_b": "y"}),
        "apps[0]",
        "files '/etc/a:b' and '/etc/a_b' would share one ConfigMap key ('etc_a_b')",
    ),
    (
        "secret-env-key-not-set",
        drop_stripe_key,
        "apps[2].secret-env.STRIPE_KEY",
        "'shop-stripe-key' is not set",
    ),
]


@pytest.mark.parametrize(
    ("change", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_apps_config_stops_before_any_resource(tmp_path, example_config, change, path, fragment):
    config, secrets = copy.deepcopy(example_config), dict(example_secrets(example_config))
    change(config, secrets)
    harness.assert_one_problem(config, secrets, str(tmp_path), path, fragment)


def test_the_unchanged_example_builds_every_app(tmp_path, example_config):
    mocks = run_program(example_config, example_secrets(example_config), key_dir=str(tmp_path))
    assert sorted(mocks.outputs["apps"]) == ["team-a/hello", "team-a/web", "team-b/shop"]


def test_platform_on_the_homelab_domain_alone_is_valid(tmp_path, example_config):
    """The homelab-route case above fails for the app's name, not for sharing the domain."""
    config = copy.deepcopy(example_config)
    platform_on_the_homelab_domain(config, {})
    mocks = run_program(config, example_secrets(config), key_dir=str(tmp_path))
    assert mocks.outputs["apps"]["team-a/web"]["url"] == "https://web.lab.example.com/"
