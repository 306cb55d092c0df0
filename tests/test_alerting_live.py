"""The generated Alertmanager config, run by the real Alertmanager on loopback (issue 23), with a
local webhook recorder standing in for Mattermost's incoming webhook (it takes Slack's payload).

Taken as the program generates them: alertmanager.yml (the single-host example's chat receiver)
and the container's command line (its --web.external-url among it). Test-only rewrites: the
webhook URL file and the data directory are temporary files, the listener is a free loopback
port, and group_wait is 1 s instead of 30 s so a message comes while the test waits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, example_run, free_port, serve
from harness import files as staged_files

from components.homelab.alerting import ALERTMANAGER_CONFIG, WEBHOOK_URL_FILE

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="Alertmanager is not installed (make test installs prometheus-alertmanager)"
)
CONTAINER = "docker:index/container:Container"


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        self.server.messages.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Lab:
    def __init__(self, tmp: Path) -> None:
        lab = example_run(ROOT / "examples" / "single-host.yaml")
        (container,) = [c for c in lab.of_type(CONTAINER) if c.inputs["name"] == "homelab-alertmanager"]
        files = staged_files(container)
        config = yaml.safe_load(files[ALERTMANAGER_CONFIG])
        assert config["receivers"][0]["slack_configs"][0]["api_url_file"] == WEBHOOK_URL_FILE
        self.recorder = serve(Recorder, messages=[])
        url_file = tmp / "webhook-url"
        url_file.write_text(f"http://127.0.0.1:{self.recorder.server_address[1]}/hooks/alerts\n")
        text = files[ALERTMANAGER_CONFIG].replace(WEBHOOK_URL_FILE, str(url_file))
        text = text.replace('group_wait: "30s"', 'group_wait: "1s"')
        assert 'group_wait: "1s"' in text
        (tmp / "alertmanager.yml").write_text(text)
        self.port = free_port()
        command = [a for a in container.inputs["command"] if a.startswith("--web.external-url=")]
        self.external_url = command[0].split("=", 1)[1]
        self.process = subprocess.Popen(
            [
                str(BINARY),
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'data'}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *command,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except OSError:
                assert self.process.poll() is None, self.process.communicate()[1]
                time.sleep(0.1)
        raise AssertionError("Alertmanager did not become ready")

    def post(self, *alerts: dict[str, str]) -> None:
        body = json.dumps(
            [
                {"labels": labels, "annotations": {"summary": f"{labels['alertname']} summary"}}
                for labels in alerts
            ]
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/alerts",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5)

    def messages_about(self, alertname: str, count: int, wait: float = 8.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = [m for m in self.recorder.messages if alertname in json.dumps(m)]  # type: ignore[attr-defined]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return [m for m in self.recorder.messages if alertname in json.dumps(m)]  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.recorder.shutdown()


# Every test's alerts are posted at once, when Alertmanager starts: one group wait for all.
ALERTS = (
    {"alertname": "LinkCheck", "host": "server", "severity": "warning"},
    {"alertname": "ContainerRestarting", "host": "server", "container": "grafana"},
    {"alertname": "ContainerRestarting", "host": "server", "container": "mysql"},
    {"alertname": "HostDown", "host": "nas"},
    {"alertname": "DiskAlmostFull", "host": "nas"},
    {"alertname": "DiskAlmostFull", "host": "server"},
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("alertmanager-live"))
    try:
        running.post(*ALERTS)
        # Four groups are due after group_wait (1 s); a fifth (the inhibited disk) never is.
        for name in ("LinkCheck", "ContainerRestarting", "HostDown", "DiskAlmostFull"):
            running.messages_about(name, 1)
        time.sleep(1.0)  # anything else would have come by now
        yield running
    finally:
        running.stop()


def test_the_chat_message_links_to_the_routed_alertmanager(lab):
    """--web.external-url is the route: the message's link works from a chat client."""
    assert lab.external_url == "https://alerts.lab.example.com/"
    [message] = lab.messages_about("LinkCheck", 1, wait=0)
    attachment = message["attachments"][0]
    assert attachment["title_link"].startswith("https://alerts.lab.example.com/")
    assert "[FIRING:1] LinkCheck" in attachment["title"]
    assert "**server**: LinkCheck summary" in attachment["text"]


def test_one_hosts_alerts_of_one_kind_are_one_message(lab):
    messages = lab.messages_about("ContainerRestarting", 1, wait=0)
    assert len(messages) == 1
    assert "[FIRING:2] ContainerRestarting" in messages[0]["attachments"][0]["title"]


def test_a_host_that_is_down_silences_its_other_alerts(lab):
    assert len(lab.messages_about("HostDown", 1, wait=0)) == 1
    disk = lab.messages_about("DiskAlmostFull", 1, wait=0)
    # Only the host that is up tells of its disk: the other is inhibited by its HostDown.
    assert [m["attachments"][0]["text"] for m in disk] == ["**server**: DiskAlmostFull summary\n"]
