"""`tennis-assets serve` as a user starts it: one command, loopback by default, ready once the
champion is loaded, a graceful drain on SIGTERM (what `docker stop` sends), and a clear error
before anything starts when the registry, the model or the alias is wrong."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from tennis_assets.cli import main

from .support import Client, sigterm_under_load, stop_process, wait_until
from .test_serving_http import VALID

pytestmark = pytest.mark.slow


def test_serve_drains_on_sigterm_answering_every_request_received(registry, champion, tmp_path):
    name, info, _ = champion
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
             "--tracking-uri", registry.tracker.tracking_uri, "--model-name", name,
             "--poll-interval", "0.5", "--monitoring-file", str(tmp_path / "latest.json")],
            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:(\d+))$", line.strip())
        assert match, (line, log_path.read_text())
        url = match.group(1)
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
        run = sigterm_under_load(proc, url, VALID, in_flight=3, exit_timeout_s=15)
        assert run.exit_code == 0
        answers = run.answers
        assert answers and all(status == 200 and doc["model_version"] == info.version
                               for status, doc in answers)
        assert len(run.failures) <= run.connections, run.failures  # one per connection at most
        text = log_path.read_text()
        assert "SIGTERM: draining" in text and "every request received was answered" in text
        # One JSON access line per answered request.
        access = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        acts = [a for a in access if a["path"] == "/act" and a["status"] == 200]
        assert len(acts) == len(answers) + 1 + run.in_flight
        assert {"time", "client", "method", "status", "duration_ms", "model_version"} <= set(
            acts[0])
    finally:
        stop_process(proc)


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
