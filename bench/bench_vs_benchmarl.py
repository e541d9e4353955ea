"""The project's MADDPG beside BenchMARL's MADDPG on MPE simple_spread, same wall budget.

For each seed (random unless --seed-list; printed), one library after the other (never both at
once, so the machine's load hits both alike):

- the project: ``tennis-assets train --env pettingzoo:mpe2.simple_spread_v3:parallel_env
  --env-kwargs '{"continuous_actions": true}' --algorithm maddpg --seconds B --seed S``; its greedy
  evaluations over time come from the run folder's eval_history.csv, its final score from
  report.json;
- BenchMARL (its own venv, --benchmarl-python): ``Experiment`` with ``MaddpgConfig`` and
  ``ExperimentConfig`` from BenchMARL's own yaml defaults, ``PettingZooTask.SIMPLE_SPREAD`` with
  continuous actions and max_cycles=25 (the environment's default, the project's episode), CPU,
  csv logger only, stopped by a callback at the first optimizer step after B wall seconds.
  Changed from its defaults, because its default iteration (6,000 frames then 1,000 updates)
  outlasts the whole budget on this machine: --bm-batch frames per iteration (300) with the same
  updates per frame (1/6), a deterministic evaluation on 10 fresh episodes every
  --bm-eval-every iterations (1), and a 50k-frame replay buffer (its 1M one takes tens of seconds
  to allocate; no run collects 50k frames in the budget). Then the weights at the budget are
  evaluated deterministically on 10 more fresh episodes (outside the budget; the project's
  evaluations count inside its budget).

Both scores are on one scale: an episode's score is the mean over the three agents of each
agent's return (the sum of its rewards over the episode), which is the project's ``mean`` scoring
rule for PettingZoo and BenchMARL's per-agent ``episode_reward`` averaged over the agents (the
worker computes it from BenchMARL's evaluation rollouts directly).

Per library and seed it prints the final score (the project: its last greedy evaluation that ended
within B seconds, and report.json's mean; BenchMARL: the evaluation of its weights at B), the
best evaluation within B, and the wall seconds (from the start of training, evaluations included)
to the first evaluation >= R; then medians over the seeds side by side, with machine, load and
versions.

    python bench/bench_vs_benchmarl.py --seeds 3 --budget 60 --target -22
    python bench/bench_vs_benchmarl.py --seed-list 1 2 3 --budget 60 --benchmarl-python PY
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "pettingzoo:mpe2.simple_spread_v3:parallel_env"
ROW = "BENCHMARL_ROW "


# ---- BenchMARL side: runs inside BenchMARL's venv (only there are its imports available) ----

try:  # BenchMARL's venv; the driver (the project's venv) never builds a Clock
    from benchmarl.experiment.callback import Callback as _Callback
except ImportError:
    _Callback = object


class OutOfBudget(Exception):
    pass


class Clock(_Callback):
    """Records every evaluation's team mean with its wall time; stops at the budget. At module
    level because BenchMARL pickles its callbacks."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget = budget
        self.start = time.perf_counter()
        self.evals: list[dict] = []
        self.collected: list[float] = []  # wall seconds at the end of each collection
        self.updates = 0

    def on_batch_collected(self, batch):
        self.collected.append(time.perf_counter() - self.start)

    def on_train_step(self, batch, group):
        if time.perf_counter() - self.start >= self.budget:
            raise OutOfBudget
        self.updates += 1

    def on_evaluation_end(self, rollouts):
        scores = []
        for r in rollouts:  # one episode each: rewards [T, agents, 1]
            rew = r.get(("next", "agent", "reward"))
            scores.append(float(rew.sum(0).mean()))
        self.evals.append({"seconds": time.perf_counter() - self.start,
                           "frames": self.experiment.total_frames,
                           "greedy_mean": statistics.fmean(scores), "episodes": len(scores)})


def _alias_mpe2() -> None:
    """pettingzoo 1.27 moved MPE into the mpe2 package and pettingzoo.mpe now raises ImportError,
    which torchrl's PettingZooEnv loader does not catch; point that name at mpe2."""
    import mpe2
    import mpe2.all_modules

    sys.modules["pettingzoo.mpe"] = mpe2
    sys.modules["pettingzoo.mpe.all_modules"] = mpe2.all_modules


