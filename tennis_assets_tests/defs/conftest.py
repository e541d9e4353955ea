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
    1.5 (about a minute here; deterministic in updates for a fixed seed), then checked on fresh
    episodes: a marginal 0.5 agent would make the gate tests a coin toss, and it must clearly
    beat the okay checkpoint (0.7) for the promotion tests.

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


def _train_good_checkpoint(path: Path, level: float = 1.5, at_least: float = 0.7) -> Path:
    from tennis_assets.training import evaluate, final_seed, greedy, save_checkpoint, train
    from tennis_assets.training.defaults import default_configs

    agent, cfg = default_configs("ddpg")

    def strong(kind, info):
        return kind == "eval" and bool(info["complete"]) and info["greedy_mean"] >= level

    # Bounded in updates, not seconds: on a busy machine a wall-clock budget ended the run
    # before the level (a 0.64 checkpoint at load 11); the level comes within 20,000 updates.
    result = train(agent, cfg.replace(max_seconds=None, max_updates=40_000, seed=0),
                   progress=False, callback=strong)
    check = evaluate(greedy(result.learner), episodes=100, seed=final_seed(0, 77))
    assert check.mean >= at_least, f"default learner too weak for the gate tests: {check.mean}"
    return save_checkpoint(path, result.learner, train_config=cfg, include_buffer=False)


@pytest.fixture(scope="session")
def okay_checkpoint(tmp_path_factory, worker_id) -> Path:
    """The same training stopped at its first complete greedy evaluation of 0.7 (training is
    deterministic in updates for a fixed seed): a champion that a better candidate can beat."""
    from filelock import FileLock

    if worker_id == "master":
        return _train_good_checkpoint(tmp_path_factory.mktemp("okay") / "okay.safetensors",
                                      level=0.7, at_least=0.55)
    shared = tmp_path_factory.getbasetemp().parent / "okay-checkpoint"
    shared.mkdir(exist_ok=True)
    path = shared / "okay.safetensors"
    with FileLock(str(shared / "lock")):
        if not path.exists():
            _train_good_checkpoint(path, level=0.7, at_least=0.55)
    return path


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
    from tennis_assets.defs.resources import AlertWebhook, MlflowResource, OptunaResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    return {
        "io_manager": JsonIOManager(base_dir=str(root / "assets")),
        "model_store": ModelStore(base_dir=str(root / "models")),
        "mlflow": MlflowResource(tracking_uri=mlflow_uri, registered_model=model_name),
        "optuna_storage": OptunaResource(storage_url=f"journal:{root / 'optuna.log'}"),
        "alert_webhook": AlertWebhook(log_path=str(root / "alerts.log")),
    }


def all_defs():
    """The assets and checks without the Definitions' resources (tests bring their own): the
    code location's own lists, so a new asset or check is tested without naming it here."""
    from tennis_assets.definitions import defs

    return [*defs.assets, *defs.asset_checks]


def job_definitions(resources):
    """The named jobs over the assets, bound to the tests' own resources."""
    import dagster as dg

    from tennis_assets.defs.jobs import ALL_JOBS

    return dg.Definitions(assets=[d for d in all_defs() if isinstance(d, dg.AssetsDefinition)],
                          asset_checks=[d for d in all_defs()
                                        if not isinstance(d, dg.AssetsDefinition)],
                          jobs=ALL_JOBS, resources=resources)


def run_job(instance, defs, job: str, partition: str | None = None,
            config: dict | None = None, profile: bool = True):
    """Execute the named job ``job`` in process on ``instance`` (its runs carry the job's
    name, as the run-status sensors need), tiny profile unless ``config`` says otherwise."""
    ops = {}
    if profile:
        ops = {name: {"config": {"profile": TINY}} for name in
               ("tuning_study", "trained_agents", "evaluation_report", "challenger_model")}
    for name, values in (config or {}).items():
        ops.setdefault(name, {"config": {}})["config"].update(values)
    selected = set(defs.resolve_job_def(job).asset_layer.executable_asset_keys)
    ops = {k: v for k, v in ops.items() if any(key.path[-1] == k for key in selected)}
    # No run config at all lets a job's own (rollback's) apply.
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, run_config={"ops": ops} if ops else None,
        raise_on_error=False)


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
            def do_POST(self):
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
