"""Learners for two-player Tennis: DDPG self-play (default) and MADDPG. Torch only."""

from .base import Learner
from .config import AgentConfig
from .ddpg import DDPGLearner
from .maddpg import MADDPGLearner


def make_learner(config: AgentConfig) -> Learner:
    if not isinstance(config, AgentConfig):
        raise TypeError(f"make_learner expects an AgentConfig, got {type(config).__name__}")
    if config.algorithm == "ddpg":
        return DDPGLearner(config)
    if config.algorithm == "maddpg":
        return MADDPGLearner(config)
    raise ValueError(f"AgentConfig.algorithm={config.algorithm!r}: unknown algorithm")


__all__ = ["AgentConfig", "DDPGLearner", "Learner", "MADDPGLearner", "make_learner"]
