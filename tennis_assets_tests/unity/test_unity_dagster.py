"""``environment: unity`` in trained_agents trains through the unity_environment resource."""

from __future__ import annotations

import dagster as dg
import pytest

from tennis_assets.defs.config import TrainingConfig, TuningConfig
from tennis_assets.defs.environment import UnityEnvironmentResource

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
        "unity_environment": UnityEnvironmentResource(),
    }


def test_config_choices_and_validation():
    assert TrainingConfig(environment="unity").candidate().environment == "unity"
    with pytest.raises(Exception, match="base_port=70000: must be a TCP port"):
        UnityEnvironmentResource(base_port=70000)
    # A study's trials train on the built-in simulator: its config has no environment.
    assert "environment" not in TuningConfig.model_fields


@pytest.mark.slow
def test_trained_agents_on_unity(port, peer_thread, tmp_path):
    from tennis_assets.defs.assets import evaluation_report, trained_agents, tuning_study

    # The peer waits while Dagster and MLflow start up (the migrations alone take seconds).
    peer, _ = peer_thread(port, courts=3, connect_timeout=120)
    resources = _resources(tmp_path)
    run_config = {
        "ops": {"trained_agents": {"config": {
            "profile": "tiny", "environment": "unity",
            "train": {"max_updates": 60, "eval_every_updates": 30, "selection_episodes": 3}}}},
        "resources": {"unity_environment": {"config": {"base_port": port, "timeout_s": 10,
                                                       "time_scale": 5.0}}},
    }
    result = dg.materialize([tuning_study, trained_agents, evaluation_report],
                            selection=["trained_agents"], partition_key="baseline",
                            resources=resources, run_config=run_config)
    assert result.success
    value = result.output_for_node("trained_agents")
    assert value.summary.updates == 60
    # Training steps plus the evaluations' steps all went through the peer.
    assert peer.commands.count("step") > value.summary.env_steps // 3
    assert peer.time_scale == pytest.approx(5.0)
    assert value.summary.env_steps % 3 == 0  # the peer's 3 courts, not the profile's 4


@pytest.mark.slow
def test_candidate_trained_on_a_build_is_evaluated_on_the_build(port, launcher, tmp_path):
    """trained_agents and evaluation_report each launch the (stand-in) build; the report's
    scores are the ones the same policy gets from the in-process simulator on the same seed."""
    from tennis_assets.defs.assets import evaluation_report, trained_agents, tuning_study
    from tennis_assets.sim import VecTennis
    from tennis_assets.training import evaluate, greedy

    build = launcher(courts=3)
    resources = _resources(tmp_path)
    run_config = {
        "ops": {"trained_agents": {"config": {
                    "profile": "tiny", "environment": "unity",
                    "train": {"max_updates": 60, "eval_every_updates": 30,
                              "selection_episodes": 3}}},
                "evaluation_report": {"config": {"profile": "tiny", "eval_episodes": 6,
                                                 "latency_samples": 5}}},
        "resources": {"unity_environment": {"config": {
            "file_name": str(build), "base_port": port, "timeout_s": 60}}},
    }
    result = dg.materialize([tuning_study, trained_agents, evaluation_report],
                            selection=["trained_agents", "evaluation_report"],
                            partition_key="baseline", resources=resources,
                            run_config=run_config, raise_on_error=False)
    report = result.output_for_node("evaluation_report")
    assert report["environment"] == "unity"
    assert report["paths"]["rally_gif"] is None  # no built-in replay of a build's game
    assert report["champion"] is None and report["evaluation"]["episodes"] == 6
    learner = result.output_for_node("trained_agents").learner()
    seed = report["evaluation"]["seed"]
    expected = evaluate(greedy(learner), episodes=6, seed=seed,
                        env=VecTennis(num_courts=3, seed=seed))
    assert report["evaluation"]["scores"] == [round(float(s), 2) for s in expected.scores]
