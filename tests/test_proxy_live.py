"""The single-host example's HAProxy config, run by the real `haproxy` on loopback (issue 23).

What the program generates is started as it is, with five test-only rewrites: the listeners
bind 127.0.0.1 on free ports instead of :80, :443, :8404 and the TCP ports; each server points
at a stub backend on loopback instead of `<container>:<port>` through Docker's DNS; health
checks run every 200 ms instead of every 10 s; the TCP frontends' source networks (the
example's LAN) become 127.0.0.1/32, so that 127.0.0.2 is a source outside the list; the
forward-auth verify URL points at a stub that lets every request through (the sign-in itself is
test_forward_auth_live.py's); and the crt-list's certificates are made here, one per SNI name,
signed by a test CA. The stubs answer
with their backend's name (HTTP) or echo (TCP), so each request shows which backend it reached
and with which certificate.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import socketserver
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from haproxy_check import (
    CRT_LIST_PATH,
    local_crt_list,
    make_ca,
    start_haproxy,
)
from harness import ROOT, StubHandler, example_run, free_port, in_background, serve
from test_proxy import CFG_PATH, SINGLE_HOST_HTTP, SINGLE_HOST_TCP, proxies, uploads

from components.homelab import identity
from components.homelab.proxy import CONFIG_DIR, FALLBACK_NAME, FORWARD_AUTH_LUA

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")


# ---- stub backends -------------------------------------------------------------------------


class NamedHandler(StubHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.reply(200, self.server.backend_name.encode())  # type: ignore[attr-defined]


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(4096)
        self.request.sendall(data)


class LetThrough(StubHandler):
    """A forward-auth verifier that answers 200 to everything."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.reply(200)


