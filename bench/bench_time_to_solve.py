"""Time to solve Tennis, per seed, for one algorithm, on seeds drawn at random.

Seeds: ``--seeds N`` draws N seeds at random (printed, so a run can be repeated with
``--seed-list``); ``--first-seed S`` takes S, S+1, ... instead. A recipe is judged on seeds nobody
tuned it to, so leave the seeds to the draw unless repeating a measurement.

Default mode: for each seed, wall seconds from the start of training to the end of the first
greedy evaluation whose mean over 100 fresh episodes is >= 0.5 (the loop stops there), with the
process's CPU seconds at that point (on a shared machine the wall clock also counts other
people's work; the CPU time of this single-threaded process is close to what the run takes
alone), updates, env steps (court-decisions) and training episodes.

--udacity: one run per seed until the Udacity criterion (last 100 training episodes with
exploration >= 0.5) or --udacity-budget seconds; up to the first greedy solve it is the very run
the default mode makes (evaluations leave the learner alone), so the greedy figures come from it
too. Episodes are counted as public solutions count them: one episode is one game on one court,
scored as the higher of the two players' sums, and every court's games count; greedy evaluation
episodes are not training episodes (--json records how many were played before the criterion).

--budget: train for --budget-seconds (default 120) of wall time, or of process CPU time with
``--clock cpu`` (for a busy machine), keep the best greedy-evaluated weights and score them on
--final-episodes (500) fresh episodes with seeds disjoint from the selection evaluations.

Each mode ends with the median, the worst and the share of seeds within the targets
(--within-seconds, --within-episodes, --min-score; an unsolved seed counts as infinitely slow).

    python bench/bench_time_to_solve.py --seeds 10
    python bench/bench_time_to_solve.py --seeds 10 --udacity
    python bench/bench_time_to_solve.py --seeds 10 --budget --clock cpu
    python bench/bench_time_to_solve.py --algorithm maddpg --seeds 10
    python bench/bench_time_to_solve.py --seed-list 123 456 --set actor_lr=2e-3
    # the learner on a GPU (the update replayed as one CUDA graph there)
    python bench/bench_time_to_solve.py --seeds 5 --udacity --set device=cuda
    # a profile's recipe: stop at a certified greedy 2.2, then score on 100 fresh episodes
    python bench/bench_time_to_solve.py --seeds 3 --max-seconds 60 \\
        --train target_score=2.2 final_eval_episodes=100

--compare-ref REF: the same seeds (time-to-solve mode) with the code at git ref REF and with this
working tree, each seed in a fresh process per tree, alternating which tree goes first so that
the machine's load hits both alike. Prints per seed the updates and training episodes to the
greedy solve for each tree, whether the solving weights are the same to the bit (a sha256 of
them), each tree's updates per second (updates over the seconds spent in updates), and the
ratio this/ref, then the median ratio; with --rounds R each tree runs each seed R times
(alternating, updates/s their median). REF is checked out with ``git archive`` into a
temporary folder.

    python bench/bench_time_to_solve.py --seeds 5 --first-seed 100 --compare-ref main --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = "ROW "  # a worker's result line


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


def draw_seeds(n: int) -> list[int]:
    """n distinct seeds from the OS's entropy (almost surely none the defaults were tuned on)."""
    rng = np.random.default_rng()
    seeds: list[int] = []
    while len(seeds) < n:
        s = int(rng.integers(1_000, 2**31 - 1))
        if s not in seeds:
            seeds.append(s)
    return seeds


def pick_seeds(args: argparse.Namespace) -> list[int]:
    if args.seed_list:
        return list(args.seed_list)
    if args.first_seed is not None:
        return list(range(args.first_seed, args.first_seed + args.seeds))
    return draw_seeds(args.seeds)


