"""The registered champion is portable: `mlflow models serve --env-manager uv` builds a fresh
environment from the model's own requirements (public index only, no torch, no tennis-assets),
serves `models:/<name>@champion`, and answers MLflow's scoring protocol with the numbers the
policy server's /invocations gives for the same bodies; non-finite inputs get a 400 there too.
The same for a 3-agent MPE team: the model's signature carries its own shapes.

uv comes with the package (a dependency), so the command runs from a shell that has only the
project's install on PATH. The environment is built in the module's own folder every run
(MLFLOW_ENV_ROOT), so nothing of an earlier run or of the project's venv can stand in for a
missing requirement; uv's download cache makes that about 15 s here (the first download of the
wheels, ~70 MB, adds a few seconds).
Both models state the same requirements, so the second test reuses the first's environment.
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


@pytest.fixture(scope="module")
def env_root(tmp_path_factory) -> Path:
    """Where `mlflow models serve` builds its environments, new for this module: the Tennis
    and the MPE model state the same requirements, so the second serve reuses the first's
    environment (MLflow names an environment by the hash of its requirements)."""
    return tmp_path_factory.mktemp("mlflow-envs")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def _serve_model(registry, name: str, env_root: Path, log_path: Path):
    """`mlflow models serve` of ``name``@champion on a free port: (process, url)."""
    # A shell with only the project's install: its venv's bin (what activating it puts first),
    # the Python it was made with (the model's environment asks for that exact version) and the
    # system's. No uv of its own: uv is a dependency of the package, so the venv has it.
    path = os.pathsep.join([str(BIN), str(Path(sys.base_prefix) / "bin"), "/usr/bin", "/bin"])
    uv = shutil.which("uv", path=path)
    assert uv is not None and Path(uv).parent == BIN, f"uv not in the project's install: {uv}"
    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=registry.tracker.tracking_uri,
               MLFLOW_ENV_ROOT=str(env_root), PATH=path)
    # uv does not read pip's configuration; it needs the same CA bundle pip trusts here.
    for bundle in ("/etc/ssl/certs/ca-certificates.crt",):
        if Path(bundle).exists():
            env.setdefault("SSL_CERT_FILE", bundle)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
             "--env-manager", "uv", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _stop_session(proc: subprocess.Popen) -> None:
    # mlflow runs the scoring server as a child: stop the session this test started.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _same_answers(url: str, ours: str, obs: np.ndarray) -> None:
    for key in ("inputs", "instances"):
        status, theirs = _post(f"{url}/invocations", {key: obs.tolist()})
        assert status == 200, theirs
        status, mine = _post(f"{ours}/invocations", {key: obs.tolist()})
        assert status == 200, mine
        assert np.asarray(theirs["predictions"]).shape == np.asarray(mine["predictions"]).shape
        np.testing.assert_allclose(theirs["predictions"], mine["predictions"], atol=1e-6)


def test_mlflow_models_serve_answers_like_the_policy_server(registry, champion, server,
                                                           env_root, tmp_path):
    log_path = tmp_path / "models-serve.log"
    proc, url = _serve_model(registry, champion[0], env_root, log_path)
    try:
        wait_for_http(proc, f"{url}/ping", 600, "mlflow models serve", log_path, interval=1.0)
        _same_answers(url, server.url,
                      np.random.default_rng(5).standard_normal((4, 2, 24)).astype(np.float32))
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
        _stop_session(proc)


def test_mlflow_models_serve_answers_an_mpe_champion_like_the_policy_server(
        registry, env_root, tmp_path):
    """The registered model of a 3-agent MPE team (signature [-1, 3, 18] -> [-1, 3, 5]) served
    by `mlflow models serve` and by the policy server: the same body, the same numbers, and a
    Tennis-shaped body refused by both."""
    from .support import MPE, start_server

    name = registry.new_name()
    _, learner = registry.register(name, seed=6, algorithm="maddpg", environment=MPE)
    server = start_server(registry, name)
    log_path = tmp_path / "models-serve.log"
    proc, url = _serve_model(registry, name, env_root, log_path)
    try:
        wait_for_http(proc, f"{url}/ping", 600, "mlflow models serve", log_path, interval=1.0)
        obs = np.random.default_rng(6).standard_normal((4, 3, 18)).astype(np.float32)
        _same_answers(url, server.url, obs)
        status, doc = _post(f"{url}/invocations", {"inputs": obs.tolist()})
        np.testing.assert_allclose(doc["predictions"], learner.act(obs, explore=False),
                                   atol=1e-5)
        tennis = {"inputs": np.zeros((4, 2, 24)).tolist()}
        status, doc = _post(f"{url}/invocations", tennis)
        assert status == 400 and "shape" in doc["message"], doc
        status, doc = _post(f"{server.url}/invocations", tennis)
        assert status == 400 and "[N, 3, 18]" in doc["message"], doc
    finally:
        _stop_session(proc)
        server.stop()
