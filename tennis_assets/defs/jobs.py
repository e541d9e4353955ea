"""Named jobs. The candidate assets are partitioned, so a job that includes them runs one
candidate (partition) at a time; the unpartitioned study and production model join the run."""

import dagster as dg

from .assets import (evaluation_report, production_monitoring, production_model, trained_agents,
                     tuning_study)
from .assets.tuning import tuning_worker

run_pipeline = dg.define_asset_job(
    "run_pipeline", selection=dg.AssetSelection.assets(tuning_study, trained_agents,
                                                       evaluation_report, production_model),
    description="Tune, train one candidate, evaluate it against the champion, gate and promote.")
tune = dg.define_asset_job(
    "tune", selection=dg.AssetSelection.assets(tuning_study),
    description="Add trials to the Optuna study and record its best parameters.")
retrain = dg.define_asset_job(
    "retrain", selection=dg.AssetSelection.assets(trained_agents, evaluation_report),
    description="Train and evaluate one candidate; the promotion sensor takes it from there.")
promote = dg.define_asset_job(
    "promote", selection=dg.AssetSelection.assets(production_model),
    description="Register the best candidate that passed its gates as the MLflow champion.")

monitor = dg.define_asset_job(
    "monitor", selection=dg.AssetSelection.assets(production_monitoring),
    description="Play the champion on the production court and test its score for drift.")

ALL_JOBS = [run_pipeline, tune, retrain, promote, monitor]

# An op job, launched by hand (or by a script per machine) to add workers to a running study.
WORKER_JOBS = [tuning_worker]
