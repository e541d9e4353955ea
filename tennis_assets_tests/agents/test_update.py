"""The hand-written update (agents/update.py) against the usual way of writing it: the same
losses through autograd, the same steps through torch.optim.Adam and clip_grad_norm_.

The reference below shares nothing with the project's update but the learner's row layout
(which slices of a replay row are the observation, the action, the reward): its forward pass
is plain matmuls, its gradients autograd's, its optimizer torch's."""

import numpy as np
import pytest
import torch

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.agents.update import EagerUpdate, device_step, gradients


def small(alg, **kw):
    base = {"algorithm": alg, "actor_hidden": 32, "critic_hidden": 32, "batch_size": 32,
            "buffer_size": 2000, "learning_starts": 64, "preact_penalty": 0.05}
    base.update(kw)
    return AgentConfig(**base)


def filled(cfg, steps=40, courts=4):
    learner = make_learner(cfg)
    rng = np.random.default_rng(0)
    shape = (courts, cfg.num_agents, cfg.obs_size)
    for _ in range(steps):
        obs = rng.standard_normal(shape).astype(np.float32)
        learner.observe(obs, learner.act(obs, explore=True),
                        rng.choice([0.0, 0.1, -0.01], shape[:2]).astype(np.float32),
                        rng.standard_normal(shape).astype(np.float32),
                        rng.random(courts) < 0.1, rng.random(courts) < 0.1)
    return learner


def reference_mlp(layers, x):
    w1, b1, w2, b2, w3, b3 = layers
    h = torch.relu(torch.matmul(x, w1) + b1)
    h = torch.relu(torch.matmul(h, w2) + b2)
    return torch.matmul(h, w3) + b3


def reference_losses(learner, params, batch, target_rng_state=None):
    """Critic TD loss plus actor loss (critic held fixed, pre-tanh penalty), per member the mean
    over the batch, members summed, computed from ``params`` with autograd."""
    cfg, cv, m = learner.config, learner.critic_view, learner.members
    views = learner.layout.views(params)
    rew, done = learner.reward_done(batch)
    if target_rng_state is not None:  # the target-noise draw the update made
        learner.target_generator.set_state(target_rng_state)
    with torch.no_grad():
        q_next = reference_mlp(learner.t["critic"], cv(learner.target_critic_input(batch)))
        y = rew + cfg.gamma ** cfg.n_step * (1 - done) * q_next.reshape(rew.shape)
    q = reference_mlp(views["critic"], cv(learner.critic_input(batch))).reshape(rew.shape)
    critic_loss = ((q - y) ** 2).mean(dim=(1, 2)).sum()
    pre = reference_mlp(views["actor"], learner.own_obs(batch))
    fixed = [w.detach() for w in views["critic"]]
    q_pi = reference_mlp(fixed, cv(learner.policy_critic_input(batch, pre.tanh())))
    q_pi = q_pi.reshape(m, -1, 1)
    actor_loss = (-q_pi.mean(dim=(1, 2)) + cfg.preact_penalty * (pre ** 2).mean(dim=(1, 2))).sum()
    return critic_loss, actor_loss


CASES = [("ddpg", {}), ("maddpg", {}), ("maddpg", {"shared_critic": True}),
         ("ddpg", {"n_step": 3}), ("maddpg", {"shared_critic": True, "n_step": 2}),
         ("ddpg", {"target_noise": 0.2, "target_noise_clip": 0.3}),
         ("maddpg", {"target_noise": 0.2}),
         # Three agents of another game (MPE's simple_spread shape): the rolled seat order.
         ("maddpg", {"num_agents": 3, "obs_size": 18, "action_size": 5}),
         ("ddpg", {"num_agents": 3, "obs_size": 18, "action_size": 5})]


@pytest.mark.parametrize("alg,kw", CASES)
def test_hand_written_gradients_match_autograd(alg, kw):
    learner = filled(small(alg, **kw))
    batch = learner.buffer.sample(32)
    rng_state = learner.target_generator.get_state()
    with torch.no_grad():
        critic_loss, actor_loss = gradients(learner, batch)
    params = learner.params.detach().clone().requires_grad_(True)
    closs, aloss = reference_losses(learner, params, batch, rng_state)
    (closs + aloss).backward()
    torch.testing.assert_close(learner.grad, params.grad, rtol=1e-4, atol=1e-6)
    assert float(critic_loss) == pytest.approx(closs.item(), rel=1e-5)
    assert float(actor_loss) == pytest.approx(aloss.item(), rel=1e-4, abs=1e-7)
    assert params.grad.abs().sum() > 0 and learner.grad.abs().sum() > 0


