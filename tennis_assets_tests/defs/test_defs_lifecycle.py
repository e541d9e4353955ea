"""The model lifecycle on a real Dagster instance (SQLite storage), real MLflow (SQLite) and a
real Optuna journal, through the named jobs the UI, schedules and sensors launch.

One scenario, run once per module, in this order:
  R0 rollback before anything was promoted                          -> FAILURE, one line
  A  retrain[baseline], warm-started from an okay checkpoint (0.6)  -> SUCCESS, gates pass
  S1 promotion sensor tick                                          -> one promotion request
  P  promote (that request)                                         -> challenger v1, checks
                                                                       pass, champion v1
  R1 rollback (no previous champion)                                -> SUCCESS, nothing moved
  G  retrain[baseline] from a good checkpoint (0.9), then its
     registered model files destroyed; promote                      -> challenger v2 cannot
                                                                       load: run FAILS, champion
                                                                       stays v1
  B  run_pipeline[tuned] (study, train, evaluate, promote) from the
     good checkpoint, impossible latency threshold                  -> champion v3, previous v1
  M  monitor_new_champion tick, then the monitor run it asked for   -> drift result for v3
  E  retrain[baseline] warm-started from the champion (v3)          -> ties it: SUCCESS, a
                                                                       failed beats_champion on
                                                                       [baseline], no promotion
  C  retrain[baseline] untrained (tiny budget)                      -> FAILURE (solves)
  D  run_pipeline[tuned] from a sabotaged checkpoint                -> FAILURE, no promotion
  S2 promotion sensor tick from S1's cursor                         -> a request for each
                                                                       report whose blocking
                                                                       gates passed: G, B, E
  G2 promote (G's request: judged against v1, the champion is v3)   -> judged again against
                                                                       v3, not better, nothing
  E2 promote (E's request)                                          -> not better, nothing
  R  rollback                                                       -> champion v1, previous v3
Alerts: the run-status sensors and the check sensor are ticked over all of it.
"""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from conftest import job_definitions, make_resources, run_job

pytestmark = pytest.mark.slow

MODEL = "tennis-policy-lifecycle"


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _evaluations(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _drain(sensor, instance, cursor, resources):
    """Tick a sensor until it has nothing left (run-status sensors take a batch a tick)."""
    for _ in range(50):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        data = sensor.evaluate_tick(ctx)
        if data.cursor == cursor:
            return cursor
        cursor = data.cursor
    return cursor


def _destroy_model_files(mlflow_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    # The run's model is an MLflow 3 logged model, stored under its own location.
    [model] = client.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'")
    stored = Path(model.artifact_location.replace("file://", ""))
    assert stored.is_dir(), stored
    shutil.rmtree(stored)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, mlflow_uri, good_checkpoint, okay_checkpoint,
             sabotaged_checkpoint, receiver_module):
    from tennis_assets.defs.alerts import (
        alert_on_failed_checks,
        alert_on_failed_runs,
        announce_champion_changes,
    )
    from tennis_assets.defs.resources import AlertWebhook
    from tennis_assets.defs.sensors import monitor_new_champion, promote_better_model

    root = tmp_path_factory.mktemp("lifecycle")
    resources = make_resources(root, mlflow_uri, MODEL)
    resources["alert_webhook"] = AlertWebhook(url=receiver_module.url,
                                              log_path=str(root / "alerts.log"))
    defs = job_definitions(resources)
    alert_resources = {"alert_webhook": resources["alert_webhook"]}

    def warm(path, **evaluation):
        # One update on top of the stored weights: model selection keeps the starting weights.
        return {"trained_agents": {"init_checkpoint": str(path), "train": {"max_updates": 1}},
                "evaluation_report": {"eval_episodes": 50, **evaluation},
                "challenger_model": {"replay_episodes": 50}}

    out = {"root": root, "resources": resources}
    with dg.instance_for_test() as instance:
        out["instance"] = instance
        # Run-status sensors start from "now": initialise their cursors before any run.
        cursors = {s.name: _drain(s, instance, None, alert_resources)
                   for s in (alert_on_failed_runs, announce_champion_changes)}
        out["R0"] = run_job(instance, defs, "rollback", profile=False)
        out["A"] = run_job(instance, defs, "retrain", "baseline", warm(okay_checkpoint))
        out["S1"] = promote_better_model.evaluate_tick(dg.build_sensor_context(instance=instance))
        request = out["S1"].run_requests[0].run_config["ops"]["challenger_model"]["config"]
        out["P"] = run_job(instance, defs, "promote",
                           config={"challenger_model": {**request, "replay_episodes": 50}})
        out["pointer_after_P"] = (root / "models/production/champion.json").read_text()
        monitor_cursor = _drain(monitor_new_champion, instance, None, {})
        out["R1"] = run_job(instance, defs, "rollback", profile=False)

        out["G"] = run_job(instance, defs, "retrain", "baseline", warm(good_checkpoint))
        _destroy_model_files(mlflow_uri, out["G"].output_for_node("trained_agents")
                             .mlflow_run_id)
        out["G_promote"] = run_job(instance, defs, "promote",
                                   config={"challenger_model": {"replay_episodes": 50}})

        out["B"] = run_job(instance, defs, "run_pipeline", "tuned",
                           warm(good_checkpoint, max_latency_ms=1e-6))
        ctx = dg.build_sensor_context(instance=instance, cursor=monitor_cursor)
        out["M_tick"] = monitor_new_champion.evaluate_tick(ctx)
        out["M"] = run_job(instance, defs, "monitor", config={
            "production_monitoring": {"monitor_episodes": 30,
                                      "output_dir": str(root / "monitoring")}})
        out["E"] = run_job(instance, defs, "retrain", "baseline", {
            "trained_agents": {"init_checkpoint": "champion", "train": {"max_updates": 1}},
            "evaluation_report": {"eval_episodes": 50}})
        out["C"] = run_job(instance, defs, "retrain", "baseline")
        out["D"] = run_job(instance, defs, "run_pipeline", "tuned",
                           {"trained_agents": {"init_checkpoint": str(sabotaged_checkpoint)}})
        out["S2"] = promote_better_model.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=out["S1"].cursor))
        requests = {r.run_config["ops"]["challenger_model"]["config"]["report_run_id"]: r
                    for r in out["S2"].run_requests}
        out["S2_requests"] = requests
        for key in ("G", "E"):
            config = requests[out[key].run_id].run_config["ops"]["challenger_model"]["config"]
            out[f"{key}2"] = run_job(instance, defs, "promote", config={
                "challenger_model": {**config, "replay_episodes": 50}})
        out["R"] = run_job(instance, defs, "rollback", profile=False)
        for sensor in (alert_on_failed_runs, announce_champion_changes):
            _drain(sensor, instance, cursors[sensor.name], alert_resources)
        _drain(alert_on_failed_checks, instance, None, alert_resources)
        out["posts"] = list(receiver_module.posts)
        yield out


