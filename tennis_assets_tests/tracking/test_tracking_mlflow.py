"""MLflow tracking and registry on a real SQLite backend: runs end exactly once with the right
status, per-episode metrics arrive in full, the policy model states its requirements and loads
and plays, and the champion/previous aliases support a one-step rollback."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.tracking import run_tags
from tennis_assets.tracking.mlflow_tracking import (
    MlflowTracker,
    policy_pip_requirements,
    save_policy_model,
)
from tennis_assets.training import save_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return MlflowTracker(f"sqlite:///{root / 'mlflow.db'}", experiment="tracking-tests",
                         artifact_root=(root / "artifacts").as_uri())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    learner = make_learner(AgentConfig(actor_hidden=16, critic_hidden=16), 3)
    path = tmp_path_factory.mktemp("ckpt") / "policy.safetensors"
    return save_checkpoint(path, learner, include_buffer=False), learner


def test_run_tags_name_run_commit_packages_machine():
    tags = run_tags("dagster-run-1", partition="tuned", skipped=None)
    assert tags["dagster.run_id"] == "dagster-run-1" and tags["partition"] == "tuned"
    assert "skipped" not in tags
    assert tags["pkg.mlflow"] == "3.17.2" and tags["pkg.dagster"] == "1.13.27"
    assert {"machine.python", "machine.cpu_count", "machine.platform"} <= set(tags)
    assert len(tags.get("git.commit", "0" * 40)) == 40


def test_run_lifecycle_params_and_batched_series(tracker):
    with tracker.start_run("lifecycle", {"dagster.run_id": "r1"}) as run:
        run.log_params({"agent": {"actor_lr": 1e-3}, "note": "x" * 7000})
        run.log_metrics({"mean": 0.7, "nan": float("nan"), "solved": True}, step=5)
        run.log_series("episode_score", np.linspace(0, 1, 2500).tolist())
        assert tracker.get_run(run.run_id).info.status == "RUNNING"
    got = tracker.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.data.tags["dagster.run_id"] == "r1"
    assert got.data.params["agent.actor_lr"] == "0.001" and len(got.data.params["note"]) == 6000
    assert got.data.metrics == {"mean": 0.7, "solved": 1.0, "episode_score": 1.0}
    history = tracker.client.get_metric_history(run.run_id, "episode_score")
    assert len(history) == 2500 and sorted(m.step for m in history) == list(range(2500))
    assert run.url.endswith(f"/runs/{run.run_id}")

    with pytest.raises(RuntimeError), tracker.start_run("fails") as failing:
        raise RuntimeError("boom")
    assert tracker.get_run(failing.run_id).info.status == "FAILED"


def test_policy_model_is_portable_and_plays(tmp_path, checkpoint):
    path, learner = checkpoint
    started = time.perf_counter()
    model_dir = save_policy_model(path, tmp_path / "policy")
    seconds = time.perf_counter() - started
    # Inferring requirements would import the model in a subprocess (seconds); stating is instant.
    assert seconds < 5.0, seconds
    requirements = (model_dir / "requirements.txt").read_text().split()
    # Exactly what we stated, each on the public index: no local build label, no tennis-assets,
    # no torch (the pyfunc runs the ONNX file).
    assert requirements == policy_pip_requirements()
    assert [r.split("==")[0] for r in requirements] == ["mlflow-skinny", "numpy", "onnxruntime",
                                                         "pandas"]
    assert not any("+" in r for r in requirements)
    assert not list(model_dir.rglob("*.pkl"))  # models-from-code: nothing pickled
    assert (model_dir / "artifacts" / "policy.safetensors").exists()
    assert (model_dir / "artifacts" / "policy.onnx").exists()
    code = (model_dir / "policy_model.py").read_text()
    assert "tennis_assets" not in code.replace('"""', "").split("class TennisPolicy")[1]
    assert "torch" not in code.split("class TennisPolicy")[1]
    from mlflow.models import Model

    meta = Model.load(str(model_dir))
    assert meta.saved_input_example_info and meta.signature is not None

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(model_dir))
    obs = np.random.default_rng(0).standard_normal((5, 2, 24)).astype(np.float32)
    np.testing.assert_allclose(model.predict(obs), learner.act(obs, explore=False), atol=1e-5)
    with pytest.raises(Exception, match="shape"):
        model.predict(obs.reshape(5, 48))  # the signature rejects a flattened batch
    obs[0, 0, 0] = np.nan
    with pytest.raises(Exception, match="NaN"):
        model.predict(obs)


