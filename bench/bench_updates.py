"""Gradient updates per second for the learners (no simulator involved).

Fills the replay buffer with random transitions, warms up, then times blocks of updates and
reports the median rate over --repeats blocks, for each algorithm and thread count asked for.

    python bench/bench_updates.py
    python bench/bench_updates.py --threads 1 2 --set actor_hidden=64 critic_hidden=64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tennis_assets.agents import make_learner
from tennis_assets.training.defaults import default_configs


def rate(cfg, block: int, repeats: int) -> tuple[float, list[float]]:
    learner = make_learner(cfg)
    rng = np.random.default_rng(0)
    while not learner.ready():
        obs = rng.standard_normal((8, 2, 24)).astype(np.float32)
        learner.observe(obs, learner.act(obs, explore=True),
                        rng.choice([0.0, 0.1, -0.01], (8, 2)).astype(np.float32),
                        rng.standard_normal((8, 2, 24)).astype(np.float32), rng.random(8) < 0.05)
    for _ in range(50):
        learner.update()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(block):
            learner.update()
        rates.append(block / (time.perf_counter() - t))
    return float(np.median(rates)), rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--algorithms", nargs="*", default=["ddpg", "maddpg"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--block", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides key=value")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        k, v = item.split("=", 1)
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| algorithm | threads | hidden | batch | updates/s (median) | ms/update | min-max |")
    print("|---|---|---|---|---|---|---|")
    for alg in args.algorithms:
        base, _ = default_configs(alg)
        for th in args.threads:
            cfg = base.replace(torch_threads=th, **overrides)
            med, rates = rate(cfg, args.block, args.repeats)
            print(f"| {alg} | {th} | {cfg.actor_hidden}/{cfg.critic_hidden} | {cfg.batch_size} | "
                  f"{med:.0f} | {1000 / med:.2f} | {min(rates):.0f}-{max(rates):.0f} |",
                  flush=True)
    print(f"# load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
