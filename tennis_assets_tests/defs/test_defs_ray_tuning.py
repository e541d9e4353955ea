"""Ray Tune as the second tuning engine, on a real local Ray instance (2 CPUs): OptunaSearch
with ASHA through the tuning_study asset, HyperOptSearch, and population-based training whose
exploited trial continues from another trial's checkpoint. Every Ray trial lands in the Optuna
study, so the asset's summary, its MLflow run and its best parameters are the Optuna engine's."""

import json
import logging

import optuna
import pytest

from tennis_assets import ray_tuning, tuning
from tennis_assets.tuning import study_config, trial_configs

pytestmark = pytest.mark.slow
PARAMS = ["actor_lr", "tau"]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def configs():
    # Four segments of 25 updates, a greedy evaluation in each.
    return trial_configs(study_config("tiny", trial_max_updates=100), "tiny")


def test_optuna_search_with_asha_lands_in_the_tuning_study_asset(local_ray, tmp_path,
                                                                  mlflow_uri, monkeypatch):
    import dagster as dg
    from conftest import make_resources

    from tennis_assets.defs.assets import tuning_study
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "home"))
    resources = make_resources(tmp_path, mlflow_uri, "ray-policy")
    config = {"profile": "tiny", "study_name": "ray-asha", "n_trials": 3, "engine": "ray",
              "ray_searcher": "optuna", "ray_scheduler": "asha", "params": PARAMS,
              "trial_max_updates": 100}
    result = dg.materialize([tuning_study], resources=resources,
                            run_config={"ops": {"tuning_study": {"config": config}}})
    assert result.success
    value = result.output_for_node("tuning_study")
    study = optuna.load_study(study_name="ray-asha", storage=tuning.make_storage(
        f"journal:{tmp_path / 'optuna.log'}"))
    trials = study.get_trials()
    assert value["run_trials"] == [t.number for t in trials] == [0, 1, 2]
    assert {t.user_attrs["engine"] for t in trials} == {"ray"}
    assert {t.user_attrs["batch"] for t in trials} == {result.run_id}
    assert trials[0].user_attrs.get("baseline") is True  # points_to_evaluate, as Optuna's
    assert value["engine"] == "ray" and set(value["best_params"]) == set(PARAMS)
    best = tuning.best_trial(study)
    assert value["best_params"] == best.params and value["best_score"] == best.values[0]
    # A greedy mean per segment (25, 50, 75, 100 updates); a trial ASHA stopped at a rung is
    # recorded as pruned, with the segments it ran.
    for t in trials:
        steps = list(t.intermediate_values)
        assert steps == [25, 50, 75, 100][:len(steps)] and steps
        assert t.state.name == ("COMPLETE" if len(steps) == 4 else "PRUNED")
    run = MlflowTracker(mlflow_uri).get_run(value["mlflow_run_id"])
    assert run.data.params["engine"] == "ray" and run.data.params["ray_scheduler"] == "asha"
    assert run.data.metrics["complete_trials"] == value["n_complete"]


def test_hyperopt_search_records_every_trial(local_ray, tmp_path, configs):
    agent, train = configs
    study = tuning.open_study("hyperopt", "memory")
    numbers = ray_tuning.run_ray_study(study, 2, agent, train, params=PARAMS,
                                       searcher="hyperopt", scheduler="fifo", seed=3,
                                       storage_path=tmp_path / "ray", batch="b")
    trials = study.get_trials()
    assert numbers == [0, 1] and tuning.check_batch(study, "b", [
        {"worker": 0, "n_trials": 2, "trials": numbers}]) == [0, 1]
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert {t.user_attrs["ray_searcher"] for t in trials} == {"hyperopt"}
    assert all(t.user_attrs["updates"] == 100 for t in trials)


def test_pbt_exploited_trial_continues_from_another_trials_checkpoint(local_ray, tmp_path,
                                                                      configs):
    agent, train = configs
    study = tuning.open_study("pbt", "memory")
    ray_tuning.run_ray_study(study, 2, agent, train, params=PARAMS, searcher="random",
                             scheduler="pbt", seed=1, storage_path=tmp_path / "ray")
    trials = study.get_trials()
    ids = {t.user_attrs["ray_trial_id"]: t for t in trials}
    assert len(ids) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    exploited = [t for t in trials if t.user_attrs["continued_from"]]
    assert exploited, [t.user_attrs for t in trials]
    for trial in exploited:
        donors = trial.user_attrs["continued_from"]
        # Another trial of this study, whose checkpoint (this project's safetensors resume
        # state) the exploited trial loaded and trained on from.
        assert trial.user_attrs["ray_trial_id"] not in donors and set(donors) <= set(ids)
        assert trial.user_attrs["updates"] == 100
    # PBT's perturbed values stay inside the search space the study holds.
    for t in trials:
        assert 2e-4 <= t.params["actor_lr"] <= 3e-3 and 0.005 <= t.params["tau"] <= 0.05
    checkpoints = list((tmp_path / "ray").rglob(ray_tuning.OWNER_FILE))
    owners = {json.loads(p.read_text())["trial_id"] for p in checkpoints}
    assert owners == set(ids)