class ThreadingTCP(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Lab:
    """The running HAProxy, its ports and its stub backends."""

    def __init__(self, tmp: Path) -> None:
        files = uploads(proxies(example_run(ROOT / "examples" / "single-host.yaml"))["server"])
        self.cfg, crt_list = files[CFG_PATH], files[CRT_LIST_PATH]
        (tmp / FORWARD_AUTH_LUA).write_text(files[f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}"])
        self.verifier = serve(LetThrough)
        self.ports = {"http": free_port(), "https": free_port(), "stats": free_port()}
        self.tcp_ports = {port: free_port() for port in SINGLE_HOST_TCP}
        self.servers: dict[str, Any] = {}
        self.ca = make_ca()
        local_crt_list(crt_list, tmp, self.ca)
        cfg = self.cfg.replace(CRT_LIST_PATH, str(tmp / "crt-list.txt"))
        cfg = cfg.replace(f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}", str(tmp / FORWARD_AUTH_LUA))
        assert identity.verify_url() in cfg, "the example has routes behind sign-in"
        cfg = cfg.replace(identity.verify_url(), f"http://127.0.0.1:{self.verifier.server_address[1]}/")
        cfg = cfg.replace("bind :80\n", f"bind 127.0.0.1:{self.ports['http']}\n")
        cfg = cfg.replace("bind :443 ", f"bind 127.0.0.1:{self.ports['https']} ")
        cfg = re.sub(r"bind :8404\n", f"bind 127.0.0.1:{self.ports['stats']}\n", cfg)
        for port, local in self.tcp_ports.items():
            cfg = cfg.replace(f"bind :{port}\n", f"bind 127.0.0.1:{local}\n")
        cfg = cfg.replace(
            "default-server inter 10s fall 3 rise 2", "default-server inter 200ms fall 1 rise 1"
        )
        assert "bind :" not in cfg, "a listener left on every interface"
        cfg, rewritten = re.subn(r"acl allowed_source src [^\n]+", "acl allowed_source src 127.0.0.1/32", cfg)
        assert rewritten == len(self.tcp_ports), "a TCP frontend without its source list"
        # Each backend's one server: a stub on loopback, started here.
        for name, mode, container, port in re.findall(
            r"backend (\S+)\n    mode (\S+)\n    server (\S+) \S+:(\d+) check resolvers docker init-addr \S+",
            cfg,
        ):
            stub = self._stub(name, mode)
            self.servers[name] = stub
            cfg = cfg.replace(
                f"server {container} {container}:{port} check resolvers docker init-addr last,libc,none",
                f"server {container} 127.0.0.1:{stub.server_address[1]} check",
            )
        assert "resolvers docker init-addr" not in cfg
        (tmp / "haproxy.cfg").write_text(cfg)
        self.process = start_haproxy(tmp / "haproxy.cfg", self.ports["https"])
        time.sleep(0.5)  # the first health checks

    def _stub(self, name: str, mode: str) -> Any:
        if mode == "http":
            return serve(NamedHandler, backend_name=name)
        return in_background(ThreadingTCP(("127.0.0.1", 0), EchoHandler))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        for server in [*self.servers.values(), self.verifier]:
            server.shutdown()
            server.server_close()

    def backend_of(self, fqdn: str) -> str:
        match = re.search(
            rf"use_backend (\S+) if {{ req\.hdr\(host\),field\(1,:\),lower -m str {re.escape(fqdn)} }}",
            self.cfg,
        )
        assert match, fqdn
        return match.group(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("haproxy-live"))
    try:
        yield running
    finally:
        running.stop()


def https(lab: Lab, sni: str | None, host: str | None, path: str = "/") -> tuple[int, bytes, list[str]]:
    """GET over TLS with this SNI name and Host header: status, body, the served certificate's names."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", lab.ports["https"]), timeout=5)
    with context.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        names = (
            x509.load_der_x509_certificate(der)
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value.get_values_for_type(x509.DNSName)
        )
        request = (
            f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host else "") + "Connection: close\r\n\r\n"
        )
        tls.sendall(request.encode())
        response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        response.begin()
        return response.status, response.read(), names


def plain(lab: Lab, request: bytes) -> http.client.HTTPResponse:
    sock = socket.create_connection(("127.0.0.1", lab.ports["http"]), timeout=5)
    sock.sendall(request)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


@pytest.mark.parametrize("fqdn", sorted(SINGLE_HOST_HTTP))
def test_every_routed_host_answers_from_its_own_backend_with_its_own_certificate(lab, fqdn):
    status, body, names = https(lab, fqdn, fqdn, "/")
    assert status == 200
    assert body.decode() == lab.backend_of(fqdn)
    assert names == [fqdn]


def test_http_is_redirected_to_https_with_path_and_query(lab):
    response = plain(
        lab, b"GET /a/b?c=1&d=two HTTP/1.1\r\nHost: home.lab.example.com\r\nConnection: close\r\n\r\n"
    )
    assert response.status == 301
    assert response.getheader("Location") == "https://home.lab.example.com/a/b?c=1&d=two"


def test_a_request_without_a_host_is_not_redirected_to_an_empty_host(lab):
    """HTTP/1.0 allows no Host: it used to get `Location: https:///path`."""
    response = plain(lab, b"GET /path HTTP/1.0\r\n\r\n")
    assert response.status == 404
    assert response.getheader("Location") is None


def test_an_unknown_host_gets_a_clear_404_and_no_services_certificate(lab):
    status, body, names = https(lab, "nobody.example.org", "nobody.example.org")
    assert status == 404 and b"No service answers to this host name." in body
    assert names == [FALLBACK_NAME]
    # No SNI at all: the same fallback certificate.
    assert https(lab, None, "home.lab.example.com")[2] == [FALLBACK_NAME]


@pytest.mark.parametrize("port", sorted(SINGLE_HOST_TCP))
def test_each_tcp_frontend_passes_bytes_through(lab, port):
    with socket.create_connection(("127.0.0.1", lab.tcp_ports[port]), timeout=5) as sock:
        sock.sendall(b"\x00hello database\xff")
        assert sock.recv(4096) == b"\x00hello database\xff"


@pytest.mark.parametrize("port", sorted(SINGLE_HOST_TCP))
def test_a_tcp_frontend_refuses_a_source_outside_its_list(lab, port):
    """127.0.0.2 is on loopback too, but not in the frontend's list: the connection is closed
    at accept, before a byte reaches the backend."""
    try:
        with socket.create_connection(
            ("127.0.0.1", lab.tcp_ports[port]), timeout=5, source_address=("127.0.0.2", 0)
        ) as sock:
            sock.sendall(b"\x00hello database\xff")
            answer = sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        answer = b""
    assert answer == b""


def test_a_stopped_backend_is_marked_down_and_gets_503(lab):
    fqdn = "whoami.lab.example.com"
    backend = lab.backend_of(fqdn)
    stub = lab.servers.pop(backend)
    stub.shutdown()
    stub.server_close()
    deadline = time.monotonic() + 5
    state = ""
    conn = http.client.HTTPConnection("127.0.0.1", lab.ports["stats"], timeout=5)
    while time.monotonic() < deadline:
        conn.request("GET", "/stats;csv")
        rows = conn.getresponse().read().decode().splitlines()
        state = next(
            (r.split(",")[17] for r in rows if r.startswith(f"{backend},") and ",BACKEND," not in r), ""
        )
        if state.startswith("DOWN"):
            break
        time.sleep(0.1)
    assert state.startswith("DOWN"), state
    status, _, names = https(lab, fqdn, fqdn)
    assert status == 503 and names == [fqdn]
