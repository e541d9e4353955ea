"""Named jobs. The candidate assets are partitioned, so a job that includes them runs one
candidate (partition) at a time; the unpartitioned study and production assets join the run."""

import dagster as dg

from .assets import (
                     challenger_model,
                     evaluation_report,
                     production_model,
                     production_monitoring,
                     trained_agents,
                     tuning_study,
)
from .assets.tuning import tuning_worker
from .step_jobs import tune_in_containers

PROMOTION = dg.AssetSelection.assets(challenger_model, production_model)

run_pipeline = dg.define_asset_job(
    "run_pipeline", selection=dg.AssetSelection.assets(tuning_study, trained_agents,
                                                       evaluation_report) | PROMOTION,
    description="Tune, train one candidate, evaluate it against the champion, gate and promote.")
tune = dg.define_asset_job(
    "tune", selection=dg.AssetSelection.assets(tuning_study),
    description="Add trials to the Optuna study and record its best parameters.")
retrain = dg.define_asset_job(
    "retrain", selection=dg.AssetSelection.assets(trained_agents, evaluation_report),
    description="Train and evaluate one candidate; the promotion sensor takes it from there.")
promote = dg.define_asset_job(
    "promote", selection=PROMOTION,
    description="Register the best accepted candidate as challenger, replay it through the "
                "registry, and only then make it champion (the old one stays as previous).")
rollback = dg.define_asset_job(
    "rollback", selection=dg.AssetSelection.assets(production_model),
    config={"ops": {"production_model": {"config": {"rollback": True}}}},
    description="Make the previous champion the champion again (and the current one previous).")
monitor = dg.define_asset_job(
    "monitor", selection=dg.AssetSelection.assets(production_monitoring),
    description="Play the champion on its production court and test its score for drift.")

ALL_JOBS = [run_pipeline, tune, retrain, promote, rollback, monitor]
# The study with each step in a container of its own (docker_executor; step_jobs.py).
STEP_JOBS = [tune_in_containers]
# The jobs whose failures and announcements reach the alert webhook.
ALERTED_JOBS = ALL_JOBS + STEP_JOBS
# The jobs that can move production (run_pipeline promotes the candidate it trained).
ANNOUNCED_JOBS = [promote, rollback, run_pipeline]

# An op job, launched by hand (or by a script per machine) to add workers to a running study.
WORKER_JOBS = [tuning_worker]