class ReferenceLearner:
    """The same update written the usual way: two parameter groups (actor, critic), autograd,
    clip_grad_norm_ on the critic, torch.optim.Adam, a lerp for the targets."""

    def __init__(self, learner):
        cfg = learner.config
        self.learner = learner
        a_sl, c_sl = learner.layout.net_slices["actor"], learner.layout.net_slices["critic"]
        assert a_sl.stop == c_sl.start  # the layout: actor first, then critic
        self.actor = learner.params[a_sl].detach().clone().requires_grad_(True)
        self.critic = learner.params[c_sl].detach().clone().requires_grad_(True)
        self.target = learner.target.detach().clone()
        self.adam = torch.optim.Adam([
            {"params": [self.actor], "lr": cfg.actor_lr},
            {"params": [self.critic], "lr": cfg.critic_lr, "weight_decay": cfg.weight_decay}])

    @property
    def params(self):
        return torch.cat([self.actor, self.critic])

    def step(self, batch, target_rng_state):
        learner, cfg = self.learner, self.learner.config
        # The learner's target weights stand in for ours while the losses are computed.
        saved = learner.target.clone()
        with torch.no_grad():
            learner.target.copy_(self.target)
        closs, aloss = reference_losses(learner, self.params, batch, target_rng_state)
        with torch.no_grad():
            learner.target.copy_(saved)
        self.adam.zero_grad()
        (closs + aloss).backward()
        if cfg.critic_grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([self.critic], cfg.critic_grad_clip)
        self.adam.step()
        with torch.no_grad():
            self.target.lerp_(self.params, cfg.tau)


@pytest.mark.parametrize("alg,kw", [
    ("ddpg", {"critic_grad_clip": 0.05, "weight_decay": 1e-2, "actor_lr": 3e-4}),
    ("maddpg", {"shared_critic": True, "critic_grad_clip": 0.05, "critic_lr": 2e-3}),
    ("ddpg", {"target_noise": 0.2})])
def test_whole_updates_follow_autograd_and_torch_adam(alg, kw):
    """Ten updates (gradients, clip, Adam with per-network rates and critic-only weight decay,
    soft targets) on the same batches: the same weights, targets and losses as the reference."""
    learner = filled(small(alg, tau=0.1, **kw))
    reference = ReferenceLearner(learner)
    start = learner.params.clone()
    assert isinstance(learner.run_update, EagerUpdate)
    clipped = 0
    for _ in range(10):
        batch = learner.buffer.sample(32)
        rng_state = learner.target_generator.get_state()
        with torch.no_grad():
            gradients(learner, batch)
        critic_norm = float(learner.grad[learner.critic_slice].norm())
        clipped += critic_norm > learner.config.critic_grad_clip
        learner.target_generator.set_state(rng_state)
        with torch.no_grad():
            learner.run_update(batch)
        after = learner.target_generator.get_state()
        reference.step(batch, rng_state)
        learner.target_generator.set_state(after)
    # Rounding-level differences (about 1e-7 measured) on weights that moved about 1e-2.
    assert float((learner.params - start).abs().max()) > 5e-3
    torch.testing.assert_close(learner.params, reference.params.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(learner.target, reference.target, rtol=1e-5, atol=1e-6)
    assert learner.optimizer.step_count == 10
    assert not torch.equal(learner.params, learner.target)
    if learner.config.critic_grad_clip > 0:
        assert clipped >= 3  # the clip was exercised, not idle


@pytest.mark.parametrize("alg,kw", [("ddpg", {"critic_grad_clip": 0.05, "weight_decay": 1e-2}),
                                    ("maddpg", {"shared_critic": True, "target_noise": 0.2})])
def test_the_cuda_graph_body_follows_the_eager_update_on_the_cpu(alg, kw):
    """What a CUDA graph captures (device_step: the clip decided by torch.where, Adam's bias
    corrections from a device step count) run eagerly on the CPU, against the eager update."""
    cfg = small(alg, **kw)
    eager, body = filled(cfg), filled(cfg)
    torch.testing.assert_close(eager.params, body.params, rtol=0, atol=0)
    for _ in range(30):
        batch = eager.buffer.sample(32)
        with torch.no_grad():
            eager.run_update(batch)
            device_step(body, batch)
    torch.testing.assert_close(body.params, eager.params, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(body.target, eager.target, rtol=1e-4, atol=1e-5)
    # The graph counts Adam's steps on the device; the host count is its replayer's to keep.
    assert float(body.optimizer.device_count) == 30 and body.optimizer.step_count == 0
    assert eager.optimizer.step_count == 30
