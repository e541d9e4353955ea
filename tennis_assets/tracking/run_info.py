"""What every tracked run records about where it ran: git commit, package versions, machine."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = ("tennis-assets", "torch", "numpy", "numba", "dagster", "mlflow", "optuna",
                    "wandb", "pandas")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    # Cached: a sensor or asset may tag many runs, and git costs a process spawn each time.
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, str]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "hostname": platform.node(),
            "cpu_count": str(os.cpu_count())}


def run_tags(dagster_run_id: str | None = None, **extra: str | None) -> dict[str, str]:
    """Tags for a tracked run. Keys are namespaced so they sort together in the MLflow UI."""
    tags: dict[str, str] = {}
    if dagster_run_id:
        tags["dagster.run_id"] = dagster_run_id
    commit = git_commit()
    if commit:
        tags["git.commit"] = commit
    for name, version in package_versions().items():
        if version:
            tags[f"pkg.{name}"] = version
    for key, info in machine_info().items():
        tags[f"machine.{key}"] = info
    for key, value in extra.items():
        if value is not None:
            tags[key] = str(value)
    return tags
