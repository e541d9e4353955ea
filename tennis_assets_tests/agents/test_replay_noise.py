import numpy as np
import pytest
import torch

from tennis_assets.agents.noise import DecayingNoise
from tennis_assets.agents.replay import ReplayBuffer


def rows(start, k, members=1, width=3):
    r = np.arange(start, start + k, dtype=np.float32)
    return np.broadcast_to(r[:, None, None], (k, members, width)).copy()


def test_ring_buffer_wraps_around_and_keeps_newest():
    buf = ReplayBuffer(capacity=5, width=3)
    buf.add(rows(0, 3))
    assert (len(buf), buf.pos) == (3, 3)
    buf.add(rows(3, 4))  # 3,4 fill the end, 5,6 overwrite slots 0,1
    assert (len(buf), buf.pos) == (5, 2)
    assert buf.data[0, :, 0].tolist() == [5, 6, 2, 3, 4]
    buf.add(rows(100, 12))  # more than capacity at once: only the newest 5 survive
    assert sorted(buf.data[0, :, 0].tolist()) == [107, 108, 109, 110, 111]


def test_sample_shape_membership_and_determinism():
    a = ReplayBuffer(capacity=50, width=3, members=2, seed=7)
    b = ReplayBuffer(capacity=50, width=3, members=2, seed=7)
    for buf in (a, b):
        buf.add(rows(0, 20, members=2))
    sa, sb = a.sample(16), b.sample(16)
    assert sa.shape == (2, 16, 3)
    assert torch.equal(sa, sb)
    assert set(sa[0, :, 0].tolist()) <= set(range(20))
    assert torch.equal(sa[0], sa[1])  # both members of a row are drawn together


def test_buffer_errors_and_state_round_trip():
    buf = ReplayBuffer(capacity=8, width=3)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4)
    with pytest.raises(ValueError, match="rows of shape"):
        buf.add(np.zeros((2, 4), dtype=np.float32))
    buf.add(rows(0, 11))
    other = ReplayBuffer(capacity=8, width=3)
    other.load_state_tensors(buf.state_tensors())
    assert (other.pos, other.size) == (buf.pos, buf.size)
    assert torch.equal(other.data, buf.data)
    assert torch.equal(other.sample(5), buf.sample(5))


def test_noise_decays_to_floor_and_is_seeded():
    n = DecayingNoise("gaussian", sigma=0.5, sigma_min=0.1, decay=0.5, seed=3)
    m = DecayingNoise("gaussian", sigma=0.5, sigma_min=0.1, decay=0.5, seed=3)
    first = n.sample((4, 2, 2))
    assert np.array_equal(first, m.sample((4, 2, 2)))
    for _ in range(10):
        n.sample((4, 2, 2))
    assert n.sigma == pytest.approx(0.1)
    big = DecayingNoise("gaussian", sigma=0.3, sigma_min=0.3, decay=1.0, seed=0).sample((20000,))
    assert big.std() == pytest.approx(0.3, rel=0.05)


def test_ou_noise_is_correlated_and_resets_per_court():
    n = DecayingNoise("ou", sigma=0.2, sigma_min=0.2, decay=1.0, theta=0.15, seed=0)
    xs = np.stack([n.sample((3, 2, 2)) for _ in range(2000)])
    lag1 = np.corrcoef(xs[:-1].ravel(), xs[1:].ravel())[0, 1]
    assert lag1 > 0.7  # OU (theta 0.15) keeps most of its state from step to step
    n.reset(np.array([True, False, False]))
    assert np.all(n.state[0] == 0) and np.any(n.state[1] != 0)
    state = n.get_state()
    m = DecayingNoise("ou", sigma=0.2, sigma_min=0.2, decay=1.0, theta=0.15, seed=99)
    m.set_state(state)
    assert np.array_equal(m.sample((3, 2, 2)), n.sample((3, 2, 2)))


def test_noise_decays_on_evidence_only_when_an_evaluation_beats_every_earlier_one():
    noise = DecayingNoise(sigma=0.4, sigma_min=0.05, decay=1.0, eval_decay=0.5, seed=0)
    assert noise.record_evaluation(0.1) and noise.sigma == pytest.approx(0.2)
    assert not noise.record_evaluation(0.05)  # worse: no evidence, no decay
    assert not noise.record_evaluation(0.1)  # equal is not better
    assert noise.sigma == pytest.approx(0.2)
    assert not noise.record_evaluation(float("nan"))
    noise.record_evaluation(0.3)
    noise.record_evaluation(0.9)
    assert noise.sigma == pytest.approx(0.05)  # the floor holds
    # The best evaluation so far travels with the noise state (a resumed run keeps its evidence).
    other = DecayingNoise(sigma=0.4, sigma_min=0.05, decay=1.0, eval_decay=0.5, seed=1)
    other.set_state(noise.get_state())
    assert other.best_eval == pytest.approx(0.9) and not other.record_evaluation(0.8)
    # Checkpoints from before evidence decay have no best_eval: start with no evidence.
    old = {k: v for k, v in noise.get_state().items() if k != "best_eval"}
    other.set_state(old)
    assert other.record_evaluation(0.0)


def test_noise_without_eval_decay_ignores_evaluations():
    noise = DecayingNoise(sigma=0.3, sigma_min=0.05, decay=1.0, seed=0)
    noise.record_evaluation(2.0)
    assert noise.sigma == 0.3
    with pytest.raises(ValueError, match="eval_decay"):
        DecayingNoise(eval_decay=0.0)


def test_a_certified_solve_scales_sigma_and_its_floor_once():
    noise = DecayingNoise(sigma=0.3, sigma_min=0.05, decay=0.9, seed=0, solved_scale=0.0)
    noise.record_evaluation(0.4, solved=False)
    assert noise.sigma == 0.3
    noise.record_evaluation(0.6, solved=True)
    assert noise.sigma == 0.0 and noise.sigma_min == 0.0
    assert not noise.sample((2, 2, 2)).any()  # the floor no longer brings noise back
    # A resumed run keeps the scaled floor (the floor itself comes from the config).
    other = DecayingNoise(sigma=0.3, sigma_min=0.05, decay=0.9, seed=1, solved_scale=0.0)
    other.set_state(noise.get_state())
    assert other.sigma == 0.0 and other.sigma_min == 0.0
    half = DecayingNoise(sigma=0.2, sigma_min=0.05, decay=1.0, seed=0, solved_scale=0.5)
    half.record_evaluation(0.6, solved=True)
    half.record_evaluation(0.9, solved=True)  # only the first solve scales
    assert half.sigma == pytest.approx(0.1) and half.sigma_min == pytest.approx(0.025)
    with pytest.raises(ValueError, match="solved_scale"):
        DecayingNoise(solved_scale=2.0)
