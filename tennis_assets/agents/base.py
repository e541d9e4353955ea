"""What DDPG self-play and MADDPG share: devices, flat weights with a hand-written update,
Adam, soft target updates, exploration, and tensor-only state dicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .config import AgentConfig
from .networks import FlatAdam, FlatLayout, mlp_backward, mlp_forward, mlp_forward_saved
from .noise import DecayingNoise
from .nstep import NStepWindow
from .replay import ReplayBuffer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"AgentConfig.device={name!r}: CUDA is not available on this machine")
    return torch.device(name)


class Learner:
    """Common machinery; subclasses define the row layout and ``_update``.

    All network weights live in one flat vector ``params`` (targets in ``target``, gradients in
    ``grad``); ``p``, ``t`` and ``g`` hold the per-network layer views into them.
    """

    config: AgentConfig

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
        self.layout = FlatLayout({
            "actor": (members, actor_in, config.actor_hidden, config.action_size),
            "critic": (self.critic_members, critic_in, config.critic_hidden, 1),
        })
        kw = {"dtype": torch.float32, "device": self.device}
        self.params = torch.zeros(self.layout.size, **kw)
        self.layout.init(self.params, torch.Generator().manual_seed(int(seed)))
        self.target = self.params.clone()
        self.grad = torch.zeros(self.layout.size, **kw)
        self.p = self.layout.views(self.params)
        self.t = self.layout.views(self.target)
        self.g = self.layout.views(self.grad)
        a_sl, c_sl = self.layout.net_slices["actor"], self.layout.net_slices["critic"]
        self.critic_slice = c_sl
        lr = torch.empty(self.layout.size, **kw)
        lr[a_sl], lr[c_sl] = config.actor_lr, config.critic_lr
        wd = None
        if config.weight_decay > 0:  # on the critic only, as in the DDPG paper
            wd = torch.zeros(self.layout.size, **kw)
            wd[c_sl] = config.weight_decay
        self.optimizer = FlatAdam(self.params, lr, wd)
        self.buffer = ReplayBuffer(config.buffer_size, row_width, members=members,
                                   device=self.device, seed=seed + 1)
        self.noise = DecayingNoise(config.noise, config.noise_sigma, config.noise_sigma_min,
                                   config.noise_decay, config.ou_theta, seed=seed + 2,
                                   eval_decay=config.noise_eval_decay,
                                   solved_scale=config.noise_solved_scale)
        self.nstep = NStepWindow(config.n_step, config.gamma) if config.n_step > 1 else None
        # The bootstrap discount: with n-step rows the target looks n steps ahead.
        self.bootstrap_gamma = config.gamma ** config.n_step
        # The gradient computation, eager or (compile_update) through torch.compile; see
        # bench/bench_update_impl.py for which is faster where.
        self._update_fn = self._update_tensors
        if config.compile_update:
            self._update_fn = torch.compile(self._update_tensors, dynamic=False)
        # cuda_graph_update: the whole step after sampling (gradients, clip, Adam, targets) as
        # one CUDA graph, captured at the first update: a 64-unit update is ~100 tiny kernels,
        # and on a GPU their launches, not their arithmetic, are the cost.
        self.graphed = (config.cuda_graph_update and self.device.type == "cuda"
                        and not config.compile_update)
        self._graph: Any = None
        self.target_generator = torch.Generator(device=self.device)
        self.target_generator.manual_seed(int(seed) + 3)
        self.updates = 0
        self.transitions = 0
        # The actor that plays exploring (training) steps, when it is not the one being trained;
        # see set_behaviour.
        self._behaviour_actor: list | None = None

    # ---- acting -----------------------------------------------------------------------------
    def _actor_input(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _actions_out(self, out: torch.Tensor, n: int) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """obs [N, 2, 24] -> actions [N, 2, 2] in [-1, 1]. explore adds decaying noise."""
        obs_np = np.asarray(obs, dtype=np.float32)
        if obs_np.ndim != 3 or obs_np.shape[1:] != (self.config.num_agents, self.config.obs_size):
            raise ValueError(f"act: obs of shape {obs_np.shape}, expected "
                             f"[N, {self.config.num_agents}, {self.config.obs_size}]")
        x = torch.from_numpy(obs_np).to(self.device)
        actor = self.p["actor"]
        if explore and self._behaviour_actor is not None:
            actor = self._behaviour_actor
        out = mlp_forward(actor, self._actor_input(x)).tanh_()
        actions = self._actions_out(out, obs_np.shape[0]).cpu().numpy()
        if explore:
            actions = actions + self.noise.sample(actions.shape)
            np.clip(actions, -1.0, 1.0, out=actions)
        return actions

    def set_behaviour(self, params: torch.Tensor | None) -> None:
        """Play exploring steps with the actor of ``params`` (a flat vector of this layout, e.g.
        the best greedy-evaluated weights; it is copied), or again with the trained actor (None).
        Learning is off-policy, so the trained actor still learns from what this one plays;
        greedy acting (explore=False) always uses the trained actor."""
        if params is None:
            self._behaviour_actor = None
            return
        self._behaviour_actor = self.layout.views(params.detach().clone())["actor"]

    def reset_noise(self, mask: np.ndarray | None = None) -> None:
        self.noise.reset(mask)

    def record_evaluation(self, mean: float, solved: bool = False) -> None:
        """A greedy evaluation's mean and whether it certified the run's target (the training
        loop reports each): evidence for the noise."""
        self.noise.record_evaluation(mean, solved)

    # ---- learning ---------------------------------------------------------------------------
    def observe(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                next_obs: np.ndarray, terminated: np.ndarray,
                truncated: np.ndarray | None = None) -> None:
        """Store one vectorized step. next_obs must be the episode's last obs where it ended
        (VecTennis's final_obs); truncated episodes are stored as not done so they bootstrap.
        truncated is needed with n_step > 1 (a window must not run into the next episode)."""
        obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
        rewards, next_obs = np.asarray(rewards, np.float32), np.asarray(next_obs, np.float32)
        if self.nstep is None:
            done = np.asarray(terminated, bool)
        else:
            if truncated is None:
                raise ValueError("observe: n_step > 1 needs the truncated flags")
            out = self.nstep.push(obs, actions, rewards, next_obs, terminated, truncated)
            if out is None:
                return
            obs, actions, rewards, next_obs, done = out
        rows = self._rows(obs, actions, rewards, next_obs, done)
        self.buffer.add(rows)
        self.transitions += rows.shape[0] * rows.shape[1]

    def _rows(self, obs, actions, rewards, next_obs, terminated) -> np.ndarray:
        raise NotImplementedError

    def ready(self) -> bool:
        return len(self.buffer) >= max(self.config.learning_starts, self.config.batch_size)

    def update(self, report: bool = True) -> dict[str, Any]:
        """One gradient step on critic and actor plus a soft target update. Returns {} (and does
        nothing) until the buffer holds learning_starts samples, then the losses: floats, or
        with report=False 0-dim tensors, so that a GPU is not waited for at every update."""
        if not self.ready():
            return {}
        with torch.no_grad():
            batch = self.buffer.sample(self.config.batch_size)
            if self.graphed:
                critic_loss, actor_loss = self._graph_update(batch)
            else:
                critic_loss, actor_loss = self._update_fn(batch)
                self._step()
        self.updates += 1
        if report:
            return {"critic_loss": float(critic_loss), "actor_loss": float(actor_loss)}
        return {"critic_loss": critic_loss, "actor_loss": actor_loss}

    # Layout hooks: how a sampled batch [members, B, width] splits into the pieces of an update.
    def _critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _own_obs(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _reward_done(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _target_critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        """Critic input at the next state with the target actors' actions."""
        raise NotImplementedError

    def _policy_critic_input(self, batch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Critic input at the current state with the member's own action replaced."""
        raise NotImplementedError

    _own_action_cols: slice  # where the member's own action sits in the critic input

    def _target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The target actors' actions at the next state; with target_noise > 0, TD3's target
        policy smoothing (clipped Gaussian noise, then back into [-1, 1])."""
        act = mlp_forward(self.t["actor"], next_obs).tanh_()
        cfg = self.config
        if cfg.target_noise > 0:
            eps = torch.randn(act.shape, generator=self.target_generator, device=act.device)
            eps.mul_(cfg.target_noise).clamp_(-cfg.target_noise_clip, cfg.target_noise_clip)
            act.add_(eps).clamp_(-1.0, 1.0)
        return act

    def _cv(self, x: torch.Tensor) -> torch.Tensor:
        """[members, B, k] -> the critic's [critic_members, members * B / critic_members, k]."""
        if self.critic_members == self.members:
            return x
        return x.reshape(self.critic_members, -1, x.shape[-1])

    def _update(self, batch: torch.Tensor) -> tuple[float, float]:
        critic_loss, actor_loss = self._update_fn(batch)
        return float(critic_loss), float(actor_loss)

    def _update_tensors(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDPG-style step for every ensemble member; writes gradients into ``grad``.

        Losses are, per member, the mean over the batch; members are summed (each agent's
        gradient has the scale of a single-agent DDPG update):
          critic: (Q(x, a) - y)^2,  y = r + gamma^n * (1 - terminated) * Q'(x', mu'(o'))
          (n = n_step; with n > 1, r is the n-step return and "terminated" the column
          agents/nstep.py defines)
          actor:  -Q(x, mu(o)) + preact_penalty * mean(pre_tanh^2), critic weights held fixed.
        """
        cfg = self.config
        n_batch = batch.shape[1]
        p, t, g = self.p, self.t, self.g
        rew, done = self._reward_done(batch)
        cv = self._cv
        q_next = mlp_forward(t["critic"], cv(self._target_critic_input(batch)))
        y = torch.addcmul(cv(rew), q_next, cv(1.0 - done), value=self.bootstrap_gamma)

        critic_in = cv(self._critic_input(batch))
        q, h1, h2 = mlp_forward_saved(p["critic"], critic_in)
        td = q - y
        mlp_backward(p["critic"], critic_in, h1, h2, td * (2.0 / n_batch), g["critic"])

        own_obs = self._own_obs(batch)
        pre, a1, a2 = mlp_forward_saved(p["actor"], own_obs)
        action = pre.tanh()
        pol_in = cv(self._policy_critic_input(batch, action))
        q_pi, c1, c2 = mlp_forward_saved(p["critic"], pol_in)
        d_action = mlp_backward(p["critic"], pol_in, c1, c2,
                                torch.full_like(q_pi, -1.0 / n_batch), None,
                                input_cols=self._own_action_cols).reshape(action.shape)
        # through tanh, plus the gradient of the pre-activation penalty
        d_pre = d_action.mul_(1.0 - action.square()).add_(
            pre, alpha=2.0 * cfg.preact_penalty / (n_batch * pre.shape[-1]))
        mlp_backward(p["actor"], own_obs, a1, a2, d_pre, g["actor"])

        m = self.members
        critic_loss = td.square().mean() * m
        actor_loss = (cfg.preact_penalty * pre.square().mean() - q_pi.mean()) * m
        return critic_loss, actor_loss

    def _step(self) -> None:
        """Apply the gradients ``_update`` wrote into ``grad``: clip, Adam, soft targets."""
        clip = self.config.critic_grad_clip
        if clip > 0:
            g = self.grad[self.critic_slice]
            norm = float(g.norm())
            if norm > clip:
                g.mul_(clip / (norm + 1e-6))
        self.optimizer.step(self.grad)
        self.target.lerp_(self.params, self.config.tau)

    def _graph_body(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What the CUDA graph holds: _update_tensors and _step with no host synchronisation
        (the clip decides on the device, Adam's step count is a device tensor)."""
        losses = self._update_tensors(self._static_batch)
        clip = self.config.critic_grad_clip
        if clip > 0:
            g = self.grad[self.critic_slice]
            norm = g.norm()
            g.mul_(torch.where(norm > clip, clip / (norm + 1e-6), torch.ones_like(norm)))
        self._step_t.add_(1.0)
        self.optimizer.step_on_device(self.grad, self._step_t)
        self.target.lerp_(self.params, self.config.tau)
        return losses

    def _graph_update(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._graph is None:
            self._capture(batch)
        self._static_batch.copy_(batch)
        self._graph.replay()
        self.optimizer.step_count += 1
        return self._static_losses

    def _capture(self, batch: torch.Tensor) -> None:
        """Capture _graph_body after a few warm-up runs on a side stream (cuBLAS and the caching
        allocator set themselves up there, as torch.cuda.graphs asks); the warm-up's changes to
        the weights, Adam and the target generator are undone, so capturing changes nothing."""
        self._static_batch = batch.clone()
        self._step_t = torch.full((), float(self.optimizer.step_count), dtype=torch.float32,
                                  device=self.device)
        opt = self.optimizer
        saved = [t.clone() for t in (self.params, self.target, opt.exp_avg, opt.exp_avg_sq,
                                      self._step_t)]
        gen_state = self.target_generator.get_state()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._graph_body()
        torch.cuda.current_stream(self.device).wait_stream(side)
        for t, v in zip((self.params, self.target, opt.exp_avg, opt.exp_avg_sq, self._step_t),
                        saved):
            t.copy_(v)
        self.target_generator.set_state(gen_state)
        graph = torch.cuda.CUDAGraph()
        if self.config.target_noise > 0:
            # A generator of our own draws inside the graph only once registered with it.
            graph.register_generator_state(self.target_generator)
        with torch.cuda.graph(graph):
            self._static_losses = self._graph_body()
        self._graph = graph

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
            self.updates, self.transitions, self.optimizer.step_count = (
                int(v) for v in state["counters"].tolist())
            if self._graph is not None:  # the graph reads Adam's step count from the device
                self._step_t.fill_(float(self.optimizer.step_count))
        buf = {k[len("buffer."):]: v for k, v in state.items() if k.startswith("buffer.")}
        if buf:
            self.buffer.load_state_tensors(buf)

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state that is not a tensor (the exploration noise and its RNG)."""
        return {"noise": self.noise.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "noise" in state:
            self.noise.set_state(state["noise"])
