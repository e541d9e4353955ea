"""Weights & Biases as an optional second tracker with the same interface as MLflow's.

Offline unless configured: runs are written under the data directory and can be synced later
with ``wandb sync``; with ``WANDB_API_KEY`` set (or mode="online") they go to the W&B server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from tennis_assets import settings
from tennis_assets.settings import data_dir

from .tracker import finite_metrics, flatten

MODES = settings.WANDB_MODES
RunMode = Literal["online", "offline", "disabled"]
"""What wandb.init runs as: MODES less "auto", which picks one of the first two."""


def resolve_mode(mode: str) -> RunMode:
    if mode not in MODES:
        raise ValueError(f"wandb mode={mode!r}: expected one of {MODES}")
    if mode == "auto":
        return "online" if settings.wandb_has_key() else "offline"
    return cast(RunMode, mode)  # one of MODES, not "auto"


class WandbRun:
    def __init__(self, run) -> None:
        self.run = run
        self.run_id = run.id
        self.url = run.url if getattr(run, "url", None) else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(flatten(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        # W&B's own step must only grow; the caller's step goes in as a metric instead.
        data = finite_metrics(metrics)
        if step is not None:
            data["step"] = step
        self.run.log(data)

    def log_series(self, name: str, values: Sequence[float],
                   steps: Sequence[int] | None = None) -> None:
        steps = list(range(len(values))) if steps is None else list(steps)
        for v, s in zip(values, steps):
            self.run.log({name: float(v), f"{name}_step": int(s)})

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.run.save(str(path), base_path=str(Path(path).parent), policy="now")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.config.update({f"tag.{k}": str(v) for k, v in tags.items()},
                               allow_val_change=True)


class WandbTracker:
    """``root``: where W&B keeps its ``wandb/`` folder of runs (W&B always adds that folder to
    the directory it is given); default the data directory, so offline runs land in
    ``<data dir>/wandb/offline-run-*``."""

    def __init__(self, project: str = "tennis-assets", mode: str = "auto",
                 root: str | os.PathLike | None = None) -> None:
        self.project, self.mode = project, resolve_mode(mode)
        self.root = Path(root) if root else data_dir()
        self.directory = self.root / "wandb"

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, str] | None = None
                  ) -> Iterator[WandbRun]:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(project=self.project, name=name, mode=self.mode,
                         dir=str(self.root), config={"tags": dict(tags or {})},
                         reinit="create_new")
        exit_code = 1
        try:
            yield WandbRun(run)
            exit_code = 0
        finally:
            run.finish(exit_code=exit_code)
