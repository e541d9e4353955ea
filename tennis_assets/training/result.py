"""What a training run returns: the learner, its histories and how the run went."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tennis_assets.agents import AgentConfig, Learner

from .config import TrainConfig
from .evaluation import EvalResult
from .summary import Milestone, TrainingSummary

__all__ = ["EPISODE_COLUMNS", "EVAL_COLUMNS", "Milestone", "TrainResult", "TrainingSummary"]

EPISODE_COLUMNS = ["episode", "court", "score", "length", "seconds", "updates", "env_steps",
                   "avg100"]
EVAL_COLUMNS = ["eval", "updates", "seconds", "env_steps", "episodes", "greedy_mean", "complete",
                "solved", "eval_seconds", "mean_length"]


@dataclass
class TrainResult:
    learner: Learner
    agent_config: AgentConfig
    train_config: TrainConfig
    history: pd.DataFrame  # one row per finished training episode (EPISODE_COLUMNS)
    eval_history: pd.DataFrame  # one row per greedy evaluation (EVAL_COLUMNS)
    # First greedy mean >= target over selection_episodes fresh episodes: seconds (wall, from the
    # start of the run to the end of that evaluation), updates, env_steps (court-decisions),
    # episodes (training episodes finished). None if never reached.
    solved_greedy: dict[str, float] | None
    # Udacity criterion: first time the last 100 training episodes (exploration on) average
    # >= target: episodes (the index of the 100th episode of that window) and seconds.
    solved_udacity: dict[str, float] | None
    best_greedy_mean: float
    best_updates: int
    seconds: float
    updates: int
    env_steps: int
    episodes: int
    stop_reason: str
    timing: dict[str, float] = field(default_factory=dict)  # wall seconds per activity
    final_eval: EvalResult | None = None
    # The last resume state written to train_config.checkpoint_path ({"updates", "seconds"}),
    # None if none was; and each save that found the disk full (training went on without it).
    last_saved: dict[str, float] | None = None
    checkpoint_failures: list[str] = field(default_factory=list)
    resumes: int = 0  # how many times this run was continued from a resume state

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or SIGTERM (the resume state was saved, when it has a path)."""
        return self.stop_reason.startswith("interrupted")

    def summary(self) -> TrainingSummary:
        return TrainingSummary(
            seconds=self.seconds, updates=self.updates, env_steps=self.env_steps,
            episodes=self.episodes, best_greedy_mean=self.best_greedy_mean,
            best_updates=self.best_updates, stop_reason=self.stop_reason,
            solved_greedy=self.solved_greedy, solved_udacity=self.solved_udacity,
            timing=self.timing, last_saved=self.last_saved,
            checkpoint_failures=self.checkpoint_failures, resumes=self.resumes,
            final_eval=None if self.final_eval is None else self.final_eval.summary())
