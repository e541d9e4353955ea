"""`tennis-assets serve` as a user starts it: one command, loopback by default, ready once the
champion is loaded, and a clean exit on SIGTERM (what `docker stop` sends)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from .support import Client, stop_process, wait_until
from .test_serving_http import VALID

pytestmark = pytest.mark.slow


def test_serve_command_serves_the_champion_and_stops_on_sigterm(registry, champion, tmp_path):
    name, info, _ = champion
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
         "--tracking-uri", registry.tracker.tracking_uri, "--model-name", name,
         "--poll-interval", "0.5", "--monitoring-file", str(tmp_path / "latest.json")],
        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)$", line.strip())
        assert match, (line, (tmp_path / "serve.log").read_text())
        client = Client(match.group(1))
        try:
            wait_until(lambda: client.json("GET", "/readyz")[0] == 200, 60, "readiness")
            status, doc = client.json("POST", "/act", VALID)
            assert status == 200 and doc["model_version"] == info.version
            _, _, body = client.request("GET", "/metrics")
            assert b"tennis_policy_requests_total" in body and b"_created" not in body
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop_process(proc)
        log.close()
