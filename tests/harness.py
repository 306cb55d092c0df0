"""The one mocks harness every test uses: run the real program under Pulumi mocks and record
every resource it registers.

For each resource it keeps the type, name, inputs (secret markers unwrapped, with the paths
that were secret remembered), provider reference, parent URN and the resource options that
matter here (retain_on_delete, protect, dependencies). It fills in the output-only
properties the program reads (generated passwords, key and certificate PEMs, image ids) with
recognisable values, so a test can look for them anywhere they should not be.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime.proto import source_pb2

# The SDK walks the whole Python stack at every registration to send the engine the source
# position of the resource (pulumi 3.272, pulumi/runtime/resource.py: _get_stack_trace, one
# pathlib URI per frame). The mock monitor drops it, and under pytest the stack is deep: it
# was a fifth of each program run. The tests send an empty trace instead.
pulumi_resource._get_stack_trace = source_pb2.StackTrace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SECRET_MARK = "MOCKSECRET"
# A real-format host public key (ssh-keygen -t ed25519) for SSH hosts in test configs.
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpj6Tcv6KAlrYrgS4aiVp0R4PQZz6gbhBdmR60xRixk"


def unwrap(value: Any, path: str = "", secret_paths: set[str] | None = None) -> Any:
    """Strip the secret markers the engine wraps secret inputs in; note where they were."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            if secret_paths is not None:
                secret_paths.add(path)
            return unwrap(value.get("value"), path, secret_paths)
        return {k: unwrap(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


def plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in `value` that is not inside a secret marker, with its path."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return
        for k, v in value.items():
            yield from plain_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


@dataclass
class Resource:
    type: str
    name: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    secret_paths: set[str]
    provider: str | None
    parent: str = ""
    retain_on_delete: bool = False
    protect: bool = False
    dependencies: list[str] = field(default_factory=list)
    urn: str = ""
    # customTimeouts as registered: {"create": "70m", ...} (empty strings dropped).
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # The run that registered it, so a container's stager can be found from the container.
    run: Any = field(default=None, repr=False, compare=False)

    def input(self, path: str, default: Any = None) -> Any:
        value: Any = self.inputs
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


def mock_image_id(name: str) -> str:
    """The image ID the mocks give a pulled image (`RemoteImage.imageId`) of reference `name`."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


CLOUDFLARE_TUNNEL_TOKEN = (
    "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken"
)


def _fake(kind: str, name: str) -> str:
    digest = hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:16]
    return f"{SECRET_MARK}-{kind}-{digest}"


def cert_pem(name: str) -> str:
    """The certificate PEM the mocks give a tls SelfSignedCert/LocallySignedCert named `name`."""
    return f"-----BEGIN CERTIFICATE-----\ncert-{name}\n-----END CERTIFICATE-----\n"


# A private CA a stack config names (platform.tls.ca.certificate), as a user would paste it.
# A stand-in CA certificate: base64 of a "DER" body (it starts with a SEQUENCE byte, 0x30).
CONFIG_CA_PEM = "-----BEGIN CERTIFICATE-----\nMGNvbmZpZy1jYQ==\n-----END CERTIFICATE-----\n"
# The CAs this test machine trusts (tests/conftest.py puts them in SSL_CERT_FILE): the homelab
# layer's CA and the config CA, as if the user had installed them.
TRUSTED_CA_PEMS = (cert_pem("tls-ca-cert"), CONFIG_CA_PEM)


def _pem(label: str, name: str) -> str:
    return f"-----BEGIN {label}-----\n{_fake(label.replace(' ', '_'), name)}\n-----END {label}-----\n"


DOCKER_CONTAINER = "docker:index/container:Container"
STAGE = "/stage"  # components/docker/service.py: where a stager receives a container's files


def is_stager(container: Resource) -> bool:
    """A one-shot container that stages another's files (components/docker/service.py)."""
    labels = {item["label"]: item["value"] for item in container.inputs.get("labels") or []}
    return labels.get("homelab.role") == "files"


def stager_of(container: Resource) -> Resource | None:
    """The one-shot container that stages `container`'s files (components/docker/service.py)."""
    name = f"{container.inputs.get('name', '')}-files"
    run = container.run
    if run is None:
        return None
    return next(
        (
            r
            for r in run.resources
            if r.type == DOCKER_CONTAINER
            and r.inputs.get("name") == name
            and r.provider == container.provider
        ),
        None,
    )


def files(container: Resource) -> dict[str, Any]:
    """The files `container` reads, by the path it reads them at: its own uploads and those its
    stager copies into the volumes it mounts there."""
    out = {u["file"]: u["content"] for u in container.inputs.get("uploads") or []}
    stager = stager_of(container)
    if stager is not None:
        out.update({u["file"].removeprefix(STAGE): u["content"] for u in stager.inputs.get("uploads") or []})
    return out


def is_secret(resource: Resource, path: str) -> bool:
    """Whether the input at `path` (e.g. 'envs[3]') was inside a secret marker (itself or an
    enclosing value)."""
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in resource.secret_paths)


def file_is_secret(container: Resource, path: str) -> bool:
    """Whether the content of the file `container` reads at `path` is a secret input."""
    for holder, prefix in ((container, ""), (stager_of(container), STAGE)):
        if holder is None:
            continue
        for i, u in enumerate(holder.inputs.get("uploads") or []):
            if u["file"] == prefix + path:
                return is_secret(holder, f"uploads[{i}].content")
    raise KeyError(path)


def file_owner_and_mode(container: Resource, path: str) -> tuple[str | None, str]:
    """(owner uid or None for root, mode) the stager gives the file `container` reads at
    `path`: the chown and chmod lines of its script."""
    stager = stager_of(container)
    assert stager is not None, f"{container.name} has no staged files"
    script = stager.inputs["command"][-1]
    target = f"/files{path}"
    modes = re.findall(rf"^chmod (0[0-7]{{3}}) {re.escape(target)}$", script, re.M)
    owners = re.findall(rf"^chown (\d+) {re.escape(target)}$", script, re.M)
    assert len(modes) == 1 and len(owners) <= 1, script
    return (owners[0] if owners else None), modes[0]


def holds_secret_files(container: Resource) -> bool:
    """Whether the files `container` reads come as secret inputs (its own or its stager's)."""
    holders = [container, stager_of(container)]
    return any(h is not None and any(p.startswith("uploads") for p in h.secret_paths) for h in holders)


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.generated_secrets: set[str] = set()
        # Stack outputs: name -> resolved value, and the names whose Output is secret.
        self.outputs: dict[str, Any] = {}
        self.secret_outputs: set[str] = set()
        self._options: dict[tuple[str, str], dict[str, Any]] = {}
        self.urns: list[str] = []  # every registration's URN, in order (duplicates kept)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret_paths: set[str] = set()
        inputs = unwrap(args.inputs, "", secret_paths)
        options = self._options.get((args.typ, args.name), {})
        urn = options.get("urn", "")
        self.resources.append(
            Resource(
                args.typ,
                args.name,
                inputs,
                args.inputs,
                secret_paths,
                args.provider,
                options.get("parent", ""),
                options.get("retain_on_delete", False),
                options.get("protect", False),
                options.get("dependencies", []),
                urn,
                options.get("custom_timeouts", {}),
                self,
            )
        )
        outputs = dict(inputs)
        t, n = args.typ, args.name
        if t == "random:index/randomPassword:RandomPassword":
            outputs["result"] = _fake("password", n)
            outputs["bcryptHash"] = "$2a$10$" + _fake("bcrypt", n)
            self.generated_secrets.update((outputs["result"], outputs["bcryptHash"]))
        elif t == "tailscale:index/tailnetKey:TailnetKey":
            outputs["key"] = _fake("tailscale-key", n)
            self.generated_secrets.add(outputs["key"])
        elif t == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(f"bytes-{n}".encode()).digest()[: int(inputs.get("length") or 32)]
            outputs["base64"], outputs["hex"] = base64.b64encode(raw).decode(), raw.hex()
        elif t == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyPem"] = _pem("PRIVATE KEY", n)
            outputs["privateKeyOpenssh"] = _pem("OPENSSH PRIVATE KEY", n)
            outputs["publicKeyPem"] = f"-----BEGIN PUBLIC KEY-----\npublic-{n}\n-----END PUBLIC KEY-----\n"
            outputs["publicKeyOpenssh"] = f"ssh-ed25519 AAAA{hashlib.sha256(n.encode()).hexdigest()} {n}\n"
            self.generated_secrets.add(_fake("PRIVATE_KEY", n))
            self.generated_secrets.add(_fake("OPENSSH_PRIVATE_KEY", n))
        elif t in (
            "tls:index/selfSignedCert:SelfSignedCert",
            "tls:index/locallySignedCert:LocallySignedCert",
        ):
            outputs["certPem"] = cert_pem(n)
        elif t == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = (
                f"-----BEGIN CERTIFICATE REQUEST-----\ncsr-{n}\n-----END CERTIFICATE REQUEST-----\n"
            )
        elif t == "github:index/repository:Repository":
            outputs["nodeId"] = f"R_node_{inputs.get('name')}"  # GitHub's GraphQL id
        elif t == "harbor:index/robotAccount:RobotAccount":
            outputs["fullName"] = f"robot${inputs.get('name')}"
        elif t == "time:index/static:Static":
            outputs["rfc3339"] = "2026-01-02T03:04:05Z"  # the creation time, fixed in state
        elif t == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = mock_image_id(str(inputs.get("name")))
            outputs["repoDigest"] = f"{inputs.get('name')}@{outputs['imageId']}"
        return f"{n}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token == CLOUDFLARE_TUNNEL_TOKEN:
            token = _fake("tunnel-token", str(args.args.get("tunnelId", "")))
            self.generated_secrets.add(token)
            return {"token": token, **{k: args.args.get(k) for k in ("accountId", "tunnelId")}}
        if args.token == "github:index/getRepository:getRepository":
            full_name = args.args.get("fullName", "")
            return {"fullName": full_name, "name": full_name.split("/")[-1], "nodeId": f"R_{full_name}"}
        return {}

    # ---- queries -------------------------------------------------------------------

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Resource:
        found = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        assert len(found) == 1, f"{len(found)} resources named {name!r} ({type_})"
        return found[0]

    def containers(self) -> dict[str, Resource]:
        """Docker containers by container name (e.g. 'homelab-grafana')."""
        return {r.inputs["name"]: r for r in self.of_type("docker:index/container:Container")}

    def providers(self) -> dict[str, Resource]:
        return {r.name: r for r in self.of_type("pulumi:providers:docker")}

    def started(self) -> list[str]:
        """The type of every registration the program started, finished or not. The root
        Stack is left out: `set_mocks` registers it itself in the first run of a process
        (pulumi 3.272 runtime/mocks.py, set_mocks: "Ensure a new root stack resource has been
        initialized"), before the program starts."""
        return [t for t, _ in self._options if t != "pulumi:pulumi:Stack"]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping the resource options `MockResourceArgs` leaves out."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request):  # type: ignore[no-untyped-def]  # noqa: N802
        urn = self.make_urn(request.parent, request.type, request.name)
        self.recording.urns.append(urn)
        self.recording._options[(request.type, request.name)] = {
            "urn": urn,
            "parent": request.parent,
            "retain_on_delete": bool(request.retainOnDelete),
            "protect": bool(request.protect),
            "dependencies": list(request.dependencies),
            "custom_timeouts": {
                key: value
                for key in ("create", "update", "delete")
                if (value := getattr(request.customTimeouts, key, ""))
            },
        }
        return super().RegisterResource(request)


def read_yaml(text: str) -> Any:
    """`yaml.safe_load` through libyaml when PyYAML has it (the same safe schema, several
    times faster: the tests parse every generated config file)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a live daemon under test.

    Taken below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where every
    `bind(0)` of a stub server or client lands: a port handed out by the kernel between this
    check and the daemon's own bind would otherwise let the daemon fail while a stub answers
    on its port. Random, so two test workers rarely try the same one."""
    low = min(_ephemeral_low(), 32768)
    if low <= 20001:  # no room below the ephemeral range: take one the kernel picks
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randrange(20000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def in_background(server: Any) -> Any:
    """`server` (a socketserver) answering from a daemon thread; returned for chaining."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _question(data: bytes) -> tuple[str, int, int]:
    """(name, type, end) of the one question of an RFC 1035 message; `end` past QCLASS."""
    labels, i = [], 12
    while data[i] != 0:
        labels.append(data[i + 1 : i + 1 + data[i]].decode())
        i += data[i] + 1
    qtype = struct.unpack("!H", data[i + 1 : i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5


class StubDns(socketserver.BaseRequestHandler):
    """A DNS server for tests: the A records of `self.server.answers` (name -> IPv4), an empty
    NOERROR answer for any other question; every question asked is kept in
    `self.server.asked`."""

    def handle(self) -> None:
        data, sock = self.request
        name, qtype, end = _question(data)
        self.server.asked.append(name)  # type: ignore[attr-defined]
        address = self.server.answers.get(name) if qtype == 1 else None  # type: ignore[attr-defined]
        # QR, RD, RA; the RD bit of the query kept; one question, one answer or none.
        flags = 0x8180 | (data[2] & 0x01) << 8
        header = data[:2] + struct.pack("!HHHHH", flags, 1, 1 if address else 0, 0, 0)
        answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address) if address else b""
        sock.sendto(header + data[12:end] + answer, self.client_address)


def stub_dns(answers: dict[str, str]) -> socketserver.ThreadingUDPServer:
    """A StubDns on 127.0.0.1 (a port the kernel picks), answering from a daemon thread."""
    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), StubDns)
    server.answers = {k.lower(): v for k, v in answers.items()}  # type: ignore[attr-defined]
    server.asked = []  # type: ignore[attr-defined]
    return in_background(server)


RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def dns_ask(
    name: str,
    port: int,
    qtype: int = 1,
    server: str = "127.0.0.1",
    source: str = "127.0.0.1",
    timeout: float = 5,
) -> tuple[str, list[str]]:
    """Ask `server`:`port` one question over UDP from `source`: (rcode name, the A or AAAA
    addresses of the answer section)."""
    query_id = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    message = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(message, (server, port))
        data, _ = sock.recvfrom(4096)
    rid, flags, questions, count = struct.unpack("!HHHH", data[:8])
    assert rid == query_id
    i = _question(data)[2] if questions else 12  # a refusal may come without the question
    addresses = []
    for _ in range(count):
        i += 2 if data[i] & 0xC0 == 0xC0 else len(name) + 2  # a compressed or a full owner name
        rtype, _, _, length = struct.unpack("!HHIH", data[i : i + 10])
        rdata = data[i + 10 : i + 10 + length]
        if rtype in (1, 28):
            addresses.append(socket.inet_ntop(socket.AF_INET if rtype == 1 else socket.AF_INET6, rdata))
        i += 10 + length
    return RCODES.get(flags & 0x0F, str(flags & 0x0F)), addresses


class StubHandler(BaseHTTPRequestHandler):
    """A stub server's handler: quiet, and `reply` answers with a status, headers and a body."""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], port: int = 0, **attributes: Any) -> ThreadingHTTPServer:
    """A stub HTTP server on 127.0.0.1 (`port`, or one the kernel picks) answering with
    `handler`, which finds `attributes` on `self.server`."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    for key, value in attributes.items():
        setattr(server, key, value)
    return in_background(server)


def cli_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m automation ARGS` as a command from the repository root, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "automation", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cli_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The same in this process (fast): the CLI's `main`, as `python -m automation` calls it.
    argparse's usage errors give their exit code."""
    from automation import cli

    out, err = io.StringIO(), io.StringIO()
    try:
        code = cli.main(list(args), out=out, err=err)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_program(
    config: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    stack: str = "dev",
    key_dir: str | None = None,
    mocks: RecordingMocks | None = None,
) -> RecordingMocks:
    """Run `__main__`'s program with `homelab:` config (kebab-case keys, no namespace).

    Config errors propagate as `pulumi.RunError` (see `run_invalid` to keep the mocks).
    """
    mocks = mocks if mocks is not None else RecordingMocks()
    pulumi.runtime.set_mocks(
        mocks, project="homelab", stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    values = {f"homelab:{k}": _config_value(v) for k, v in (config or {}).items()}
    values.update({f"homelab:{k}": v for k, v in (secrets or {}).items()})
    pulumi.runtime.set_all_config(values, [f"homelab:{k}" for k in (secrets or {})])
    if key_dir is not None:
        os.environ["HOMELAB_SSH_KEY_DIR"] = key_dir
    from stacks.program import main

    def record_export(name: str, value: Any) -> None:
        output = pulumi.Output.from_input(value)

        def keep(resolved: Any) -> None:
            mocks.outputs[name] = resolved

        def secret(is_secret: bool) -> None:
            if is_secret:
                mocks.secret_outputs.add(name)

        output.apply(keep)
        pulumi.Output.from_input(output.is_secret()).apply(secret)

    original_export = pulumi.export
    pulumi.export = record_export
    try:
        main()
    finally:
        drain()
        pulumi.export = original_export
    return mocks


def run_invalid(
    config: dict[str, Any], secrets: dict[str, str] | None = None, key_dir: str | None = None
) -> tuple[pulumi.RunError, RecordingMocks]:
    """Run the program on a config that must be rejected: its error, and what it registered."""
    mocks = RecordingMocks()
    try:
        run_program(config, secrets, key_dir=key_dir, mocks=mocks)
    except pulumi.RunError as error:
        return error, mocks
    raise AssertionError("the config was accepted")


def assert_one_problem(
    config: dict[str, Any], secrets: dict[str, str], key_dir: str, path: str, fragment: str
) -> None:
    """The config is rejected with exactly one problem at `path`, before any registration."""
    error, mocks = run_invalid(config, secrets, key_dir)
    message = str(error)
    header, *lines = message.splitlines()
    assert header == "invalid stack config (1 problem(s)):", message
    assert len(lines) == 1, message
    assert re.match(rf"  {re.escape(path)}: .*{re.escape(fragment)}", lines[0]), message
    assert mocks.resources == [], "an invalid config must not register any resource"
    assert mocks.started() == [], "an invalid config must not even start a registration"


@pulumi.runtime.test
def drain() -> None:
    """Wait for every outstanding registration and apply."""


def load_stack_file(path: Path) -> dict[str, Any]:
    """The `homelab:` keys of a `Pulumi.<stack>.yaml` file, without the namespace, read as
    strictly as the tool reads it (a key written twice is an error)."""
    from automation.validate import read_config_section

    out = {}
    for key, value in read_config_section(path).items():
        namespace, _, name = key.partition(":")
        assert namespace == "homelab", f"{path}: unexpected namespace in {key}"
        out[name] = value
    return out


_EXAMPLE_RUNS: dict[Path, RecordingMocks] = {}
_EXAMPLE_KEYS = tempfile.TemporaryDirectory(prefix="homelab-example-keys-")


def example_run(path: Path) -> RecordingMocks:
    """The program run on an unchanged stack file (an example, or Pulumi.dev.yaml) with stand-in
    secrets: once per test session (per xdist worker), shared by every module. Read only."""
    path = Path(path).resolve()
    if path not in _EXAMPLE_RUNS:
        config = load_stack_file(path)
        key_dir = str(example_key_dir(path))
        _EXAMPLE_RUNS[path] = run_program(config, example_secrets(config), key_dir=key_dir)
    return _EXAMPLE_RUNS[path]


def example_key_dir(path: Path) -> Path:
    """Where `example_run(path)` had the SSH private keys written."""
    return Path(_EXAMPLE_KEYS.name) / Path(path).resolve().stem


def example_secrets(config: dict[str, Any]) -> dict[str, str]:
    """Stand-in values for every secret an example references by name."""
    from stacks.checks import validate

    model = validate(config)
    return {key: f"{SECRET_MARK}-config-{key}" for _, key in model.secret_keys()}


DATA = ROOT / "tests" / "data"  # derived from the shared folder by scripts/derive_test_data.py


def chart_keys(chart: str) -> dict[str, Any]:
    """The key tree of a pinned chart's default values (maps are maps, other values their type
    names), named by the version the CHARTS table pins: bumping a pin without them fails here."""
    from components.platform.charts import CHARTS

    path = DATA / "charts" / f"{chart}-{CHARTS[chart].version}.keys.json"
    assert path.is_file(), f"no key tree for {chart} {CHARTS[chart].version}: run scripts/derive_test_data.py"
    return json.loads(path.read_text())["keys"]  # type: ignore[no-any-return]


def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of a served CRD version, as the pinned chart installs it."""
    path = DATA / "crds" / f"{group}_{kind}_{version}.schema.json"
    assert path.is_file(), f"no served CRD {kind} {group}/{version} in {path.parent}"
    return json.loads(path.read_text())["schema"]  # type: ignore[no-any-return]


def provider_schema(provider: str) -> dict[str, Any]:
    """The parts of a reduced provider schema the tests read (scripts/derive_test_data.py)."""
    path = DATA / "providers" / f"{provider}.json"
    assert path.is_file(), f"no provider schema {path.name}: run scripts/derive_test_data.py"
    return json.loads(path.read_text())["schema"]  # type: ignore[no-any-return]


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml")) + [ROOT / "Pulumi.dev.yaml"]