def spread(label: str, values: list[Any], unit: str, within: list[float],
           form: str = "{:.1f}", higher_is_better: bool = False) -> str:
    """'label: median M, worst W; <= T: k/n' with a missing value (an unsolved seed) counted as
    the worst case, so neither the median nor the share flatters a run that failed."""
    bad = -np.inf if higher_is_better else np.inf
    vals = sorted(bad if v is None or not np.isfinite(v) else float(v) for v in values)
    worst = vals[0] if higher_is_better else vals[-1]

    def show(v: float) -> str:
        return "-" if not np.isfinite(v) else form.format(v)

    parts = [f"{label}: median {show(float(np.median(vals)))}{unit}, worst {show(worst)}{unit}"]
    word = ">=" if higher_is_better else "<="
    for t in within:
        k = sum((v >= t) if higher_is_better else (v <= t) for v in vals)
        parts.append(f"{word} {form.format(t)}{unit}: {k}/{len(vals)}")
    return "; ".join(parts)


class Marks:
    """The loop's callback: process CPU seconds at the first greedy solve and at the Udacity
    criterion; it stops the run at the criterion (``stop_at_udacity``) or once the process has
    spent ``cpu_budget`` CPU seconds."""

    def __init__(self, target: float, stop_at_udacity: bool, cpu_budget: float | None) -> None:
        self.target, self.stop_at_udacity, self.cpu_budget = target, stop_at_udacity, cpu_budget
        self.cpu0 = time.process_time()
        self.solve_cpu: float | None = None
        self.udacity_cpu: float | None = None

    def cpu(self) -> float:
        return time.process_time() - self.cpu0

    def __call__(self, kind: str, info: dict) -> bool:
        from tennis_assets.training.evaluation import reaches

        if kind == "eval" and info["solved"] and self.solve_cpu is None:
            self.solve_cpu = self.cpu()
        udacity = (kind == "episode" and info["episode"] >= 100
                   and reaches(info["avg100"], self.target))
        if udacity and self.udacity_cpu is None:
            self.udacity_cpu = self.cpu()
        if udacity and self.stop_at_udacity:
            return True
        return self.cpu_budget is not None and self.cpu() >= self.cpu_budget


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--algorithm", choices=["ddpg", "maddpg"], default="ddpg")
    ap.add_argument("--recipe", choices=["seconds", "episodes"], default="seconds",
                    help="training/defaults.py: fewest seconds (default) or fewest episodes")
    ap.add_argument("--seeds", type=int, default=5, help="how many seeds (drawn at random)")
    ap.add_argument("--first-seed", type=int, default=None,
                    help="take seeds first-seed, first-seed+1, ... instead of drawing them")
    ap.add_argument("--seed-list", type=int, nargs="*", default=None,
                    help="exactly these seeds (to repeat a measurement)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="give up on a seed after this long (default 120 ddpg, 300 maddpg)")
    ap.add_argument("--budget", action="store_true", help="robustness mode (see above)")
    ap.add_argument("--budget-seconds", type=float, default=120.0)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="what --budget-seconds counts: wall time, or this process's CPU time")
    ap.add_argument("--final-episodes", type=int, default=500)
    ap.add_argument("--udacity", action="store_true",
                    help="run each seed until the Udacity criterion (or --udacity-budget)")
    ap.add_argument("--udacity-budget", type=float, default=300.0)
    ap.add_argument("--within-seconds", type=float, nargs="*", default=None,
                    help="greedy-solve targets to count seeds within (default 4 10; MADDPG 10 20)")
    ap.add_argument("--within-episodes", type=float, nargs="*", default=[200, 400])
    ap.add_argument("--min-score", type=float, default=2.5,
                    help="--budget: the fresh-episode mean every seed should reach")
    ap.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides key=value")
    ap.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--compare-ref", default=None, metavar="REF",
                    help="run the same seeds with the code at git ref REF too (see above)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="--compare-ref: runs per seed and tree, alternating (median updates/s)")
    ap.add_argument("--worker-tree", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-warmup", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compare_ref and (args.budget or args.udacity):
        ap.error("--compare-ref compares the time-to-solve mode: leave out --budget/--udacity")
    if args.within_seconds is None:
        args.within_seconds = [4.0, 10.0] if args.algorithm == "ddpg" else [10.0, 20.0]
    return args


def use_tree(tree: str | None) -> None:
    """Import tennis_assets from ``tree`` (default: this working tree), ahead of any install."""
    sys.path.insert(0, tree or REPO)


def configs(args: argparse.Namespace) -> tuple[Any, Any]:
    from tennis_assets.training.defaults import default_configs

    agent_base, train_base = default_configs(args.algorithm, args.recipe)
    return (agent_base.replace(**parse_sets(args.set)),
            train_base.replace(**parse_sets(args.train)))


def print_header(args: argparse.Namespace, agent_base: Any, train_base: Any,
                 seeds: list[int]) -> None:
    import torch

    from tennis_assets.agents.base import resolve_device

    device = str(resolve_device(agent_base.device))
    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"{gpu}; learner on {device}; torch {torch.__version__}, {agent_base.torch_threads} "
          f"thread(s); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    mode = "budget" if args.budget else "udacity" if args.udacity else "time-to-solve"
    print(f"# algorithm={args.algorithm} recipe={args.recipe} mode={mode} "
          f"seeds={' '.join(map(str, seeds))} load={os.getloadavg()[0]:.2f}")
    print("# agent:", json.dumps({k: v for k, v in agent_base.to_dict().items()
                                  if k not in ("obs_size", "action_size", "num_agents")}))
    print("# train:", json.dumps({k: v for k, v in train_base.to_dict().items()
                                  if k in ("num_courts", "updates_per_transition",
                                           "explore_with_best", "eval_every_updates",
                                           "eval_episodes", "selection_episodes",
                                           "target_score")}))


def budget_row(args: argparse.Namespace, seed: int, ac: Any, train_base: Any) -> dict:
    from tennis_assets.training import train

    cpu_clock = args.clock == "cpu"
    # With the CPU clock the wall budget is only a guard against a run that never gets the CPU.
    tc = train_base.replace(seed=seed, stop_when_solved=False, keep_best=True,
                            final_eval_episodes=args.final_episodes,
                            max_seconds=args.budget_seconds * (20 if cpu_clock else 1))
    marks = Marks(tc.target_score or 0.5, False, args.budget_seconds if cpu_clock else None)
    r = train(ac, tc, progress=False, callback=marks)
    assert r.final_eval is not None  # final_eval_episodes > 0
    row = {"seed": seed, "final_mean": r.final_eval.mean,
           "final_median": r.final_eval.median, "best_selection_mean": r.best_greedy_mean,
           "best_at_updates": r.best_updates, "updates": r.updates,
           "episodes": r.episodes, "seconds": r.seconds, "cpu_seconds": marks.cpu(),
           "first_solve_s": (r.solved_greedy or {}).get("seconds"),
           "first_solve_cpu_s": marks.solve_cpu,
           "udacity_episodes": (r.solved_udacity or {}).get("episodes"),
           "udacity_s": (r.solved_udacity or {}).get("seconds"), "stop_reason": r.stop_reason}
    print(f"seed {seed}: greedy mean over {args.final_episodes} fresh episodes "
          f"{row['final_mean']:.3f} (median {row['final_median']:.2f}); best selection "
          f"{row['best_selection_mean']:.3f} at {row['best_at_updates']} updates; "
          f"{r.updates} updates, {r.episodes} episodes in {r.seconds:.0f} s wall, "
          f"{row['cpu_seconds']:.0f} s CPU; first solve {fmt(row['first_solve_cpu_s'])} s CPU; "
          f"udacity {row['udacity_episodes']} episodes; load {os.getloadavg()[0]:.2f}",
          flush=True)
    return row


def solve_run(args: argparse.Namespace, seed: int, ac: Any,
              train_base: Any) -> tuple[Any, Any, Marks]:
    """One seed's run: to the first greedy solve, or (--udacity) to the Udacity criterion.

    The --udacity run keeps evaluations at the normal cadence (the evidence that noise decay
    reads); up to the first solve it is the very run the time-to-solve mode makes (evaluations
    leave the learner's state alone), so the greedy figures come from it too."""
    from tennis_assets.training import train

    limit = args.max_seconds or (120.0 if args.algorithm == "ddpg" else 300.0)
    if args.udacity:
        limit = args.udacity_budget
    tc = train_base.replace(seed=seed, max_seconds=limit, stop_when_solved=not args.udacity)
    marks = Marks(tc.target_score or 0.5, args.udacity, None)
    return train(ac, tc, progress=False, callback=marks), tc, marks


def solve_row(args: argparse.Namespace, seed: int, ac: Any, train_base: Any) -> dict:
    r, tc, marks = solve_run(args, seed, ac, train_base)
    s, u, tm = r.solved_greedy or {}, r.solved_udacity or {}, r.timing
    row = {"seed": seed, "solved": r.solved_greedy is not None,
           "seconds": s.get("seconds"), "cpu_seconds": marks.solve_cpu,
           "updates": s.get("updates"), "env_steps": s.get("env_steps"),
           "episodes": s.get("episodes"),
           "update_frac": tm["update"] / tm["total"],
           "eval_frac": tm["evaluate"] / tm["total"],
           "sim_frac": (tm["simulate"] + tm["act"] + tm["store"]) / tm["total"],
           "updates_per_s": r.updates / max(tm["update"], 1e-9),
           "udacity_episodes": u.get("episodes"), "udacity_s": u.get("seconds"),
           "udacity_cpu_s": marks.udacity_cpu, "udacity_updates": u.get("updates"),
           "stop_reason": r.stop_reason,
           # The returned (best, here the solving) weights, to the bit.
           "weights_sha256": hashlib.sha256(
               r.learner.params.detach().cpu().numpy().tobytes()).hexdigest()[:16]}
    if r.final_eval is not None:  # --train final_eval_episodes=N: the returned weights
        row["fresh_mean"] = r.final_eval.mean  # on N fresh, never-selected episodes
        print(f"seed {seed}: greedy mean over {r.final_eval.episodes} fresh episodes "
              f"{r.final_eval.mean:.3f} after {r.seconds:.1f} s ({r.stop_reason})", flush=True)
    if args.udacity:
        # Greedy evaluation episodes are not training episodes, but they are played:
        # reported beside the criterion (early-stopped evaluations count in full).
        before = r.eval_history[r.eval_history["episodes"]
                                <= (row["udacity_episodes"] or 10**12)]
        row["eval_episodes_before_udacity"] = int(len(before) * tc.selection_episodes)
    sec = (f"{row['seconds']:.1f} s ({fmt(row['cpu_seconds'])} s CPU)" if row["solved"]
           else f"not solved in {tc.max_seconds:.0f} s")
    print(f"seed {seed}: {sec}; updates {row['updates']}, env steps {row['env_steps']}, "
          f"episodes {row['episodes']}; time: updates {row['update_frac']:.0%}, eval "
          f"{row['eval_frac']:.0%}, sim+act+store {row['sim_frac']:.0%}; "
          f"{row['updates_per_s']:.0f} updates/s; udacity {row['udacity_episodes']} "
          f"episodes {fmt(row['udacity_s'])} s; load {os.getloadavg()[0]:.2f}", flush=True)
    return row


def print_budget_table(args: argparse.Namespace, rows: list[dict]) -> None:
    clock = "CPU" if args.clock == "cpu" else "wall"
    print(f"| seed | greedy mean / {args.final_episodes} fresh | best selection mean | "
          "updates | episodes | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['final_mean']:.3f} | {r['best_selection_mean']:.3f} | "
              f"{r['updates']} | {r['episodes']} | {r['seconds']:.0f} | "
              f"{r['cpu_seconds']:.0f} |")
    print(spread(f"greedy mean over {args.final_episodes} fresh episodes after "
                 f"{args.budget_seconds:.0f} s ({clock})", [r["final_mean"] for r in rows], "",
                 [args.min_score], "{:.3f}", higher_is_better=True))
    print(spread("greedy 0.5 on the way, CPU seconds", [r["first_solve_cpu_s"] for r in rows],
                 " s", args.within_seconds))
    print(f"updates in the budget: median {med([r['updates'] for r in rows]):.0f}")


def fmt(v: Any, f: str = "{:.1f}") -> str:
    return "-" if v is None else f.format(v)


def print_solve_table(args: argparse.Namespace, rows: list[dict]) -> None:
    print("| seed | solved | seconds | CPU s | updates | env steps | episodes | "
          "udacity episodes | udacity s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['solved']} | {fmt(r['seconds'])} | {fmt(r['cpu_seconds'])} "
              f"| {fmt(r['updates'], '{}')} | {fmt(r['env_steps'], '{}')} | "
              f"{fmt(r['episodes'], '{}')} | {fmt(r['udacity_episodes'], '{}')} | "
              f"{fmt(r['udacity_s'])} |")
    print(f"solved {sum(r['solved'] for r in rows)}/{len(rows)}")
    print(spread("greedy 0.5, wall seconds", [r["seconds"] for r in rows], " s",
                 args.within_seconds))
    print(spread("greedy 0.5, CPU seconds", [r["cpu_seconds"] for r in rows], " s",
                 args.within_seconds))
    print(spread("greedy 0.5, updates", [r["updates"] for r in rows], "", [], "{:.0f}"))
    print(spread("greedy 0.5, training episodes", [r["episodes"] for r in rows], "", [],
                 "{:.0f}"))
    if args.udacity:
        print(spread("Udacity criterion, training episodes",
                     [r["udacity_episodes"] for r in rows], "", args.within_episodes, "{:.0f}"))


def seed_rows(args: argparse.Namespace, seeds: list[int]) -> list[dict]:
    agent_base, train_base = configs(args)
    if args.worker_tree is None:
        print_header(args, agent_base, train_base, seeds)
    rows = []
    for seed in seeds:
        # The run's seed: the learner's own field in trees before the configuration redesign
        # (--compare-ref runs them too), TrainConfig's alone after it.
        ac = agent_base.replace(seed=seed) if "seed" in agent_base.to_dict() else agent_base
        t_wall = time.perf_counter()
        run = budget_row if args.budget else solve_row
        row = run(args, seed, ac, train_base)
        row["wall"] = time.perf_counter() - t_wall
        row["load"] = os.getloadavg()[0]
        if row["stop_reason"].startswith("interrupted"):
            # Ctrl-C / SIGTERM ends the loop's run gracefully: not a measurement, and the
            # signal was meant for the whole bench, not for this seed alone.
            sys.exit(f"seed {seed}: {row['stop_reason']}; no row recorded, bench stopped")
        rows.append(row)
    return rows


# ---- --compare-ref: the same seeds with two trees, side by side ----------------------------
def git(*cmd: str) -> str:
    return subprocess.run(["git", "-C", REPO, *cmd], check=True, capture_output=True,
                          text=True).stdout.strip()


def export_ref(ref: str, into: str) -> str:
    """The files of ``ref`` under ``into`` (``git archive``); returns its short commit id."""
    commit = git("rev-parse", "--short", f"{ref}^{{commit}}")
    data = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", commit], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return commit


def worker_args(args: argparse.Namespace, tree: str, seed: int) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker-tree", tree, "--seeds", "1",
           "--first-seed", str(seed), "--algorithm", args.algorithm, "--recipe", args.recipe]
    if args.max_seconds is not None:
        cmd += ["--max-seconds", str(args.max_seconds)]
    if args.set:
        cmd += ["--set", *args.set]
    if args.train:
        cmd += ["--train", *args.train]
    return cmd


