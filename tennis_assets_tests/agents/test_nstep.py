import numpy as np
import pytest
import torch

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.agents.nstep import NStepWindow

G = 0.9


def step(window, t, reward, terminated=False, truncated=False, courts=1):
    # Observations carry their time index so a transition says where it came from and goes to.
    obs = np.full((courts, 2, 3), t, np.float32)
    nxt = np.full((courts, 2, 3), t + 1, np.float32)
    act = np.full((courts, 2, 2), t, np.float32)
    rew = np.full((courts, 2), reward, np.float32)
    return window.push(obs, act, rew, nxt, np.full(courts, terminated),
                       np.full(courts, truncated))


def test_full_windows_give_discounted_n_step_returns():
    w = NStepWindow(3, G)
    assert step(w, 0, 1.0) is None and step(w, 1, 2.0) is None
    o, a, r, nxt, c = step(w, 2, 4.0)
    assert o[0, 0, 0] == 0 and a[0, 0, 0] == 0 and nxt[0, 0, 0] == 3
    assert r[0, 0] == pytest.approx(1 + G * 2 + G * G * 4) and c[0] == 0
    o, _, r, nxt, c = step(w, 3, 0.0)  # the window slid by one
    assert o[0, 0, 0] == 1 and nxt[0, 0, 0] == 4
    assert r[0, 1] == pytest.approx(2 + G * 4 + 0)


def test_termination_flushes_the_window_without_bootstrap():
    w = NStepWindow(3, G)
    step(w, 0, 1.0)
    o, _, r, nxt, c = step(w, 1, 2.0, terminated=True)
    assert o[:, 0, 0].tolist() == [0, 1] and (nxt[:, 0, 0] == 2).all()
    assert r[:, 0] == pytest.approx([1 + G * 2, 2]) and c.tolist() == [1, 1]
    # The next episode starts a new window: nothing of the old one leaks into it.
    assert step(w, 10, 5.0) is None and step(w, 11, 5.0) is None
    o, *_ = step(w, 12, 5.0)
    assert o[0, 0, 0] == 10


def test_truncation_bootstraps_with_the_discount_of_the_steps_actually_taken():
    w = NStepWindow(3, G)
    step(w, 0, 1.0)
    _, _, r, _, c = step(w, 1, 2.0, truncated=True)
    # gamma^n (1 - c) must equal gamma^k for k = 2, 1 remaining steps
    assert (G ** 3 * (1 - c)) == pytest.approx([G ** 2, G ** 1])
    assert r[:, 0] == pytest.approx([1 + G * 2, 2])


def test_courts_keep_separate_windows():
    w = NStepWindow(2, G)
    obs = np.zeros((2, 2, 3), np.float32)
    act = np.zeros((2, 2, 2), np.float32)
    rew = np.array([[1, 1], [3, 3]], np.float32)
    assert w.push(obs, act, rew, obs, np.array([False, True]), np.zeros(2, bool)) is not None
    out = w.push(obs, act, rew, obs, np.zeros(2, bool), np.zeros(2, bool))
    assert out[2][:, 0] == pytest.approx([1 + G])  # only court 0 has a full window


@pytest.mark.parametrize("algorithm", ["ddpg", "maddpg"])
def test_learner_with_n_step_stores_n_step_rows_and_updates(algorithm):
    cfg = AgentConfig(algorithm=algorithm, n_step=3, gamma=G, learning_starts=8, batch_size=8,
                      buffer_size=100, device="cpu")
    learner = make_learner(cfg)
    assert learner.bootstrap_gamma == pytest.approx(G ** 3)
    rng = np.random.default_rng(0)
    n = 4
    for t in range(6):
        obs = rng.normal(size=(n, 2, 24)).astype(np.float32)
        learner.observe(obs, rng.uniform(-1, 1, (n, 2, 2)).astype(np.float32),
                        np.full((n, 2), 0.1, np.float32), obs, np.zeros(n, bool),
                        np.zeros(n, bool))
    assert len(learner.buffer) == (6 - 2) * n * (2 if algorithm == "ddpg" else 1)
    col = 24 + 2 if algorithm == "ddpg" else 48 + 4
    rewards = learner.buffer.data[0, : len(learner.buffer), col]
    assert torch.allclose(rewards, torch.tensor(0.1 * (1 + G + G * G)))
    assert learner.update()
    with pytest.raises(ValueError, match="truncated"):
        learner.observe(obs, np.zeros((n, 2, 2), np.float32), np.zeros((n, 2), np.float32), obs,
                        np.zeros(n, bool))
