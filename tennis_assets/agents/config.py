"""One hyperparameter dataclass for both learners.

A single flat dataclass (rather than one per algorithm) keeps the JSON sidecar of a checkpoint,
tuning search spaces and Dagster config mirrors trivial: every field is a plain scalar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tennis_assets.config_io import DictConfig
from tennis_assets.seeds import SEED_MAX, check_seed  # noqa: F401 - re-exported

ALGORITHMS = ("ddpg", "maddpg")
NOISE_KINDS = ("gaussian", "ou")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class AgentConfig(DictConfig):
    algorithm: str = "ddpg"
    obs_size: int = 24
    action_size: int = 2
    num_agents: int = 2
    # Networks: two hidden ReLU layers; the actor ends in tanh. Defaults are the DDPG self-play
    # values tuned with bench/bench_time_to_solve.py: 64-unit layers need about as many updates
    # to solve as 128-unit ones but each update costs half as much on a 2-core CPU, and tau 0.05
    # (vs 0.02) cut the updates needed by about 40%; lr 2e-3 solved as fast but plateaued lower
    # in the 2-minute robustness check.
    actor_hidden: int = 64
    critic_hidden: int = 64
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    weight_decay: float = 0.0
    gamma: float = 0.99
    tau: float = 0.05
    # TD3's target policy smoothing: Gaussian noise of this scale, clipped to +-target_noise_clip,
    # on the target actions (0: off).
    target_noise: float = 0.0
    target_noise_clip: float = 0.5
    # MADDPG only: one critic shared by both players (each row in the player's own view).
    shared_critic: bool = False
    # Run the gradient computation through torch.compile (see bench/bench_update_impl.py).
    compile_update: bool = False
    # On a CUDA device, replay the update (after sampling) as one CUDA graph unless
    # compile_update asks for torch.compile; no effect on the CPU (bench/bench_update_impl.py:
    # on the GPU the eager update's ~100 kernel launches cost more than their arithmetic).
    cuda_graph_update: bool = True
    # n-step returns (1: plain one-step targets). See agents/nstep.py.
    n_step: int = 1
    batch_size: int = 128
    buffer_size: int = 200_000
    # Penalty on the actor's pre-tanh output (coefficient times its mean square). Without it the
    # reference implementation saw 3 of 6 runs stall with saturated actors; with it all solved.
    preact_penalty: float = 1e-3
    # Gradient-norm clip on the critic; 0 disables it (and saves a few kernel launches).
    critic_grad_clip: float = 0.0
    # Exploration noise added to actions before clipping to [-1, 1].
    noise: str = "gaussian"
    noise_sigma: float = 0.3
    noise_sigma_min: float = 0.05
    # Multiplicative decay of sigma applied once per environment step (per act(explore=True)).
    noise_decay: float = 0.999
    # Evidence-based decay: sigma is multiplied by this each time a greedy evaluation beats every
    # earlier one (1.0: off). See agents/noise.py and training/defaults.py for the measurement.
    noise_eval_decay: float = 1.0
    # When a greedy evaluation first certifies the run's target, sigma and its floor are
    # multiplied by this (1.0: off; 0.0: no noise from then on). See agents/noise.py.
    noise_solved_scale: float = 1.0
    ou_theta: float = 0.15
    # Updates start only once the buffer holds this many samples: player transitions for ddpg,
    # joint (both-player) transitions for maddpg.
    learning_starts: int = 1_000
    seed: int = 0
    device: str = "auto"
    # torch intra-op threads for the whole process (torch.set_num_threads); 0 leaves torch's
    # default. With the default 64-unit layers one thread was faster than two even on a quiet
    # 2-core machine (DDPG: about 930 vs 625 updates/s), and two threads collapse (about 10x
    # slower) as soon as another process competes for the cores (bench/bench_updates.py).
    torch_threads: int = 1

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"AgentConfig.{name}={getattr(self, name)!r}: {why}")

        if self.algorithm not in ALGORITHMS:
            raise bad("algorithm", f"unknown algorithm; expected one of {ALGORITHMS}")
        if self.noise not in NOISE_KINDS:
            raise bad("noise", f"unknown noise kind; expected one of {NOISE_KINDS}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise bad("device", f"expected one of {DEVICES} or 'cuda:N'")
        for name in ("obs_size", "action_size", "actor_hidden", "critic_hidden", "batch_size",
                     "buffer_size", "n_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "must be an integer >= 1")
        if isinstance(self.num_agents, bool) or not isinstance(self.num_agents, int) \
                or self.num_agents < 1:
            raise bad("num_agents", "must be an integer >= 1")
        self.seed = check_seed(self.seed, "AgentConfig.seed")
        for name in ("learning_starts", "torch_threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(name, "must be an integer >= 0")
        floats = ("actor_lr", "critic_lr", "weight_decay", "gamma", "tau", "preact_penalty",
                  "critic_grad_clip", "noise_sigma", "noise_sigma_min", "noise_decay", "ou_theta",
                  "noise_eval_decay", "noise_solved_scale", "target_noise", "target_noise_clip")
        for name in floats:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "must be a finite number")
        for name in ("actor_lr", "critic_lr"):
            if getattr(self, name) <= 0:
                raise bad(name, "learning rate must be > 0")
        for name in ("shared_critic", "compile_update", "cuda_graph_update"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        if self.shared_critic and self.algorithm != "maddpg":
            raise bad("shared_critic", "applies to maddpg (ddpg self-play shares everything)")
        for name in ("weight_decay", "preact_penalty", "critic_grad_clip", "noise_sigma",
                     "target_noise", "target_noise_clip",
                     "noise_sigma_min", "ou_theta"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if not 0.0 <= self.gamma <= 1.0:
            raise bad("gamma", "discount must lie in [0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise bad("tau", "soft-update rate must lie in (0, 1]")
        if not 0.0 < self.noise_decay <= 1.0:
            raise bad("noise_decay", "must lie in (0, 1]")
        if not 0.0 < self.noise_eval_decay <= 1.0:
            raise bad("noise_eval_decay", "must lie in (0, 1]")
        if not 0.0 <= self.noise_solved_scale <= 1.0:
            raise bad("noise_solved_scale", "must lie in [0, 1]")
        if self.noise_sigma_min > self.noise_sigma:
            raise bad("noise_sigma_min", f"must not exceed noise_sigma={self.noise_sigma}")
        if self.batch_size > self.buffer_size:
            raise bad("batch_size", f"must not exceed buffer_size={self.buffer_size}")
        if self.algorithm == "ddpg" and self.num_agents != 2:
            # Self-play shares one network between mirrored players; the simulator has two.
            raise bad("num_agents", "ddpg self-play is defined for the two-player game")
