"""Time to solve Tennis, per seed, for one algorithm.

Default mode: for each seed, wall seconds from the start of training to the end of the first
greedy evaluation whose mean over 100 fresh episodes is >= 0.5 (the loop stops there), with
updates, env steps (court-decisions) and training episodes at that point; and the Udacity
criterion (last 100 training episodes with exploration >= 0.5) if reached within --udacity-budget
seconds (that criterion comes later, so it is measured in a separate run when asked for with
--udacity).

Episodes are counted as public solutions count them: one episode is one game on one court, scored
as the higher of the two players' sums, and every court's games count; greedy evaluation episodes
are not training episodes (--json records how many were played before the criterion).

--budget mode: train for --budget-seconds (default 120), keep the best greedy-evaluated weights,
and score them on 500 fresh episodes with seeds disjoint from the selection evaluations.

    python bench/bench_time_to_solve.py --algorithm ddpg --seeds 5
    python bench/bench_time_to_solve.py --algorithm maddpg --seeds 3
    python bench/bench_time_to_solve.py --algorithm ddpg --seeds 5 --budget
    python bench/bench_time_to_solve.py --algorithm ddpg --seeds 3 --set actor_lr=2e-3
    python bench/bench_time_to_solve.py --seeds 5 --udacity --train updates_per_transition=1.0
    # the recipe for the Udacity criterion (training/defaults.py has its figures)
    python bench/bench_time_to_solve.py --recipe episodes --seeds 5 --first-seed 100 --udacity
    # the learner on a GPU (the update replayed as one CUDA graph there)
    python bench/bench_time_to_solve.py --recipe episodes --seeds 5 --udacity --set device=cuda
    # a profile's recipe: stop at a certified greedy 2.2, then score on 100 fresh episodes
    python bench/bench_time_to_solve.py --seeds 3 --max-seconds 60 \
        --train target_score=2.2 final_eval_episodes=100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tennis_assets.agents.base import resolve_device  # noqa: E402
from tennis_assets.training import train  # noqa: E402
from tennis_assets.training.defaults import RECIPES, default_configs  # noqa: E402


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set/--train expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def med(values: list[float]) -> float:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(vals)) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--algorithm", choices=["ddpg", "maddpg"], default="ddpg")
    ap.add_argument("--recipe", choices=RECIPES, default="seconds",
                    help="training/defaults.py: fewest seconds (default) or fewest episodes")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="give up on a seed after this long (default 120 ddpg, 300 maddpg)")
    ap.add_argument("--budget", action="store_true", help="robustness mode (see above)")
    ap.add_argument("--budget-seconds", type=float, default=120.0)
    ap.add_argument("--final-episodes", type=int, default=500)
    ap.add_argument("--udacity", action="store_true",
                    help="also run each seed until the Udacity criterion (or --udacity-budget)")
    ap.add_argument("--udacity-budget", type=float, default=120.0)
    ap.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides key=value")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()

    agent_base, train_base = default_configs(args.algorithm, args.recipe)
    agent_base = agent_base.replace(**parse_sets(args.set))
    train_base = train_base.replace(**parse_sets(args.train))
    device = str(resolve_device(agent_base.device))
    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"{gpu}; learner on {device}; torch {torch.__version__}, {agent_base.torch_threads} "
          f"thread(s); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# algorithm={args.algorithm} recipe={args.recipe} seeds={args.seeds} mode="
          f"{'budget' if args.budget else 'time-to-solve'} load={os.getloadavg()[0]:.2f}")
    print("# agent:", json.dumps({k: v for k, v in agent_base.to_dict().items()
                                  if k not in ("obs_size", "action_size", "num_agents")}))
    print("# train:", json.dumps({k: v for k, v in train_base.to_dict().items()
                                  if k in ("num_courts", "updates_per_transition",
                                           "explore_with_best", "eval_every_updates",
                                           "selection_episodes", "target_score")}))
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        ac = agent_base
        t_wall = time.perf_counter()
        if args.budget:
            tc = train_base.replace(seed=seed, max_seconds=args.budget_seconds,
                                    stop_when_solved=False, keep_best=True,
                                    final_eval_episodes=args.final_episodes)
            r = train(ac, tc, progress=False)
            row = {"seed": seed, "final_mean": r.final_eval.mean,
                   "final_median": r.final_eval.median, "best_selection_mean": r.best_greedy_mean,
                   "best_at_updates": r.best_updates, "updates": r.updates,
                   "episodes": r.episodes, "seconds": r.seconds,
                   "first_solve_s": (r.solved_greedy or {}).get("seconds"),
                   "udacity_episodes": (r.solved_udacity or {}).get("episodes"),
                   "udacity_s": (r.solved_udacity or {}).get("seconds")}
            print(f"seed {seed}: greedy mean over {args.final_episodes} fresh episodes "
                  f"{row['final_mean']:.3f} (median {row['final_median']:.2f}); best selection "
                  f"{row['best_selection_mean']:.3f} at {row['best_at_updates']} updates; "
                  f"{r.updates} updates, {r.episodes} episodes; first solve "
                  f"{row['first_solve_s']}; udacity {row['udacity_episodes']} episodes "
                  f"{row['udacity_s']} s; load {os.getloadavg()[0]:.2f}", flush=True)
        else:
            limit = args.max_seconds or (120.0 if args.algorithm == "ddpg" else 300.0)
            if args.udacity:
                # One run to the Udacity criterion with evaluations at the normal cadence (the
                # evidence that noise decay reads). Up to the first solve it is the very run the
                # time-to-solve mode makes (evaluations leave the learner's state alone), so the
                # greedy figures come from it too.
                limit = args.udacity_budget
                tc = train_base.replace(seed=seed, max_seconds=limit, stop_when_solved=False)
                r = train(ac, tc, progress=False,
                          callback=lambda kind, info: kind == "episode" and info["episode"] >= 100
                          and info["avg100"] >= tc.target_score - 1e-6)
            else:
                tc = train_base.replace(seed=seed, max_seconds=limit, stop_when_solved=True)
                r = train(ac, tc, progress=False)
            s = r.solved_greedy or {}
            tm = r.timing
            row = {"seed": seed, "solved": r.solved_greedy is not None,
                   "seconds": s.get("seconds"), "updates": s.get("updates"),
                   "env_steps": s.get("env_steps"), "episodes": s.get("episodes"),
                   "update_frac": tm["update"] / tm["total"],
                   "eval_frac": tm["evaluate"] / tm["total"],
                   "sim_frac": (tm["simulate"] + tm["act"] + tm["store"]) / tm["total"],
                   "updates_per_s": r.updates / max(tm["update"], 1e-9),
                   "udacity_episodes": (r.solved_udacity or {}).get("episodes"),
                   "udacity_s": (r.solved_udacity or {}).get("seconds"),
                   "udacity_updates": (r.solved_udacity or {}).get("updates")}
            if r.final_eval is not None:  # --train final_eval_episodes=N: the returned weights
                row["fresh_mean"] = r.final_eval.mean  # on N fresh, never-selected episodes
                print(f"seed {seed}: greedy mean over {r.final_eval.episodes} fresh episodes "
                      f"{r.final_eval.mean:.3f} after {r.seconds:.1f} s ({r.stop_reason})",
                      flush=True)
            if args.udacity:
                # Greedy evaluation episodes are not training episodes, but they are played:
                # reported beside the criterion (early-stopped evaluations count in full).
                before = r.eval_history[r.eval_history["episodes"]
                                        <= (row["udacity_episodes"] or 10**12)]
                row["eval_episodes_before_udacity"] = int(len(before) * tc.selection_episodes)
            sec = f"{row['seconds']:.1f} s" if row["solved"] else f"not solved in {limit:.0f} s"
            print(f"seed {seed}: {sec}; updates {row['updates']}, env steps {row['env_steps']}, "
                  f"episodes {row['episodes']}; time: updates {row['update_frac']:.0%}, eval "
                  f"{row['eval_frac']:.0%}, sim+act+store {row['sim_frac']:.0%}; "
                  f"{row['updates_per_s']:.0f} updates/s; udacity {row['udacity_episodes']} "
                  f"episodes {row['udacity_s']} s; load {os.getloadavg()[0]:.2f}", flush=True)
        row["wall"] = time.perf_counter() - t_wall
        rows.append(row)

    print()
    if args.budget:
        finals = [r["final_mean"] for r in rows]
        print(f"| seed | greedy mean / {args.final_episodes} fresh | best selection mean | "
              "updates | episodes |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['seed']} | {r['final_mean']:.3f} | {r['best_selection_mean']:.3f} | "
                  f"{r['updates']} | {r['episodes']} |")
        print(f"median {med(finals):.3f}, min {min(finals):.3f}; every seed >= 2.0: "
              f"{all(f >= 2.0 for f in finals)}")
    else:
        print("| seed | solved | seconds | updates | env steps | episodes | udacity episodes | "
              "udacity s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            fmt = lambda v, f="{:.1f}": "-" if v is None else f.format(v)  # noqa: E731
            print(f"| {r['seed']} | {r['solved']} | {fmt(r['seconds'])} | {fmt(r['updates'], '{}')}"
                  f" | {fmt(r['env_steps'], '{}')} | {fmt(r['episodes'], '{}')} | "
                  f"{fmt(r['udacity_episodes'], '{}')} | {fmt(r['udacity_s'])} |")
        solved = sum(r["solved"] for r in rows)
        # Unsolved seeds count as +inf so the median never flatters a run that failed.
        secs = sorted(r["seconds"] if r["solved"] else float("inf") for r in rows)
        print(f"solved {solved}/{len(rows)}; median seconds {float(np.median(secs)):.1f}; "
              f"median updates {med([r['updates'] for r in rows]):.0f}; median episodes "
              f"{med([r['episodes'] for r in rows]):.0f}; median udacity episodes "
              f"{med([r['udacity_episodes'] for r in rows])} ("
              f"{sum(r['udacity_episodes'] is not None for r in rows)}/{len(rows)} reached it)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2, default=float)


if __name__ == "__main__":
    main()
