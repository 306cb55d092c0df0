"""Forward auth, live (issue 24): the real `haproxy` runs the config and the Lua action the
program generates for a stack with identity on, against a stub of Authelia's ForwardAuth
endpoint that answers as Authelia does (docs/content/reference/guides/proxy-authorization.md
and internal/handlers/handler_authz_impl_forwardauth.go @ v4.39.20): 302 with a Location to its
portal for a browser without a session, 401 for a client that does not accept HTML, 403 for a
user outside the route's groups, 200 with Remote-* headers otherwise.

Test-only rewrites, as in test_proxy_live.py: listeners on free loopback ports, each server a
stub backend on loopback (it answers with its name and the Remote-User it was given), the
certificates made here by a test CA, the Lua file's path, and the verify URL pointing at the
stub instead of http://authelia:9091 on the stack network.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy_check import (
    CRT_LIST_PATH,
    local_crt_list,
    make_ca,
    start_haproxy,
)
from harness import StubHandler, files, free_port, run_program, serve, stub_dns
from test_identity import CONFIG, PASSWORDS

from components.homelab import identity
from components.homelab.proxy import CONFIG_DIR, FORWARD_AUTH_LUA

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")

CFG_PATH = f"{CONFIG_DIR}/haproxy.cfg"
PORTAL = "https://auth.lab.example.com/"
SESSIONS = {"alice": "admins", "bob": "family"}  # cookie session=<user> -> the user's group


class Verifier(StubHandler):
    """Authelia's ForwardAuth decision for the names of test_identity's rules."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.asked.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        host = self.headers.get("X-Forwarded-Host", "")
        user = next((u for u in SESSIONS if f"session={u}" in (self.headers.get("Cookie") or "")), None)
        admin_only = host.split(":")[0] in ("metrics.lab.example.com", "alerts.lab.example.com")
        if user is None:
            if "text/html" in (self.headers.get("Accept") or ""):
                target = f"https://{host}{self.headers.get('X-Forwarded-URI', '')}"
                self.reply(302, headers={"Location": f"{PORTAL}?rd={target}"})
            else:
                self.reply(401)
        elif admin_only and SESSIONS[user] != "admins":
            self.reply(403)
        else:
            self.reply(200, headers={"Remote-User": user, "Remote-Groups": SESSIONS[user]})


class Backend(StubHandler):
    def do_GET(self) -> None:  # noqa: N802
        user = self.headers.get("Remote-User")
        self.reply(200, f"{self.server.backend_name} user={user}".encode())  # type: ignore[attr-defined]


class Lab:
    def __init__(self, tmp: Path) -> None:
        mocks = run_program(CONFIG, PASSWORDS, key_dir=str(tmp / "keys"))
        (proxy,) = [
            c
            for c in mocks.of_type("docker:index/container:Container")
            if c.inputs["name"] == "homelab-haproxy"
        ]
        staged = files(proxy)
        cfg = staged[CFG_PATH]
        (tmp / FORWARD_AUTH_LUA).write_text(staged[f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}"])
        ca = make_ca()
        local_crt_list(staged[CRT_LIST_PATH], tmp, ca)
        self.verifier = serve(Verifier, asked=[])
        self.port = free_port()
        cfg = cfg.replace(CRT_LIST_PATH, str(tmp / "crt-list.txt"))
        cfg = cfg.replace(f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}", str(tmp / FORWARD_AUTH_LUA))
        # The verifier by name, as on the stack network: HAProxy asks "authelia" of the
        # resolvers section, whose nameserver (Docker's DNS there) is the stub here.
        self.dns = stub_dns({"authelia": "127.0.0.1"})  # Docker's DNS, for one name
        assert "nameserver docker 127.0.0.11:53\n" in cfg and "httpclient.resolvers.id docker\n" in cfg
        cfg = cfg.replace(
            "nameserver docker 127.0.0.11:53\n", f"nameserver docker 127.0.0.1:{self.dns.server_address[1]}\n"
        )
        verify = f"http://authelia:{self.verifier.server_address[1]}{identity.VERIFY_PATH}"
        assert identity.verify_url() in cfg
        cfg = cfg.replace(identity.verify_url(), verify)
        cfg = cfg.replace("bind :443 ", f"bind 127.0.0.1:{self.port} ")
        cfg = re.sub(r"bind :(\d+)\n", lambda m: f"bind 127.0.0.1:{free_port()}\n", cfg)
        self.backends = []
        for _name, container, port in re.findall(
            r"backend (\S+)\n    mode http\n    server (\S+) \S+:(\d+) check", cfg
        ):
            stub = serve(Backend, backend_name=container)
            self.backends.append(stub)
            cfg = re.sub(
                rf"server {re.escape(container)} {re.escape(container)}:{port} check resolvers docker "
                r"init-addr \S+",
                f"server {container} 127.0.0.1:{stub.server_address[1]}",
                cfg,
            )
        (tmp / "haproxy.cfg").write_text(cfg)
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(tmp / "haproxy.cfg")], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.process = start_haproxy(tmp / "haproxy.cfg", self.port)

    def get(self, host: str, path: str = "/", **headers: str) -> tuple[int, dict[str, str], str]:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
            response.begin()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        for server in [self.verifier, self.dns, *self.backends]:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("forward-auth"))
    try:
        yield running
    finally:
        running.stop()


BROWSER = {"Accept": "text/html,application/xhtml+xml"}


def test_without_a_session_a_browser_is_sent_to_the_sign_in_page(lab):
    status, headers, _ = lab.get("metrics.lab.example.com", "/graph?g0.expr=up", **BROWSER)
    assert status == 302
    assert headers["location"] == f"{PORTAL}?rd=https://metrics.lab.example.com/graph?g0.expr=up"
    asked = lab.verifier.asked[-1]
    assert asked["x-forwarded-method"] == "GET" and asked["x-forwarded-proto"] == "https"
    assert asked["x-forwarded-host"] == "metrics.lab.example.com"
    assert asked["x-forwarded-uri"] == "/graph?g0.expr=up"
    assert asked["x-forwarded-for"] == "127.0.0.1"
    assert "authelia" in lab.dns.asked  # the provider was found by name


def test_a_client_that_does_not_take_html_gets_401(lab):
    assert lab.get("home.lab.example.com", Accept="application/json")[0] == 401


def test_a_signed_in_user_reaches_the_backend_as_themselves(lab):
    status, _, body = lab.get("metrics.lab.example.com", Cookie="session=alice", Remote_User="mallory")
    assert (status, body) == (200, "prometheus user=alice")  # the client's own Remote-User is dropped


def test_a_user_outside_the_routes_groups_gets_403(lab):
    assert lab.get("alerts.lab.example.com", Cookie="session=bob")[0] == 403
    # ... and reaches a route for any user
    assert lab.get("home.lab.example.com", Cookie="session=bob")[:3:2] == (200, "landing user=bob")


def test_a_service_with_its_own_login_is_not_asked_about(lab):
    before = len(lab.verifier.asked)
    status, _, body = lab.get("monitoring.lab.example.com", **BROWSER)
    assert (status, body) == (200, "grafana user=None")
    assert len(lab.verifier.asked) == before


def test_a_verifier_that_does_not_answer_lets_nothing_through(lab, tmp_path):
    lab.verifier.shutdown()
    lab.verifier.server_close()
    try:
        assert lab.get("home.lab.example.com", Cookie="session=alice", **BROWSER)[0] == 403
    finally:
        lab.verifier = serve(Verifier, lab.verifier.server_address[1], asked=[])
