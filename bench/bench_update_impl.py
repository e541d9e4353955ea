"""Why the learners carry a hand-written update: the project's DDPG update (eager; with its
gradient computation through torch.compile, AgentConfig.compile_update; and on a GPU replayed as
one CUDA graph, AgentConfig.cuda_graph_update) against the same update written the usual way
(nn.Linear, autograd, fused torch.optim.Adam, _foreach_lerp_ targets), same sizes (64-unit
networks, batch 128), one torch thread, interleaved blocks so that machine noise hits all alike.
Prints updates per second (medians) and their ratios; on a GPU it first checks that the CUDA
graph's weights follow the eager update's on the same batches.

    python bench/bench_update_impl.py [--blocks 7] [--block-updates 300] [--algorithm maddpg]
        [--device cpu|cuda]

Measured 2026-12-04 (updates/s, medians; ratio to the eager hand-written update):
- NVIDIA H200 (the device machine: 16-core x86_64, torch 2.11.0+cu130, load 0.3-0.7; run by
  bench/gpu_check.sh): eager 444, torch.compile 478 (1.08x; 21 s of compilation), CUDA graph
  3,655 (8.23x), autograd + fused Adam 169 (0.38x); graph vs eager after 50 updates on the same
  batches: largest weight difference 1.6e-3 (Adam turns rounding-level gradient differences on
  near-zero gradients into steps of up to lr = 1e-3). The CUDA graph is the default on CUDA.
- That machine's CPU, one thread, beside a GPU training run (load 0.9-2.2, --blocks 5): eager
  838, torch.compile 1,086 (1.29x; 99 s of compilation), autograd 315 (0.38x).
- This project's 2-core VM (torch 2.13.0+cpu, load 3-10, so ratios only; --blocks 5): eager
  1,140, torch.compile 1,450 (1.27x; 48 s of compilation), autograd 418 (0.37x). On the CPU the
  compile costs ten times a whole greedy solve (about 4.5 s), so eager stays the default there
  and AgentConfig.compile_update turns the compile on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn

from tennis_assets.agents import AgentConfig, make_learner


def filled_learner(cfg: AgentConfig):
    learner = make_learner(cfg)
    rng = np.random.default_rng(0)
    n = 8
    for _ in range(300):
        obs = rng.normal(size=(n, 2, cfg.obs_size)).astype(np.float32)
        learner.observe(obs, rng.uniform(-1, 1, (n, 2, cfg.action_size)).astype(np.float32),
                        rng.normal(size=(n, 2)).astype(np.float32) * 0.01, obs,
                        np.zeros(n, bool))
    return learner


def project_learner(cfg: AgentConfig):
    learner = filled_learner(cfg)
    return lambda: learner.update(report=False)  # as the training loop calls it


def graph_matches_eager(cfg: AgentConfig, updates: int = 50) -> float:
    """Largest weight difference between the eager update and the CUDA graph after the same
    batches (the graph's Adam computes its bias corrections on the device: rounding only)."""
    eager = filled_learner(cfg.replace(cuda_graph_update=False))
    graphed = filled_learner(cfg.replace(cuda_graph_update=True))
    for _ in range(updates):
        batch = eager.buffer.sample(cfg.batch_size)
        with torch.no_grad():
            eager.run_update(batch)
            graphed.run_update(batch)
    torch.cuda.synchronize()
    return float((eager.params - graphed.params).abs().max())


def autograd_reference(cfg: AgentConfig, device: torch.device):
    o, a, h = cfg.obs_size, cfg.action_size, cfg.actor_hidden

    def mlp(i, out):
        return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, out)).to(device)

    actor, critic, t_actor, t_critic = mlp(o, a), mlp(o + a, 1), mlp(o, a), mlp(o + a, 1)
    t_actor.load_state_dict(actor.state_dict())
    t_critic.load_state_dict(critic.state_dict())
    opt_a = torch.optim.Adam(actor.parameters(), cfg.actor_lr, fused=True)
    opt_c = torch.optim.Adam(critic.parameters(), cfg.critic_lr, fused=True)
    data = torch.randn(cfg.buffer_size, 2 * o + a + 2, device=device)
    online = list(actor.parameters()) + list(critic.parameters())
    target = list(t_actor.parameters()) + list(t_critic.parameters())

    def update():
        b = data[torch.randint(0, data.shape[0], (cfg.batch_size,), device=device)]
        obs, act, rew = b[:, :o], b[:, o:o + a], b[:, o + a:o + a + 1]
        nxt, done = b[:, o + a + 1:2 * o + a + 1], b[:, -1:]
        with torch.no_grad():
            y = rew + cfg.gamma * (1 - done) * t_critic(torch.cat([nxt, t_actor(nxt).tanh()], 1))
        loss_c = ((critic(torch.cat([obs, act], 1)) - y) ** 2).mean()
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        opt_c.step()
        pre = actor(obs)
        loss_a = (-critic(torch.cat([obs, pre.tanh()], 1)).mean()
                  + cfg.preact_penalty * (pre ** 2).mean())
        opt_a.zero_grad(set_to_none=True)
        loss_a.backward()
        opt_a.step()
        with torch.no_grad():
            torch._foreach_lerp_(target, online, cfg.tau)

    return update


def rate(fn, k: int, cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(k):
        fn()
    if cuda:  # the GPU's queue counts: the block ends when its last update has run
        torch.cuda.synchronize()
    return k / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--block-updates", type=int, default=300)
    parser.add_argument("--algorithm", choices=["ddpg", "maddpg"], default="ddpg")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cuda when available, else cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    cfg = AgentConfig(algorithm=args.algorithm, learning_starts=128, device=device)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch "
          f"{torch.__version__}, 1 thread; GPU: {gpu}; measuring on {device}"
          + ("" if cuda else " (CUDA graphs need a GPU: not measured)"))
    if cuda:
        print(f"CUDA graph vs eager after 50 updates on the same batches: largest weight "
              f"difference {graph_matches_eager(cfg):.2e}")
    t0 = time.perf_counter()
    eager = cfg.replace(cuda_graph_update=False)
    variants = {"hand-written, eager": project_learner(eager),
                "hand-written, torch.compile": project_learner(eager.replace(compile_update=True))}
    if cuda:
        variants["hand-written, CUDA graph"] = project_learner(
            cfg.replace(cuda_graph_update=True))
    if args.algorithm == "ddpg":
        variants["autograd + fused Adam"] = autograd_reference(cfg, torch.device(device))
    for fn in variants.values():  # warm-up (and the compile, and the graph capture)
        for _ in range(3):
            rate(fn, 50, cuda)
    print(f"warm-up including compilation: {time.perf_counter() - t0:.1f} s")
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.blocks):
        for name, fn in variants.items():
            rates[name].append(rate(fn, args.block_updates, cuda))
    print(f"{args.algorithm}, {cfg.actor_hidden}-unit networks, batch {cfg.batch_size}, "
          f"{args.blocks} blocks of {args.block_updates} updates on {device}; load now "
          f"{os.getloadavg()[0]:.2f}")
    base = statistics.median(rates["hand-written, eager"])
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:30s} median {med:7.0f} updates/s (min {min(r):.0f}, max {max(r):.0f}); "
              f"{med / base:.2f}x the eager hand-written update")


if __name__ == "__main__":
    main()
