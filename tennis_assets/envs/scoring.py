"""How an episode is scored from its agents' returns (the environment's rule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Each reduces the agent axis: a scalar from [A], a court axis kept from [N, A].
_RULES: dict[str, Callable[..., Any]] = {"max": np.max, "mean": np.mean, "sum": np.sum}


def score_episode(returns: np.ndarray, rule: str) -> float:
    """One episode's score from its agents' reward sums ``returns`` [A], rounded as scores are
    kept (two decimals)."""
    return round(float(_RULES[rule](returns)), 2)


def score_lower_bound(sums: np.ndarray, rule: str, worst_to_come: float) -> np.ndarray:
    """Per court, the least the episode can still score when each agent's rewards to come sum
    to at least ``worst_to_come`` (the rules are monotone in every agent's return)."""
    return np.round(_RULES[rule](sums + worst_to_come, axis=-1), 2)
