"""One learner update, written out by hand: gradients, a clip, one Adam step, soft targets.

For every ensemble member (the one shared actor and critic of DDPG self-play, or each MADDPG
agent's pair) the losses are the mean over the batch, and members are summed, so each agent's
gradient has the scale of a single-agent DDPG update (Lillicrap et al. 2015):

    critic: (Q(x, a) - y)^2,  y = r + gamma^n * (1 - terminated) * Q'(x', mu'(o'))
    actor:  -Q(x, mu(o)) + preact_penalty * mean(pre_tanh^2), the critic's weights held fixed

(n = n_step; with n > 1, r is the n-step return and "terminated" the column agents/nstep.py
defines). Then the critic's gradient norm is clipped to critic_grad_clip (0: off), one
``FlatAdam`` step moves every weight, and the targets follow: target <- lerp(target, params, tau).
Where a row's pieces sit (observations, actions, reward) is the learner's row layout (``ddpg``,
``maddpg``); this module only does the arithmetic.

Why by hand: at these sizes per-call overhead dominates, and autograd plus torch.optim.Adam
cost about 2.4x the time per update on the CPU (bench/bench_update_impl.py).
What keeps it honest: tennis_assets_tests/agents/test_update.py runs the same losses through
autograd, and whole updates through autograd and torch.optim.Adam, and compares.

One body, three ways to run it: eagerly (``eager_step``), with the gradient computation through
torch.compile (AgentConfig.compile_update), or on a CUDA device captured once as one CUDA graph
and replayed (``GraphedUpdate``): a 64-unit update is ~100 tiny kernels, and on a GPU their
launches, not their arithmetic, are the cost. The graph runs the very same ``gradients`` and
``FlatAdam.step``; only the clip and Adam's bias corrections read no host value there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .networks import backward, forward

if TYPE_CHECKING:
    from .base import Learner

Losses = tuple[torch.Tensor, torch.Tensor]  # (critic loss, actor loss), 0-dim tensors


def gradients(learner: Learner, batch: torch.Tensor) -> Losses:
    """Write the losses' gradients for ``batch`` [members, B, row] into ``learner.grad``."""
    cfg = learner.config
    n_batch = batch.shape[1]
    p, t, g, cv = learner.p, learner.t, learner.g, learner.critic_view
    rew, done = learner.reward_done(batch)
    q_next = forward(t["critic"], cv(learner.target_critic_input(batch)))[0]
    y = torch.addcmul(cv(rew), q_next, cv(1.0 - done), value=learner.bootstrap_gamma)

    critic_in = cv(learner.critic_input(batch))
    q, h1, h2 = forward(p["critic"], critic_in)
    td = q - y
    backward(p["critic"], critic_in, h1, h2, td * (2.0 / n_batch), g["critic"])

    own_obs = learner.own_obs(batch)
    pre, a1, a2 = forward(p["actor"], own_obs)
    action = pre.tanh()
    pol_in = cv(learner.policy_critic_input(batch, action))
    q_pi, c1, c2 = forward(p["critic"], pol_in)
    d_action = backward(p["critic"], pol_in, c1, c2, torch.full_like(q_pi, -1.0 / n_batch),
                        None, input_cols=learner.own_action_cols)
    assert d_action is not None
    # Through tanh, plus the gradient of the pre-activation penalty.
    d_pre = d_action.reshape(action.shape).mul_(1.0 - action.square()).add_(
        pre, alpha=2.0 * cfg.preact_penalty / (n_batch * pre.shape[-1]))
    backward(p["actor"], own_obs, a1, a2, d_pre, g["actor"])

    m = learner.members
    critic_loss = td.square().mean() * m
    actor_loss = (cfg.preact_penalty * pre.square().mean() - q_pi.mean()) * m
    return critic_loss, actor_loss


def apply_gradients(learner: Learner, on_device: bool = False) -> None:
    """Clip the critic's gradient norm, one Adam step, soft targets. on_device: read no host
    value (inside a CUDA graph): the clip decides on the device, Adam counts there."""
    clip = learner.config.critic_grad_clip
    if clip > 0:
        g = learner.grad[learner.critic_slice]
        if on_device:
            norm = g.norm()
            g.mul_(torch.where(norm > clip, clip / (norm + 1e-6), torch.ones_like(norm)))
        else:
            host_norm = float(g.norm())
            if host_norm > clip:
                g.mul_(clip / (host_norm + 1e-6))
    learner.optimizer.step(learner.grad, on_device=on_device)
    learner.target.lerp_(learner.params, learner.config.tau)


def device_step(learner: Learner, batch: torch.Tensor) -> Losses:
    """The whole update with no host synchronisation: what a CUDA graph captures."""
    losses = gradients(learner, batch)
    apply_gradients(learner, on_device=True)
    return losses


class EagerUpdate:
    """The update run op by op; with ``compiled`` the gradient computation goes through
    torch.compile (see bench/bench_update_impl.py for where that pays)."""

    def __init__(self, learner: Learner, compiled: bool = False) -> None:
        self.learner = learner
        self.gradients: Callable[[Learner, torch.Tensor], Losses] = gradients
        if compiled:
            self.gradients = torch.compile(gradients, dynamic=False)

    def __call__(self, batch: torch.Tensor) -> Losses:
        losses = self.gradients(self.learner, batch)
        apply_gradients(self.learner)
        return losses


class GraphedUpdate:
    """``device_step`` as one CUDA graph, captured at the first call and replayed after: the
    batch is copied into the graph's input, and the losses are the graph's outputs."""

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self.graph: Any = None  # torch.cuda.CUDAGraph once captured
        self.batch = torch.empty(0)
        self.losses: Losses = (torch.empty(0), torch.empty(0))

    def __call__(self, batch: torch.Tensor) -> Losses:
        if self.graph is None:
            self._capture(batch)
        self.batch.copy_(batch)
        self.graph.replay()
        self.learner.optimizer.step_count += 1  # the graph advanced Adam's device count
        return self.losses

    def _capture(self, batch: torch.Tensor) -> None:
        """Capture after a few warm-up runs on a side stream (cuBLAS and the caching allocator
        set themselves up there, as torch.cuda.graphs asks); the warm-up's changes to the
        weights, Adam and the target generator are undone, so capturing changes nothing."""
        learner, opt = self.learner, self.learner.optimizer
        device = learner.device
        self.batch = batch.clone()
        state = (learner.params, learner.target, opt.exp_avg, opt.exp_avg_sq,
                 opt.count_on_device())
        saved = [t.clone() for t in state]
        generator_state = learner.target_generator.get_state()
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                device_step(learner, self.batch)
        torch.cuda.current_stream(device).wait_stream(side)
        for t, v in zip(state, saved):
            t.copy_(v)
        learner.target_generator.set_state(generator_state)
        graph = torch.cuda.CUDAGraph()
        if learner.config.target_noise > 0:
            # A generator of our own draws inside the graph only once registered with it.
            graph.register_generator_state(learner.target_generator)
        with torch.cuda.graph(graph):
            self.losses = device_step(learner, self.batch)
        self.graph = graph
