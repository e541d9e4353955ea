"""Dagster entry point (workspace.yaml: python_module tennis_assets.definitions).

Loading this module is what `dagster dev`, every run and every sensor tick do first, so it imports
only dagster and the definitions: torch, mlflow, optuna and wandb load inside the asset bodies
that use them.
"""

import dagster as dg

from tennis_assets.defs.alerts import (
    alert_on_failed_checks,
    alert_on_failed_runs,
    announce_champion_changes,
)
from tennis_assets.defs.assets import (
    challenger_checks,
    challenger_model,
    evaluation_report,
    production_model,
    production_monitoring,
    trained_agents,
    tuning_study,
)
from tennis_assets.defs.checks import enough_completed_trials, promoted_model_loads_and_plays
from tennis_assets.defs.jobs import ALL_JOBS, STEP_JOBS, WORKER_JOBS
from tennis_assets.defs.resources import AlertWebhook, MlflowResource, OptunaResource
from tennis_assets.defs.schedules import daily_monitoring, weekly_retrain
from tennis_assets.defs.sensors import monitor_new_champion, promote_better_model, retrain_on_drift
from tennis_assets.defs.store import JsonIOManager, ModelStore


def default_resources() -> dict:
    """Local defaults: everything under the data directory; MLflow server, Optuna database and
    webhook by environment variable (see docs/dagster.md)."""
    return {
        "io_manager": JsonIOManager(),
        "model_store": ModelStore(),
        "mlflow": MlflowResource(),
        "optuna_storage": OptunaResource(),
        "alert_webhook": AlertWebhook(),
    }


defs = dg.Definitions(
    assets=[tuning_study, trained_agents, evaluation_report, challenger_model,
            production_model, production_monitoring],
    asset_checks=[enough_completed_trials, challenger_checks, promoted_model_loads_and_plays],
    jobs=[*ALL_JOBS, *WORKER_JOBS, *STEP_JOBS],
    schedules=[weekly_retrain, daily_monitoring],
    sensors=[promote_better_model, monitor_new_champion, retrain_on_drift,
             alert_on_failed_runs, announce_champion_changes, alert_on_failed_checks],
    resources=default_resources(),
)
