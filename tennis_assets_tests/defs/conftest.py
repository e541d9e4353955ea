"""Fixtures for the Dagster layer: real MLflow (SQLite), real Optuna storage (journal file), a
real Dagster test instance, and checkpoints of a real trained agent and of a sabotaged copy."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TINY = "tiny"


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite tracking database per session: creating one runs MLflow's migrations (~3 s)."""
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowTracker(uri, artifact_root=(root / "artifacts").as_uri()).experiment_id()
    return uri


@pytest.fixture(scope="session")
def good_checkpoint(tmp_path_factory, worker_id) -> Path:
    """The default learner trained until a complete greedy evaluation on 100 episodes averages
    0.9 (about 40 s here; deterministic in updates for a fixed seed), then checked on fresh
    episodes: a marginal 0.5 agent would make the gate tests a coin toss.

    Trained once per test session: under pytest-xdist the workers share one copy through the
    session's common temp folder, and a file lock makes the others wait instead of training
    again on a machine whose cores the first one already uses."""
    from filelock import FileLock

    if worker_id == "master":
        return _train_good_checkpoint(tmp_path_factory.mktemp("good") / "good.safetensors")
    shared = tmp_path_factory.getbasetemp().parent / "good-checkpoint"
    shared.mkdir(exist_ok=True)
    path = shared / "good.safetensors"
    with FileLock(str(shared / "lock")):
        if not path.exists():
            _train_good_checkpoint(path)
    return path


def _train_good_checkpoint(path: Path) -> Path:
    from tennis_assets.training import evaluate, final_seed, greedy, save_checkpoint, train
    from tennis_assets.training.defaults import default_configs

    agent, cfg = default_configs("ddpg")

    def strong(kind, info):
        return kind == "eval" and bool(info["complete"]) and info["greedy_mean"] >= 0.9

    result = train(agent, cfg.replace(max_seconds=150, seed=0), progress=False, callback=strong)
    check = evaluate(greedy(result.learner), episodes=100, seed=final_seed(0, 77))
    assert check.mean >= 0.7, f"default learner too weak for the gate tests: {check.mean}"
    return save_checkpoint(path, result.learner, train_config=cfg, include_buffer=False)


@pytest.fixture(scope="session")
def sabotaged_checkpoint(good_checkpoint, tmp_path_factory) -> Path:
    """The good agent with its actor's weights zeroed: it loads, its tensors are finite, and it
    cannot hit the ball."""
    import torch

    from tennis_assets.training import load_learner, save_checkpoint

    learner = load_learner(good_checkpoint)
    with torch.no_grad():
        learner.params[learner.layout.net_slices["actor"]] = 0.0
    path = tmp_path_factory.mktemp("sabotaged") / "sabotaged.safetensors"
    return save_checkpoint(path, learner, include_buffer=False)


def make_resources(root: Path, mlflow_uri: str, model_name: str) -> dict:
    from tennis_assets.defs.environment import UnityEnvironmentResource
    from tennis_assets.defs.resources import AlertWebhook, MlflowResource, OptunaResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    return {
        "io_manager": JsonIOManager(base_dir=str(root / "assets")),
        "model_store": ModelStore(base_dir=str(root / "models")),
        "mlflow": MlflowResource(tracking_uri=mlflow_uri, registered_model=model_name),
        "optuna_storage": OptunaResource(storage_url=f"journal:{root / 'optuna.log'}"),
        "alert_webhook": AlertWebhook(log_path=str(root / "alerts.log")),
        "unity_environment": UnityEnvironmentResource(),
    }


def all_defs():
    """The assets and checks without the Definitions' resources (tests bring their own)."""
    from tennis_assets.defs.assets import (evaluation_report, production_model, trained_agents,
                                           tuning_study)
    from tennis_assets.defs.checks import enough_completed_trials, promoted_model_loads_and_plays

    return [tuning_study, trained_agents, evaluation_report, production_model,
            enough_completed_trials, promoted_model_loads_and_plays]


def materialize(instance, resources, partition: str, selection: list[str],
                config: dict | None = None):
    """Materialize ``selection`` (plus their checks) for one candidate on ``instance``."""
    import dagster as dg

    ops = {name: {"config": {"profile": TINY}} for name in
           ("tuning_study", "trained_agents", "evaluation_report") if name in selection}
    for name, values in (config or {}).items():
        ops.setdefault(name, {"config": {}})["config"].update(values)
    return dg.materialize(all_defs(), selection=selection, partition_key=partition,
                          instance=instance, resources=resources, run_config={"ops": ops},
                          raise_on_error=False)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records JSON posts (a Slack webhook stand-in);
    ``status`` sets what it answers."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.status == 200:
                    outer.posts.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r
