"""Every setting tennis-assets reads from the environment, and where the project keeps state.

This module is the one place that reads ``os.environ`` (tests/test_settings.py holds the rest of
the package to that), so docs/configuration.md lists exactly these variables. Each reader
validates its value and names the variable when it is wrong, before any work starts.

Everything a user creates (runs, checkpoints, Dagster home, MLflow and Optuna storage, the alert
log) lives under one data directory, so deleting it resets the project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tennis_assets.profiles import ProfileName

DATA_DIR_ENV = "TENNIS_ASSETS_HOME"


def _get(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip() or default


def data_dir() -> Path:
    """The data directory: $TENNIS_ASSETS_HOME, else ``.tennis_assets`` in the working folder."""
    configured = os.environ.get(DATA_DIR_ENV)
    root = Path(configured).expanduser() if configured else Path.cwd() / ".tennis_assets"
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{DATA_DIR_ENV} points at {root}, which is a file, not a folder")
    return root.resolve()


def runs_dir() -> Path:
    return data_dir() / "runs"


def dagster_home() -> Path:
    """$DAGSTER_HOME, else <data dir>/dagster."""
    configured = _get("DAGSTER_HOME")
    return Path(configured).expanduser() if configured else data_dir() / "dagster"


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment with ``overrides``, for a child process it starts."""
    return {**os.environ, **overrides}


def use_dagster_home(home: Path) -> None:
    """Point this process (and the runs it launches) at ``home``."""
    os.environ["DAGSTER_HOME"] = str(home)


def training_slots() -> int:
    """$TENNIS_ASSETS_TRAINING_SLOTS: how many training steps (pool ``training``) this machine
    runs at once; default one per CPU core this process may use. A training step uses one
    torch thread (AgentConfig.torch_threads), so each core holds one: on this 2-core machine two
    15,000-update runs side by side took 17.3 s, one alone 19.7 s."""
    raw = _get("TENNIS_ASSETS_TRAINING_SLOTS")
    if not raw:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else (os.cpu_count() or 1))
    try:
        slots = int(raw)
    except ValueError:
        slots = 0
    if slots < 1:
        raise ValueError(f"TENNIS_ASSETS_TRAINING_SLOTS={raw!r}: expected a whole number >= 1")
    return slots


SERVE_WORKER_ENV = "TENNIS_SERVE_WORKER"
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prometheus_multiproc_dir() -> str:
    """$PROMETHEUS_MULTIPROC_DIR: where prometheus-client keeps this process's metric values
    (set by ``serve --workers N`` for its workers; empty: in memory)."""
    return _get(PROMETHEUS_MULTIPROC_ENV)


def serve_worker_settings() -> dict[str, Any]:
    """$TENNIS_SERVE_WORKER: a policy-server worker's settings, JSON its supervisor wrote."""
    raw = _get(SERVE_WORKER_ENV)
    try:
        value = json.loads(raw) if raw else None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{SERVE_WORKER_ENV}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        # ValueError: a malformed environment variable is bad input.
        raise ValueError(f"{SERVE_WORKER_ENV} is not set: a worker is started by "  # noqa: TRY004
                         "`tennis-assets serve --workers N`, not by hand")
    return value


def use_serve_workers(metrics_dir: str | None, worker_settings: dict[str, Any] | None) -> None:
    """Hand the worker processes this one spawns their metrics folder and settings (None:
    take them back)."""
    for name, value in ((PROMETHEUS_MULTIPROC_ENV, metrics_dir),
                        (SERVE_WORKER_ENV, None if worker_settings is None
                         else json.dumps(worker_settings))):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def profile() -> ProfileName:
    """$TENNIS_ASSETS_PROFILE: the launchpad's default profile (tiny, quick or full)."""
    from tennis_assets.profiles import PROFILE_NAMES

    name = _get("TENNIS_ASSETS_PROFILE", "quick")
    if name not in PROFILE_NAMES:
        raise ValueError(f"TENNIS_ASSETS_PROFILE={name!r}: expected one of {list(PROFILE_NAMES)}")
    return cast("ProfileName", name)  # one of PROFILE_NAMES, the names ProfileName lists


def production_kwargs() -> dict[str, Any]:
    """$TENNIS_ASSETS_ENV_KWARGS: the conditions production plays under, as a JSON object of
    the champion's environment's keyword arguments (Tennis: court fields, e.g.
    {"gravity": -19.62}); $TENNIS_ASSETS_COURT, its earlier name, is read where it is unset.
    They are checked against the environment when it is built."""
    name = "TENNIS_ASSETS_ENV_KWARGS"
    raw = _get(name)
    if not raw:
        name, raw = "TENNIS_ASSETS_COURT", _get("TENNIS_ASSETS_COURT")
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not JSON ({exc}): {raw!r}") from None
    if not isinstance(values, dict):
        # ValueError: a malformed environment variable is bad input.
        raise ValueError(  # noqa: TRY004
            f"{name} must be a JSON object of keyword arguments, got {raw!r}")
    return values


