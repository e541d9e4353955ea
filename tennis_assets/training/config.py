"""How a training run is driven (budget, data rate, evaluation cadence, checkpoints, seed),
separate from the learner's own hyperparameters in ``tennis_assets.agents.AgentConfig``."""

from __future__ import annotations

from pydantic import Field, model_validator

from tennis_assets.config.model import ConfigModel, Seed
from tennis_assets.sim.params import Courts


class TrainConfig(ConfigModel):
    """How a training run is driven (tennis_assets.training.train)."""

    num_courts: Courts = Field(8, json_schema_extra={"cli_aliases": ["--courts"]})
    """Courts simulated side by side while training."""
    max_seconds: float | None = Field(60.0, gt=0.0,
                                      json_schema_extra={"cli_aliases": ["--seconds"]})
    """Wall-clock budget in seconds (None: no limit of this kind); the run stops at whichever
    budget it reaches first."""
    max_updates: int | None = Field(None, ge=1)
    """Budget in gradient updates (None: no limit of this kind)."""
    max_episodes: int | None = Field(None, ge=1)
    """Budget in finished training episodes (None: no limit of this kind)."""
    updates_per_transition: float = Field(0.25, gt=0.0)
    """Gradient updates per stored player transition, accumulated fractionally across steps."""
    warmup_steps: int = Field(0, ge=0)
    """Environment steps at the start played with uniform random actions."""
    eval_every_updates: int = Field(500, ge=1)
    """A greedy evaluation (model selection) every this many updates."""
    eval_every_updates_solved: int = Field(2000, ge=1)
    """The cadence once the target is certified: then the question is which weights are best,
    and a rallying policy's evaluation is long."""
    selection_episodes: int = Field(100, ge=1)
    """Fresh episodes of each model-selection evaluation."""
    eval_gate: float = 0.0
    """With a value > 0, evaluate only once the last-100 training average reaches it."""
    eval_early_stop: bool = True
    """Stop each evaluation as soon as "mean >= target_score" is certain (exact), until the
    first solve; later evaluations run in full so model selection compares complete means."""
    target_score: float | None = None
    """The greedy mean the run trains toward: it certifies the solve, ends the run with
    stop_when_solved, and is the Udacity criterion's threshold. None: the environment's solve
    score (Tennis 0.5; an environment without one has no solve for a run to certify)."""
    stop_when_solved: bool = False
    """End the run at the first greedy evaluation that certifies target_score."""
    keep_best: bool = True
    """Restore the best greedy-evaluated weights at the end (model selection)."""
    explore_with_best: bool = False
    """Once target_score is certified, play the training episodes with the best
    greedy-evaluated weights while the trained weights go on learning (off-policy)."""
    best_courts: int | None = Field(None, ge=0)
    """With explore_with_best: only this many courts play the best weights, greedily (no
    noise), while the others go on exploring with the trained weights and the noise (None:
    every court plays the best weights, with the noise)."""
    final_eval_episodes: int = Field(0, ge=0)
    """If > 0, score the returned weights on this many fresh episodes disjoint from every
    selection evaluation."""
    seed: Seed = 0
    """Seed of the whole run: learner, environment, evaluation episodes (0 to 4294967295)."""
    checkpoint_path: str | None = None
    """Where the full resume state is saved (a .safetensors path; None: not saved)."""
    checkpoint_every_updates: int = Field(0, ge=0)
    """Save the resume state every this many updates (0: off)."""
    checkpoint_every_seconds: float = Field(10.0, ge=0.0)
    """Save the resume state every this many seconds of training (0: off); a kill -9 loses at
    most this."""
    checkpoint_include_buffer: bool = True
    """Save the replay buffer with the resume state (a resumed run then continues rather than
    restarts its data)."""

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.max_seconds is None and self.max_updates is None and self.max_episodes is None:
            raise ValueError("set at least one of max_seconds, max_updates, max_episodes (all "
                             "are None: the run would never end)")
        if self.best_courts is not None and self.best_courts > self.num_courts:
            raise ValueError(f"best_courts={self.best_courts} must not exceed "
                             f"num_courts={self.num_courts}")
        if self.checkpoint_every_updates > 0 and not self.checkpoint_path:
            raise ValueError("checkpoint_every_updates needs checkpoint_path")
        return self
