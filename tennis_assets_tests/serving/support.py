"""Helpers for the serving tests: a real MLflow registry on SQLite, servers, an HTTP client."""

from __future__ import annotations

import fcntl
import http.client
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.serving import ChampionSource, PolicyServer, ServerConfig
from tennis_assets.tracking.mlflow_tracking import MlflowTracker
from tennis_assets.training import save_checkpoint

_names = itertools.count()


class Registry:
    """Registers untrained (seeded) learners as champions: serving needs a model, not a good
    one, and building one takes milliseconds where training takes seconds."""

    def __init__(self, root: Path, template: Path | None = None) -> None:
        self.root = root
        if template is not None:
            shutil.copyfile(template, root / "mlflow.db")
        self.tracker = MlflowTracker(f"sqlite:///{root / 'mlflow.db'}", experiment="serving",
                                     artifact_root=(root / "artifacts").as_uri())

    def new_name(self) -> str:
        return f"policy-{next(_names)}"

    def register(self, name: str, seed: int = 0, algorithm: str = "ddpg",
                 champion: bool = True):
        """Registers a seeded learner; ``champion=False`` leaves it as the challenger, out of the
        server's sight until promoted."""
        learner = make_learner(AgentConfig(algorithm=algorithm, actor_hidden=16,
                                           critic_hidden=16, buffer_size=256, seed=seed,
                                           device="cpu"))
        path = save_checkpoint(self.root / "ckpt" / f"{name}-{seed}.safetensors", learner,
                               include_buffer=False)
        with self.tracker.start_run(f"{name}-{seed}") as run:
            source = run.log_policy_model(path)
        if not champion:
            return self.tracker.register_challenger(name, source, run.run_id), learner
        info = self.tracker.register_champion(name, source, run.run_id, tags={"eval_mean": 0.7})
        return info, learner


def empty_mlflow_db(shared: Path) -> Path:
    """An MLflow SQLite database with its tables created, made once and copied per use:
    creating the tables runs every schema migration (about 8 s on a busy 2-core machine), and
    each pytest-xdist worker would pay it again. Shared by workers under a file lock."""
    import mlflow
    from mlflow.tracking import MlflowClient

    template = shared / f"mlflow-empty-{mlflow.__version__}.db"
    with open(shared / "mlflow-empty.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = template.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            MlflowClient(f"sqlite:///{partial}").search_experiments()
            partial.rename(template)
    return template


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns once the process is reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_server(registry: Registry, name: str, monitoring_file=None, poll: float = 0.2,
                 **config) -> PolicyServer:
    source = ChampionSource(registry.tracker, name, poll_interval_s=poll)
    # Access lines would land in the middle of pytest's output; the CLI test reads them.
    config.setdefault("access_log", False)
    server = PolicyServer(source, ServerConfig(port=0, **config),
                          monitoring_file=monitoring_file).start()
    wait_until(lambda: source.current is not None, 30, f"{name} to load")
    return server


class Client:
    """One keep-alive HTTP connection (http.client, no mocks, no extra libraries)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        if isinstance(body, str):
            body = body.encode()
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()  # the server closed it (e.g. after 413); the next call reconnects
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
        # HTTP header names are case-insensitive (uvicorn writes them in lower case).
        return resp.status, resp.headers, data

    def json(self, method: str, path: str, doc=None, **kw):
        body = None if doc is None else json.dumps(doc)
        status, headers, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()
