"""Learners for two-player Tennis: DDPG self-play (default) and MADDPG. Torch only.

The learners (and torch) load on first use: the hyperparameter dataclass alone is what the
Dagster launchpad and every sensor tick read."""

import importlib
from typing import Any

from .config import AgentConfig

_LAZY = {"Learner": ".base", "DDPGLearner": ".ddpg", "MADDPGLearner": ".maddpg"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_learner(config: AgentConfig, seed: int = 0):
    """A new learner of ``config``, its weights, buffer sampling and noise seeded by ``seed``."""
    if not isinstance(config, AgentConfig):
        raise TypeError(f"make_learner expects an AgentConfig, got {type(config).__name__}")
    if config.algorithm == "ddpg":
        from .ddpg import DDPGLearner

        return DDPGLearner(config, seed)
    if config.algorithm == "maddpg":
        from .maddpg import MADDPGLearner

        return MADDPGLearner(config, seed)
    raise ValueError(f"AgentConfig.algorithm={config.algorithm!r}: unknown algorithm")


__all__ = ["AgentConfig", "DDPGLearner", "Learner", "MADDPGLearner", "make_learner"]
