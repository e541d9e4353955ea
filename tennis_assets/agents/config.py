"""The learner's hyperparameters, one model for both learners.

A single flat model (rather than one per algorithm) keeps the JSON sidecar of a checkpoint,
tuning search spaces and the derived Dagster and CLI options trivial: every field is a scalar.
Defaults are the DDPG self-play values measured with bench/bench_time_to_solve.py (see
training/defaults.py for the measurements).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator
from pydantic.json_schema import JsonDict

from tennis_assets.config.model import ConfigModel

Algorithm = Literal["ddpg", "maddpg"]
NoiseKind = Literal["gaussian", "ou"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
NOISE_KINDS: tuple[str, ...] = get_args(NoiseKind)
DEVICES = ("auto", "cpu", "cuda")
# Fields the environment sets (tennis_assets.envs.fit_agent), never a person: no option offers
# them, and a checkpoint's values are the game's.
FROM_ENVIRONMENT: JsonDict = {"derived": "environment"}
# A hidden layer wider than this is no small-network learner's (and its weights alone would be
# gigabytes): refused by the configuration, before any allocation.
MAX_UNITS = 8192


class AgentConfig(ConfigModel):
    """Learner hyperparameters (tennis_assets.agents)."""

    algorithm: Algorithm = "ddpg"
    """ddpg: self-play with one actor and critic shared by both players (the default, fastest);
    maddpg: per-player actors with centralised critics."""
    obs_size: int = Field(24, ge=1, json_schema_extra=FROM_ENVIRONMENT)
    """Observation floats per agent (the environment's)."""
    action_size: int = Field(2, ge=1, json_schema_extra=FROM_ENVIRONMENT)
    """Action floats per agent (the environment's)."""
    num_agents: int = Field(2, ge=1, json_schema_extra=FROM_ENVIRONMENT)
    """Agents per environment step (the environment's)."""
    actor_hidden: int = Field(64, ge=1, le=MAX_UNITS)
    """Units of each of the actor's two hidden ReLU layers."""
    critic_hidden: int = Field(64, ge=1, le=MAX_UNITS)
    """Units of each of the critic's two hidden ReLU layers."""
    actor_lr: float = Field(1e-3, gt=0.0)
    """Adam learning rate of the actor."""
    critic_lr: float = Field(1e-3, gt=0.0)
    """Adam learning rate of the critic."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 weight decay on the critic (as in the DDPG paper); 0: off."""
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    """Discount factor."""
    tau: float = Field(0.05, gt=0.0, le=1.0)
    """Soft target-update rate."""
    target_noise: float = Field(0.0, ge=0.0)
    """TD3's target policy smoothing: Gaussian noise of this scale on the target actions (0:
    off)."""
    target_noise_clip: float = Field(0.5, ge=0.0)
    """Clip of the target policy smoothing noise."""
    shared_critic: bool = False
    """MADDPG only: one critic shared by both players (each row in the player's own view)."""
    compile_update: bool = False
    """Run the gradient computation through torch.compile (bench/bench_update_impl.py)."""
    cuda_graph_update: bool = True
    """On a CUDA device, replay the update as one CUDA graph (no effect on the CPU)."""
    n_step: int = Field(1, ge=1, le=1000)
    """n-step returns (1: one-step targets; agents/nstep.py)."""
    batch_size: int = Field(128, ge=1)
    """Samples per gradient update."""
    buffer_size: int = Field(200_000, ge=1)
    """Replay buffer capacity in samples."""
    preact_penalty: float = Field(1e-3, ge=0.0)
    """Penalty on the actor's pre-tanh output (coefficient times its mean square): keeps actors
    from saturating."""
    critic_grad_clip: float = Field(0.0, ge=0.0)
    """Gradient-norm clip on the critic; 0: off."""
    noise: NoiseKind = "gaussian"
    """Exploration noise added to actions before clipping to [-1, 1]."""
    noise_sigma: float = Field(0.3, ge=0.0)
    """Initial scale of the exploration noise."""
    noise_sigma_min: float = Field(0.05, ge=0.0)
    """Floor of the exploration noise scale."""
    noise_decay: float = Field(0.999, gt=0.0, le=1.0)
    """Multiplicative decay of the noise scale per environment step."""
    noise_eval_decay: float = Field(1.0, gt=0.0, le=1.0)
    """Noise scale multiplied by this at each greedy evaluation that beats every earlier one
    (1: off)."""
    noise_solved_scale: float = Field(1.0, ge=0.0, le=1.0)
    """Noise scale and floor multiplied by this when a greedy evaluation first certifies the
    run's target (1: off; 0: no noise from then on)."""
    ou_theta: float = Field(0.15, ge=0.0)
    """Mean reversion of Ornstein-Uhlenbeck noise."""
    reward_share: float = Field(0.0, ge=0.0, le=1.0)
    """Each agent learns from its own reward plus this share of the mean of the other agents'
    rewards (0: its own only, as the environment pays; 1: in Tennis, the two players' sum, the
    game learned as a team). Scores and evaluations stay the environment's."""
    learning_starts: int = Field(1_000, ge=0)
    """Updates start once the buffer holds this many samples."""
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    """auto (CUDA when present), cpu, cuda or cuda:N."""
    torch_threads: int = Field(1, ge=0)
    """torch intra-op threads for the whole process; 0 leaves torch's default (one thread was
    fastest on a shared 2-core CPU)."""

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        if self.shared_critic and self.algorithm != "maddpg":
            raise ValueError("shared_critic applies to maddpg (ddpg self-play shares everything)")
        if self.noise_sigma_min > self.noise_sigma:
            raise ValueError(f"noise_sigma_min={self.noise_sigma_min} must not exceed "
                             f"noise_sigma={self.noise_sigma}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size={self.batch_size} must not exceed "
                             f"buffer_size={self.buffer_size}")
        return self
