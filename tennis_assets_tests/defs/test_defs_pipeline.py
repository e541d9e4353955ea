"""The whole graph on a real Dagster test instance, real MLflow (SQLite) and a real Optuna
journal: good candidates are promoted, bad ones are stopped by the gates, and the sensors react.

One scenario, run once per module, in this order:
  A  retrain[baseline], warm-started from a solved checkpoint       -> report passes its gates
  S1 promotion sensor tick                                          -> one promotion request
  P  that request executed                                          -> champion v1 = baseline
  B  run_pipeline[tuned] (study, train, evaluate, promote), with an
     impossible latency threshold                                   -> a WARN check fails,
                                                                       nothing is blocked
  E  retrain[baseline], warm-started from the registered champion   -> passes, ties it
  C  retrain[baseline] with no warm start (tiny budget, untrained)  -> solves_tennis fails
  D  run_pipeline[tuned], warm-started from a sabotaged checkpoint  -> gates fail, no promotion
  S2 promotion sensor tick from S1's cursor                         -> no request
"""

import json
from pathlib import Path

import dagster as dg
import pytest
from conftest import all_defs, make_resources, materialize

pytestmark = pytest.mark.slow

ALL = ["tuning_study", "trained_agents", "evaluation_report", "production_model"]
CANDIDATE = ["trained_agents", "evaluation_report"]
MODEL = "tennis-policy-scenario"


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, mlflow_uri, good_checkpoint, sabotaged_checkpoint):
    from tennis_assets.defs.sensors import promote_better_model

    root = tmp_path_factory.mktemp("scenario")
    resources = make_resources(root, mlflow_uri, MODEL)
    # One update on top of the solved weights: model selection keeps the starting weights, so
    # the candidates are as good as the checkpoint. 50 episodes keep the gate decision far from
    # chance for an agent that averages about 1.
    warm = {"trained_agents": {"init_checkpoint": str(good_checkpoint), "max_updates": 1},
            "evaluation_report": {"episodes": 50}}
    out = {"root": root, "resources": resources}
    with dg.instance_for_test() as instance:
        out["instance"] = instance
        out["A"] = materialize(instance, resources, "baseline", CANDIDATE, warm)
        ctx = dg.build_sensor_context(instance=instance)
        out["S1"] = promote_better_model.evaluate_tick(ctx)
        request = out["S1"].run_requests[0]
        out["P"] = dg.materialize(
            all_defs(), selection=["production_model"],
            instance=instance, resources=resources, run_config=request.run_config,
            raise_on_error=False)
        out["pointer_after_P"] = (root / "models/production/champion.json").read_text()
        out["B"] = materialize(instance, resources, "tuned", ALL,
                               {**warm, "evaluation_report": {"episodes": 50,
                                                              "max_latency_ms": 1e-6}})
        out["E"] = materialize(instance, resources, "baseline", CANDIDATE, {
            "trained_agents": {"init_checkpoint": "champion", "max_updates": 1},
            "evaluation_report": {"episodes": 50}})
        out["C"] = materialize(instance, resources, "baseline", CANDIDATE)
        out["D"] = materialize(instance, resources, "tuned", ALL,
                               {"trained_agents": {"init_checkpoint": str(sabotaged_checkpoint)}})
        out["S2"] = promote_better_model.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=out["S1"].cursor))
        yield out


def test_good_candidates_pass_every_gate_and_one_is_champion(scenario):
    a, p, b = scenario["A"], scenario["P"], scenario["B"]
    assert a.success and p.success and b.success
    assert _checks(a) == {"weights_finite": True, "history_has_no_nan": True,
                          "solves_tennis": True, "beats_champion": True,
                          "latency_under_threshold": True}
    # The latency check is a warning: it fails here and blocks nothing.
    assert _checks(b) == {"weights_finite": True, "history_has_no_nan": True,
                          "solves_tennis": True, "beats_champion": True,
                          "latency_under_threshold": False, "enough_completed_trials": True,
                          "promoted_model_loads_and_plays": True}
    promoted = p.output_for_node("production_model")
    assert promoted["version"] == "1" and promoted["partition"] == "baseline"
    assert promoted["changed"] and promoted["previous_version"] is None
    # B's tuned candidate ties the champion it was compared with: the champion stays.
    after_b = b.output_for_node("production_model")
    assert after_b["version"] == "1" and not after_b["changed"]


