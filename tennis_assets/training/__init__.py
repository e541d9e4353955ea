"""Training loops, greedy evaluation, checkpoints and learning-curve plots.

torch loads on first use of a learner-facing name: the configuration model alone is what the
Dagster launchpad, the CLI's option parser and every sensor tick read."""

import importlib
from typing import Any

from .config import TrainConfig

_LAZY = {
    "CheckpointError": ".checkpoints", "load_checkpoint": ".checkpoints",
    "load_learner": ".checkpoints", "save_checkpoint": ".checkpoints",
    "EvalResult": ".evaluation", "evaluate": ".evaluation", "final_seed": ".evaluation",
    "greedy": ".evaluation", "selection_seed": ".evaluation",
    "TrainResult": ".result", "train": ".loop",
    "MemoryEstimate": ".memory", "MemoryLimitError": ".memory", "check_memory": ".memory",
    "estimate_memory": ".memory",
    "plot_learning_curve": ".plots",
}

__all__ = ["TrainConfig"]
__all__ += list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