def benchmarl_worker(seed: int, budget: float, out: str, batch: int, eval_every: int) -> None:
    _alias_mpe2()
    from benchmarl.algorithms import MaddpgConfig
    from benchmarl.environments import PettingZooTask
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    cfg = ExperimentConfig.get_from_yaml()
    cfg.sampling_device = cfg.train_device = cfg.buffer_device = "cpu"
    cfg.loggers, cfg.create_json, cfg.render = ["csv"], False, False
    cfg.save_folder, cfg.checkpoint_at_end = out, False
    # BenchMARL's iteration (6,000 frames, then 1,000 updates) outlasts the whole budget here
    # (its PettingZoo env stepped ~30 steps/s on this shared machine), so iterations are
    # --bm-batch frames with the same updates per frame (1/6); the rest is its yaml default.
    cfg.off_policy_collected_frames_per_batch = batch
    cfg.off_policy_n_optimizer_steps = batch // 6
    cfg.evaluation_interval = batch * eval_every
    # its 1M-frame buffer is allocated at the first extend (tens of seconds here); no run
    # collects 50k frames in the budget, so a 50k buffer samples exactly the same
    cfg.off_policy_memory_size = 50_000
    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update({"max_cycles": 25})
    clock = Clock(budget)
    exp = Experiment(task=task, algorithm_config=MaddpgConfig.get_from_yaml(),
                     model_config=MlpConfig.get_from_yaml(),
                     critic_model_config=MlpConfig.get_from_yaml(),
                     seed=seed, config=cfg, callbacks=[clock])
    clock.start = time.perf_counter()
    try:
        exp.run()
    except OutOfBudget:
        pass
    trained = time.perf_counter() - clock.start
    final = evaluate_after(exp, task, seed, episodes=cfg.evaluation_episodes)
    print(ROW + json.dumps({"evals": clock.evals, "after_budget": final, "trained": trained,
                            "frames": exp.total_frames,
                            "updates": clock.updates, "collected_at": clock.collected,
                            "seconds": time.perf_counter() - clock.start}), flush=True)


def evaluate_after(exp, task, seed: int, episodes: int) -> dict:
    """The deterministic policy at the budget on fresh episodes: run() closed its own test env
    on the way out, so this builds one the way BenchMARL does (its env transforms)."""
    import torch
    from torchrl.envs import Compose, TransformedEnv
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    base = task.get_env_fun(num_envs=1, continuous_actions=True, seed=seed + 10_000,
                            device="cpu")()
    env = TransformedEnv(base, Compose(*task.get_env_transforms(base)))
    t0 = time.perf_counter()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        scores = [float(env.rollout(max_steps=exp.max_steps, policy=exp.policy,
                                    break_when_any_done=True)
                        .get(("next", "agent", "reward")).sum(0).mean())
                  for _ in range(episodes)]
    env.close()
    return {"greedy_mean": statistics.fmean(scores), "episodes": episodes,
            "eval_seconds": time.perf_counter() - t0}


# ---- the driver: runs in the project's venv ----

def summarise(evals: list[dict], budget: float, target: float, at_budget: dict | None) -> dict:
    """final: the project's last evaluation within the budget; BenchMARL's evaluation of its
    weights at the budget (after it; its in-loop evaluations rarely fit)."""
    within = [e for e in evals if e["seconds"] <= budget]
    reach = [e["seconds"] for e in within if e["greedy_mean"] >= target]
    final = at_budget["greedy_mean"] if at_budget else (within[-1]["greedy_mean"] if within
                                                        else None)
    return {"final": final,
            "best": max(e["greedy_mean"] for e in within) if within else None,
            "to_target": reach[0] if reach else None, "evaluations": len(within)}


def run_project(seed: int, budget: float, work: str) -> dict:
    out = os.path.join(work, f"project-{seed}")
    cmd = [sys.executable, "-m", "tennis_assets.cli", "train", "--env", ENV,
           "--env-kwargs", '{"continuous_actions": true}',
           "--algorithm", "maddpg", "--seconds", str(budget), "--seed", str(seed),
           "--out", out, "--no-gif", "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"project run failed (seed {seed}):\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "eval_history.csv")) as f:
        evals = [{"seconds": float(r["seconds"]), "greedy_mean": float(r["greedy_mean"])}
                 for r in csv.DictReader(f)]
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    return {"evals": evals, "report": report, "wall": wall}


