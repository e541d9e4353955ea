"""Greedy evaluation over fresh episodes, on any environment of ``tennis_assets.envs``.

"100 fresh episodes" means 100 courts, each playing its first episode only, from one seeded
vectorized environment: no episode's start depends on how long another lasted, so the same seed
gives the same 100 starts for every policy.

Seeds: model selection during training draws from ``selection_seed(run_seed, k)`` and final
reported evaluations from ``final_seed(run_seed, k)``; the two ranges never overlap, so the
weights picked as "best" are never scored on the very episodes that picked them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tennis_assets.envs import EnvironmentConfig, make_env
from tennis_assets.envs.scoring import score_lower_bound

SELECTION_SEED_BASE = 1_000_000_000
FINAL_SEED_BASE = 2_000_000_000
# Scores are exact multiples of 0.01 (rewards are +0.1 and -0.01) but arrive as float32 sums; this
# tolerance makes "mean >= target" mean what it says.
SCORE_TOLERANCE = 1e-6


def reaches(total: float, target: float | None, count: int = 1) -> bool:
    """Whether ``count`` scores summing to ``total`` (or one mean, with count 1) reach ``target``
    on average: the one "solved" rule, for greedy evaluations and for the last-100 average. An
    environment with no solve score (target None) is never "solved" by a run."""
    return target is not None and bool(total >= target * count - SCORE_TOLERANCE)


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
    solved: bool  # mean >= threshold (False when there is none)
    mean_length: float  # decisions per episode (unfinished ones count what they played)
    latency_per_decision_s: float  # policy time per court-decision (batched over courts)
    latency_per_call_s: float  # policy time per call (all courts at once)
    episodes: int
    complete: bool  # False when stopped early because the threshold was already decided
    decisions: int  # court-decisions simulated
    seconds: float
    threshold: float | None = 0.5
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def summary(self) -> dict[str, float | int | bool]:
        return {"mean": self.mean, "median": self.median, "std": self.std,
                "solved": self.solved, "mean_length": self.mean_length,
                "latency_per_decision_s": self.latency_per_decision_s,
                "episodes": self.episodes, "complete": self.complete, "seconds": self.seconds}


def evaluate(act_fn: Callable[[np.ndarray], np.ndarray], episodes: int = 100, seed: int = 0,
             environment: EnvironmentConfig | None = None, threshold: float | None = 0.5,
             stop_when_decided: bool = False, env=None) -> EvalResult:
    """Play ``episodes`` fresh episodes with ``act_fn`` (obs [N, A, O] -> actions [N, A, act];
    pass a greedy policy, e.g. ``greedy(learner)``) on ``environment`` (default: Tennis).

    stop_when_decided: stop as soon as ``mean >= threshold`` is certain, where the environment
    knows the least its agents can still be paid (Tennis: an unfinished episode's final score
    is at least its larger running sum - 0.01, the one end penalty still to come). Once the
    sum of these lower bounds reaches threshold * episodes, the full evaluation would report
    solved too: the decision is exact. The returned mean is then a lower bound and ``complete``
    is False.

    env: play on this environment (the vectorized interface, e.g. a Unity build) instead of a
    fresh one of ``episodes`` courts; it is re-seeded with ``seed``, and its courts play the
    episodes one after another until ``episodes`` have started, so with ``episodes`` courts it
    plays exactly what a fresh environment plays. The caller owns it.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"evaluate: episodes={episodes!r} must be an integer >= 1")
    own = env is None
    if own:
        from .memory import check_courts

        check_courts(int(episodes), "episodes")  # one court per episode: refused before any
        env = make_env(environment or EnvironmentConfig(), int(episodes), seed)  # allocation
    else:
        env.reset(seed=seed)  # an environment built with this seed has served once; so has this
    try:
        return _play(act_fn, int(episodes), env, threshold, stop_when_decided)
    finally:
        if own and callable(getattr(env, "close", None)):
            env.close()


def _play(act_fn: Callable[[np.ndarray], np.ndarray], n: int, env, threshold: float | None,
          stop_when_decided: bool) -> EvalResult:
    t_start = time.perf_counter()
    obs = env.reset()
    k = env.num_courts
    slot = np.arange(k)  # the episode each court plays; >= n once it has no more to play
    sums = np.zeros((k, env.num_agents), dtype=np.float64)
    scores = np.full(n, np.nan, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int32)
    active = slot < n
    act_time, calls, decisions = 0.0, 0, 0
    complete = True
    worst = getattr(env, "worst_reward_to_come", None)
    can_decide = stop_when_decided and threshold is not None and worst is not None
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
        if can_decide and active.any():
            # Episodes not started yet score at least what the worst rewards to come make.
            assert worst is not None and threshold is not None  # can_decide says so
            bound = np.where(np.isnan(scores), worst, scores)
            bound[slot[active]] = score_lower_bound(sums[active], env.scoring, worst)
            if reaches(bound.sum(), threshold, n):
                scores, complete = bound, False
                break
    return EvalResult(
        scores=scores, mean=float(scores.mean()), median=float(np.median(scores)),
        std=float(scores.std()), solved=reaches(scores.sum(), threshold, n),
        mean_length=float(lengths.mean()), latency_per_decision_s=act_time / max(calls * k, 1),
        latency_per_call_s=act_time / max(calls, 1), episodes=n, complete=complete,
        decisions=decisions, seconds=time.perf_counter() - t_start, threshold=threshold,
        lengths=lengths)


def random_policy(action_size: int, num_agents: int, seed: int
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform random actions in [-1, 1]: the baseline a policy of an environment with no
    solve score must beat."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, (obs.shape[0], num_agents, action_size)
                                   ).astype(np.float32)


def greedy(learner) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: learner.act(obs, explore=False)
