"""Neptune as an optional third tracker, with the same interface as MLflow's and W&B's.

The client is neptune-scale, Neptune's maintained one (the older ``neptune`` package is in
maintenance and its offline queue is a folder of operation files; neptune-scale installs with
the project's pins, protobuf 6 included). Offline unless configured: each run is one SQLite file
of operations under the data directory, which ``neptune sync <file>`` uploads later; with
``$NEPTUNE_API_TOKEN`` set (or mode="async") runs go to the Neptune server as they are logged.
Artifacts are copied beside the run's file first, so that a later sync still finds them after
the caller's temporary folder is gone. Extra ``neptune``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tennis_assets import settings
from tennis_assets.settings import data_dir

from .tracker import finite_metrics, flatten

MODES = settings.NEPTUNE_MODES
# Neptune wants a project name even offline (the sync sends the run there).
DEFAULT_PROJECT = "tennis-assets/tennis-assets"


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"neptune mode={mode!r}: expected one of {MODES}")
    if mode == "auto":
        return "async" if settings.neptune_has_token() else "offline"
    return mode


def check_available(mode: str, name: str = "neptune_mode") -> None:
    """Before any work: the mode is known and, unless disabled, the client is installed."""
    from importlib.util import find_spec

    from .preflight import ResourceError

    try:
        resolved = resolve_mode(mode)
    except ValueError as exc:
        raise ResourceError(f"{name}: {exc}") from None
    if resolved != "disabled" and find_spec("neptune_scale") is None:
        raise ResourceError(f"{name}={mode!r}: the Neptune client is not installed; "
                            "pip install 'tennis-assets[neptune]'")


def _config_value(value: Any) -> str | float | int | bool | datetime:
    # Neptune's configs take scalars; anything else (None, lists) is recorded as its text.
    if isinstance(value, (str, bool, int, float, datetime)):
        return value
    return str(value)


class NeptuneRun:
    def __init__(self, run, folder: Path, run_id: str, url: str | None) -> None:
        self.run, self.folder = run, folder
        self.run_id, self.url = run_id, url
        # Neptune's steps must grow per series; metrics logged without a step get the next one.
        self._steps = itertools.count()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.log_configs({f"params/{k}": _config_value(v)
                              for k, v in flatten(params).items()})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        data = finite_metrics(metrics)
        if data:
            self.run.log_metrics({f"metrics/{k}": v for k, v in data.items()},
                                 step=next(self._steps) if step is None else step)

    def log_series(self, name: str, values: Sequence[float],
                   steps: Sequence[int] | None = None) -> None:
        steps = list(range(len(values))) if steps is None else list(steps)
        for v, s in zip(values, steps):
            self.run.log_metrics({f"metrics/{name}": float(v)}, step=int(s))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(path)
        where = "/".join(p for p in ("artifacts", artifact_path, path.name) if p)
        kept = self.folder / "files" / where
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, kept)
        self.run.assign_files({re.sub(r"[^\w/.-]", "_", where): str(kept)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.log_configs({f"tags/{k}": str(v) for k, v in tags.items()})


class NeptuneTracker:
    def __init__(self, project: str = "", mode: str = "auto",
                 directory: str | os.PathLike | None = None) -> None:
        self.project = project or settings.neptune_project() or DEFAULT_PROJECT
        self.mode = resolve_mode(mode)
        self.directory = Path(directory) if directory else data_dir() / "neptune"

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, str] | None = None
                  ) -> Iterator[NeptuneRun]:
        from neptune_scale import Run

        self.directory.mkdir(parents=True, exist_ok=True)
        run_id = f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}-{uuid.uuid4().hex[:12]}"
        # The token comes from $NEPTUNE_API_TOKEN inside the client, never through here, and
        # no console capture: stdout is not Neptune's to copy (a library may print a secret).
        run = Run(run_id=run_id, project=self.project, mode=self.mode,
                  log_directory=str(self.directory), enable_console_log_capture=False,
                  source_tracking_config=None)
        folder = Path(run._storage_directory_path) if run._storage_directory_path else \
            self.directory / run_id
        url = run.get_run_url() if self.mode == "async" else None
        tracked = NeptuneRun(run, folder, run_id, url)
        try:
            run.log_configs({"run/name": name})
            tracked.set_tags(tags or {})
            yield tracked
        finally:
            run.close()


def read_offline_run(path: str | os.PathLike) -> dict[str, Any]:
    """What an offline run's file holds, read back through neptune-scale's own repository and
    protobuf messages: {"run_id", "project", "configs", "metrics": {name: [(step, value)]},
    "files": {attribute: local path}}. For checks and for people, not for syncing."""
    from neptune_scale.sync.operations_repository import OperationsRepository, OperationType

    repo = OperationsRepository(db_path=Path(path))
    try:
        meta = repo.get_metadata()
        out: dict[str, Any] = {"run_id": meta.run_id if meta else None,
                               "project": meta.project if meta else None,
                               "configs": {}, "metrics": {}, "files": {}}
        for op in repo.get_operations(up_to_bytes=1 << 30):
            if op.operation_type != OperationType.UPDATE_SNAPSHOT:
                continue
            snap = op.operation  # the protobuf message, parsed by the repository
            step = snap.step.whole + snap.step.micro / 1e6 if snap.HasField("step") else None
            for key, value in snap.assign.items():
                kind = value.WhichOneof("value")
                out["configs"][key] = getattr(value, kind) if kind else None
            for key, value in snap.append.items():
                kind = value.WhichOneof("value")
                out["metrics"].setdefault(key, []).append((step, getattr(value, kind)))
        for request in repo.get_file_upload_requests(1 << 20):
            out["files"][request.destination] = request.source_path
        return out
    finally:
        repo.close(cleanup_files=False)