def run_worker(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir(),
                          check=False)
    rows = [line[len(ROW):] for line in done.stdout.splitlines() if line.startswith(ROW)]
    if done.returncode != 0 or not rows:
        sys.exit(f"worker failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(rows[-1])


def compare(args: argparse.Namespace, seeds: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        ref_commit = export_ref(args.compare_ref, tmp)
        dirty = " with uncommitted changes" if git("status", "--porcelain") else ""
        trees = {"ref": tmp, "this": REPO}
        head = git("rev-parse", "--short", "HEAD")
        print_header(args, *configs(args), seeds)
        print(f"# ref: {args.compare_ref} = {ref_commit}; this: {head}{dirty} ({REPO})")
        for tree in trees.values():  # numba compiles (and caches) each tree's simulator once
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker-tree", tree,
                            "--worker-warmup"], check=True, cwd=tempfile.gettempdir())
        pairs = []
        for i, seed in enumerate(seeds):
            runs: dict[str, list[dict]] = {"ref": [], "this": []}
            for k in range(args.rounds):
                order = ["ref", "this"] if (i + k) % 2 == 0 else ["this", "ref"]
                for name in order:
                    runs[name].append(run_worker(worker_args(args, trees[name], seed)))
                print_pair(seed, runs["ref"][-1], runs["this"][-1], order[0])
            pairs.append((seed, merged(runs["ref"]), merged(runs["this"])))
    print_compare_table(args, pairs)


