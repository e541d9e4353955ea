"""Experiment tracking and the model registry: MLflow (primary) and W&B (optional), behind one
small interface. No Dagster here; the Dagster layer wraps these in resources.

Heavy imports (mlflow, wandb, torch) happen inside the functions that need them, so importing this
package is cheap enough for Dagster's definitions to reference it.
"""

from .run_info import machine_info, package_versions, run_tags
from .tracker import TrackedRun, Tracker

__all__ = ["TrackedRun", "Tracker", "machine_info", "package_versions", "run_tags"]