def test_values_and_metadata(scenario, good_checkpoint):
    b = scenario["B"]
    study = b.output_for_node("tuning_study")
    assert study["n_trials"] == 3 and study["n_complete"] >= 2
    from tennis_assets.tuning import SEARCH_SPACE, make_storage

    assert set(study["best_params"]) <= set(SEARCH_SPACE) and study["best_params"]
    import optuna

    stored = optuna.load_study(study_name=study["study_name"],
                               storage=make_storage(study["storage"]))
    # The study is shared: B and later D each added three trials to the same journal.
    assert len(stored.trials) == 6
    assert stored.trials[study["best_trial"]].params == study["best_params"]

    agent = b.output_for_node("trained_agents")
    history = agent.history()
    assert {"episode", "score", "avg100"} <= set(history.columns) and len(history) > 0
    run_dir = Path(agent.checkpoint).parent
    assert sorted(p.name for p in run_dir.glob("*.safetensors")) == ["checkpoint.safetensors"]
    stored_values = list((scenario["root"] / "assets").rglob("*"))
    assert stored_values and all(p.suffix == ".json" for p in stored_values if p.is_file())

    report = b.output_for_node("evaluation_report")
    assert report["evaluation"]["episodes"] == 50 and report["evaluation"]["mean"] >= 0.5
    assert report["gates_passed"] and report["champion"]["version"] == "1"
    assert sum(report["evaluation"]["score_histogram"].values()) == 50
    meta = b.asset_materializations_for_node("evaluation_report")[0].metadata
    for key in ("score_histogram", "learning_curve", "rally"):
        assert meta[key].value.startswith("![")  # inline image
    assert "champion v1" in meta["comparison"].value and "baseline" in meta["comparison"].value
    assert meta["mlflow_run"].value.startswith("http") and meta["solved"].value is True
    assert meta["latency_p95_ms"].value > 0

    # The warm start kept the solved weights (one update, no evaluation could replace them).
    import torch

    from tennis_assets.training import load_learner

    assert torch.equal(agent.learner().params, load_learner(good_checkpoint).params)
    tmeta = b.asset_materializations_for_node("trained_agents")[0].metadata
    assert tmeta["mlflow_run_id"].value == agent.mlflow_run_id
    smeta = b.asset_materializations_for_node("tuning_study")[0].metadata
    assert smeta["optimization_history"].value.startswith("![")
    assert "trial" in smeta["summary"].value


