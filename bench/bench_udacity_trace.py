"""Where a run's Udacity-criterion episodes go: one seed's run to the criterion (or to
--max-episodes), then the first certified greedy 0.5, the training episodes' mean score over the 50
after it, every greedy evaluation as (training episodes so far, greedy mean), and per block of 25
training episodes the mean score, mean length, exploration sigma and the last-100 average.
Episode counts do not depend on the machine's load.

    python bench/bench_udacity_trace.py --seed 100 --train updates_per_transition=1.0
    python bench/bench_udacity_trace.py --seed 100 --recipe episodes

With ``--train updates_per_transition=1.0`` (2026-12-04, torch 2.13, this project's 2-core VM),
seed 100 certified 0.5 after 165 episodes and seed 101 after 110; the next 50 training episodes
averaged 0.362 and 0.263, while the greedy evaluations after the solve ranged 0.18-1.91 (seed
100, up to episode 220) and 0.14-2.70 (seed 101, up to its criterion at 256).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_time_to_solve import parse_sets

from tennis_assets.training import train
from tennis_assets.training.defaults import RECIPES, default_configs
from tennis_assets.training.evaluation import reaches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--recipe", choices=RECIPES, default="seconds")
    ap.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides key=value")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    ap.add_argument("--max-episodes", type=int, default=420)
    args = ap.parse_args()
    ac, tc = default_configs("ddpg", args.recipe)
    ac = ac.replace(seed=args.seed, **parse_sets(args.set))
    tc = tc.replace(seed=args.seed, max_seconds=args.max_seconds,
                    max_episodes=args.max_episodes, stop_when_solved=False,
                    **parse_sets(args.train))
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cpus; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def at_criterion(kind, info):
        return (kind == "episode" and info["episode"] >= 100
                and reaches(info["avg100"], tc.target_score))

    r = train(ac, tc, progress=False, callback=at_criterion)
    h, e = r.history, r.eval_history
    u = (r.solved_udacity or {}).get("episodes")
    g = r.solved_greedy or {}
    print(f"seed {args.seed}: udacity {u} episodes; first certified greedy 0.5 after "
          f"{g.get('episodes')} episodes, {g.get('updates')} updates; {r.seconds:.0f} s, load "
          f"{os.getloadavg()[0]:.1f}")
    if g:
        after = h[h.episode > g["episodes"]].score.head(50)
        print(f"  training episodes after the solve: mean {after.mean():.3f} over {len(after)}")
    print("  evaluations:", [(int(a), round(float(b), 2)) for a, b in zip(e.episodes,
                                                                        e.greedy_mean)])
    steps = h.env_steps / tc.num_courts  # sigma decays once per vector step
    sigma = np.maximum(ac.noise_sigma_min, ac.noise_sigma * ac.noise_decay ** steps)
    for lo in range(0, len(h), 25):
        c = h.iloc[lo:lo + 25]
        print(f"  episodes {lo + 1:4d}-{lo + len(c):4d}: score {c.score.mean():.3f}, length "
              f"{c.length.mean():5.0f}, sigma (per-step schedule) {sigma[lo:lo + 25].mean():.3f}, "
              f"avg100 {c.avg100.iloc[-1]:.3f}")


if __name__ == "__main__":
    main()
