"""The environments a run can play, behind one vectorized interface ([courts, agents, ...],
auto-reset per court, seeded): the built-in Tennis simulator (the default, nothing to install),
any PettingZoo ParallelEnv with continuous spaces, any ML-Agents build. Each carries its own
rules: how an episode is scored, what solves it, which keyword arguments are its conditions."""

from .config import SCORINGS, EnvironmentConfig, parse_spec
from .factory import describe, fit_agent, make_env
from .scoring import score_episode

__all__ = ["SCORINGS", "EnvironmentConfig", "describe", "fit_agent", "make_env", "parse_spec",
           "score_episode"]