def test_policy_model_takes_the_shapes_of_its_environment(tmp_path, checkpoint):
    """Signature, input example and the pyfunc's own check are the model's shapes: a MADDPG
    team for MPE simple_spread (sized from a real instance: 3 agents, 18 observations, 5
    actions) registers [-1, 3, 18] -> [-1, 3, 5]; Tennis stays [-1, 2, 24] -> [-1, 2, 2]."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from tennis_assets.envs import EnvironmentConfig, describe, fit_agent
    from tennis_assets.tracking.mlflow_tracking import policy_signature

    tennis, _ = policy_signature(checkpoint[1].config)
    assert tennis.inputs.inputs[0].shape == (-1, 2, 24)
    assert tennis.outputs.inputs[0].shape == (-1, 2, 2)

    env = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                            env_kwargs={"continuous_actions": True})
    config = fit_agent(AgentConfig(algorithm="maddpg", actor_hidden=16, critic_hidden=16),
                       describe(env))
    learner = make_learner(config, 4)
    path = save_checkpoint(tmp_path / "team.safetensors", learner, include_buffer=False,
                           environment=env)
    model_dir = save_policy_model(path, tmp_path / "team")
    meta = Model.load(str(model_dir))
    assert meta.signature.inputs.inputs[0].shape == (-1, 3, 18)
    assert meta.signature.outputs.inputs[0].shape == (-1, 3, 5)
    assert np.asarray(meta.load_input_example(str(model_dir))).shape == (1, 3, 18)

    model = mlflow.pyfunc.load_model(str(model_dir))
    obs = np.random.default_rng(1).standard_normal((5, 3, 18)).astype(np.float32)
    actions = model.predict(obs)
    assert actions.shape == (5, 3, 5)
    np.testing.assert_allclose(actions, learner.act(obs, explore=False), atol=1e-5)
    tennis_obs = np.zeros((5, 2, 24), np.float32)
    with pytest.raises(MlflowException, match="shape"):
        model.predict(tennis_obs)  # the signature's schema enforcement
    # The pyfunc's own check, for a caller that skips the signature, names the shape expected.
    with pytest.raises(MlflowException, match=r"\[5, 2, 24\]; this model takes \[N, 3, 18\]"):
        model.unwrap_python_model().predict(None, tennis_obs)


def test_registry_champion_previous_and_rollback(tracker, checkpoint, tmp_path):
    path, _learner = checkpoint
    name = "registry-test"
    assert tracker.champion(name) is None
    sources = []
    for i in range(2):
        with tracker.start_run(f"train-{i}") as run:
            sources.append((run.log_policy_model(path), run.run_id))
    first = tracker.register_champion(name, sources[0][0], sources[0][1], tags={"eval_mean": 0.6})
    assert (first.version, first.aliases, first.eval_mean) == ("1", ["champion"], 0.6)
    with pytest.raises(RuntimeError, match="nothing to roll back"):
        tracker.rollback(name)
    second = tracker.register_champion(name, sources[1][0], sources[1][1],
                                       tags={"eval_mean": 0.9})
    assert second.version == "2" and second.run_id == sources[1][1]
    # An MLflow 3 logged model, linked to its training run and to the model version.
    models = tracker.client.search_logged_models(
        experiment_ids=[tracker.experiment_id()],
        filter_string=f"source_run_id = '{sources[1][1]}'")
    assert len(models) == 1 and str(models[0].status) == "READY"
    assert models[0].artifact_location == sources[1][0]
    assert json.loads(models[0].tags["mlflow.modelVersions"]) == [{"name": name, "version": "2"}]
    assert tracker.champion(name, "previous").version == "1"

    back = tracker.rollback(name)
    assert back.version == "1" and tracker.champion(name, "previous").version == "2"

    model = tracker.load_policy(tracker.champion(name), tmp_path / "dl")
    obs = np.zeros((2, 2, 24), np.float32)
    assert np.isfinite(model.predict(obs)).all()
    ckpt = tracker.champion_checkpoint(tracker.champion(name), tmp_path / "dl2")
    assert Path(ckpt).suffix == ".safetensors"


def _open_tracker_at_once(uri: str, barrier, results) -> None:
    import mlflow  # noqa: F401  (imported before the barrier, so the processes meet at the store)

    barrier.wait(timeout=60)
    try:
        tracker = MlflowTracker(uri, artifact_root=Path(uri[len("sqlite:///"):]).with_name(
            "artifacts").as_uri())
        with tracker.start_run("together") as run:
            run.log_metrics({"x": 1.0})
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def test_runs_that_start_together_on_a_new_sqlite_store_all_work(tmp_path):
    """Two runs at once on a fresh data directory (the main command trains the baseline while
    the study tunes): each process finds MLflow's tables missing; without the lock beside the
    file both migrate it and one fails ("No such index ...")."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for attempt in range(2):  # without the lock the first already failed, every time tried
        uri = f"sqlite:///{tmp_path / f'try{attempt}' / 'mlflow.db'}"
        Path(uri[len("sqlite:///"):]).parent.mkdir()
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_tracker_at_once, args=(uri, barrier, results))
                 for _ in range(4)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert outcomes == ["ok"] * 4, outcomes
        runs = MlflowTracker(uri).client.search_runs(
            [MlflowTracker(uri).experiment_id()])
        assert len(runs) == 4