def test_mlflow_runs_tags_metrics_artifacts_and_registry(scenario, mlflow_uri):
    from mlflow.tracking import MlflowClient

    b = scenario["B"]
    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("tennis-assets").experiment_id],
        filter_string=f"tags.`dagster.run_id` = '{b.run_id}'")
    names = sorted(r.info.run_name for r in runs)
    assert names == ["evaluate-tuned", "train-tuned", "tuning_study"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["pkg.torch"].startswith("2.13.0")
        assert "machine.cpu_count" in run.data.tags
    train = next(r for r in runs if r.info.run_name == "train-tuned")
    agent = b.output_for_node("trained_agents")
    scores = client.get_metric_history(train.info.run_id, "episode_score")
    assert len(scores) == len(agent.history())
    assert "agent.actor_lr" in train.data.params
    files = {f.path for f in client.list_artifacts(train.info.run_id, "policy")}
    assert {"policy/MLmodel", "policy/requirements.txt"} <= files
    local = client.download_artifacts(train.info.run_id, "policy/requirements.txt")
    assert "torch==2.13.0" in Path(local).read_text()
    evaluate = next(r for r in runs if r.info.run_name == "evaluate-tuned")
    assert len(client.get_metric_history(evaluate.info.run_id, "episode_score")) == 50

    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1" and champion.tags["partition"] == "baseline"
    assert float(champion.tags["eval_mean"]) >= 0.5


def test_warm_start_from_the_registered_champion(scenario, good_checkpoint):
    import torch

    from tennis_assets.training import load_learner

    e = scenario["E"]
    assert e.success and all(_checks(e).values())
    agent = e.output_for_node("trained_agents")
    assert agent.extra["init_checkpoint"] == "champion"
    assert torch.equal(agent.learner().params, load_learner(good_checkpoint).params)
    report = e.output_for_node("evaluation_report")
    # Same weights, same episodes: the candidate ties the champion exactly.
    assert report["evaluation"]["mean"] == report["champion"]["mean"]


def test_untrained_candidate_is_stopped(scenario, mlflow_uri):
    c = scenario["C"]
    assert not c.success
    checks = _checks(c)
    assert checks["solves_tennis"] is False and checks["weights_finite"] is True
    report = json.loads((scenario["root"] / "models/evaluation_report/baseline/latest.json")
                        .read_text())
    assert report["dagster_run_id"] == c.run_id and not report["gates_passed"]
    assert report["evaluation"]["mean"] < 0.5


def test_sabotaged_candidate_is_stopped_and_production_unchanged(scenario, mlflow_uri):
    from mlflow.tracking import MlflowClient

    d = scenario["D"]
    assert not d.success
    checks = _checks(d)
    assert checks["weights_finite"] is True  # zeros are finite: only the gate can catch it
    assert checks["solves_tennis"] is False and checks["beats_champion"] is False
    assert d.asset_materializations_for_node("production_model") == []
    assert "promoted_model_loads_and_plays" not in checks
    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    pointer = scenario["root"] / "models/production/champion.json"
    assert pointer.read_text() == scenario["pointer_after_P"]
    records = scenario["instance"].fetch_materializations(dg.AssetKey("production_model"),
                                                          limit=10).records
    assert {r.run_id for r in records} == {scenario["P"].run_id, scenario["B"].run_id}


def test_promotion_sensor_requests_once_per_passing_report(scenario):
    s1, s2, a = scenario["S1"], scenario["S2"], scenario["A"]
    assert len(s1.run_requests) == 1
    request = s1.run_requests[0]
    assert request.run_key.startswith("promote-baseline-")
    assert request.run_config["ops"]["production_model"]["config"] == {
        "partition": "baseline", "report_run_id": a.run_id}
    assert request.job_name in (None, "promote")
    # After S1: B's and E's reports tie the champion, C and D failed their gates.
    assert s2.run_requests == [] and s2.cursor != s1.cursor


def test_alert_sensor_posts_each_failed_check_once(scenario, receiver, tmp_path):
    from tennis_assets.defs.resources import AlertWebhook
    from tennis_assets.defs.sensors import alert_on_failed_checks

    instance = scenario["instance"]
    failed = []
    for name in ("A", "P", "B", "E", "C", "D"):
        failed += [(scenario[name].run_id, e.check_name)
                   for e in scenario[name].get_asset_check_evaluations() if not e.passed]
    assert (scenario["C"].run_id, "solves_tennis") in failed
    assert (scenario["B"].run_id, "latency_under_threshold") in failed  # from a successful run
    webhook = AlertWebhook(url=receiver.url, log_path=str(tmp_path / "alerts.log"))

    receiver.status = 503  # the webhook is down: nothing may be lost
    ctx = dg.build_sensor_context(instance=instance, resources={"alert_webhook": webhook})
    alert_on_failed_checks(ctx)
    assert receiver.posts == [] and not (tmp_path / "alerts.log").exists()

    receiver.status = 200
    ctx = dg.build_sensor_context(instance=instance, cursor=ctx.cursor,
                                  resources={"alert_webhook": webhook})
    alert_on_failed_checks(ctx)
    got = sorted((p["run_id"], p["check"]) for p in receiver.posts)
    assert got == sorted(failed)
    assert all(p["text"].startswith(":rotating_light:") for p in receiver.posts)
    log = (tmp_path / "alerts.log").read_text().splitlines()
    assert len(log) == len(failed)

    ctx = dg.build_sensor_context(instance=instance, cursor=ctx.cursor,
                                  resources={"alert_webhook": webhook})
    alert_on_failed_checks(ctx)
    assert len(receiver.posts) == len(failed)  # a later tick sends nothing twice


def test_rollback_restores_the_previous_champion(scenario, mlflow_uri, good_checkpoint,
                                                 tmp_path):
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    name = "tennis-policy-rollback"
    resources = make_resources(tmp_path, mlflow_uri, name)
    rollback = {"ops": {"production_model": {"config": {"rollback": True}}}}
    refused = dg.materialize(all_defs(), selection=["production_model"],
                             instance=scenario["instance"], resources=resources,
                             run_config=rollback, raise_on_error=False)
    assert not refused.success  # nothing registered yet: nothing to roll back to

    tracker = MlflowTracker(mlflow_uri)
    for mean in (0.8, 0.9):
        with tracker.start_run(f"rollback-{mean}") as run:
            source = run.log_policy_model(good_checkpoint)
        tracker.register_champion(name, source, run.run_id,
                                  tags={"eval_mean": mean, "partition": "baseline"})
    result = dg.materialize(all_defs(), selection=["production_model"],
                            instance=scenario["instance"], resources=resources,
                            run_config=rollback, raise_on_error=False)
    assert result.success
    value = result.output_for_node("production_model")
    assert (value["version"], value["previous_version"], value["rollback"]) == ("1", "2", True)
    assert tracker.champion(name).version == "1"
    assert _checks(result) == {"promoted_model_loads_and_plays": True}
