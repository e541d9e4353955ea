"""Helpers for the serving tests: a real MLflow registry on SQLite, servers, an HTTP client."""

from __future__ import annotations

import fcntl
import http.client
import itertools
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.envs import EnvironmentConfig, describe, fit_agent
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
                 champion: bool = True, environment: EnvironmentConfig | None = None):
        """Registers a seeded learner; ``champion=False`` leaves it as the challenger, out of the
        server's sight until promoted. ``environment``: sized to that environment's agents,
        observations and actions (read from one real instance of it) and recorded in its
        checkpoint and tags, as training does; None: Tennis."""
        config = AgentConfig(algorithm=algorithm, actor_hidden=16, critic_hidden=16,
                             buffer_size=256, device="cpu")
        if environment is not None:
            config = fit_agent(config, describe(environment))
        learner = make_learner(config, seed)
        path = save_checkpoint(self.root / "ckpt" / f"{name}-{seed}.safetensors", learner,
                               include_buffer=False, environment=environment)
        tags = {} if environment is None else {
            "environment": json.dumps(environment.to_dict(), sort_keys=True)}
        with self.tracker.start_run(f"{name}-{seed}") as run:
            source = run.log_policy_model(path)
        if not champion:
            return self.tracker.register_challenger(name, source, run.run_id,
                                                    tags=tags or None), learner
        info = self.tracker.register_champion(name, source, run.run_id,
                                              tags={"eval_mean": 0.7, **tags})
        return info, learner


# A 3-agent team of PettingZoo's MPE (mpe2): 18 observations and 5 continuous actions each.
MPE = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                        env_kwargs={"continuous_actions": True})


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


def wait_for_http(proc: subprocess.Popen, url: str, timeout_s: float, what: str,
                  log_path: Path, interval: float = 0.1) -> None:
    """Until GET ``url`` answers 200; fails at once, with the tail of the process's log, if the
    process exits first."""
    def answered() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n"
                                 f"{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
    wait_until(answered, timeout_s, f"{what} to answer {url}", interval)


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
        status, _headers, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()


def hammer(url: str, doc: dict, answers: list, failures: list, stop: threading.Event) -> None:
    """Closed-loop client on one keep-alive connection until the server closes it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps(doc)
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


@dataclass
class Drained:
    answers: list  # (status, body) of every request the load got an answer to
    failures: list  # connections the drain closed while idle (at most one each)
    connections: int
    in_flight: int  # half-sent requests, each answered 200 with the connection closed
    exit_code: int


def sigterm_under_load(proc: subprocess.Popen, url: str, doc: dict, in_flight: int = 3,
                       connections: int = 4, exit_timeout_s: float = 20.0) -> Drained:
    """Closed-loop load on ``connections`` keep-alive connections, plus ``in_flight`` requests
    with their headers and half a body sent; SIGTERM once 50 answers came back; the rest of each
    body only after the listening socket closed (so the drain had begun). Checks that every
    half-sent request was answered 200 and its connection closed, and waits for the exit."""
    port = int(url.rsplit(":", 1)[1])
    answers: list = []
    failures: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=hammer, args=(url, doc, answers, failures, stop))
               for _ in range(connections)]
    for t in threads:
        t.start()
    body = json.dumps(doc).encode()
    pending = []
    try:
        for _ in range(in_flight):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
            pending.append(s)
        wait_until(lambda: len(answers) >= 50, 30, "load to run")
        proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_until(refused, 10, "the listening socket to close")
        for s in pending:
            s.sendall(body[100:])
        for s in pending:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            head, _, payload = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
            assert len(json.loads(payload)["actions"]) == 2
        code = proc.wait(exit_timeout_s)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for s in pending:
            s.close()
    return Drained(answers, failures, connections, in_flight, code)
