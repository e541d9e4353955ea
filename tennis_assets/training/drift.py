"""Score drift: has a policy's score distribution fallen below its evaluation baseline?

The test is the one-sided Mann-Whitney U test (H1: monitored scores are stochastically smaller
than the baseline's). Episode scores are bounded, heavily tied (multiples of 0.01, many zeros
for a struggling policy, many at the 1000-decision cap for a strong one) and far from normal,
so a rank test fits where a t-test does not, and only a drop matters: a court on which the
champion plays better is no reason to retrain.

With 100 episodes a side the test notices small drops that nobody would act on, so each rule
asks for both: a p-value below its level and a mean drop of at least its size. The most severe
rule that holds names the severity; none holding means no drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field

from tennis_assets.config.model import ConfigModel

TEST_NAME = "mann-whitney-u (one-sided, monitored < baseline)"
Severity = Literal["warning", "critical"]
# In increasing order; "none" is the verdict when no rule holds.
SEVERITIES: tuple[str, ...] = ("none", *get_args(Severity))


class DriftRule(ConfigModel):
    """Drift of ``severity`` when the test's p-value < max_p_value and the mean score fell by at
    least min_mean_drop."""

    severity: Severity = "warning"
    """The drift's severity when this rule holds (the most severe rule that holds wins)."""
    max_p_value: float = Field(0.01, gt=0.0, lt=1.0)
    """The rule holds below this p-value..."""
    min_mean_drop: float = Field(0.1, ge=0.0)
    """...and with at least this drop of the mean score from the baseline."""


DEFAULT_RULES = (DriftRule(severity="warning", max_p_value=0.01, min_mean_drop=0.1),
                 DriftRule(severity="critical", max_p_value=0.001, min_mean_drop=0.5))


@dataclass
class DriftResult:
    statistic: float  # U of the monitored sample
    p_value: float
    mean: float
    baseline_mean: float
    episodes: int
    baseline_episodes: int
    severity: str  # "none", "warning" or "critical"
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.severity != "none"

    @property
    def mean_drop(self) -> float:
        return self.baseline_mean - self.mean

    def summary(self) -> dict[str, Any]:
        return {"test": TEST_NAME, "statistic": self.statistic, "p_value": self.p_value,
                "mean": self.mean, "baseline_mean": self.baseline_mean,
                "mean_drop": self.mean_drop, "episodes": self.episodes,
                "baseline_episodes": self.baseline_episodes, "severity": self.severity,
                "drifted": self.drifted, "rules": self.rules}


def _scores(name: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size < 2:
        raise ValueError(f"score_drift: {name} needs at least 2 scores, got {array.size}")
    if not np.isfinite(array).all():
        raise ValueError(f"score_drift: {name} holds NaN or infinite scores")
    return array


def score_drift(monitored: Sequence[float], baseline: Sequence[float],
                rules: Sequence[DriftRule] = DEFAULT_RULES) -> DriftResult:
    """Compare monitored episode scores with the baseline's under ``rules``."""
    from scipy.stats import mannwhitneyu

    current, reference = _scores("monitored", monitored), _scores("baseline", baseline)
    rules = list(rules)
    if not rules:
        raise ValueError("score_drift: at least one DriftRule is needed")
    if np.ptp(np.concatenate([current, reference])) == 0:
        # All scores equal: no rank information, and certainly no drop.
        statistic, p_value = float(current.size * reference.size) / 2, 1.0
    else:
        test = mannwhitneyu(current, reference, alternative="less", method="asymptotic")
        statistic, p_value = float(test.statistic), float(test.pvalue)
    drop = float(reference.mean() - current.mean())
    held = [r for r in rules if p_value < r.max_p_value and drop >= r.min_mean_drop]
    severity = max((r.severity for r in held), key=SEVERITIES.index, default="none")
    return DriftResult(
        statistic=statistic, p_value=p_value, mean=float(current.mean()),
        baseline_mean=float(reference.mean()), episodes=int(current.size),
        baseline_episodes=int(reference.size), severity=severity,
        rules=[{**r.to_dict(), "held": r in held} for r in rules])
