"""The promotion rule, in one place: which candidate may replace the champion, and why not.

Pure functions over plain values. The promotion sensor builds the evidence from Dagster's event
log, the challenger asset from the stored reports; both ask ``decide``.

Staging to production: a candidate that ``decide`` accepts becomes the registry's
``challenger``; it becomes ``champion`` only after the challenger checks pass
(``confirm_challenger``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Evidence:
    """What one candidate's evaluation showed."""

    partition: str
    train_run_id: str | None  # the MLflow run that trained it: one model version per run
    mean: float
    blocking_gates_passed: bool
    compared_version: str | None  # the champion it played against (None: there was none)
    champion_mean: float | None  # that champion's mean on the very same episodes
    report_run_id: str | None = None


@dataclass(frozen=True)
class Champion:
    version: str | None
    train_run_id: str | None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def compare_with_champion(mean: float, champion_mean: float | None,
                          champion_version: str | None = None) -> Decision:
    """Strictly better than the champion on the same episodes (or no champion yet)."""
    if champion_mean is None:
        return Decision(True, "no champion yet")
    who = f"champion v{champion_version}" if champion_version else "champion"
    if not (math.isfinite(mean) and mean > champion_mean):
        return Decision(False, f"not better than {who}: {mean:.3f} vs {champion_mean:.3f}")
    return Decision(True, f"better than {who}: {mean:.3f} vs {champion_mean:.3f}")


def decide(candidate: Evidence, champion: Champion) -> Decision:
    if not candidate.blocking_gates_passed:
        return Decision(False, "failed a blocking gate")
    if champion.version is None:
        return Decision(True, "no champion yet")
    if champion.train_run_id is not None and candidate.train_run_id == champion.train_run_id:
        return Decision(False, f"already champion v{champion.version}")
    if candidate.compared_version != champion.version:
        # Judged against another champion: its comparison says nothing about this one.
        return Decision(False, f"compared against v{candidate.compared_version}, the champion "
                               f"is now v{champion.version}; re-evaluate")
    return compare_with_champion(candidate.mean, candidate.champion_mean, champion.version)


def choose(candidates: Iterable[Evidence], champion: Champion
           ) -> tuple[Evidence | None, dict[str, str]]:
    """The best candidate ``decide`` accepts, and why each other one was passed over."""
    accepted, passed_over = [], {}
    for candidate in candidates:
        decision = decide(candidate, champion)
        if decision.promote:
            accepted.append(candidate)
        else:
            passed_over[candidate.partition] = decision.reason
    if not accepted:
        return None, passed_over
    best = max(accepted, key=lambda c: c.mean)
    for other in accepted:
        if other is not best:
            passed_over[other.partition] = f"{other.mean:.3f} < {best.partition} {best.mean:.3f}"
    return best, passed_over


@dataclass(frozen=True)
class Confirmation:
    """The challenger checks' verdicts, from one replay of challenger and champion."""

    loads_and_plays: bool
    solves: bool
    not_worse: bool
    mean: float
    champion_mean: float | None
    reasons: dict[str, str]

    @property
    def passed(self) -> bool:
        return self.loads_and_plays and self.solves and self.not_worse


def confirm(mean: float, finite_actions: bool, champion_mean: float | None, target: float,
            margin: float) -> Confirmation:
    """Verdicts for a challenger replayed through its registered model: it played with finite
    actions, it solves (mean >= target) and it is not worse than the champion on the same
    episodes by more than ``margin``."""
    plays = bool(finite_actions and math.isfinite(mean))
    solves = plays and mean >= target - 1e-9
    not_worse = plays and (champion_mean is None or mean >= champion_mean - margin - 1e-9)
    reasons = {
        "loads_and_plays": "played with finite actions" if plays else "non-finite actions",
        "solves": f"mean {mean:.3f} {'>=' if solves else '<'} {target}",
        "not_worse": ("no champion" if champion_mean is None else
                      f"mean {mean:.3f} vs champion {champion_mean:.3f} (margin {margin})"),
    }
    return Confirmation(plays, solves, not_worse, mean, champion_mean, reasons)