@pytest.fixture(scope="module")
def receiver_module():
    from conftest import Receiver

    with Receiver() as r:
        yield r


def _version(mlflow_uri, alias):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    try:
        return str(client.get_model_version_by_alias(MODEL, alias).version)
    except Exception:  # noqa: BLE001 - the alias is not set
        return None


def test_a_good_candidate_goes_through_challenger_to_champion(scenario, mlflow_uri):
    a, p = scenario["A"], scenario["P"]
    assert a.success and p.success
    assert _checks(a) == {"weights_finite": True, "history_has_no_nan": True,
                          "solves": True, "beats_champion": True,
                          "latency_under_threshold": True}
    assert _checks(p) == {"challenger_loads_and_plays": True, "challenger_solves": True,
                          "challenger_not_worse_than_champion": True,
                          "promoted_model_loads_and_plays": True}
    promoted = p.output_for_node("production_model")
    assert promoted.version == "1" and promoted.changed and promoted.partition == "baseline"
    # B: a better candidate replaced it, and the replaced one is kept as previous.
    b = scenario["B"]
    assert b.success
    after_b = b.output_for_node("production_model")
    assert (after_b.version, after_b.previous_version) == ("3", "1")
    assert _checks(b)["latency_under_threshold"] is False  # a warning: it blocks nothing