def run_benchmarl(python: str, seed: int, budget: float, work: str, bm: list[str]) -> dict:
    out = os.path.join(work, f"benchmarl-{seed}")
    os.makedirs(out, exist_ok=True)
    cmd = [python, os.path.abspath(__file__), "--benchmarl-worker", "--seed-list", str(seed),
           "--budget", str(budget), "--work", out, *bm]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    rows = [ln[len(ROW):] for ln in proc.stdout.splitlines() if ln.startswith(ROW)]
    if proc.returncode != 0 or not rows:
        raise SystemExit(f"BenchMARL run failed (seed {seed}, rc {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    return {**json.loads(rows[-1]), "wall": wall}


def versions(python: str) -> dict:
    code = ("import importlib.metadata as m; print({p: m.version(p) for p in "
            "('benchmarl', 'torchrl', 'torch', 'mpe2', 'pettingzoo')})")
    bm = subprocess.run([python, "-c", code], capture_output=True, text=True,
                        check=False).stdout.strip()
    from importlib.metadata import version
    return {"project": {p: version(p) for p in ("tennis-assets", "torch", "mpe2", "pettingzoo")},
            "benchmarl_venv": bm}


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def med(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def report(rows: dict, budget: float, target: float, n: int) -> None:
    print(f"\nper seed (budget {budget:g} s; R = {target:g}; score = mean over agents of each "
          "agent's episode return):")
    print(f"{'library':10} {'seed':>6} {'final':>8} {'best':>8} {'s to R':>8} {'evals':>6}")
    for lib in ("project", "benchmarl"):
        for seed, s in rows[lib]:
            print(f"{lib:10} {seed:>6} {fmt(s['final']):>8} {fmt(s['best']):>8} "
                  f"{fmt(s['to_target']):>8} {s['evaluations']:>6}")
    print(f"\nmedian of {n} seeds:  final | best | seconds to R (reached by)")
    for lib in ("project", "benchmarl"):
        ss = [s for _, s in rows[lib]]
        hit = sum(s["to_target"] is not None for s in ss)
        print(f"  {lib:10} {fmt(med([s['final'] for s in ss]))} | "
              f"{fmt(med([s['best'] for s in ss]))} | "
              f"{fmt(med([s['to_target'] for s in ss]))} ({hit}/{n})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", type=int, nargs="+")
    ap.add_argument("--budget", type=float, default=90.0, help="wall seconds per run")
    ap.add_argument("--target", type=float, default=-25.0, help="the fixed return R")
    ap.add_argument("--benchmarl-python", default="/work/bm-venv/bin/python")
    ap.add_argument("--bm-batch", type=int, default=300,
                    help="BenchMARL frames per iteration (its default 6000)")
    ap.add_argument("--bm-eval-every", type=int, default=1,
                    help="BenchMARL iterations between evaluations (10 fresh episodes each)")
    ap.add_argument("--work", help="folder for the runs (default: a temporary one)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--benchmarl-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.benchmarl_worker:
        benchmarl_worker(a.seed_list[0], a.budget, a.work, a.bm_batch, a.bm_eval_every)
        return
    if a.budget <= 0 or a.seeds < 1:
        raise SystemExit("--budget and --seeds must be positive")
    if not os.access(a.benchmarl_python, os.X_OK):
        raise SystemExit(f"--benchmarl-python {a.benchmarl_python!r} is not an executable")
    seeds = a.seed_list or [random.SystemRandom().randrange(1, 2**31) for _ in range(a.seeds)]
    work = a.work or tempfile.mkdtemp(prefix="bench_vs_benchmarl-")
    print(f"seeds {seeds}; budget {a.budget:g} s each; R = {a.target:g}; runs in {work}")
    print(f"machine {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; versions {versions(a.benchmarl_python)}")
    load_before = os.getloadavg()
    print(f"load average before {load_before}", flush=True)
    bm = ["--bm-batch", str(a.bm_batch), "--bm-eval-every", str(a.bm_eval_every)]
    rows: dict = {"project": [], "benchmarl": []}
    raw: dict = {"project": {}, "benchmarl": {}}
    for seed in seeds:
        for lib in ("project", "benchmarl"):
            r = (run_project(seed, a.budget, work) if lib == "project"
                 else run_benchmarl(a.benchmarl_python, seed, a.budget, work, bm))
            s = summarise(r["evals"], a.budget, a.target, r.get("after_budget"))
            if lib == "project":
                s["report_mean"] = r["report"].get("evaluation", {}).get("mean")
            else:
                s.update(frames=r["frames"], updates=r["updates"])
            rows[lib].append((seed, s))
            raw[lib][seed] = r
            print(f"  {lib} seed {seed}: {s} (process wall {r['wall']:.1f} s, "
                  f"load {os.getloadavg()[0]:.2f})", flush=True)
    report(rows, a.budget, a.target, len(seeds))
    load_after = os.getloadavg()
    print(f"load average before {load_before} after {load_after}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seeds": seeds, "budget": a.budget, "target": a.target, "rows": rows,
                       "raw": raw, "load_before": load_before, "load_after": load_after}, f)


if __name__ == "__main__":
    main()
