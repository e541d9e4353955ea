"""The registered champion is portable: `mlflow models serve --env-manager uv` builds a fresh
environment from the model's own requirements (public index only, no torch, no tennis-assets),
serves `models:/<name>@champion`, and answers MLflow's scoring protocol with the numbers the
policy server's /invocations gives for the same bodies; non-finite inputs get a 400 there too.

uv comes with the package (a dependency), so the command runs from a shell that has only the
project's install on PATH. The environment is built in the test's own folder every run (MLFLOW_ENV_ROOT), so nothing of an
earlier run or of the project's venv can stand in for a missing requirement; uv's download cache
makes that about 15 s here (the first download of the wheels, ~70 MB, adds a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from .support import wait_for_http

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, doc, raw: bytes | None = None) -> tuple[int, dict]:
    body = raw if raw is not None else json.dumps(doc).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def test_mlflow_models_serve_answers_like_the_policy_server(registry, champion, server,
                                                           tmp_path):
    name = champion[0]
    # A shell with only the project's install: its venv's bin (what activating it puts first),
    # the Python it was made with (the model's environment asks for that exact version) and the
    # system's. No uv of its own: uv is a dependency of the package, so the venv has it.
    path = os.pathsep.join([str(BIN), str(Path(sys.base_prefix) / "bin"), "/usr/bin", "/bin"])
    uv = shutil.which("uv", path=path)
    assert uv is not None and Path(uv).parent == BIN, f"uv not in the project's install: {uv}"
    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=registry.tracker.tracking_uri,
               MLFLOW_ENV_ROOT=str(tmp_path / "envs"), PATH=path)
    # uv does not read pip's configuration; it needs the same CA bundle pip trusts here.
    for bundle in ("/etc/ssl/certs/ca-certificates.crt",):
        if Path(bundle).exists():
            env.setdefault("SSL_CERT_FILE", bundle)
    log_path = tmp_path / "models-serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
         "--env-manager", "uv", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/ping", 600, "mlflow models serve", log_path, interval=1.0)

        obs = np.random.default_rng(5).standard_normal((4, 2, 24)).astype(np.float32)
        for key in ("inputs", "instances"):
            status, theirs = _post(f"{url}/invocations", {key: obs.tolist()})
            assert status == 200, theirs
            status, ours = _post(f"{server.url}/invocations", {key: obs.tolist()})
            assert status == 200, ours
            np.testing.assert_allclose(theirs["predictions"], ours["predictions"], atol=1e-6)
        # MLflow's health and version endpoints answer alike on both servers.
        for route in ("/health", "/version"):
            theirs, ours = _get(f"{url}{route}"), _get(f"{server.url}{route}")
            assert theirs[0] == ours[0] == 200, (route, theirs, ours)
        assert _get(f"{url}/version")[1] == _get(f"{server.url}/version")[1] != ""
        nan = ('{"inputs": [[[NaN' + ", 0.1" * 23 + "], [0.1" + ", 0.1" * 23 + "]]]}").encode()
        for base in (url, server.url):
            status, doc = _post(f"{base}/invocations", None, raw=nan)
            assert status == 400 and "NaN" in doc["message"], (base, doc)
    finally:
        # mlflow runs the scoring server as a child: stop the session this test started.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()
