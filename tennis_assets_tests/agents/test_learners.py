import numpy as np
import pytest
import torch

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.agents.networks import forward
from tennis_assets.agents.update import EagerUpdate

ALGS = ["ddpg", "maddpg"]


def small(alg, **kw):
    base = {"algorithm": alg, "actor_hidden": 32, "critic_hidden": 32, "batch_size": 32,
            "buffer_size": 2000, "learning_starts": 64}
    base.update(kw)
    return AgentConfig(**base)


def fill(learner, steps=40, courts=4, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs = rng.standard_normal((courts, 2, 24)).astype(np.float32)
        act = learner.act(obs, explore=True)
        learner.observe(obs, act, rng.choice([0.0, 0.1, -0.01], (courts, 2)).astype(np.float32),
                        rng.standard_normal((courts, 2, 24)).astype(np.float32),
                        rng.random(courts) < 0.2)


@pytest.mark.parametrize("alg", ALGS)
def test_action_shapes_bounds_and_greedy_determinism(alg):
    learner = make_learner(small(alg))
    obs = (np.random.default_rng(1).standard_normal((5, 2, 24)) * 50).astype(np.float32)
    greedy = learner.act(obs, explore=False)
    assert greedy.shape == (5, 2, 2) and greedy.dtype == np.float32
    assert np.array_equal(greedy, learner.act(obs, explore=False))
    noisy = learner.act(obs, explore=True)
    assert np.all(np.abs(noisy) <= 1.0) and np.all(np.abs(greedy) <= 1.0)
    assert not np.array_equal(noisy, greedy)
    with pytest.raises(ValueError, match="obs of shape"):
        learner.act(np.zeros((5, 24), np.float32))


@pytest.mark.parametrize("alg", ALGS)
def test_update_waits_for_learning_starts(alg):
    learner = make_learner(small(alg, learning_starts=1000))
    fill(learner, steps=5)
    assert learner.update() == {}
    assert learner.updates == 0


@pytest.mark.parametrize("alg", ALGS)
def test_targets_move_by_tau(alg):
    learner = make_learner(small(alg, tau=0.1))
    fill(learner)
    with torch.no_grad():
        learner.target.add_(torch.randn_like(learner.target))  # make target != online
    old_target = learner.target.clone()
    assert learner.update()
    expected = old_target + 0.1 * (learner.params - old_target)
    torch.testing.assert_close(learner.target, expected)
    assert not torch.equal(learner.target, old_target)


@pytest.mark.parametrize("alg", ALGS)
def test_repeated_updates_reduce_critic_loss_on_a_fixed_batch(alg):
    learner = make_learner(small(alg, critic_lr=3e-3, tau=0.001))
    fill(learner)
    batch = learner.buffer.sample(32)
    losses = []
    with torch.no_grad():
        for _ in range(60):
            losses.append(float(learner.run_update(batch)[0]))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("alg", ALGS)
def test_same_seed_same_run_different_seed_different_weights(alg):
    def run(seed):
        learner = make_learner(small(alg), seed)
        fill(learner, seed=5)
        for _ in range(10):
            learner.update()
        return learner.params.clone(), learner.act(np.ones((2, 2, 24), np.float32), True)

    p0, a0 = run(0)
    p0b, a0b = run(0)
    p1, _ = run(1)
    assert torch.equal(p0, p0b) and np.array_equal(a0, a0b)
    assert not torch.equal(p0, p1)


def test_ddpg_self_play_shares_one_policy_between_mirrored_players():
    learner = make_learner(small("ddpg"))
    obs = np.random.default_rng(0).standard_normal((3, 2, 24)).astype(np.float32)
    act = learner.act(obs)
    swapped = learner.act(obs[:, ::-1].copy())
    assert np.allclose(act[:, ::-1], swapped, atol=1e-6)
    fill(learner, steps=3, courts=4)
    assert len(learner.buffer) == 3 * 4 * 2  # both players' transitions are stored


def test_maddpg_actors_are_per_agent_and_critics_centralized():
    learner = make_learner(small("maddpg"))
    obs = np.random.default_rng(0).standard_normal((3, 2, 24)).astype(np.float32)
    base = learner.act(obs)
    changed = obs.copy()
    changed[:, 1] += 1.0
    act = learner.act(changed)
    assert np.array_equal(act[:, 0], base[:, 0])  # actor 0 sees only its own observation
    assert not np.allclose(act[:, 1], base[:, 1])
    assert not np.allclose(learner.act(obs[:, ::-1].copy())[:, ::-1], base)  # two actors
    fill(learner)
    batch = learner.buffer.sample(8)
    x = learner.critic_input(batch)
    assert x.shape == (2, 8, 2 * 24 + 2 * 2)
    # the critic of agent 0 responds to agent 1's observation and action
    x2 = x.clone()
    x2[0, :, 24:48] += 1.0
    x2[0, :, 50:52] = -x2[0, :, 50:52]
    with torch.no_grad():
        q = forward(learner.p["critic"], x)[0]
        q2 = forward(learner.p["critic"], x2)[0]
    assert not torch.allclose(q[0], q2[0])
    # agent 1's perspective of a row is agent 0's with the two agents swapped
    assert torch.equal(batch[0, :, :24], batch[1, :, 24:48])
    assert torch.equal(batch[0, :, 48:50], batch[1, :, 50:52])


@pytest.mark.parametrize("alg", ALGS)
def test_state_dict_round_trip_gives_identical_actions(alg):
    learner = make_learner(small(alg))
    fill(learner)
    for _ in range(5):
        learner.update()
    state = learner.state_dict(include_buffer=True)
    other = make_learner(small(alg), 123)
    other.load_state_dict(state)
    other.load_extra_state(learner.extra_state())
    obs = np.random.default_rng(2).standard_normal((4, 2, 24)).astype(np.float32)
    assert np.array_equal(learner.act(obs), other.act(obs))
    assert np.array_equal(learner.act(obs, True), other.act(obs, True))
    assert other.updates == learner.updates == 5
    learner.update()
    other.update()
    assert torch.equal(learner.params, other.params)  # same buffer, RNG and Adam moments
    wrong = make_learner(small(alg, actor_hidden=16))
    with pytest.raises(ValueError, match="shape"):
        wrong.load_state_dict(state)


@pytest.mark.parametrize("alg", ALGS)
def test_target_policy_smoothing_adds_clipped_noise_to_target_actions(alg):
    plain = make_learner(small(alg))
    smooth = make_learner(small(alg, target_noise=0.2, target_noise_clip=0.3))
    obs = torch.randn(plain.members, 64, 24)
    a0, a1 = plain.target_actions(obs), smooth.target_actions(obs)
    diff = (a1 - a0).abs()
    assert diff.max() <= 0.3 + 1e-6 and diff.mean() > 0.05
    assert a1.abs().max() <= 1.0
    with pytest.raises(ValueError, match="shared_critic"):
        small("ddpg", shared_critic=True)


def test_behaviour_weights_play_exploring_steps_and_the_trained_ones_greedy_steps():
    cfg = AgentConfig(noise_sigma=0.0, noise_sigma_min=0.0)
    learner = make_learner(cfg)
    other = make_learner(cfg, 1)
    obs = np.random.default_rng(0).normal(size=(3, 2, cfg.obs_size)).astype(np.float32)
    mine, theirs = learner.act(obs), other.act(obs)
    assert not np.allclose(mine, theirs)
    learner.set_behaviour(other.params)
    np.testing.assert_allclose(learner.act(obs, explore=True), theirs, atol=1e-6)
    np.testing.assert_allclose(learner.act(obs), mine, atol=1e-6)
    with torch.no_grad():
        other.params.zero_()  # set_behaviour copied: later changes to the source do not leak
    np.testing.assert_allclose(learner.act(obs, explore=True), theirs, atol=1e-6)
    learner.set_behaviour(None)
    np.testing.assert_allclose(learner.act(obs, explore=True), mine, atol=1e-6)


def test_behaviour_on_some_courts_plays_them_greedily_and_the_rest_explore_trained():
    cfg = AgentConfig(noise_sigma=0.3, noise_sigma_min=0.3)
    learner = make_learner(cfg)
    other = make_learner(cfg, 1)
    obs = np.random.default_rng(0).normal(size=(5, 2, cfg.obs_size)).astype(np.float32)
    mine, theirs = learner.act(obs), other.act(obs)
    learner.set_behaviour(other.params, courts=2)
    acted = learner.act(obs, explore=True)
    # The first two courts: the behaviour weights, without noise.
    np.testing.assert_allclose(acted[:2], theirs[:2], atol=1e-6)
    # The other three: the trained weights plus the noise (sigma 0.3: never all within 1e-3).
    rest = np.abs(acted[2:] - mine[2:])
    assert rest.max() > 0.05 and not np.allclose(acted[2:], theirs[2:], atol=1e-3)
    np.testing.assert_allclose(learner.act(obs), mine, atol=1e-6)  # greedy: trained weights
    # More courts than the call has: every court plays the behaviour weights greedily.
    learner.set_behaviour(other.params, courts=8)
    np.testing.assert_allclose(learner.act(obs, explore=True), theirs, atol=1e-6)
    learner.set_behaviour(None)
    assert learner._behaviour_courts is None


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_reward_share_stores_own_reward_plus_a_share_of_the_others(share):
    learner = make_learner(small("ddpg", reward_share=share))
    obs = np.zeros((2, 2, 24), np.float32)
    rewards = np.array([[0.1, -0.01], [0.0, 0.1]], np.float32)
    learner.observe(obs, np.zeros((2, 2, 2), np.float32), rewards, obs, np.zeros(2, bool))
    stored = learner.buffer.data[0, :4, 24 + 2].numpy()  # DDPG rows: obs, action, reward, ...
    expected = (rewards + share * rewards[:, ::-1]).reshape(-1)
    np.testing.assert_allclose(stored, expected, atol=1e-7)
    with pytest.raises(ValueError, match="reward_share"):
        small("ddpg", reward_share=1.5)


def test_cuda_graph_update_leaves_a_cpu_learner_eager():
    learner = make_learner(AgentConfig(device="cpu", learning_starts=32, batch_size=32))
    assert learner.config.cuda_graph_update and not learner.graphed
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(32, 2, 24)).astype(np.float32)
    learner.observe(obs, np.zeros((32, 2, 2), np.float32), np.zeros((32, 2), np.float32), obs,
                    np.zeros(32, bool))
    assert learner.update()
    assert isinstance(learner.run_update, EagerUpdate)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("alg", ["ddpg", "maddpg"])
