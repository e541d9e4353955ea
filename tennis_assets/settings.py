"""Where the project keeps the state a user creates.

Everything (runs, checkpoints, and later Dagster home, MLflow and Optuna storage) lives under one
data directory, so deleting it resets the project.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "TENNIS_ASSETS_HOME"


def data_dir() -> Path:
    """The data directory: $TENNIS_ASSETS_HOME, else ``.tennis_assets`` in the working folder."""
    configured = os.environ.get(DATA_DIR_ENV)
    root = Path(configured).expanduser() if configured else Path.cwd() / ".tennis_assets"
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{DATA_DIR_ENV} points at {root}, which is a file, not a folder")
    return root.resolve()


def runs_dir() -> Path:
    return data_dir() / "runs"


def database_url(url: str) -> str:
    """A database URL with PostgreSQL's driver named: SQLAlchemy 2.1 maps a bare
    ``postgresql://`` to psycopg 3, which is not installed; psycopg2 (psycopg2-binary) is. Other
    URLs pass through unchanged."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


def dagster_ui_url() -> str:
    """Where people open the Dagster UI ($TENNIS_ASSETS_DAGSTER_UI_URL): links to runs in
    MLflow tags, model versions and alerts are built from it."""
    return os.environ.get("TENNIS_ASSETS_DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/")
