"""The interface both trackers implement, and helpers shared by them."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"agent": {"actor_lr": 1e-3}} -> {"agent.actor_lr": 1e-3}: both trackers want flat keys."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numbers only; NaN and inf dropped, because MLflow's SQL store rejects some of them and a
    missing point is more honest in a chart than a clipped one."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


class TrackedRun(Protocol):
    run_id: str
    url: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def log_series(self, name: str, values: Sequence[float],
                   steps: Sequence[int] | None = None) -> None: ...

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...


class Tracker(Protocol):
    def start_run(self, name: str, tags: Mapping[str, str] | None = None
                  ) -> contextlib.AbstractContextManager[TrackedRun]: ...


class FanOutRun:
    """Sends every call to a primary run (MLflow) and to secondary ones (W&B)."""

    def __init__(self, primary: TrackedRun, secondary: Sequence[TrackedRun]) -> None:
        self.primary, self.secondary = primary, list(secondary)
        self.run_id, self.url = primary.run_id, primary.url

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            result = getattr(self.primary, name)(*args, **kwargs)
            for run in self.secondary:
                # Model logging and registry calls are MLflow's alone.
                if hasattr(run, name):
                    getattr(run, name)(*args, **kwargs)
            return result
        return call


@contextlib.contextmanager
def fan_out(primary: Tracker, secondary: Sequence[Tracker], name: str,
            tags: Mapping[str, str] | None = None) -> Iterator[FanOutRun]:
    with contextlib.ExitStack() as stack:
        main = stack.enter_context(primary.start_run(name, tags))
        others = [stack.enter_context(t.start_run(name, tags)) for t in secondary]
        yield FanOutRun(main, others)
