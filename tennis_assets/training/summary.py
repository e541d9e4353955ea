"""How a training run went, as a typed record: what reports, run folders and the Dagster
asset keep of a run (no torch here: readers of records need not load a learner)."""

from __future__ import annotations

from typing import Any

from tennis_assets.config.model import Record


class Milestone(Record):
    """When a run first reached something: wall seconds from its start, updates,
    court-decisions and finished training episodes."""

    seconds: float
    updates: int
    env_steps: int
    episodes: int


class TrainingSummary(Record):
    """How a training run went, as reports, run folders and the Dagster asset keep it."""

    seconds: float
    updates: int
    env_steps: int
    episodes: int
    best_greedy_mean: float
    """The best model-selection mean (NaN when no evaluation ran)."""
    best_updates: int
    stop_reason: str
    solved_greedy: Milestone | None = None
    """First greedy evaluation that certified the target."""
    solved_udacity: Milestone | None = None
    """First time the last 100 training episodes averaged the target."""
    timing: dict[str, float] = {}  # noqa: RUF012 - a pydantic field: each instance gets a copy
    """Wall seconds per activity (act, simulate, store, update, evaluate, total)."""
    last_saved: dict[str, float] | None = None
    checkpoint_failures: list[str] = []  # noqa: RUF012 - as above
    resumes: int = 0
    final_eval: dict[str, Any] | None = None
    """The returned weights on fresh episodes, when final_eval_episodes > 0."""