def test_model_versions_record_how_they_were_judged(scenario, mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    mv = client.get_model_version(MODEL, "3")
    tags = mv.tags
    assert tags["partition"] == "tuned" and json.loads(tags["court"]) == {}
    assert int(tags["eval_episodes"]) == 50 and float(tags["eval_mean"]) >= 0.5
    assert tags["eval_seed"].isdigit()
    assert tags["dagster_run_url"].endswith(f"/runs/{scenario['B'].run_id}")
    assert "/#/experiments/" in tags["train_mlflow_run_url"]
    assert "greedy mean" in mv.description and "seed" in mv.description
    # One model version per training run, however often it is considered.
    runs = [v.run_id for v in client.search_model_versions(f"name='{MODEL}'")]
    assert len(runs) == len(set(runs)) == 3


def test_an_unloadable_challenger_never_becomes_champion(scenario):
    g = scenario["G_promote"]
    assert not g.success
    assert _checks(g).get("challenger_loads_and_plays") is False
    assert g.asset_materializations_for_node("production_model") == []
    # Champion v1 stayed until B.
    records = scenario["instance"].fetch_materializations(dg.AssetKey("production_model"),
                                                          limit=10).records
    assert scenario["G_promote"].run_id not in {r.run_id for r in records}


def test_not_better_succeeds_with_the_gate_result_on_its_partition(scenario):
    e = scenario["E"]
    assert e.success
    evaluation = _evaluations(e)["beats_champion"]
    assert evaluation.passed is False and evaluation.partition == "baseline"
    assert "not better than champion v3" in evaluation.description
    # It started from the champion and no update beat it: the check says so, and why.
    assert "warm-started from champion: no update in" in evaluation.description
    assert "model selection kept them" in evaluation.description
    started = e.asset_materializations_for_node("trained_agents")[0].metadata["started_from"]
    assert started.value.startswith("warm start from champion v3: its weights and learner "
                                    "settings")
    report = e.output_for_node("evaluation_report")
    assert report.champion is not None
    assert report.evaluation.mean == report.champion.mean  # same weights and episodes


def test_check_results_carry_their_partition(scenario):
    for name, partition in (("A", "baseline"), ("C", "baseline"), ("D", "tuned")):
        for evaluation in scenario[name].get_asset_check_evaluations():
            if evaluation.asset_key.path[-1] in ("trained_agents", "evaluation_report"):
                assert evaluation.partition == partition, (name, evaluation.check_name)


def test_broken_candidates_fail_their_run_and_change_nothing(scenario, mlflow_uri):
    c, d = scenario["C"], scenario["D"]
    assert not c.success and _checks(c)["solves"] is False
    # A candidate that failed a blocking gate is not materialized: its asset page and its
    # partition show a failure naming the gate, not a fresh value.
    assert c.asset_materializations_for_node("evaluation_report") == []
    [failure] = [e for e in c.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "evaluation_report"
    assert "candidate baseline failed its blocking gate(s): solves: [baseline] greedy mean" in \
        failure.step_failure_data.error.message
    assert not d.success
    checks = _checks(d)
    assert checks["weights_finite"] is True and checks["solves"] is False
    assert d.asset_materializations_for_node("production_model") == []
    assert d.asset_materializations_for_node("challenger_model") == []


def _messages(scenario, result) -> list[str]:
    return [e.user_message for e in scenario["instance"].all_logs(result.run_id)]


def test_the_promotion_sensor_only_triggers_and_the_promotion_decides(scenario):
    s1, a = scenario["S1"], scenario["A"]
    assert len(s1.run_requests) == 1
    assert s1.run_requests[0].run_config["ops"]["challenger_model"]["config"] == {
        "partition": "baseline", "report_run_id": a.run_id}
    # After S1, each report whose blocking gates passed asks for a promotion (G, B, E); C and D
    # failed `solves` and ask for nothing. Whether one replaces the champion is the promotion's
    # decision, against the champion the registry names.
    assert set(scenario["S2_requests"]) == {scenario[k].run_id for k in ("G", "B", "E")}
    e2 = scenario["E2"]
    assert e2.success and e2.asset_materializations_for_node("challenger_model") == []
    assert any("no challenger: baseline: not better than champion v3" in m
               for m in _messages(scenario, e2)), _messages(scenario, e2)


def test_a_candidate_judged_against_an_older_champion_is_judged_again(scenario):
    """G was judged against v1; by its promotion the champion is v3: G and v3 play the same
    fresh episodes, and the decision reads that comparison instead of stopping."""
    g2 = scenario["G2"]
    assert g2.success and g2.asset_materializations_for_node("challenger_model") == []
    messages = _messages(scenario, g2)
    assert any("judged against v1, judged again against champion v3 on 50 fresh episodes"
               in m for m in messages), messages
    assert any("no challenger: baseline: not better than champion v3" in m
               for m in messages), messages
    assert not any("re-evaluate" in m or "judge it again" in m for m in messages)


def test_rollback_with_nothing_to_roll_back_to_says_so(scenario):
    r0, r1 = scenario["R0"], scenario["R1"]
    # Nothing promoted yet: the run fails with one line naming why, nothing changed.
    assert not r0.success
    [failure] = [e for e in r0.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "nothing has been promoted yet" in message and "production is unchanged" in message
    # A champion but no previous one: an outcome, not a failure.
    assert r1.success
    value = r1.output_for_node("production_model")
    assert (value.version, value.changed, value.rollback) == ("1", False, True)
    meta = r1.asset_materializations_for_node("production_model")[0].metadata
    assert meta["outcome"].value == ("nothing to roll back to (no previous champion): v1 stays "
                                     "champion")


def test_monitoring_follows_the_new_champion(scenario):
    from tennis_assets.serving.monitoring import MonitoringCollector

    tick = scenario["M_tick"]
    assert [r.tags["champion_version"] for r in tick.run_requests] == ["3"]
    m = scenario["M"]
    assert m.success
    latest = scenario["root"] / "monitoring" / "latest.json"
    assert json.loads(latest.read_text())["model_version"] == "3"

    def names(served):
        return {metric.name for metric in MonitoringCollector(latest, lambda: served).collect()}

    assert "tennis_monitoring_drift_severity" in names("3")
    # After the rollback the server serves v1: v3's drift state is withheld.
    assert "tennis_monitoring_drift_severity" not in names("1")
    assert "tennis_monitoring_result_for_other_version" in names("1")


def test_rollback_restores_previous_and_the_policy_server_follows(scenario, mlflow_uri):
    from tennis_assets.serving.model_source import ChampionSource
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    r = scenario["R"]
    assert r.success
    value = r.output_for_node("production_model")
    assert (value.version, value.previous_version, value.rollback) == ("1", "3", True)
    assert _version(mlflow_uri, "champion") == "1" and _version(mlflow_uri, "previous") == "3"
    pointer = json.loads((scenario["root"] / "models/production/champion.json").read_text())
    assert pointer["version"] == "1"
    source = ChampionSource(MlflowTracker(mlflow_uri), MODEL)
    assert source.refresh() and source.current.version == "1"


def test_alerts_one_per_failed_run_none_for_not_better(scenario):
    posts = scenario["posts"]
    failures = [p for p in posts if p.get("kind") == "run_failure"]
    failed_runs = {scenario[k].run_id for k in ("G_promote", "C", "D")}
    failed_runs.add(scenario["R0"].run_id)
    assert sorted(p["run_id"] for p in failures) == sorted(failed_runs)
    by_run = {p["run_id"]: p for p in failures}
    assert by_run[scenario["C"].run_id]["partition"] == "baseline"
    assert "[baseline]" in by_run[scenario["C"].run_id]["text"]
    assert by_run[scenario["D"].run_id]["partition"] == "tuned"
    assert by_run[scenario["C"].run_id]["step"]
    # Why it failed, and where to look, in every failure alert; never a decision.
    for post in failures:
        assert post["reason"] and post["reason"] != "no reason recorded", post
        assert post["run_url"].endswith(f"/runs/{post['run_id']}") and post["run_url"] in \
            post["text"]
        assert all(c["check"] != "beats_champion" for c in post["failed_checks"])
    assert "blocking" in by_run[scenario["C"].run_id]["reason"]
    assert by_run[scenario["C"].run_id]["mlflow_run_urls"]  # its training and evaluation runs
    # No alert for E's decision; B's latency warning is a check alert of a successful run.
    checks = {(p["run_id"], p["check"]) for p in posts if p.get("kind") == "check_failure"}
    assert (scenario["B"].run_id, "latency_under_threshold") in checks
    assert not any(check == "beats_champion" for _, check in checks)
    assert all(p["run_id"] != scenario["E"].run_id for p in posts)
    announced = [p for p in posts if p.get("kind") == "run_success"]
    assert {p["job"] for p in announced} == {"promote", "rollback", "run_pipeline"}
    assert any(p["version"] == "1" and p["changed"] for p in announced if p["job"] == "rollback")
    # Only moves that changed production are announced: P, B and R.
    assert sorted(p["run_id"] for p in announced) == sorted(
        scenario[k].run_id for k in ("P", "B", "R"))


def test_values_metadata_and_mlflow(scenario, mlflow_uri, good_checkpoint):
    from mlflow.tracking import MlflowClient

    b = scenario["B"]
    study = b.output_for_node("tuning_study")
    assert study["n_trials"] == 3 and study["run_complete"] >= 1
    meta = b.asset_materializations_for_node("evaluation_report")[0].metadata
    for key in ("score_histogram", "learning_curve", "rally"):
        assert meta[key].value.startswith("![")
    assert meta["mean"].value == round(meta["mean"].value, 4)
    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    exp = client.get_experiment_by_name("tennis-assets")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`dagster.run_id` = '{b.run_id}'")
    assert {r.info.run_name for r in runs} >= {"evaluate-tuned", "train-tuned", "tuning_study"}
    assert all(r.data.tags["dagster.run_url"].endswith(b.run_id) for r in runs
               if "dagster.run_url" in r.data.tags)
