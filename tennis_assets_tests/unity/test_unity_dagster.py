"""A Unity build in the Dagster assets is an environment like any other: ``environment: {env:
"unity:<build>", env_kwargs: {...}}`` in the run config, its options checked when the run
config is, the build launched by every step that plays it."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest

from tennis_assets.defs.config import STEP_CONFIGS, TrainingConfig, build_config

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")


def _resources(tmp_path) -> dict:
    from tennis_assets.defs.resources import AlertWebhook, MlflowResource, OptunaResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    return {
        "io_manager": JsonIOManager(base_dir=str(tmp_path / "assets")),
        "model_store": ModelStore(base_dir=str(tmp_path / "models")),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "optuna_storage": OptunaResource(storage_url=f"journal:{tmp_path / 'optuna.log'}"),
        "alert_webhook": AlertWebhook(log_path=str(tmp_path / "alerts.log")),
    }


def test_unity_options_are_checked_with_the_run_config():
    values = {"profile": "tiny", "environment": {
        "env": "unity:/builds/Tennis.x86_64", "scoring": "max",
        "env_kwargs": {"base_port": 6100, "timeout_s": 30, "agents_per_court": 2}}}
    config = TrainingConfig(**values)
    environment = config.environment_config()
    assert (environment.kind, environment.target) == ("unity", "/builds/Tennis.x86_64")
    assert environment.env_kwargs == {"base_port": 6100, "timeout_s": 30, "agents_per_court": 2}
    assert "unity_environment" not in _resources_of_the_definitions()

    bad = {"profile": "tiny", "environment": {"env": "unity:/builds/Tennis.x86_64",
                                              "env_kwargs": {"base_port": 70000,
                                                             "time_scal": 5.0}}}
    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        build_config(STEP_CONFIGS["trained_agents"], bad, "ops.trained_agents.config")
    message = str(info.value)
    assert ("ops.trained_agents.config.environment.env_kwargs.base_port: Input should be less "
            "than or equal to 65535" in message)
    assert ("ops.trained_agents.config.environment.env_kwargs.time_scal: unknown field; did "
            "you mean time_scale" in message)


def _resources_of_the_definitions() -> set[str]:
    from tennis_assets.definitions import defs

    return set(defs.resources)


@pytest.mark.slow
def test_candidate_trained_on_a_build_is_evaluated_on_the_build(port, launcher, tmp_path):
    """trained_agents and evaluation_report launch the (stand-in) build wherever they play it:
    to size the learner, to train, for each evaluation while training holds the first port,
    and for the report and its random baseline. The report's scores are the ones the same
    policy gets from the in-process simulator on the same seed."""
    from tennis_assets.defs.assets import evaluation_report, trained_agents, tuning_study
    from tennis_assets.sim import VecTennis
    from tennis_assets.training import evaluate, greedy
    from tennis_assets.training.evaluation import random_policy

    build = launcher(courts=3)
    environment = {"env": f"unity:{build}", "scoring": "max",
                   "env_kwargs": {"base_port": port, "timeout_s": 60}}
    run_config = {"ops": {
        "trained_agents": {"config": {
            "profile": "tiny", "environment": environment,
            "train": {"max_updates": 60, "eval_every_updates": 30, "selection_episodes": 3}}},
        "evaluation_report": {"config": {"profile": "tiny", "eval_episodes": 6,
                                         "latency_samples": 5}}}}
    result = dg.materialize([tuning_study, trained_agents, evaluation_report],
                            selection=["trained_agents", "evaluation_report"],
                            partition_key="baseline", resources=_resources(tmp_path),
                            run_config=run_config, raise_on_error=False)
    # A 60-update candidate may well fail the blocking solves gate: then its report is stored
    # but evaluation_report is not materialized (the candidate shows as failed).
    from tennis_assets.defs.store import ModelStore

    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    report = ModelStore(base_dir=str(tmp_path / "models")).latest_reports()["baseline"]
    assert materialized == ({"trained_agents", "evaluation_report"} if report.gates.solves
                            else {"trained_agents"})
    trained = result.output_for_node("trained_agents")
    assert trained.summary.updates == 60
    assert trained.environment.env == f"unity:{build}"
    assert trained.summary.env_steps % 3 == 0  # the build's 3 courts, not the profile's
    assert report.environment.env == f"unity:{build}"
    assert report.rally_gif is None and report.rally is None  # no replay of a build's game
    assert report.champion is None and report.evaluation.episodes == 6

    learner = trained.learner()
    seed = report.evaluation.seed
    expected = evaluate(greedy(learner), episodes=6, seed=seed,
                        env=VecTennis(num_courts=3, seed=seed))
    assert report.evaluation.scores == [round(float(s), 2) for s in expected.scores]
    baseline = evaluate(random_policy(2, 2, seed), episodes=6, seed=seed,
                        env=VecTennis(num_courts=3, seed=seed))
    assert report.random.mean == pytest.approx(float(np.mean(baseline.scores)))
