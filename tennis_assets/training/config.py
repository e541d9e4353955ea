"""How a training run is driven (budget, data rate, evaluation cadence), separate from the
learner's own hyperparameters in ``tennis_assets.agents.AgentConfig``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tennis_assets.agents.config import check_seed
from tennis_assets.config_io import DictConfig

_COURT_KEYS = ("ball_scale", "racket_angle_deg", "gravity", "real_ball_velocity",
               "max_decisions")


@dataclass
class TrainConfig(DictConfig):
    num_courts: int = 8
    # Budget: the run stops at whichever is reached first; None means no limit of that kind,
    # but at least one must be set.
    max_seconds: float | None = 120.0
    max_updates: int | None = None
    max_episodes: int | None = None
    # Gradient updates per stored player transition (each court-decision gives two: one per
    # player), accumulated fractionally across steps.
    updates_per_transition: float = 0.25
    # Environment steps at the start played with uniform random actions instead of the policy.
    warmup_steps: int = 0
    # Greedy evaluation (model selection) every this many updates, on eval_episodes fresh
    # episodes; with eval_gate > 0, only once the last-100 training average reaches eval_gate.
    eval_every_updates: int = 500
    # After the first solve the question is no longer "when" but "which weights are best", and a
    # full evaluation of a rallying policy plays up to 1000 decisions per court: evaluate less
    # often so the budget goes to training.
    eval_every_updates_solved: int = 2000
    eval_episodes: int = 100
    eval_gate: float = 0.0
    # Stop each evaluation as soon as "mean >= target_score" is certain (exact; see
    # evaluation.evaluate). Applies until the first solve; later evaluations run in full so
    # model selection compares complete means.
    eval_early_stop: bool = True
    target_score: float = 0.5
    stop_when_solved: bool = False
    # Restore the best greedy-evaluated weights at the end (model selection).
    keep_best: bool = True
    # Once a greedy evaluation certifies target_score, play the training (exploring) episodes
    # with the best greedy-evaluated weights plus the noise, while the trained weights go on
    # learning from that data (off-policy); the behaviour follows each new best.
    explore_with_best: bool = False
    # If > 0, score the returned weights on this many fresh episodes whose seeds are disjoint
    # from every selection evaluation.
    final_eval_episodes: int = 0
    seed: int = 0
    # Court parameters passed to tennis_assets.sim.CourtParams (e.g. {"ball_scale": 1.2}).
    court: dict[str, Any] = field(default_factory=dict)
    # Resume checkpoints (path of the .safetensors file; None: none). With a path, the full
    # training state is saved every checkpoint_every_seconds of training (0: off), every
    # checkpoint_every_updates updates (0: off), when a stop signal arrives, and at the end, so
    # a kill -9 loses at most the interval.
    checkpoint_path: str | None = None
    checkpoint_every_updates: int = 0
    checkpoint_every_seconds: float = 10.0
    checkpoint_include_buffer: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not is_int(self.num_courts) or self.num_courts < 1:
            raise bad("num_courts", "must be an integer >= 1")
        if self.max_seconds is not None and (not is_num(self.max_seconds) or self.max_seconds <= 0):
            raise bad("max_seconds", "must be a positive number or None")
        for name in ("max_updates", "max_episodes"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(name, "must be an integer >= 1 or None")
        if self.max_seconds is None and self.max_updates is None and self.max_episodes is None:
            raise ValueError("TrainConfig: set at least one of max_seconds, max_updates, "
                             "max_episodes (all are None: the run would never end)")
        if not is_num(self.updates_per_transition) or self.updates_per_transition <= 0:
            raise bad("updates_per_transition", "must be a number > 0")
        self.seed = check_seed(self.seed, "TrainConfig.seed")
        for name in ("warmup_steps", "final_eval_episodes", "checkpoint_every_updates"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise bad(name, "must be an integer >= 0")
        for name in ("eval_every_updates", "eval_every_updates_solved", "eval_episodes"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise bad(name, "must be an integer >= 1")
        for name in ("eval_gate", "target_score"):
            if not is_num(getattr(self, name)):
                raise bad(name, "must be a finite number")
        if not isinstance(self.court, dict):
            raise bad("court", "must be a dict of CourtParams fields")
        unknown = sorted(set(self.court) - set(_COURT_KEYS))
        if unknown:
            raise bad("court", f"unknown court parameter(s) {unknown}; known: {list(_COURT_KEYS)}")
        if not is_num(self.checkpoint_every_seconds) or self.checkpoint_every_seconds < 0:
            raise bad("checkpoint_every_seconds", "must be a number >= 0 (0: off)")
        if self.checkpoint_every_updates > 0 and not self.checkpoint_path:
            raise bad("checkpoint_every_updates", "needs checkpoint_path")

    def court_params(self):
        from tennis_assets.sim import CourtParams

        return CourtParams(**self.court)
