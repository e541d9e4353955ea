"""The drift test on score samples: which drops count, at which severity, and bad input."""

import numpy as np
import pytest

from tennis_assets.training.drift import DEFAULT_RULES, DriftRule, score_drift


def _scores(rng, mean, n=100):
    # Episode scores: non-negative multiples of 0.01, heavily tied.
    return np.round(np.clip(rng.exponential(mean, n), 0, 2.6), 1)


def test_same_distribution_does_not_drift():
    rng = np.random.default_rng(0)
    false_alarms = sum(score_drift(_scores(rng, 1.0), _scores(rng, 1.0)).drifted
                       for _ in range(50))
    assert false_alarms <= 2  # the warning rule's level is 1 %


def test_large_drop_is_critical_and_small_drop_a_warning():
    rng = np.random.default_rng(1)
    baseline = _scores(rng, 1.0, 200)
    critical = score_drift(_scores(rng, 0.25, 200), baseline)
    assert critical.severity == "critical" and critical.drifted
    assert critical.p_value < 1e-3 and critical.mean_drop > 0.5
    warning = score_drift(baseline * 0.7, baseline)
    assert warning.severity == "warning", warning.summary()
    assert [r["held"] for r in warning.rules] == [True, False]


def test_better_scores_are_not_drift():
    rng = np.random.default_rng(2)
    baseline = _scores(rng, 0.5)
    result = score_drift(baseline + 1.0, baseline)
    assert not result.drifted and result.p_value > 0.5


def test_significant_but_tiny_drop_is_not_drift():
    baseline = np.repeat([1.0, 1.1], 5000)
    result = score_drift(baseline - 0.02, baseline)
    assert result.p_value < 1e-6 and not result.drifted  # 0.02 < the 0.1 minimum drop


def test_identical_constant_scores():
    result = score_drift([0.0] * 10, [0.0] * 10)
    assert result.p_value == 1.0 and not result.drifted


@pytest.mark.parametrize("monitored, baseline, match", [
    ([1.0], [1.0, 2.0], "at least 2"),
    ([1.0, float("nan")], [1.0, 2.0], "NaN"),
    ([1.0, 2.0], [1.0, float("inf")], "baseline holds NaN or infinite"),
])
def test_bad_samples_are_named(monitored, baseline, match):
    with pytest.raises(ValueError, match=match):
        score_drift(monitored, baseline)


def test_rules_are_validated():
    with pytest.raises(ValueError, match="severity"):
        DriftRule(severity="fatal")
    with pytest.raises(ValueError, match="max_p_value"):
        DriftRule(severity="warning", max_p_value=1.5)
    with pytest.raises(ValueError, match="min_mean_drop"):
        DriftRule(severity="warning", max_p_value=0.01, min_mean_drop=-1)
    with pytest.raises(ValueError, match="at least one"):
        score_drift([1, 2], [1, 2], rules=[])
    assert [r.severity for r in DEFAULT_RULES] == ["warning", "critical"]
