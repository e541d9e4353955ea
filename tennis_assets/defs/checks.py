"""Standalone checks on unpartitioned assets (the partitioned candidates' gates are in gates.py
and run inside their assets)."""


import tempfile

import dagster as dg

from tennis_assets.workflow.production import ChampionRecord

from .assets import production_model, tuning_study
from .gates import SEVERITY

LOADS_SEVERITY = SEVERITY["promoted_model_loads_and_plays"][0]
from .resources import MlflowResource


@dg.asset_check(asset=tuning_study, description="This run completed enough trials (not pruned, "
                                                "not failed) for its best parameters to mean "
                                                "something.")
def enough_completed_trials(tuning_study: dict) -> dg.AssetCheckResult:
    needed = int(tuning_study["min_completed_trials"])
    done = int(tuning_study.get("run_complete", 0))
    ran = len(tuning_study.get("run_trials", []))
    return dg.AssetCheckResult(
        passed=done >= needed, severity=SEVERITY["enough_completed_trials"][0],
        description=f"{done} of this run's {ran} trials completed (need {needed}); the study "
                    f"holds {tuning_study['n_trials']}",
        metadata={"completed_this_run": done, "trials_this_run": ran, "required": needed,
                  "study_completed": tuning_study["n_complete"],
                  "study_pruned": tuning_study["n_pruned"],
                  "study_trials": tuning_study["n_trials"]})


@dg.asset_check(asset=production_model, description="The registered champion loads from the "
                                                     "MLflow registry as a pyfunc model and plays.")
def promoted_model_loads_and_plays(production_model: ChampionRecord,
                                   mlflow: MlflowResource) -> dg.AssetCheckResult:
    from tennis_assets.workflow.promotion import environment_from_tags, play_model

    tracker = mlflow.tracker()
    info = tracker.champion(production_model.model_name)
    if info is None or info.version != production_model.version:
        return dg.AssetCheckResult(passed=False, severity=LOADS_SEVERITY, metadata={
            "reason": f"champion alias points at {info.version if info else 'nothing'}, "
                      f"expected v{production_model.version}"})
    with tempfile.TemporaryDirectory() as tmp:
        model = tracker.load_policy(info, tmp)
    # The environment the version was judged on (its tag), so any team's shapes play.
    played, finite = play_model(model, environment_from_tags(info.tags), 4, seed=123)
    scores = [float(s) for s in played.scores]
    steps = round(played.mean_length * len(scores))
    return dg.AssetCheckResult(
        passed=finite and steps > 0, severity=LOADS_SEVERITY,
        metadata={"version": info.version, "decisions": steps, "finite_actions": finite,
                  "episode_scores": dg.MetadataValue.json(scores)})