def merged(rows: list[dict]) -> dict:
    """One tree's rounds of a seed: its first row, with the median updates/s, and the weights
    hash only if every round agreed (a run that differs from itself is no baseline)."""
    out = dict(rows[0])
    out["updates_per_s"] = statistics.median(r["updates_per_s"] for r in rows)
    if any((r["weights_sha256"], r["updates"]) != (out["weights_sha256"], out["updates"])
           for r in rows):
        out["weights_sha256"] = "differs between rounds"
    return out


def print_pair(seed: int, ref: dict, this: dict, first: str) -> None:
    print(f"seed {seed} ({first} first): updates {ref['updates']} / {this['updates']}, episodes "
          f"{ref['episodes']} / {this['episodes']}, updates/s {ref['updates_per_s']:.0f} / "
          f"{this['updates_per_s']:.0f}; load {os.getloadavg()[0]:.2f}", flush=True)


def print_compare_table(args: argparse.Namespace, pairs: list[tuple[int, dict, dict]]) -> None:
    print()
    print(f"({args.rounds} run(s) per seed and tree; updates/s: their median)")
    print("| seed | updates to solve (ref / this) | episodes (ref / this) | same weights | "
          "updates/s ref | updates/s this | this/ref |")
    print("|---|---|---|---|---|---|---|")
    ratios, same = [], 0
    for seed, ref, this in pairs:
        ratio = this["updates_per_s"] / ref["updates_per_s"]
        ratios.append(ratio)
        identical = ref["weights_sha256"] == this["weights_sha256"]
        same += identical and ref["updates"] == this["updates"]
        print(f"| {seed} | {fmt(ref['updates'], '{}')} / {fmt(this['updates'], '{}')} | "
              f"{fmt(ref['episodes'], '{}')} / {fmt(this['episodes'], '{}')} | "
              f"{'yes' if identical else 'NO'} | {ref['updates_per_s']:.0f} | "
              f"{this['updates_per_s']:.0f} | {ratio:.3f} |")
    print(f"same updates and weights on {same}/{len(pairs)} seeds; updates/s this/ref: median "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    args = parse_args()
    use_tree(args.worker_tree)
    if args.worker_warmup:
        from tennis_assets.sim import VecTennis

        env = VecTennis(num_courts=2, seed=0)
        env.step(np.zeros((2, env.num_agents, env.action_size), np.float32))
        return
    seeds = pick_seeds(args)
    if args.compare_ref:
        compare(args, seeds)
        return
    rows = seed_rows(args, seeds)
    if args.worker_tree is not None:
        print(ROW + json.dumps(rows[0], default=float))
        return
    print()
    print(f"# seeds {' '.join(map(str, seeds))}; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.budget:
        print_budget_table(args, rows)
    else:
        print_solve_table(args, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2, default=float)


if __name__ == "__main__":
    main()
