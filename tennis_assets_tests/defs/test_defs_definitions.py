"""The Definitions load, validate, and hold exactly the graph, checks, jobs, schedules and
sensors below (a rename shows up here in review)."""

import statistics
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from tennis_assets.definitions import defs

ASSETS = ["challenger_model", "evaluation_report", "production_model", "production_monitoring",
          "trained_agents", "tuning_study"]
CHECKS = [
    "challenger_model:challenger_loads_and_plays",
    "challenger_model:challenger_not_worse_than_champion",
    "challenger_model:challenger_solves",
    "evaluation_report:beats_champion",
    "evaluation_report:latency_under_threshold",
    "evaluation_report:solves",
    "production_model:promoted_model_loads_and_plays",
    "production_monitoring:champion_score_has_not_drifted",
    "trained_agents:history_has_no_nan",
    "trained_agents:weights_finite",
    "tuning_study:enough_completed_trials",
]
JOBS = ["monitor", "promote", "retrain", "rollback", "run_pipeline", "tune", "tune_in_containers",
        "tuning_worker"]
SCHEDULES = ["daily_monitoring", "weekly_retrain"]
SENSORS = ["alert_on_failed_checks", "alert_on_failed_runs", "announce_champion_changes",
           "monitor_new_champion", "promote_better_model", "retrain_on_drift"]
# Faults block; beats_champion is a decision (a candidate that is not better is not promoted,
# its run still succeeds).
BLOCKING = {"solves", "weights_finite", "history_has_no_nan",
            "challenger_loads_and_plays", "challenger_solves",
            "challenger_not_worse_than_champion"}


def test_definitions_validate_and_snapshot():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == ASSETS
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    assert checks == CHECKS
    repo = defs.get_repository_def()
    assert sorted(j for j in repo.job_names if not j.startswith("__")) == JOBS
    assert sorted(s.name for s in repo.schedule_defs) == SCHEDULES
    assert sorted(s.name for s in repo.sensor_defs) == SENSORS


def test_graph_shape_docs_groups_kinds():
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey
    assert graph.get(key("trained_agents")).parent_keys == {key("tuning_study")}
    assert graph.get(key("evaluation_report")).parent_keys == {key("trained_agents")}
    assert graph.get(key("challenger_model")).parent_keys == {key("evaluation_report")}
    assert graph.get(key("production_model")).parent_keys == {key("challenger_model")}
    assert graph.get(key("production_monitoring")).parent_keys == {key("production_model")}
    # Two groups, so the lineage opens expanded rather than as five collapsed boxes.
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"tuning_study": "candidates", "trained_agents": "candidates",
                      "evaluation_report": "candidates", "challenger_model": "production",
                      "production_model": "production", "production_monitoring": "production"}
    for k in graph.get_all_asset_keys():
        node = graph.get(k)
        assert node.description and len(node.description) > 80, k
        assert any(t.startswith("dagster/kind/") for t in node.tags), k
    assert graph.get(key("trained_agents")).partitions_def.get_partition_keys() == \
        ["baseline", "tuned"]
    specs = {s.name: s for a in graph.assets_defs for s in a.check_specs}
    assert {n for n, s in specs.items() if s.blocking} == BLOCKING
    # The candidates' checks are partitioned like their assets: results name the candidate.
    for name in ("weights_finite", "history_has_no_nan", "solves", "beats_champion"):
        assert specs[name].partitions_def is not None, name


def test_definitions_import_fast_and_without_heavy_libraries():
    """What every `dagster dev` start, run and sensor tick pays first. Measured in fresh
    interpreters; the bound leaves room for a busy CI machine (about 1.5 s here)."""
    code = ("import sys, time; t = time.perf_counter(); import tennis_assets.definitions; "
            "dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'numba', 'mlflow', 'optuna', 'wandb', 'ray', "
            "'neptune_scale', 'hyperopt', 'redis', 'cmaes') "
            "if m in sys.modules]; "
            "print(dt, ','.join(heavy))")
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        assert len(out) == 1, f"definitions imported {out[1]}"
    assert statistics.median(times) < 8.0, times


def test_unknown_environment_is_a_config_error_naming_the_field():
    job = defs.resolve_job_def("retrain")
    with pytest.raises(dg.DagsterInvalidConfigError, match="environment"):
        job.execute_in_process(
            run_config={"ops": {"trained_agents": {"config": {"environment": "mujoco"}}}},
            instance=dg.DagsterInstance.ephemeral(), partition_key="baseline")


@pytest.mark.parametrize("config, path", [
    ({"agent": {"actor_lr": -0.001}}, "agent.actor_lr"),
    ({"agent": {"tau": 2.0}}, "agent.tau"),
    ({"environment": {"env_kwargs": {"gravity": 3.0}}}, "environment.env_kwargs.gravity"),
    ({"train": {"max_updates": 0}}, "train.max_updates"),
    ({"train": {"max_seconds": -5.0}}, "train.max_seconds"),
    ({"agent": {"batch_size": 512, "buffer_size": 256}}, "agent: batch_size=512"),
])
def test_bad_training_values_name_the_field_by_its_run_config_path(config, path):
    from tennis_assets.defs.config import check_run_config

    with pytest.raises(ValueError, match=f"ops.trained_agents.config.{path}"):
        check_run_config({"ops": {"trained_agents": {"config": config}}})


def test_a_choice_outside_its_literal_is_refused_by_dagsters_schema():
    from tennis_assets.defs.config import TrainingConfig

    with pytest.raises(Exception, match="pink"):
        TrainingConfig(agent={"noise": "pink"})


def test_bad_tuning_and_promotion_values_name_the_field():
    from tennis_assets.defs.config import ChallengerConfig, TuningConfig, build_config

    path = "ops.tuning_study.config"
    with pytest.raises(dg.DagsterInvalidConfigError, match=f"{path}.params: .*learning_rate"):
        build_config(TuningConfig, {"params": ["learning_rate"]}, path)
    with pytest.raises(dg.DagsterInvalidConfigError, match=f"{path}.n_trials"):
        build_config(TuningConfig, {"n_trials": 0}, path)
    with pytest.raises(Exception, match="gold"):
        ChallengerConfig(partition="gold")


def test_profiles_build_core_configs():
    from tennis_assets.defs.config import TrainingConfig, TuningConfig

    agent, train = TrainingConfig(profile="tiny", agent={"actor_lr": 2e-3}).build({"tau": 0.03})
    assert (agent.actor_lr, agent.tau, agent.learning_starts) == (2e-3, 0.03, 256)
    assert train.max_updates == 300 and train.selection_episodes == 5
    agent, train = TrainingConfig(profile="quick").build()
    assert train.max_updates == 40_000 and train.max_seconds == 180.0
    assert train.stop_when_solved and train.target_score == 2.2
    _, trial = TuningConfig(profile="tiny").build()
    assert trial.max_updates == 200 and not trial.stop_when_solved


def test_weekly_schedule_requests_each_candidate():
    from tennis_assets.defs.schedules import weekly_retrain

    assert weekly_retrain.cron_schedule == "0 3 * * 1"
    when = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                             repository_def=defs.get_repository_def())
        data = weekly_retrain.evaluate_tick(context)
    requests = data.run_requests
    assert [r.partition_key for r in requests] == ["baseline", "tuned"]
    assert [r.run_key for r in requests] == ["weekly-2026-11-30T03:00-baseline",
                                             "weekly-2026-11-30T03:00-tuned"]
    assert weekly_retrain.job_name == "retrain"
