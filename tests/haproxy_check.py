"""The real `haproxy -c` on a generated HAProxy config (tests/test_proxy.py, and the property
tests on every accepted config): the crt-list and its certificates are made here, a
self-signed certificate per SNI host name, and the check is read as HAProxy prints it."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.homelab.proxy import CONFIG_DIR, FORWARD_AUTH_LUA, forward_auth_lua

CRT_LIST_PATH = f"{CONFIG_DIR}/crt-list.txt"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A test CA (key and certificate) to sign the certificates of `certificate_pem` with."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def certificate_pem(
    fqdn: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
) -> bytes:
    """A key and a certificate for `fqdn` (self-signed, or signed by `ca`), combined as HAProxy
    loads them."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer, issuer = (key, _name(fqdn)) if ca is None else (ca[0], ca[1].subject)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(fqdn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn)]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def self_signed_pem(fqdn: str) -> bytes:
    """A key and a self-signed certificate for `fqdn`, combined as HAProxy loads them."""
    return certificate_pem(fqdn)


def local_crt_list(
    text: str, directory: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> Path:
    """The generated crt-list `text` made real under `directory`: a certificate from `ca` for
    each of its names, in the same order; the new crt-list's path."""
    (directory / "certs").mkdir(exist_ok=True)
    lines = []
    for fqdn in crt_list_hosts(text):
        pem = directory / "certs" / f"{fqdn}.pem"
        pem.write_bytes(certificate_pem(fqdn, ca))
        lines.append(f"{pem} {fqdn}\n")
    (directory / "crt-list.txt").write_text("".join(lines))
    return directory / "crt-list.txt"


def crt_list_hosts(text: str) -> dict[str, str]:
    """SNI host name -> certificate path, from a crt-list."""
    out = {}
    for line in text.splitlines():
        path, fqdn = line.split()
        out[fqdn] = path
    return out


def haproxy_check(
    tmp_path: Path, cfg: str, crt_list_text: str | None, resolve: bool = False
) -> subprocess.CompletedProcess:
    """`haproxy -c` on `cfg`, its crt-list and certificates moved into tmp_path.

    Servers are looked up with `init-addr last,libc,none`, and this machine's DNS does not
    answer: the check waits on it only with `resolve` (tests/test_proxy.py:
    test_tls_config_passes_haproxy_check); the others check the config with `init-addr none`,
    the rest of it unchanged."""
    if not resolve:
        assert cfg.count("init-addr last,libc,none") == cfg.count("init-addr")
        cfg = cfg.replace("init-addr last,libc,none", "init-addr none")
    if crt_list_text is not None:
        certs = tmp_path / "certs"
        certs.mkdir()
        lines = []
        for fqdn in crt_list_hosts(crt_list_text):
            (certs / f"{fqdn}.pem").write_bytes(self_signed_pem(fqdn))
            lines.append(f"{certs / f'{fqdn}.pem'} {fqdn}\n")
        (tmp_path / "crt-list.txt").write_text("".join(lines))
        assert CRT_LIST_PATH in cfg
        cfg = cfg.replace(CRT_LIST_PATH, str(tmp_path / "crt-list.txt"))
    lua = f"{CONFIG_DIR}/{FORWARD_AUTH_LUA}"
    if f"lua-load {lua}\n" in cfg:
        # The forward-auth action the proxy gets beside its config (components/homelab/proxy.py).
        (tmp_path / FORWARD_AUTH_LUA).write_text(forward_auth_lua())
        cfg = cfg.replace(lua, str(tmp_path / FORWARD_AUTH_LUA))
    (tmp_path / "haproxy.cfg").write_text(cfg)
    # The config resolves servers with `init-addr last,libc,none`: let libc give up on a lost
    # DNS answer after a second (glibc's RES_OPTIONS) instead of five.
    env = {**os.environ, "RES_OPTIONS": "timeout:1 attempts:1"}
    return subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def assert_haproxy_accepts(result: subprocess.CompletedProcess, context: str = "") -> None:
    """HAProxy accepted the config: no error, no alert (`context` is said with a failure)."""
    output = result.stdout + result.stderr + context
    assert result.returncode == 0, output
    assert "[ALERT]" not in output, output
    assert "Configuration file is valid" in output, output


def start_haproxy(cfg: Path, port: int, seconds: float = 10) -> subprocess.Popen:
    """The real haproxy on `cfg`, in the foreground, once it accepts on 127.0.0.1:`port`."""
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.05)
    raise AssertionError(f"haproxy accepts nothing on port {port} after {seconds} s")
