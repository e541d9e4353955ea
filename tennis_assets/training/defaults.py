"""The tuned defaults for each algorithm, as measured with bench/bench_time_to_solve.py on the
project's 2-core CPU machine.

DDPG self-play uses AgentConfig's own defaults (64-64 networks, lr 1e-3, tau 0.05, batch 128,
Gaussian noise 0.3 decaying 0.999 per step to 0.05, pre-tanh penalty 1e-3) with 8 courts and
0.25 updates per player transition: 5/5 seeds reached a greedy mean >= 0.5 over 100 fresh
episodes, median 5.6 s (2.6-14.9 s, 2,000-10,000 updates), and after a 2-minute budget every
seed scored 2.53-2.70 over 500 fresh episodes.

MADDPG learns two actors and two critics from half as many samples each; lr 2e-3 and tau 0.1
gave a median of 43.6-44.7 s to solve against 72.8 s for lr 1e-3 and tau 0.05 (3 seeds each).
It does not reach the 2.0 robustness level within 2 minutes (0.66-1.87 over 500 episodes).
"""

from __future__ import annotations

from tennis_assets.agents import AgentConfig

from .config import TrainConfig


def default_configs(algorithm: str = "ddpg") -> tuple[AgentConfig, TrainConfig]:
    if algorithm == "ddpg":
        return AgentConfig(algorithm="ddpg"), TrainConfig()
    if algorithm == "maddpg":
        return (AgentConfig(algorithm="maddpg", actor_lr=2e-3, critic_lr=2e-3, tau=0.1),
                TrainConfig())
    raise ValueError(f"default_configs: unknown algorithm {algorithm!r}")
