"""The training loop's live progress bar (rich), or nothing at all when disabled."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

import numpy as np


class ProgressBar:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self._last = enabled, 0.0
        self.progress: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self.task = self.progress.add_task("train", total=1.0, info="")
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def show(self, fraction: float, updates: int, episodes: int, avg100: float, greedy: float,
             force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.25:  # redrawing every step would cost real time
            return
        self._last = now
        g = "-" if not np.isfinite(greedy) else f"{greedy:.3f}"
        info = f"updates {updates}  episodes {episodes}  avg100 {avg100:.3f}  greedy {g}"
        self.progress.update(self.task, completed=min(fraction, 1.0), info=info)
