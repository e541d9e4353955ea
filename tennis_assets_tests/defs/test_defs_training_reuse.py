"""trained_agents reuses a finished training of the same configuration, seed, environment and
code (tennis_assets.workflow.reuse) on a real Dagster instance and a real MLflow store: the
reusing materialization names the run that trained, runs the weight checks on the same files,
and starts no MLflow run, and its evaluation report says whose training it reused; `reuse:
false`, another seed or a warm start train again."""

import dagster as dg
from conftest import make_resources, materialize
from mlflow import MlflowClient

from tennis_assets.config.metadata import RunLink
from tennis_assets.tracking.mlflow_tracking import MlflowTracker

MODEL = "tennis-policy-reuse"
# The update budget ends every training here (a training cut by the clock is not reusable).
TRAIN = {"train": {"max_seconds": 900.0}}


def _value(result):
    return result.output_for_node("trained_agents")


def _metadata(result) -> dict:
    [event] = result.get_asset_materialization_events()
    return event.materialization.metadata


def test_an_unchanged_training_is_reused_and_links_to_the_run_that_trained(
        tmp_path, mlflow_uri, good_checkpoint):
    resources = make_resources(tmp_path, mlflow_uri, MODEL)
    with dg.instance_for_test() as instance:
        first = materialize(instance, resources, "baseline", ["trained_agents"],
                            {"trained_agents": TRAIN})
        again = materialize(instance, resources, "baseline", ["trained_agents"],
                            {"trained_agents": TRAIN})
        # Judged as any candidate (its tiny training fails the solve gate; the report is kept).
        materialize(instance, resources, "baseline", ["evaluation_report"])
        off = materialize(instance, resources, "baseline", ["trained_agents"],
                          {"trained_agents": {**TRAIN, "reuse": False}})
        seeded = materialize(instance, resources, "baseline", ["trained_agents"],
                             {"trained_agents": {"train": {**TRAIN["train"], "seed": 7}}})
        warm = materialize(instance, resources, "baseline", ["trained_agents"],
                           {"trained_agents": {**TRAIN, "init_checkpoint": str(good_checkpoint)}})
    assert all(r.success for r in (first, again, off, seeded, warm))
    trained, reused = _value(first), _value(again)
    assert trained.summary.stop_reason == "max_updates" and trained.training_key
    assert trained.reused_from is None
    assert (reused.reused_from, reused.dagster_run_id) == (first.run_id, again.run_id)
    assert (reused.checkpoint, reused.mlflow_run_id, reused.model_source) == \
        (trained.checkpoint, trained.mlflow_run_id, trained.model_source)
    assert reused.summary == trained.summary
    meta = _metadata(again)
    assert meta["started_from"].value == f"reused the training of run {first.run_id}"
    assert meta["reused_from"].value == first.run_id
    # The weight checks ran again, on the reused files.
    assert {e.check_name: e.passed for e in again.get_asset_check_evaluations()} == \
        {"weights_finite": True, "history_has_no_nan": True}
    # The candidate judged from it says whose training it was, in its report and metadata.
    report = resources["model_store"].latest_reports()["baseline"]
    assert report.candidate.reused_from == first.run_id
    assert report.metadata()["training_reused_from"] == RunLink(first.run_id)
    # reuse: false, another seed and a warm start each trained for themselves.
    for result in (off, seeded, warm):
        value = _value(result)
        assert value.reused_from is None and value.checkpoint != trained.checkpoint
    assert _value(seeded).training_key != trained.training_key
    assert _value(warm).training_key is None
    runs = MlflowClient(mlflow_uri).search_runs([MlflowTracker(mlflow_uri).experiment_id()],
                                                max_results=5000)
    trained_runs = {r.data.tags.get("dagster.run_id") for r in runs
                    if r.info.run_name == "train-baseline"}
    assert first.run_id in trained_runs and again.run_id not in trained_runs
    assert {off.run_id, seeded.run_id, warm.run_id} <= trained_runs
