"""Drift monitoring closes the loop: the champion played on a changed court drifts, the check
fails, the sensor retrains on that court, and the gates judge the result on that court.

One scenario on a real Dagster instance and real MLflow (SQLite), run once per module:
  A  retrain[baseline] warm-started from a solved checkpoint, then promoted -> champion v1
  M0 production_monitoring on the unchanged court                          -> no drift
  M1 production_monitoring on a court of 50-decision matches             -> drift
  S  retrain_on_drift sensor tick                                          -> one request (M1)
  R  that request executed (tiny budget)                                   -> evaluated on the
                                                                              drifted court
"""

import json
from datetime import UTC

import dagster as dg
import pytest
from conftest import all_defs, make_resources, materialize

pytestmark = pytest.mark.slow

MODEL = "tennis-policy-monitoring"
# Production plays short matches: a rally hit takes a player tens of decisions, so no policy can
# score much above 0.2 in 50, against the 1.5+ the champion earned on full episodes. A physics
# change (doubled gravity) is not a drift for every policy: one CI checkpoint scored 2.10 there
# against 1.64 on the default court.
DRIFTED_COURT = {"max_decisions": 50}


def _monitor(instance, resources, root, court=None, seed=11):
    from tennis_assets.defs.assets import production_monitoring

    config = {"monitor_episodes": 100, "monitor_seed": seed,
              "output_dir": str(root / "monitoring")}
    if court:
        config["production_kwargs"] = court
    return dg.materialize([production_monitoring], instance=instance, resources=resources,
                          run_config={"ops": {"production_monitoring": {"config": config}}},
                          raise_on_error=False)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, mlflow_uri, good_checkpoint):
    from tennis_assets.definitions import defs
    from tennis_assets.defs.sensors import promote_better_model, retrain_on_drift

    root = tmp_path_factory.mktemp("monitoring")
    resources = make_resources(root, mlflow_uri, MODEL)
    out = {"root": root}
    with dg.instance_for_test() as instance:
        out["instance"] = instance
        out["A"] = materialize(instance, resources, "baseline",
                               ["trained_agents", "evaluation_report"],
                               {"trained_agents": {"init_checkpoint": str(good_checkpoint),
                                                   "train": {"max_updates": 1}},
                                "evaluation_report": {"eval_episodes": 100}})
        request = promote_better_model.evaluate_tick(
            dg.build_sensor_context(instance=instance)).run_requests[0]
        config = request.run_config["ops"]["challenger_model"]["config"]
        out["P"] = dg.materialize(all_defs(), selection=["challenger_model", "production_model"],
                                  instance=instance, resources=resources,
                                  run_config={"ops": {"challenger_model": {"config": {
                                      **config, "replay_episodes": 50}}}},
                                  raise_on_error=False)
        out["M0"] = _monitor(instance, resources, root)
        out["latest_M0"] = json.loads((root / "monitoring/latest.json").read_text())
        out["M1"] = _monitor(instance, resources, root, DRIFTED_COURT)
        out["latest_M1"] = json.loads((root / "monitoring/latest.json").read_text())
        # The repository lets the tick resolve the retrain job's partitions.
        out["S"] = retrain_on_drift.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs))
        out["S_again"] = retrain_on_drift.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=out["S"].cursor,
                                    definitions=defs))
        drift_request = out["S"].run_requests[0]
        ops = drift_request.run_config["ops"]
        # The sensor's request as the daemon would launch it, on the tiny profile's budget.
        ops["trained_agents"]["config"].update({"profile": "tiny"})
        ops["trained_agents"]["config"].setdefault("train", {})["max_updates"] = 50
        ops["evaluation_report"] = {"config": {"profile": "tiny", "eval_episodes": 50}}
        out["R"] = dg.materialize(all_defs(), selection=["trained_agents", "evaluation_report"],
                                  partition_key=drift_request.partition_key, instance=instance,
                                  resources=resources, run_config=drift_request.run_config,
                                  raise_on_error=False)
        yield out


def _check(result):
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1
    return evaluations[0]


def _value(result):
    return result.output_for_node("production_monitoring")


def test_champion_was_promoted(scenario):
    assert scenario["A"].success and scenario["P"].success
    assert scenario["P"].output_for_node("production_model").version == "1"


def test_unchanged_court_does_not_drift(scenario):
    result = scenario["M0"]
    assert result.success
    value = _value(result)
    assert value.severity == "none" and not value.drifted
    assert value.baseline_source == "the champion's evaluation run"
    # Nothing configured: the conditions the champion was judged on (its model version's tag).
    assert value.court_source in ("the conditions the champion was judged on",
                                  "default conditions")
    assert value.baseline_episodes == 100 and value.episodes == 100
    assert value.p_value > 0.01
    assert _check(result).passed
    assert scenario["latest_M0"]["drifted"] is False