def test_cuda_graph_update_follows_the_eager_update(alg):
    extra = {"shared_critic": True} if alg == "maddpg" else {}
    cfg = AgentConfig(algorithm=alg, device="cuda", learning_starts=64, batch_size=64,
                      critic_grad_clip=0.5, **extra)
    eager = make_learner(cfg.replace(cuda_graph_update=False))
    graphed = make_learner(cfg)
    assert graphed.graphed and not eager.graphed
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.normal(size=(8, 2, cfg.obs_size)).astype(np.float32)
        act = rng.uniform(-1, 1, (8, 2, cfg.action_size)).astype(np.float32)
        for learner in (eager, graphed):
            learner.observe(obs, act, rng.normal(size=(8, 2)).astype(np.float32) * 0, obs,
                            np.zeros(8, bool))
    for _ in range(30):
        batch = eager.buffer.sample(cfg.batch_size)
        with torch.no_grad():
            eager.run_update(batch)
            graphed.run_update(batch)
    torch.cuda.synchronize()
    assert graphed.optimizer.step_count == eager.optimizer.step_count == 30
    torch.testing.assert_close(graphed.params, eager.params, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(graphed.target, eager.target, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_a_state_loaded_after_capture_reaches_the_graph():
    cfg = AgentConfig(device="cuda", learning_starts=64, batch_size=64)
    a, b = make_learner(cfg), make_learner(cfg)
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs = rng.normal(size=(8, 2, cfg.obs_size)).astype(np.float32)
        for learner in (a, b):
            learner.observe(obs, np.zeros((8, 2, 2), np.float32), np.zeros((8, 2), np.float32),
                            obs, np.zeros(8, bool))
    for _ in range(5):
        a.update()
    b.update()  # captures its graph at step 1
    b.load_state_dict(a.state_dict())
    batch = a.buffer.sample(cfg.batch_size)
    with torch.no_grad():
        a.run_update(batch)
        b.run_update(batch)
    torch.cuda.synchronize()
    torch.testing.assert_close(b.params, a.params)


def test_maddpg_rows_and_targets_put_each_agents_own_seat_first_for_any_number_of_agents():
    """Three agents: agent i's row holds (o_i, o_i+1, o_i+2, a_i, a_i+1, a_i+2, r_i, o'...,
    done_i) and its target critic input the target actors' actions in the same seat order."""
    k, o, a = 3, 4, 2
    learner = make_learner(AgentConfig(algorithm="maddpg", num_agents=k, obs_size=o,
                                       action_size=a, buffer_size=64, batch_size=1,
                                       learning_starts=1, actor_hidden=8, critic_hidden=8))
    obs = np.arange(k * o, dtype=np.float32).reshape(1, k, o)
    act = -np.arange(k * a, dtype=np.float32).reshape(1, k, a) / 10
    rew = np.array([[1.0, 2.0, 3.0]], np.float32)
    done = np.array([[False, True, False]])
    learner.observe(obs, act, rew, obs + 100, done)
    rows = learner.buffer.sample(1)[:, 0].cpu().numpy()  # [members, width]
    for i in range(k):
        seats = [(i + j) % k for j in range(k)]
        expected = np.concatenate([obs[0, seats].ravel(), act[0, seats].ravel(), [rew[0, i]],
                                   (obs[0, seats] + 100).ravel(), [float(done[0, i])]])
        np.testing.assert_array_equal(rows[i], expected)
    batch = learner.buffer.sample(1)
    target_in = learner.target_critic_input(batch)
    own_next = learner.target_actions(batch[..., k * (o + a) + 1: k * (o + a) + 1 + o])
    for i in range(k):
        seats = [(i + j) % k for j in range(k)]
        torch.testing.assert_close(target_in[i, :, k * o:],
                                   torch.cat([own_next[s] for s in seats], -1))
