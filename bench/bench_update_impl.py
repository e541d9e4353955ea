"""Why the learners carry a hand-written update: the project's DDPG update against the same
update written the usual way (nn.Linear, autograd, fused torch.optim.Adam, _foreach_lerp_ targets),
same sizes (64-unit networks, batch 128), one torch thread, interleaved blocks so that machine noise
hits both alike. Prints updates per second (medians) and their ratio.

    python bench/bench_update_impl.py [--blocks 7] [--block-updates 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

from tennis_assets.agents import AgentConfig, make_learner


def project_learner(cfg: AgentConfig):
    learner = make_learner(cfg)
    rng = np.random.default_rng(0)
    n = 8
    for _ in range(300):
        obs = rng.normal(size=(n, 2, cfg.obs_size)).astype(np.float32)
        learner.observe(obs, rng.uniform(-1, 1, (n, 2, cfg.action_size)).astype(np.float32),
                        rng.normal(size=(n, 2)).astype(np.float32) * 0.01, obs,
                        np.zeros(n, bool))
    return learner.update


def autograd_reference(cfg: AgentConfig):
    o, a, h = cfg.obs_size, cfg.action_size, cfg.actor_hidden

    def mlp(i, out):
        return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, out))

    actor, critic, t_actor, t_critic = mlp(o, a), mlp(o + a, 1), mlp(o, a), mlp(o + a, 1)
    t_actor.load_state_dict(actor.state_dict())
    t_critic.load_state_dict(critic.state_dict())
    opt_a = torch.optim.Adam(actor.parameters(), cfg.actor_lr, fused=True)
    opt_c = torch.optim.Adam(critic.parameters(), cfg.critic_lr, fused=True)
    data = torch.randn(cfg.buffer_size, 2 * o + a + 2)
    online = list(actor.parameters()) + list(critic.parameters())
    target = list(t_actor.parameters()) + list(t_critic.parameters())

    def update():
        b = data[torch.randint(0, data.shape[0], (cfg.batch_size,))]
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


def rate(fn, k: int) -> float:
    t = time.perf_counter()
    for _ in range(k):
        fn()
    return k / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--block-updates", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = AgentConfig(algorithm="ddpg", learning_starts=128)
    ours, ref = project_learner(cfg), autograd_reference(cfg)
    for _ in range(3):  # warm-up
        rate(ours, 50)
        rate(ref, 50)
    a, b = [], []
    for _ in range(args.blocks):
        a.append(rate(ours, args.block_updates))
        b.append(rate(ref, args.block_updates))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}; torch {torch.__version__}, 1 thread")
    print(f"{cfg.actor_hidden}-unit networks, batch {cfg.batch_size}, {args.blocks} blocks of "
          f"{args.block_updates} updates")
    print(f"hand-written update      median {statistics.median(a):7.0f} updates/s "
          f"(min {min(a):.0f}, max {max(a):.0f})")
    print(f"autograd + fused Adam    median {statistics.median(b):7.0f} updates/s "
          f"(min {min(b):.0f}, max {max(b):.0f})")
    print(f"ratio: {statistics.median(a) / statistics.median(b):.2f}x")


if __name__ == "__main__":
    main()
