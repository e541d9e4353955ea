"""How a trained champion's score moves when the court changes, and what the drift test says.

    python bench/bench_drift.py [--seed 0] [--sets 2] [--episodes 100]

Trains the default DDPG learner until a complete greedy evaluation certifies 0.9 (the recipe of
the monitoring tests' champion), takes its evaluation on fresh episodes of the default court as
the baseline, then plays ``--sets`` further sets of fresh episodes on each court and runs
tennis_assets.training.drift.score_drift (default rules) on each set against the baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COURTS = {
    "default": {},
    "gravity x2": {"gravity": -19.62},
    "gravity x1.5": {"gravity": -14.715},
    "ball x2": {"ball_scale": 2.0},
    "ball x1.5": {"ball_scale": 1.5},
    "racket 45 deg": {"racket_angle_deg": 45.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", type=int, default=2, help="monitored sets per court")
    ap.add_argument("--episodes", type=int, default=100)
    args = ap.parse_args()

    from tennis_assets.sim import CourtParams
    from tennis_assets.training import evaluate, final_seed, greedy, train
    from tennis_assets.training.defaults import default_configs
    from tennis_assets.training.drift import score_drift

    print(f"load average before training: {os.getloadavg()[0]:.2f}")
    agent, cfg = default_configs("ddpg")

    def certified(kind, info):
        return kind == "eval" and bool(info["complete"]) and info["greedy_mean"] >= 0.9

    t0 = time.perf_counter()
    result = train(agent, cfg.replace(max_seconds=150, seed=args.seed),
                   progress=False, callback=certified)
    print(f"trained in {time.perf_counter() - t0:.1f} s ({result.updates} updates, best greedy "
          f"mean {result.best_greedy_mean:.3f})")
    policy = greedy(result.learner)
    baseline = evaluate(policy, episodes=args.episodes, seed=final_seed(args.seed, 1))
    print(f"baseline (default court, {args.episodes} fresh episodes): mean {baseline.mean:.3f}\n")

    print(f"{'court':<15} {'set':>3} {'mean':>6} {'median':>6} {'p-value':>9} {'severity':>9}")
    for name, court in COURTS.items():
        for k in range(args.sets):
            ev = evaluate(policy, episodes=args.episodes, seed=final_seed(args.seed, 100 + k),
                          params=CourtParams(**court))
            drift = score_drift(ev.scores, baseline.scores)
            print(f"{name:<15} {k:>3} {ev.mean:>6.3f} {ev.median:>6.2f} {drift.p_value:>9.2g} "
                  f"{drift.severity:>9}")


if __name__ == "__main__":
    main()
