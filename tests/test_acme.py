"""Publicly trusted certificates on the Docker side (issue 25, item 1): `tls.mode: acme` puts
lego beside each HAProxy. Its lego.yml uses only keys of lego's configuration file reference
(docs/content/references/ref-file/_index.md and cmd/internal/configuration/testdata/
reference.yml, go-acme/lego @ v5.3.1: written down below, the files themselves are not
vendored); the DNS provider is one of lego's; the credentials reach it only as a secret file.
Live: the real haproxy (master-worker, as the image runs it) starts with the generated
configuration and no ACME certificate yet, then the generated deploy hook hands it one and
a renewal after it, each served at once while the master process keeps running.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from haproxy_check import (
    CRT_LIST_PATH,
    certificate_pem,
    crt_list_hosts,
    local_crt_list,
    make_ca,
    start_haproxy,
)
from harness import (
    HOST_KEY,
    file_is_secret,
    file_owner_and_mode,
    files,
    free_port,
    is_stager,
    plain_strings,
    run_program,
)
from test_bad_input import assert_rejected
from test_policies import as_res

from components.homelab import acme
from components.homelab.proxy import CONFIG_DIR
from policies.rules import SecretValue, evaluate

CONTAINER = "docker:index/container:Container"
SECRET = "MOCKSECRET-cf-token-value"
SECRETS = {"cf-token": SECRET}
CONFIG: dict[str, Any] = {
    "domain": "lab.example.com",
    "tls": {
        "mode": "acme",
        "acme": {
            "email": "admin@lab.example.com",
            "dns-provider": "cloudflare",
            "credentials": {"CF_DNS_API_TOKEN": "cf-token"},
        },
    },
    "proxy": {"without-sign-in": ["metrics", "alerts"]},
}
# lego's configuration file @ v5.3.1 (see above): the key paths the program writes ("*": a
# name chosen by the file, "[]": an item of a list).
LEGO_KEYS = {
    "storage",
    "accounts.*.server",
    "accounts.*.email",
    "accounts.*.acceptsTermsOfService",
    "challenges.*.dns.provider",
    "challenges.*.dns.envFile",
    "challenges.*.dns.resolvers[]",
    "challenges.*.http.address",
    "certificates.*.account",
    "certificates.*.challenge",
    "certificates.*.domains[]",
    "hooks.deploy.command",
}


def key_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        out: set[str] = set()
        for k, v in value.items():
            named = path in ("accounts", "challenges", "certificates")
            out |= key_paths(v, f"{path}.*" if named else (f"{path}.{k}" if path else k))
        return out
    if isinstance(value, list):
        return set().union(*(key_paths(v, f"{path}[]") for v in value)) if value else {f"{path}[]"}
    return {path}


def container(lab, name: str):
    (c,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == name and not is_stager(c)]
    return c


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return run_program(CONFIG, SECRETS, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_lego_yml_uses_only_lego_keys_and_asks_for_the_domain_and_its_wildcard(lab):
    renewer = container(lab, "homelab-acme")
    document = yaml.safe_load(files(renewer)[acme.CONFIG])
    assert key_paths(document) <= LEGO_KEYS, key_paths(document) - LEGO_KEYS
    (cert,) = document["certificates"].values()
    assert cert["domains"] == ["lab.example.com", "*.lab.example.com"]
    assert cert["account"] in document["accounts"] and cert["challenge"] in document["challenges"]
    (account,) = document["accounts"].values()
    assert account["server"] == "letsencrypt-staging"  # the default: staging first
    assert document["hooks"]["deploy"]["command"] == acme.HOOK
    assert document["challenges"][cert["challenge"]]["dns"] == {
        "provider": "cloudflare",
        "envFile": acme.ENV_FILE,
    }


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("production", "letsencrypt"),
        ("staging", "letsencrypt-staging"),
        ("https://ca.lab.example.com/acme/directory", "https://ca.lab.example.com/acme/directory"),
    ],
)
def test_the_ca_is_selectable(server, expected):
    args = acme.AcmeArgs("lab.example.com", "a@lab.example.com", server, "cloudflare")
    assert acme.lego_config(args)["accounts"]["homelab"]["server"] == expected


def test_the_renewer_shares_haproxys_pid_namespace_with_least_privilege(lab):
    renewer, proxy = container(lab, "homelab-acme"), container(lab, "homelab-haproxy")
    assert renewer.inputs["pidMode"] == f"container:{proxy.name}-id"  # the mock's ID of HAProxy
    assert proxy.urn in renewer.dependencies
    assert renewer.inputs["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN", "KILL"]}
    assert renewer.inputs["readOnly"] is True
    assert renewer.inputs["entrypoints"] == ["/bin/sh", "-c"]
    assert f"/lego --config {acme.CONFIG}" in renewer.inputs["command"][0]
    # The credentials: a file of root alone, never a variable or plain text.
    assert file_is_secret(renewer, acme.ENV_FILE) and file_owner_and_mode(renewer, acme.ENV_FILE) == (
        "0",
        "0400",
    )
    assert files(renewer)[acme.ENV_FILE] == f"CF_DNS_API_TOKEN='{SECRET}'\n"
    for r in lab.resources:
        for path, text in plain_strings(r.raw_inputs):
            assert SECRET not in text, (r.name, path)
    # One volume between them: the renewer writes, HAProxy reads.
    mounts = {
        c: {m["containerPath"]: m for m in container(lab, c).inputs["volumes"]}
        for c in ("homelab-acme", "homelab-haproxy")
    }
    theirs, ours = mounts["homelab-acme"][acme.CERTS], mounts["homelab-haproxy"][acme.HAPROXY_DIR]
    assert theirs["volumeName"] == ours["volumeName"] and ours["readOnly"] and not theirs["readOnly"]


def test_haproxy_loads_the_acme_directory_and_generates_no_covered_certificate(lab):
    proxy = container(lab, "homelab-haproxy")
    cfg = files(proxy)[f"{CONFIG_DIR}/haproxy.cfg"]
    assert f"crt-list {CRT_LIST_PATH} crt {acme.HAPROXY_DIR}/ alpn" in cfg
    # Only the fallback in the crt-list: the ACME certificate answers for every routed name.
    assert list(crt_list_hosts(files(proxy)[CRT_LIST_PATH])) == ["no-service.invalid"]
    assert not [r for r in lab.resources if r.type == "tls:index/locallySignedCert:LocallySignedCert"]


def test_the_policies_pass_and_tls_routes_reads_the_renewers_domains(lab):
    resources = [as_res(r) for r in lab.resources]
    assert {k: v for k, v in evaluate(resources).items() if v} == {}
    # A renewer whose certificate does not cover the names: they have no certificate.
    for r in resources:
        raw = r.props.get("uploads") or []
        for item in raw.value if isinstance(raw, SecretValue) else raw:
            if isinstance(item, dict) and str(item.get("file", "")).endswith("lego.yml"):
                item["content"] = item["content"].replace("*.lab.example.com", "*.other.example.com")
    assert any("without a certificate" in m for m in evaluate(resources)["tls-routes"])


@pytest.mark.parametrize(
    ("domains", "fqdn", "covered"),
    [
        (("lab.example.com", "*.lab.example.com"), "lab.example.com", True),
        (("lab.example.com", "*.lab.example.com"), "grafana.lab.example.com", True),
        (("lab.example.com", "*.lab.example.com"), "a.b.lab.example.com", False),
        (("lab.example.com", "*.lab.example.com"), "lab.example.org", False),
        (("lab.example.com", "*.lab.example.com"), "xlab.example.com", False),
    ],
)
def test_a_wildcard_covers_one_label(domains, fqdn, covered):
    assert acme.covers(domains, fqdn) is covered


def with_acme(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["tls"]["acme"].update(changes)
    return config


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        (with_acme(**{"dns-provider": "cloudflair"}), "tls.acme", "not a DNS provider lego knows"),
        (with_acme(credentials={}), "tls.acme", "credentials: name the variables"),
        ({**CONFIG, "tls": {"mode": "acme"}}, "tls", "mode acme needs the acme section"),
        ({**CONFIG, "tls": {"acme": CONFIG["tls"]["acme"]}}, "tls", "only read with mode: acme"),
        (with_acme(email="admin"), "tls.acme.email", "not an e-mail address"),
        (with_acme(server="ftp://ca"), "tls.acme.server", "staging"),
    ],
    ids=["unknown-provider", "no-credentials", "no-section", "section-without-mode", "email", "server"],
)
def test_bad_acme_config_is_named(config, path, fragment):
    assert_rejected(config, path, fragment, SECRETS)


def test_missing_provider_credentials_are_named():
    assert_rejected(CONFIG, "tls.acme.credentials.CF_DNS_API_TOKEN", "'cf-token' is not set", {})


def test_a_route_the_wildcard_does_not_cover_is_named():
    config = copy.deepcopy(CONFIG)
    config["custom-services"] = [
        {"name": "deep", "image": "traefik/whoami:v1.11.0", "routes": [{"hostname": "a.deep", "port": 80}]}
    ]
    assert_rejected(
        config, "custom-services[0].routes[0].hostname", "not covered by the ACME certificate", SECRETS
    )


def test_every_proxy_host_gets_its_own_renewer(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["hosts"] = [
        {"name": "local"},
        {"name": "nas", "address": "deploy@192.168.1.20", "host-key": HOST_KEY},
    ]
    config["services"] = {"mattermost": {"enabled": True, "host": "nas"}}
    lab = run_program(config, SECRETS, key_dir=str(tmp_path))
    renewers = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-acme" and not is_stager(c)]
    assert len(renewers) == 2 and len({c.provider for c in renewers}) == 2


# ---- live: the real haproxy takes a renewed certificate without a restart ------------------


def served_names(port: int, sni: str) -> tuple[list[str], int]:
    """The SAN names and serial number of the certificate served for `sni`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    return names, cert.serial_number


