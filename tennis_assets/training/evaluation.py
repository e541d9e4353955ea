"""Greedy evaluation over fresh episodes.

"100 fresh episodes" means 100 courts, each playing its first episode only, from one seeded
``VecTennis``: no episode's start depends on how long another lasted, so the same seed gives the
same 100 starts for every policy.

Seeds: model selection during training draws from ``selection_seed(run_seed, k)`` and final
reported evaluations from ``final_seed(run_seed, k)``; the two ranges never overlap, so the
weights picked as "best" are never scored on the very episodes that picked them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tennis_assets.sim import CourtParams, VecTennis

SELECTION_SEED_BASE = 1_000_000_000
FINAL_SEED_BASE = 2_000_000_000
# The end-of-episode penalty is the only negative reward, at most once per player per episode.
END_PENALTY = 0.01


def selection_seed(run_seed: int, k: int) -> int:
    return SELECTION_SEED_BASE + (int(run_seed) % 100_000) * 10_000 + int(k) % 10_000


def final_seed(run_seed: int, k: int = 0) -> int:
    return FINAL_SEED_BASE + (int(run_seed) % 100_000) * 10_000 + int(k) % 10_000


@dataclass
class EvalResult:
    scores: np.ndarray  # per episode; where complete is False, unfinished ones hold lower bounds
    mean: float
    median: float
    std: float
    solved: bool  # mean >= threshold
    mean_length: float  # decisions per episode (unfinished ones count what they played)
    latency_per_decision_s: float  # policy time per court-decision (batched over courts)
    latency_per_call_s: float  # policy time per call (all courts at once)
    episodes: int
    complete: bool  # False when stopped early because the threshold was already decided
    decisions: int  # court-decisions simulated
    seconds: float
    threshold: float = 0.5
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def summary(self) -> dict[str, float | int | bool]:
        return {"mean": self.mean, "median": self.median, "std": self.std,
                "solved": self.solved, "mean_length": self.mean_length,
                "latency_per_decision_s": self.latency_per_decision_s,
                "episodes": self.episodes, "complete": self.complete, "seconds": self.seconds}


def evaluate(act_fn: Callable[[np.ndarray], np.ndarray], episodes: int = 100, seed: int = 0,
             params: CourtParams | None = None, threshold: float = 0.5,
             stop_when_decided: bool = False, env=None) -> EvalResult:
    """Play ``episodes`` fresh episodes with ``act_fn`` (obs [N,2,24] -> actions [N,2,2]; pass a
    greedy policy, e.g. ``lambda o: learner.act(o, explore=False)``).

    stop_when_decided: stop as soon as ``mean >= threshold`` is certain. An unfinished episode's
    final score is at least (the larger running sum of its two players) - 0.01, because rewards
    already paid are final and the only negative reward still to come is one 0.01 end penalty.
    Once the sum of these lower bounds (finished episodes at their score) reaches
    threshold * episodes, the full evaluation would report solved too: the decision is exact.
    The returned mean is then a lower bound and ``complete`` is False.

    env: play on this environment (VecTennis's interface, e.g. ``tennis_assets.unity.UnityTennis``)
    instead of a fresh ``VecTennis(episodes)``; ``params`` is then unused. It is re-seeded with
    ``seed``, and its courts play the episodes one after another until ``episodes`` have started,
    so with ``episodes`` courts it plays exactly what the built-in evaluation plays.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"evaluate: episodes={episodes!r} must be an integer >= 1")
    t_start = time.perf_counter()
    n = int(episodes)
    if env is None:
        from .memory import check_courts

        check_courts(n, "episodes")  # one court per episode: refused before any allocation
        env = VecTennis(num_courts=n, params=params, seed=seed)
    else:
        env.reset(seed=seed)  # a VecTennis built with this seed has served once; so does this
    obs = env.reset()
    k = env.num_courts
    slot = np.arange(k)  # the episode each court plays; >= n once it has no more to play
    sums = np.zeros((k, 2), dtype=np.float64)
    scores = np.full(n, np.nan, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int32)
    active = slot < n
    act_time, calls, decisions = 0.0, 0, 0
    # Scores are exact multiples of 0.01 (rewards are +0.1 and -0.01), but arrive as float32 sums;
    # rounding to 0.01 and a small tolerance make "mean >= 0.5" mean what it says.
    need = threshold * n - 1e-6
    complete = True
    while active.any():
        t0 = time.perf_counter()
        actions = act_fn(obs)
        act_time += time.perf_counter() - t0
        calls += 1
        res = env.step(actions)
        decisions += int(active.sum())
        lengths[slot[active]] += 1
        sums[active] += res.rewards[active]
        ended = res.done & active
        if ended.any():
            scores[slot[ended]] = np.round(res.episode_score[ended].astype(np.float64), 2)
            # A court that finished starts the next unplayed episode (auto-reset served it).
            for c in np.flatnonzero(ended):
                slot[c] = slot.max() + 1
            sums[ended] = 0.0
            active = slot < n
        obs = res.obs
        if stop_when_decided and active.any():
            # Episodes not started yet score at least -0.01 (one end penalty).
            bound = np.where(np.isnan(scores), -END_PENALTY, scores)
            bound[slot[active]] = np.round(sums[active].max(axis=1) - END_PENALTY, 2)
            if bound.sum() >= need:
                scores = bound
                complete = False
                break
    mean = float(scores.mean())
    return EvalResult(
        scores=scores, mean=mean, median=float(np.median(scores)), std=float(scores.std()),
        solved=bool(scores.sum() >= need), mean_length=float(lengths.mean()),
        latency_per_decision_s=act_time / max(calls * k, 1),
        latency_per_call_s=act_time / max(calls, 1), episodes=n, complete=complete,
        decisions=decisions, seconds=time.perf_counter() - t_start, threshold=threshold,
        lengths=lengths)


def greedy(learner) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: learner.act(obs, explore=False)