def retrain_on_drift() -> str | None:
    """$TENNIS_ASSETS_RETRAIN_ON_DRIFT: the least severe drift that retrains (warning, the
    default, or critical), or None for off."""
    from tennis_assets.training.drift import SEVERITIES

    value = _get("TENNIS_ASSETS_RETRAIN_ON_DRIFT", "warning").lower()
    if value == "off":
        return None
    if value not in SEVERITIES[1:]:
        raise ValueError(f"TENNIS_ASSETS_RETRAIN_ON_DRIFT={value!r}: expected one of "
                         f"{list(SEVERITIES[1:]) + ['off']}")
    return value


def retrain_cron() -> str:
    """$TENNIS_ASSETS_RETRAIN_CRON: when the weekly retrain runs (default Mondays 03:00 UTC)."""
    return _get("TENNIS_ASSETS_RETRAIN_CRON", "0 3 * * 1")


def monitor_cron() -> str:
    """$TENNIS_ASSETS_MONITOR_CRON: when the champion is monitored (default daily 06:00 UTC)."""
    return _get("TENNIS_ASSETS_MONITOR_CRON", "0 6 * * *")


def optuna_storage() -> str:
    """$TENNIS_ASSETS_OPTUNA_STORAGE, else a journal file in the data directory (safe for
    several processes at once)."""
    return _get("TENNIS_ASSETS_OPTUNA_STORAGE") or \
        f"journal:{data_dir() / 'optuna' / 'journal.log'}"


def alert_webhook() -> str:
    """$TENNIS_ASSETS_ALERT_WEBHOOK: where alerts are posted; empty: the alert log only."""
    return _get("TENNIS_ASSETS_ALERT_WEBHOOK")


def mlflow_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI (MLflow's own variable), else SQLite in the data directory."""
    configured = _get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    root = data_dir() / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def mlflow_ui_url() -> str:
    """$MLFLOW_UI_URL: where people open MLflow; empty: the tracking server's own address."""
    return _get("MLFLOW_UI_URL")


def quiet_mlflow_downloads() -> None:
    # Progress bars on every artifact download would flood Dagster's captured logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def wandb_has_key() -> bool:
    return bool(_get("WANDB_API_KEY"))


WANDB_MODE_ENV = "TENNIS_ASSETS_WANDB_MODE"
NEPTUNE_MODE_ENV = "TENNIS_ASSETS_NEPTUNE_MODE"
WANDB_MODES = ("disabled", "offline", "online", "auto")
NEPTUNE_MODES = ("disabled", "offline", "async", "auto")


def _tracker_mode(name: str, modes: tuple[str, ...]) -> str:
    value = _get(name, "disabled").lower()
    if value not in modes:
        raise ValueError(f"{name}={value!r}: expected one of {list(modes)}")
    return value


def wandb_mode() -> str:
    """$TENNIS_ASSETS_WANDB_MODE: W&B beside MLflow for runs whose ``mlflow`` resource leaves
    wandb_mode empty: disabled (default), offline, online, or auto (online with
    $WANDB_API_KEY)."""
    return _tracker_mode(WANDB_MODE_ENV, WANDB_MODES)


def neptune_mode() -> str:
    """$TENNIS_ASSETS_NEPTUNE_MODE: Neptune beside MLflow (extra ``neptune``) for runs whose
    ``mlflow`` resource leaves neptune_mode empty: disabled (default), offline, async, or auto
    (async with $NEPTUNE_API_TOKEN)."""
    return _tracker_mode(NEPTUNE_MODE_ENV, NEPTUNE_MODES)


def use_trackers(wandb: str | None = None, neptune: str | None = None) -> None:
    """Turn W&B and Neptune on or off for this process and the runs it launches (None: leave
    as the environment has it)."""
    for name, modes, value in ((WANDB_MODE_ENV, WANDB_MODES, wandb),
                               (NEPTUNE_MODE_ENV, NEPTUNE_MODES, neptune)):
        if value is not None:
            if value not in modes:
                raise ValueError(f"{name}={value!r}: expected one of {list(modes)}")
            os.environ[name] = value


def neptune_has_token() -> bool:
    return bool(_get("NEPTUNE_API_TOKEN"))


def neptune_project() -> str:
    """$NEPTUNE_PROJECT (workspace/project), Neptune's own variable; empty when unset."""
    return _get("NEPTUNE_PROJECT")


def ray_address() -> str:
    """$TENNIS_ASSETS_RAY_ADDRESS: the Ray cluster that tuning with engine=ray joins
    (``ray://host:10001``, or ``auto`` for the cluster of this machine); empty: a local Ray
    instance for the run."""
    return _get("TENNIS_ASSETS_RAY_ADDRESS")


def ray_storage() -> str:
    """$TENNIS_ASSETS_RAY_STORAGE: where Ray Tune keeps trial checkpoints (a folder, or a URI
    such as s3://bucket/path that every node of a multi-node cluster reaches); default: the
    data directory's ray/ folder, enough for one machine."""
    return _get("TENNIS_ASSETS_RAY_STORAGE") or str(data_dir() / "ray")


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
    return _get("TENNIS_ASSETS_DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/")
