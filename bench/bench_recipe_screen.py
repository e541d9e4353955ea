"""Screen a DDPG/MADDPG recipe on fresh seeds, all three questions from one run per seed.

One training run per seed, with a budget of process CPU seconds (``--cpu-budget``, default 120):
on a shared machine the wall clock counts other people's work, while the CPU time of this
single-threaded process is what the run would take alone (cache contention still inflates it a
little, so it errs on the slow side). From that one run:
- the first certified greedy 0.5 (updates, training episodes, CPU seconds, wall seconds): up to
  that point it is the very run ``bench_time_to_solve.py`` makes (evaluations leave the learner
  alone);
- the Udacity criterion (training episodes until the last 100 average >= 0.5);
- the greedy mean of the selected weights over ``--final-episodes`` fresh episodes after the
  budget (the 2-minute question), and the greedy evaluations on the way.

Seeds are drawn at random unless ``--seed-list`` is given, and printed. One JSON line per seed
goes to stdout and to ``--out`` (appended), so several processes can share one file;
``--summary FILE`` prints the median, worst and share within the targets per tag of such a file.

    python bench/bench_recipe_screen.py --seeds 3 --out /tmp/screen.jsonl --tag base
    python bench/bench_recipe_screen.py --seed-list 123 456 --set actor_lr=2e-3 --tag lr2
    python bench/bench_recipe_screen.py --summary /tmp/screen.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_time_to_solve import draw_seeds, parse_sets, spread

from tennis_assets.training import train
from tennis_assets.training.defaults import RECIPES, default_configs
from tennis_assets.training.evaluation import reaches


class Screen:
    """The run's callback: marks the first greedy solve and the Udacity criterion in CPU
    seconds, keeps the greedy evaluations, and stops the run at the budget (or earlier with
    ``--stop solve|udacity``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        self.marks: dict[str, dict] = {}
        self.evals: list[list] = []

    def cpu(self) -> float:
        return time.process_time() - self.cpu0

    def __call__(self, kind: str, info: dict) -> bool:
        cpu = self.cpu()
        if kind == "eval":
            self.evals.append([info["updates"], info["episodes"], round(info["greedy_mean"], 3),
                               round(cpu, 1)])
            if info["solved"] and "solve" not in self.marks:
                self.marks["solve"] = {"updates": info["updates"], "episodes": info["episodes"],
                                       "cpu": round(cpu, 2),
                                       "wall": round(time.perf_counter() - self.wall0, 2)}
        elif (kind == "episode" and "udacity" not in self.marks and info["episode"] >= 100
              and reaches(info["avg100"], 0.5)):
            self.marks["udacity"] = {"episodes": info["episode"], "updates": info["updates"],
                                     "cpu": round(cpu, 2)}
        stop = self.args.stop
        if stop == "solve" and "solve" in self.marks:
            return True
        if stop == "udacity" and "udacity" in self.marks and "solve" in self.marks:
            return True
        return cpu >= self.args.cpu_budget


def run_seed(args: argparse.Namespace, agent_base: Any, train_base: Any, seed: int) -> dict:
    tc = train_base.replace(seed=seed, max_seconds=args.wall_guard, max_updates=args.max_updates,
                            stop_when_solved=False, keep_best=True,
                            final_eval_episodes=args.final_episodes if args.stop == "budget" else 0)
    screen = Screen(args)
    r = train(agent_base, tc, progress=False, callback=screen)
    scores = r.history["score"]
    blocks = [round(float(scores.iloc[i:i + 50].mean()), 3) for i in range(0, len(scores), 50)]
    return {"tag": args.tag, "seed": seed, "solve": screen.marks.get("solve"),
            "udacity": screen.marks.get("udacity"),
            "final": None if r.final_eval is None else round(r.final_eval.mean, 3),
            "best_sel": round(r.best_greedy_mean, 3), "best_at": r.best_updates,
            "updates": r.updates, "episodes": r.episodes, "cpu": round(screen.cpu(), 1),
            "wall": round(time.perf_counter() - screen.wall0, 1),
            "load": round(os.getloadavg()[0], 2), "stop": r.stop_reason,
            "timing": {k: round(v, 2) for k, v in r.timing.items()},
            "evals": screen.evals, "train_blocks50": blocks}


def summary(path: str) -> None:
    """Per tag of a JSON-lines file: median, worst and share within each target."""
    by_tag: dict[str, list[dict]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                by_tag[row["tag"]].append(row)
    for tag, rows in by_tag.items():
        seeds = " ".join(str(r["seed"]) for r in rows)
        loads = [r["load"] for r in rows]
        print(f"== {tag}: {len(rows)} seeds ({seeds}); load {min(loads):.1f}-{max(loads):.1f}")
        print("  " + spread("greedy 0.5, CPU s", [(r["solve"] or {}).get("cpu") for r in rows],
                            " s", [4.0, 10.0]))
        print("  " + spread("greedy 0.5, updates",
                            [(r["solve"] or {}).get("updates") for r in rows], "", [], "{:.0f}"))
        print("  " + spread("Udacity, episodes",
                            [(r["udacity"] or {}).get("episodes") for r in rows], "",
                            [200, 400], "{:.0f}"))
        finals = [r["final"] for r in rows if r["final"] is not None]
        if finals:
            print("  " + spread("greedy mean / fresh episodes after the budget", finals, "",
                                [2.5], "{:.3f}", higher_is_better=True))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--algorithm", choices=["ddpg", "maddpg"], default="ddpg")
    ap.add_argument("--recipe", choices=RECIPES, default=RECIPES[0])
    ap.add_argument("--seeds", type=int, default=3, help="how many random seeds")
    ap.add_argument("--seed-list", type=int, nargs="*", default=None)
    ap.add_argument("--cpu-budget", type=float, default=120.0,
                    help="process CPU seconds per run (the '2 minutes' of an idle machine)")
    ap.add_argument("--max-updates", type=int, default=None, help="also stop at this many")
    ap.add_argument("--stop", choices=["budget", "solve", "udacity"], default="budget",
                    help="stop at the budget, at the first certified greedy 0.5, or once both "
                         "that and the Udacity criterion are reached")
    ap.add_argument("--wall-guard", type=float, default=3600.0,
                    help="wall seconds after which a run stops whatever its CPU time")
    ap.add_argument("--final-episodes", type=int, default=500)
    ap.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides key=value")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=None, help="append one JSON line per seed here")
    ap.add_argument("--summary", default=None, metavar="FILE",
                    help="only summarize a JSON-lines file of earlier screens, per tag")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.summary:
        summary(args.summary)
        return
    agent_base, train_base = default_configs(args.algorithm, args.recipe)
    agent_base = agent_base.replace(**parse_sets(args.set))
    train_base = train_base.replace(**parse_sets(args.train))
    seeds = args.seed_list if args.seed_list else draw_seeds(args.seeds)
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; tag {args.tag!r}; recipe "
          f"{args.recipe}; set {args.set}; train {args.train}; seeds {seeds}", flush=True)
    for seed in seeds:
        row = run_seed(args, agent_base, train_base, seed)
        if row["stop"].startswith("interrupted"):
            # Ctrl-C / SIGTERM ends the loop's run gracefully: not a measurement, and the
            # signal was meant for the whole screen, not for this seed alone.
            sys.exit(f"seed {seed}: {row['stop']}; no row recorded, screen stopped")
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
