"""The program as a whole: outputs, landing page, start-up cost, generated docs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import ROOT, example_run, files, load_stack_file, run_program


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return example_run(ROOT / "examples" / "single-host.yaml")


def test_outputs_name_every_routed_service_and_keep_the_password_secret(single):
    urls = single.outputs["urls"]
    assert urls == {
        "portainer": "https://infra.lab.example.com/",
        "prometheus": "https://metrics.lab.example.com/",
        "grafana": "https://monitoring.lab.example.com/",
        "alertmanager": "https://alerts.lab.example.com/",
        "mattermost": "https://mattermost.lab.example.com/",
        "drupal": "https://intranet.lab.example.com/",
        "web": "https://lab.example.com/",
        "landing": "https://home.lab.example.com/",
        "whoami": "https://whoami.lab.example.com/",
        "authelia": "https://auth.lab.example.com/",
    }
    assert single.outputs["admin-user"] == "admin"
    assert single.outputs["admin-password"] in single.generated_secrets
    assert "admin-password" in single.secret_outputs
    assert "backup-identity" in single.secret_outputs  # the key that decrypts the backups
    assert single.outputs["backup-recipient"].startswith("ssh-ed25519 ")
    assert "backup-recipient" not in single.secret_outputs  # the public half
    assert single.outputs["ca-certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "ca-certificate" not in single.secret_outputs


def test_landing_page_lists_every_enabled_service(single):
    landing = single.containers()["homelab-landing"]
    (page,) = [content for path, content in files(landing).items() if path.endswith("index.html")]
    for url in single.outputs["urls"].values():
        assert f'href="{url}"' in page
    # A disabled service is not listed.
    dev = run_program(load_stack_file(ROOT / "Pulumi.dev.yaml"))
    (dev_page,) = files(dev.containers()["homelab-landing"]).values()
    assert "mattermost" not in dev_page.lower()
    assert 'href="https://monitoring.localhost/"' in dev_page


def test_without_tls_urls_are_http():
    mocks = run_program({"tls": {"enabled": False}})
    assert mocks.outputs["urls"]["grafana"] == "http://monitoring.localhost/"
    assert "ca-certificate" not in mocks.outputs
    # No CA and no certificate keys: the only key is the backups' (ssh-ed25519, not TLS).
    assert [r.name for r in mocks.of_type("tls:index/privateKey:PrivateKey")] == ["backup-key"]


def test_config_error_is_a_run_error_without_traceback_noise():
    import pulumi

    with pytest.raises(pulumi.RunError) as error:
        run_program({"domain": "not a domain"})
    assert str(error.value).startswith("invalid stack config (1 problem(s)):\n  domain: ")


def test_config_reference_is_current():
    generated = subprocess.run(
        [sys.executable, "scripts/config_reference.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert (ROOT / "docs" / "reference.md").read_text() == generated, (
        "run: python scripts/config_reference.py docs/reference.md"
    )


def test_main_is_a_few_lines():
    lines = [line for line in (ROOT / "__main__.py").read_text().splitlines() if line.strip()]
    assert len(lines) <= 6
