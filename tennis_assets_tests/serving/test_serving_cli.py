"""`tennis-assets serve` as a user starts it: one command, loopback by default, ready once the
champion is loaded, a graceful drain on SIGTERM (what `docker stop` sends), and a clear error
before anything starts when the registry, the model or the alias is wrong."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tennis_assets.cli import main

from .support import Client, stop_process, wait_until
from .test_serving_http import VALID

pytestmark = pytest.mark.slow


def _hammer(url: str, answers: list, failures: list, stop: threading.Event) -> None:
    """Closed-loop client on one keep-alive connection until the server closes it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps(VALID)
    try:
        while not stop.is_set():
            try:
                conn.request("POST", "/act", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                answers.append((resp.status, json.loads(resp.read())))
            except (OSError, http.client.HTTPException) as exc:
                # The drain closed this idle connection (or refused a new one): the request
                # was never received, so it is no request the server dropped.
                failures.append(type(exc).__name__)
                return
    finally:
        conn.close()


def test_serve_drains_on_sigterm_answering_every_request_received(registry, champion, tmp_path):
    name, info, _ = champion
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
         "--tracking-uri", registry.tracker.tracking_uri, "--model-name", name,
         "--poll-interval", "0.5", "--monitoring-file", str(tmp_path / "latest.json")],
        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:(\d+))$", line.strip())
        assert match, (line, log_path.read_text())
        url, port = match.group(1), int(match.group(2))
        client = Client(url)
        try:
            wait_until(lambda: client.json("GET", "/readyz")[0] == 200, 60, "readiness")
            status, doc = client.json("POST", "/act", VALID)
            assert status == 200 and doc["model_version"] == info.version
            _, _, body = client.request("GET", "/metrics")
            assert b"tennis_policy_requests_total" in body and b"_created" not in body
        finally:
            client.close()

        # Load on four connections, and three requests in flight: headers and half a body sent.
        answers: list = []
        failures: list = []
        stop = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(url, answers, failures, stop))
                   for _ in range(4)]
        for t in threads:
            t.start()
        body = json.dumps(VALID).encode()
        in_flight = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
            in_flight.append(s)
        wait_until(lambda: len(answers) >= 50, 30, "load to run")
        proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_until(refused, 10, "the listening socket to close")
        for s in in_flight:  # the rest of each body, after the drain began
            s.sendall(body[100:])
        for s in in_flight:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            head, _, payload = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
            assert len(json.loads(payload)["actions"]) == 2
        assert proc.wait(15) == 0
        stop.set()
        for t in threads:
            t.join(10)
        assert answers and all(status == 200 and doc["model_version"] == info.version
                               for status, doc in answers)
        assert len(failures) <= len(threads), failures  # one per connection at most
        text = log_path.read_text()
        assert "SIGTERM: draining" in text and "every request received was answered" in text
        # One JSON access line per answered request.
        access = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        acts = [a for a in access if a["path"] == "/act" and a["status"] == 200]
        assert len(acts) == len(answers) + 1 + len(in_flight)
        assert {"time", "client", "method", "status", "duration_ms", "model_version"} <= set(
            acts[0])
    finally:
        stop_process(proc)
        log.close()


def _serve(capsys, *args: str) -> tuple[int, str]:
    code = main(["serve", "--port", "0", *args])
    return code, capsys.readouterr().err


def test_serve_refuses_a_wrong_registry_model_or_alias(registry, champion, tmp_path, capsys):
    name = champion[0]
    uri = registry.tracker.tracking_uri
    missing = tmp_path / "typo" / "mlflow.db"
    code, err = _serve(capsys, "--tracking-uri", f"sqlite:///{missing}")
    assert code == 2 and err.startswith("error: ") and "no registry at" in err
    assert not missing.parent.exists()  # nothing created
    code, err = _serve(capsys, "--tracking-uri", (tmp_path / "runs").as_uri())
    assert code == 2 and "error: " in err and "sqlite:///" in err
    code, err = _serve(capsys, "--tracking-uri", uri, "--model-name", "no-such-model")
    assert code == 2 and "no registered model 'no-such-model'" in err and name in err
    code, err = _serve(capsys, "--tracking-uri", uri, "--model-name", name, "--alias", "chmpion")
    assert code == 2 and "no alias 'chmpion'" in err and "champion (version" in err
    assert "Traceback" not in err


def test_serve_waits_for_a_model_when_asked(registry, champion, tmp_path):
    """docker/ starts the server before the first promotion: --wait-for-model serves nothing
    (not ready) instead of refusing, and still drains and exits 0 on SIGTERM."""
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
             "--tracking-uri", registry.tracker.tracking_uri, "--model-name", champion[0],
             "--alias", "not-yet", "--wait-for-model", "--monitoring-file",
             str(tmp_path / "latest.json")], stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            match = re.search(r"on (http://\S+)$", proc.stdout.readline().strip())
            assert match, log_path.read_text()
            client = Client(match.group(1))
            try:
                assert client.json("GET", "/healthz")[0] == 200
                assert client.json("GET", "/readyz")[0] == 503
            finally:
                client.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            stop_process(proc)
    assert "no alias 'not-yet'" in log_path.read_text()