def lego_files(directory: Path, ca: Any, name: str) -> dict[str, str]:
    """A key and a chain in two files, as lego stores them (homelab.key, homelab.crt)."""
    pem = certificate_pem("*.lab.example.com", ca).decode()
    key, _, cert = pem.partition("-----BEGIN CERTIFICATE-----")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.key").write_text(key)
    (directory / f"{name}.crt").write_text("-----BEGIN CERTIFICATE-----" + cert)
    return {
        "LEGO_HOOK_CERT_KEY_PATH": str(directory / f"{name}.key"),
        "LEGO_HOOK_CERT_PATH": str(directory / f"{name}.crt"),
        "LEGO_HOOK_CERT_DOMAINS": "lab.example.com,*.lab.example.com",
    }


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="apt-get install haproxy")
def test_live_a_renewed_certificate_reaches_the_running_haproxy_without_a_restart(lab, tmp_path):
    proxy = container(lab, "homelab-haproxy")
    staged = files(proxy)
    ca = make_ca()
    (tmp_path / "acme").mkdir()
    crt_list = local_crt_list(staged[CRT_LIST_PATH], tmp_path, ca)
    port = free_port()
    cfg = staged[f"{CONFIG_DIR}/haproxy.cfg"].replace(CRT_LIST_PATH, str(crt_list))
    cfg = cfg.replace(f"crt {acme.HAPROXY_DIR}/", f"crt {tmp_path / 'acme'}/")
    cfg = cfg.replace("bind :443 ", f"bind 127.0.0.1:{port} ")
    cfg = cfg.replace("bind :80\n", f"bind 127.0.0.1:{free_port()}\n")
    cfg = re.sub(r"bind :8404\n", f"bind 127.0.0.1:{free_port()}\n", cfg)
    assert "bind :" not in cfg
    (tmp_path / "haproxy.cfg").write_text(cfg)
    hook = tmp_path / "deploy-hook.sh"
    hook.write_text(
        files(container(lab, "homelab-acme"))[acme.HOOK].replace(f"{acme.CERTS}/", f"{tmp_path / 'acme'}/")
    )
    # -W: master-worker, as the image's entrypoint runs it (docker-library/haproxy).
    master = subprocess.Popen(
        ["haproxy", "-W", "-db", "-f", str(tmp_path / "haproxy.cfg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    failures: list[str] = []
    stop = threading.Event()

    def keep_connecting() -> None:
        while not stop.is_set():
            try:
                served_names(port, "monitoring.lab.example.com")
            except OSError as error:
                failures.append(repr(error))

    try:
        for _ in range(100):
            try:
                before, _ = served_names(port, "monitoring.lab.example.com")
                break
            except OSError:
                assert master.poll() is None, master.communicate()[0]
                time.sleep(0.05)
        # No certificate obtained yet: the fallback answers, HAProxy runs.
        assert before == ["no-service.invalid"]
        worker = threading.Thread(target=keep_connecting, daemon=True)
        worker.start()
        serials = []
        for renewal in ("first", "renewed"):
            env = {
                **os.environ,
                **lego_files(tmp_path / "lego" / renewal, ca, "homelab"),
                "HAPROXY_PID": str(master.pid),
            }
            # With exactly the renewer's capabilities (CHOWN, KILL), as the container runs it.
            confine = ["setpriv", "--bounding-set=-all,+chown,+kill"] if shutil.which("setpriv") else []
            run = subprocess.run([*confine, "sh", str(hook)], env=env, capture_output=True, text=True)
            assert run.returncode == 0, run.stderr
            assert oct((tmp_path / "acme" / acme.CERT_FILE).stat().st_mode & 0o777) == "0o400"
            assert (tmp_path / "acme" / acme.CERT_FILE).stat().st_uid == 99
            deadline = time.monotonic() + 20
            while True:
                names, serial = served_names(port, "monitoring.lab.example.com")
                if names == ["*.lab.example.com"] and serial not in serials:
                    break
                assert time.monotonic() < deadline, f"{renewal}: still serving {names}"
                time.sleep(0.05)
            serials.append(serial)
            assert master.poll() is None, "the master process was restarted or died"
            # Let the master finish this reload (its new worker reports ready) before the next
            # one: renewals are months apart, not seconds.
            time.sleep(1)
        stop.set()
        worker.join(timeout=10)
        # The wildcard answers every routed name; the master never stopped accepting.
        assert served_names(port, "grafana.lab.example.com")[0] == ["*.lab.example.com"]
        assert failures == []
    finally:
        stop.set()
        master.terminate()
        master.wait(timeout=10)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="apt-get install shellcheck")
def test_the_renewers_scripts_pass_shellcheck(lab, tmp_path):
    renewer = container(lab, "homelab-acme")
    (tmp_path / "hook.sh").write_text(files(renewer)[acme.HOOK])
    (tmp_path / "loop.sh").write_text("#!/bin/sh\n" + renewer.inputs["command"][0] + "\n")
    for script in ("hook.sh", "loop.sh"):
        run = subprocess.run(
            ["shellcheck", "-s", "sh", str(tmp_path / script)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout


def test_a_wildcard_outside_the_dns_zone_is_named(tmp_path):
    assert_rejected(with_acme(zone="example.org"), "tls.acme.zone", "not in zone example.org", SECRETS)
    # The domain's parent zone is fine.
    assert run_program(with_acme(zone="example.com"), SECRETS, key_dir=str(tmp_path)).resources


# ---- HTTP-01 for a public host ----------------------------------------------------------------

HTTP01: dict[str, Any] = {
    **CONFIG,
    "tls": {"mode": "acme", "acme": {"email": "admin@lab.example.com", "challenge": "http-01"}},
}


@pytest.fixture(scope="module")
def http01(tmp_path_factory):
    return run_program(HTTP01, {}, key_dir=str(tmp_path_factory.mktemp("keys")))


def test_http01_names_every_routed_name_of_the_host_and_answers_on_port_80(http01):
    renewer, proxy = container(http01, "homelab-acme"), container(http01, "homelab-haproxy")
    document = yaml.safe_load(files(renewer)[acme.CONFIG])
    assert key_paths(document) <= LEGO_KEYS
    (cert,) = document["certificates"].values()
    routed = list(crt_list_hosts(files(proxy)[CRT_LIST_PATH]))
    assert routed == ["no-service.invalid"]  # every routed name is in the ACME certificate
    assert "monitoring.lab.example.com" in cert["domains"] and not any(
        d.startswith("*") for d in cert["domains"]
    )
    assert document["challenges"][cert["challenge"]] == {"http": {"address": f":{acme.HTTP01_PORT}"}}
    assert acme.ENV_FILE not in files(renewer)  # no DNS provider, no credentials
    cfg = files(proxy)[f"{CONFIG_DIR}/haproxy.cfg"]
    assert "use_backend acme_http01 if acme_challenge" in cfg
    assert f"server acme acme:{acme.HTTP01_PORT} " in cfg
    assert {k: v for k, v in evaluate([as_res(r) for r in http01.resources]).items() if v} == {}


@pytest.mark.parametrize(
    ("acme_config", "path", "fragment"),
    [
        (
            {"challenge": "http-01", "dns-provider": "cloudflare"},
            "tls.acme",
            "only apply to challenge dns-01",
        ),
        ({"challenge": "dns-01"}, "tls.acme", "needs dns-provider"),
    ],
    ids=["provider-with-http01", "dns01-without-provider"],
)
def test_bad_challenge_config_is_named(acme_config, path, fragment):
    config = {**CONFIG, "tls": {"mode": "acme", "acme": {"email": "admin@lab.example.com", **acme_config}}}
    assert_rejected(config, path, fragment, {})


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="apt-get install haproxy")
def test_live_the_cas_requests_reach_the_renewer_and_nothing_else_does(http01, tmp_path):
    """Real haproxy with the generated file: /.well-known/acme-challenge/ on port 80 goes to the
    renewer's HTTP-01 server (a stub here), every other request is redirected to HTTPS."""
    import http.client

    from harness import StubHandler, serve

    class Challenge(StubHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.reply(200, f"token-for {self.path} {self.headers.get('Host')}".encode())

    stub = serve(Challenge)
    staged = files(container(http01, "homelab-haproxy"))
    crt_list = local_crt_list(staged[CRT_LIST_PATH], tmp_path, make_ca())
    (tmp_path / "acme").mkdir()
    http_port = free_port()
    cfg = staged[f"{CONFIG_DIR}/haproxy.cfg"].replace(CRT_LIST_PATH, str(crt_list))
    cfg = cfg.replace(f"crt {acme.HAPROXY_DIR}/", f"crt {tmp_path / 'acme'}/")
    cfg = cfg.replace("bind :443 ", f"bind 127.0.0.1:{free_port()} ").replace(
        "bind :80\n", f"bind 127.0.0.1:{http_port}\n"
    )
    cfg = re.sub(r"bind :8404\n", f"bind 127.0.0.1:{free_port()}\n", cfg)
    line = f"server acme acme:{acme.HTTP01_PORT} resolvers docker init-addr last,libc,none"
    assert line in cfg
    cfg = cfg.replace(line, f"server acme 127.0.0.1:{stub.server_address[1]}")
    (tmp_path / "haproxy.cfg").write_text(cfg)
    process = start_haproxy(tmp_path / "haproxy.cfg", http_port)
    try:

        def get(path: str) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", path, headers={"Host": "monitoring.lab.example.com"})
            return conn.getresponse()

        answer = get("/.well-known/acme-challenge/abc123")
        assert answer.status == 200
        assert answer.read() == b"token-for /.well-known/acme-challenge/abc123 monitoring.lab.example.com"
        other = get("/dashboards")
        assert other.status == 301
        assert other.getheader("Location") == "https://monitoring.lab.example.com/dashboards"
    finally:
        process.terminate()
        process.wait(timeout=10)
        stub.shutdown()
