"""What DDPG self-play and MADDPG share: the device, flat weights and their update, acting with
exploration, storing transitions, and tensor-only state dicts. A subclass gives the row layout:
how a transition becomes replay rows, and where a sampled row's pieces sit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .adam import FlatAdam
from .config import AgentConfig
from .networks import FlatLayout, Layers, actor_actions, forward
from .noise import DecayingNoise
from .nstep import NStepWindow
from .replay import ReplayBuffer
from .update import EagerUpdate, GraphedUpdate, Losses


def done_column(terminated: np.ndarray, n: int, m: int) -> np.ndarray:
    """Termination flags, per court [N] or per agent [N, A], as a float column [N, A, 1]."""
    flags = np.asarray(terminated, bool)
    if flags.ndim == 1:
        flags = flags[:, None]
    return np.broadcast_to(flags.astype(np.float32)[..., None], (n, m, 1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"AgentConfig.device={name!r}: CUDA is not available on this machine")
    return torch.device(name)


class Learner:
    """Common machinery; subclasses define the row layout (``_rows`` and the batch slices).

    All network weights live in one flat vector ``params`` (targets in ``target``, gradients in
    ``grad``); ``p``, ``t`` and ``g`` hold the per-network layer views into them.
    """

    config: AgentConfig
    own_action_cols: slice  # where the member's own action sits in the critic input

    def __init__(self, config: AgentConfig, members: int, actor_in: int, critic_in: int,
                 row_width: int, critic_members: int | None = None, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        if config.torch_threads > 0 and torch.get_num_threads() != config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.device = resolve_device(config.device)
        self.members = members
        # A critic shared by all members sees all members' rows as one batch.
        self.critic_members = members if critic_members is None else critic_members
        self._init_weights(actor_in, critic_in)
        self.buffer = ReplayBuffer(config.buffer_size, row_width, members=members,
                                   device=self.device, seed=seed + 1)
        self.noise = DecayingNoise(config.noise, config.noise_sigma, config.noise_sigma_min,
                                   config.noise_decay, config.ou_theta, seed=seed + 2,
                                   eval_decay=config.noise_eval_decay,
                                   solved_scale=config.noise_solved_scale)
        self.nstep = NStepWindow(config.n_step, config.gamma) if config.n_step > 1 else None
        # The bootstrap discount: with n-step rows the target looks n steps ahead.
        self.bootstrap_gamma = config.gamma ** config.n_step
        self.target_generator = torch.Generator(device=self.device)
        self.target_generator.manual_seed(int(seed) + 3)
        # The update after sampling (agents/update.py): one CUDA graph on a GPU unless
        # compile_update asks for torch.compile; eager (or compiled) everywhere else.
        self.graphed = (config.cuda_graph_update and self.device.type == "cuda"
                        and not config.compile_update)
        self.run_update: Callable[[torch.Tensor], Losses] = (
            GraphedUpdate(self) if self.graphed
            else EagerUpdate(self, compiled=config.compile_update))
        self.updates = 0
        self.transitions = 0
        # The actor that plays exploring (training) steps, when it is not the one being trained;
        # see set_behaviour.
        self._behaviour_actor: Layers | None = None
        self._behaviour_courts: int | None = None  # how many courts play it (None: all)

    def _init_weights(self, actor_in: int, critic_in: int) -> None:
        """The flat weights, their targets and gradients, and Adam with the actor's and the
        critic's learning rates (weight decay on the critic only, as in the DDPG paper)."""
        cfg = self.config
        self.layout = FlatLayout({
            "actor": (self.members, actor_in, cfg.actor_hidden, cfg.action_size),
            "critic": (self.critic_members, critic_in, cfg.critic_hidden, 1),
        })
        kw: dict[str, Any] = {"dtype": torch.float32, "device": self.device}
        self.params = torch.zeros(self.layout.size, **kw)
        self.layout.init(self.params, torch.Generator().manual_seed(int(self.seed)))
        self.target = self.params.clone()
        self.grad = torch.zeros(self.layout.size, **kw)
        self.p = self.layout.views(self.params)
        self.t = self.layout.views(self.target)
        self.g = self.layout.views(self.grad)
        a_sl, c_sl = self.layout.net_slices["actor"], self.layout.net_slices["critic"]
        self.critic_slice = c_sl
        lr = torch.empty(self.layout.size, **kw)
        lr[a_sl], lr[c_sl] = cfg.actor_lr, cfg.critic_lr
        wd = None
        if cfg.weight_decay > 0:
            wd = torch.zeros(self.layout.size, **kw)
            wd[c_sl] = cfg.weight_decay
        self.optimizer = FlatAdam(self.params, lr, wd)

    # ---- acting -----------------------------------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """obs [N, 2, 24] -> actions [N, 2, 2] in [-1, 1]. explore adds decaying noise."""
        obs_np = np.asarray(obs, dtype=np.float32)
        if obs_np.ndim != 3 or obs_np.shape[1:] != (self.config.num_agents, self.config.obs_size):
            raise ValueError(f"act: obs of shape {obs_np.shape}, expected "
                             f"[N, {self.config.num_agents}, {self.config.obs_size}]")
        behaviour = self._behaviour_actor if explore else None
        mixed = behaviour is not None and self._behaviour_courts is not None
        actor = behaviour if behaviour is not None and not mixed else self.p["actor"]
        x = torch.from_numpy(obs_np).to(self.device)
        n_agents, n_obs = self.config.num_agents, self.config.obs_size
        actions = actor_actions(actor, x, n_agents, n_obs).cpu().numpy()
        if explore:
            actions = actions + self.noise.sample(actions.shape)
            np.clip(actions, -1.0, 1.0, out=actions)
        if mixed:
            assert behaviour is not None and self._behaviour_courts is not None
            k = min(self._behaviour_courts, obs_np.shape[0])
            actions[:k] = actor_actions(behaviour, x[:k], n_agents, n_obs).cpu().numpy()
        return actions

    def set_behaviour(self, params: torch.Tensor | None, courts: int | None = None) -> None:
        """Play exploring steps with the actor of ``params`` (a flat vector of this layout, e.g.
        the best greedy-evaluated weights; it is copied), or again with the trained actor (None).
        Learning is off-policy, so the trained actor still learns from what this one plays;
        greedy acting (explore=False) always uses the trained actor.

        courts: only the first ``courts`` courts of each ``act`` call play that actor, and
        greedily (no noise), while the others go on exploring with the trained actor and the
        noise, so the trained actor still sees what its own actions do; None: every court plays
        that actor, with the noise."""
        if params is None:
            self._behaviour_actor, self._behaviour_courts = None, None
            return
        self._behaviour_actor = self.layout.views(params.detach().clone())["actor"]
        self._behaviour_courts = courts

    def reset_noise(self, mask: np.ndarray | None = None) -> None:
        self.noise.reset(mask)

    def record_evaluation(self, mean: float, solved: bool = False) -> None:
        """A greedy evaluation's mean and whether it certified the run's target (the training
        loop reports each): evidence for the noise."""
        self.noise.record_evaluation(mean, solved)

    # ---- learning ---------------------------------------------------------------------------
    def observe(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                next_obs: np.ndarray, terminated: np.ndarray,
                truncated: np.ndarray | None = None, active: np.ndarray | None = None) -> None:
        """Store one vectorized step. next_obs must be the episode's last obs where it ended
        (VecTennis's final_obs); truncated episodes are stored as not done so they bootstrap.
        terminated: per court [N], or per agent [N, A] where agents end at different times.
        truncated is needed with n_step > 1 (a window must not run into the next episode).
        active [N, A]: the agents that acted (None: all); the others' transitions are not
        samples of their own (a learner of per-agent rows leaves them out)."""
        obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
        rewards, next_obs = np.asarray(rewards, np.float32), np.asarray(next_obs, np.float32)
        if self.config.reward_share > 0 and rewards.shape[1] > 1:
            rewards = self._shared_rewards(rewards)
        if self.nstep is None:
            done = np.asarray(terminated, bool)
        else:
            if truncated is None:
                raise ValueError("observe: n_step > 1 needs the truncated flags")
            # n-step windows are per court: a court's window ends when its episode does, and
            # every transition of a window is kept (agents that left count as played).
            court_done = np.asarray(terminated, bool)
            if court_done.ndim == 2:
                court_done = np.asarray(court_done.all(axis=1), bool)
            out = self.nstep.push(obs, actions, rewards, next_obs, court_done, truncated)
            if out is None:
                return
            obs, actions, rewards, next_obs, done = out
            active = None
        rows = self._rows(obs, actions, rewards, next_obs, done, active)
        if rows.shape[0]:
            self.buffer.add(rows)
        self.transitions += rows.shape[0] * rows.shape[1]

    def _shared_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """Each agent's reward plus reward_share times the mean of the others' [N, A]: in
        Tennis a shot the other player can return then pays the hitter too, not only its own
        hits (the one-hit plateau: hitting over the net pays, a returnable shot does not)."""
        others = (rewards.sum(axis=1, keepdims=True) - rewards) / (rewards.shape[1] - 1)
        return rewards + np.float32(self.config.reward_share) * others

    def _rows(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray,
              active: np.ndarray | None = None) -> np.ndarray:
        """One vectorized step as replay rows [k, members, width]."""
        raise NotImplementedError

    def ready(self) -> bool:
        return len(self.buffer) >= max(self.config.learning_starts, self.config.batch_size)

    def update(self, report: bool = True) -> dict[str, Any]:
        """One update (agents/update.py) on a sampled batch. Returns {} (and does nothing)
        until the buffer holds learning_starts samples, then the losses: floats, or with
        report=False 0-dim tensors, so that a GPU is not waited for at every update."""
        if not self.ready():
            return {}
        with torch.no_grad():
            batch = self.buffer.sample(self.config.batch_size)
            critic_loss, actor_loss = self.run_update(batch)
        self.updates += 1
        if report:
            return {"critic_loss": float(critic_loss), "actor_loss": float(actor_loss)}
        return {"critic_loss": critic_loss, "actor_loss": actor_loss}

    # Row layout: how a sampled batch [members, B, width] splits into the pieces of an update.
    def critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def own_obs(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reward_done(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def target_critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        """Critic input at the next state with the target actors' actions."""
        raise NotImplementedError

    def policy_critic_input(self, batch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Critic input at the current state with the member's own action replaced."""
        raise NotImplementedError

    def target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The target actors' actions at the next state; with target_noise > 0, TD3's target
        policy smoothing (clipped Gaussian noise, then back into [-1, 1])."""
        act = forward(self.t["actor"], next_obs)[0].tanh_()
        cfg = self.config
        if cfg.target_noise > 0:
            eps = torch.randn(act.shape, generator=self.target_generator, device=act.device)
            eps.mul_(cfg.target_noise).clamp_(-cfg.target_noise_clip, cfg.target_noise_clip)
            act.add_(eps).clamp_(-1.0, 1.0)
        return act

    def critic_view(self, x: torch.Tensor) -> torch.Tensor:
        """[members, B, k] -> the critic's [critic_members, members * B / critic_members, k]."""
        if self.critic_members == self.members:
            return x
        return x.reshape(self.critic_members, -1, x.shape[-1])

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self, include_buffer: bool = False) -> dict[str, torch.Tensor]:
        """Tensors only (each its own copy, as safetensors requires): networks, targets, Adam
        moments, counters, and the replay buffer when asked (it is what makes a resumed run
        continue rather than restart)."""
        out = {k: v.detach().cpu().clone() for k, v in self.layout.named(self.params).items()}
        out.update({k: v.detach().cpu().clone()
                    for k, v in self.layout.named(self.target, "target.").items()})
        out["optim.exp_avg"] = self.optimizer.exp_avg.detach().cpu().clone()
        out["optim.exp_avg_sq"] = self.optimizer.exp_avg_sq.detach().cpu().clone()
        out["counters"] = torch.tensor(
            [self.updates, self.transitions, self.optimizer.step_count], dtype=torch.int64)
        if include_buffer:
            for k, v in self.buffer.state_tensors().items():
                out[f"buffer.{k}"] = v.detach().cpu()
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = dict(self.layout.named(self.params))
        expected.update(self.layout.named(self.target, "target."))
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ValueError(f"state dict lacks tensors {missing}")
        for k, view in expected.items():
            if tuple(state[k].shape) != tuple(view.shape):
                raise ValueError(f"state dict tensor {k!r} has shape {tuple(state[k].shape)}, "
                                 f"this learner expects {tuple(view.shape)}")
        for name in ("optim.exp_avg", "optim.exp_avg_sq"):
            if name in state and tuple(state[name].shape) != (self.layout.size,):
                raise ValueError(f"state dict tensor {name!r} has shape "
                                 f"{tuple(state[name].shape)}, expected ({self.layout.size},)")
        with torch.no_grad():
            for k, view in expected.items():
                view.copy_(state[k])
            if "optim.exp_avg" in state:
                self.optimizer.exp_avg.copy_(state["optim.exp_avg"])
                self.optimizer.exp_avg_sq.copy_(state["optim.exp_avg_sq"])
        if "counters" in state:
            self.updates, self.transitions, steps = (int(v) for v in state["counters"].tolist())
            self.optimizer.set_step_count(steps)  # a captured CUDA graph reads it there too
        buf = {k[len("buffer."):]: v for k, v in state.items() if k.startswith("buffer.")}
        if buf:
            self.buffer.load_state_tensors(buf)

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state that is not a tensor (the exploration noise and its RNG)."""
        return {"noise": self.noise.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "noise" in state:
            self.noise.set_state(state["noise"])