def test_short_matches_drift_and_fail_the_check(scenario):
    result = scenario["M1"]
    assert result.success  # a drifted champion is a finding, not a failed run
    value = _value(result)
    assert value.drifted and value.severity in ("warning", "critical")
    assert value.court["max_decisions"] == 50
    assert value.mean < value.baseline_mean - 0.1
    assert value.p_value < 0.01
    check = _check(result)
    assert not check.passed
    assert check.metadata["severity"].value == value.severity
    latest = scenario["latest_M1"]
    assert latest["drifted"] is True and latest["model_version"] == "1"
    assert latest["test"].startswith("mann-whitney-u")
    # The policy server's reader takes what this asset writes (its drift gauges and alerts).
    from tennis_assets.serving.monitoring import SEVERITIES, parse_result

    parsed = parse_result(json.dumps(latest))
    assert parsed.drifted and parsed.severity == SEVERITIES[value.severity]
    assert parsed.mean == pytest.approx(value.mean) and parsed.model_version == "1"
    history = (scenario["root"] / "monitoring/history.jsonl").read_text().splitlines()
    assert [json.loads(line)["drifted"] for line in history] == [False, True]


def test_sensor_retrains_only_the_drifted_court_once(scenario):
    requests = scenario["S"].run_requests
    assert len(requests) == 1
    request = requests[0]
    assert request.partition_key == "baseline"
    config = request.run_config["ops"]["trained_agents"]["config"]
    assert config["environment"] == {"env": "tennis", "env_kwargs": DRIFTED_COURT}
    assert config["init_checkpoint"] == "champion"
    assert request.tags["trigger"] == "retrain_on_drift"
    assert request.tags["monitoring_run_id"] == scenario["M1"].run_id
    assert scenario["S_again"].run_requests == []


def test_retraining_runs_and_is_judged_on_the_drifted_court(scenario):
    result = scenario["R"]
    agent = result.output_for_node("trained_agents")

    assert agent.environment.env_kwargs == DRIFTED_COURT
    assert agent.resource_usage["cpu_seconds"] > 0
    # The stored report (a candidate that fails `solves` on the drifted court is stored but not
    # materialized: it shows as failed).
    from tennis_assets.defs.store import ModelStore

    report = ModelStore(base_dir=str(scenario["root"] / "models")).latest_reports()["baseline"]
    assert report.champion is not None and report.champion.version == "1"
    assert report.environment.env_kwargs == DRIFTED_COURT
    # The champion was scored on the same drifted episodes, so beats_champion compares like
    # with like; whether the candidate is promoted is the gates' decision.
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) >= {"solves", "beats_champion"}
    assert checks["solves"] == (report.evaluation.mean >= 0.5)
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert ("evaluation_report" in materialized) == checks["solves"]


def test_monitoring_without_a_champion_fails_clearly(tmp_path, mlflow_uri):
    resources = make_resources(tmp_path, mlflow_uri, "tennis-policy-nobody")
    with dg.instance_for_test() as instance:
        result = _monitor(instance, resources, tmp_path)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "nothing to monitor" in str(failure.event_specific_data.error.message)


def test_drift_rules_are_validated():
    from tennis_assets.defs.config import check_run_config

    for config, path in [({"rules": [{"severity": "warning", "max_p_value": 2.0}]},
                           "rules.0.max_p_value"),
                          ({"monitor_episodes": 3}, "monitor_episodes")]:
        with pytest.raises(ValueError, match=f"ops.production_monitoring.config.{path}"):
            check_run_config({"ops": {"production_monitoring": {"config": config}}})


def test_daily_monitoring_schedule():
    from datetime import datetime

    from tennis_assets.definitions import defs
    from tennis_assets.defs.schedules import daily_monitoring

    when = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                             repository_def=defs.get_repository_def())
        requests = daily_monitoring.evaluate_tick(context).run_requests
    assert [r.run_key for r in requests] == ["monitor-2026-11-28T06:00"]
    assert daily_monitoring.job_name == "monitor"


def test_production_conditions_from_configuration_or_environment(monkeypatch):
    from tennis_assets.defs.config import MonitoringConfig
    from tennis_assets.envs import EnvironmentConfig
    from tennis_assets.workflow.monitoring import production_environment

    monkeypatch.delenv("TENNIS_ASSETS_COURT", raising=False)
    monkeypatch.setenv("TENNIS_ASSETS_ENV_KWARGS", '{"ball_scale": 2.0}')
    assert MonitoringConfig().core().production_conditions() == {"ball_scale": 2.0}
    assert MonitoringConfig(production_kwargs={"gravity": -12.0}).core() \
        .production_conditions() == {"gravity": -12.0}
    monkeypatch.setenv("TENNIS_ASSETS_ENV_KWARGS", "big ball")
    with pytest.raises(ValueError, match="TENNIS_ASSETS_ENV_KWARGS is not JSON"):
        MonitoringConfig().core().production_conditions()
    # Checked against the champion's environment when production's is built: Tennis's court
    # names the field.
    tennis = EnvironmentConfig()
    with pytest.raises(ValueError, match="ball_size"):
        production_environment(tennis, {"ball_size": 2.0})
    with pytest.raises(ValueError, match="gravity"):
        production_environment(tennis, {"gravity": 9.81})
    played, source = production_environment(tennis, {"gravity": -12.0})
    assert played.env_kwargs == {"gravity": -12.0} and source.startswith("production")
