"""VecTennis as a batched environment: interface, seeding, auto-reset, validation."""

from __future__ import annotations

import numpy as np
import pytest

from tennis_assets.sim import StepResult, VecTennis


def _random_actions(n, steps, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, n, 2, 2))


def _rollout(env, acts):
    out = []
    for a in acts:
        r = env.step(a)
        out.append((r.obs, r.rewards, r.terminated, r.truncated, r.final_obs, r.episode_score,
                    r.episode_length))
    return out


def test_step_result_shapes_and_dtypes():
    env = VecTennis(num_courts=5, seed=0)
    assert (env.num_courts, env.num_agents, env.obs_size, env.action_size) == (5, 2, 24, 2)
    res = env.step(np.zeros((5, 2, 2), dtype=np.float32))
    assert isinstance(res, StepResult)
    expected = {
        "obs": ((5, 2, 24), np.float32),
        "rewards": ((5, 2), np.float32),
        "terminated": ((5,), np.bool_),
        "truncated": ((5,), np.bool_),
        "final_obs": ((5, 2, 24), np.float32),
        "episode_score": ((5,), np.float32),
        "episode_length": ((5,), np.int32),
    }
    for name, (shape, dtype) in expected.items():
        arr = getattr(res, name)
        assert arr.shape == shape and arr.dtype == dtype, name


def test_same_seed_same_actions_same_results():
    acts = _random_actions(16, 300, seed=3)
    a = _rollout(VecTennis(16, seed=7), acts)
    b = _rollout(VecTennis(16, seed=7), acts)
    for ra, rb in zip(a, b):
        for xa, xb in zip(ra, rb):
            np.testing.assert_array_equal(xa, xb)
    c = _rollout(VecTennis(16, seed=8), acts[:1])
    assert not np.array_equal(a[0][0], c[0][0])


def test_reset_with_seed_restarts_the_sequence():
    env = VecTennis(4, seed=1)
    acts = _random_actions(4, 100, seed=2)
    first = env.reset(seed=11)
    run1 = _rollout(env, acts)
    again = env.reset(seed=11)
    run2 = _rollout(env, acts)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(run1[-1][0], run2[-1][0])


def test_parallel_kernel_matches_serial():
    acts = _random_actions(64, 120, seed=5)
    a = _rollout(VecTennis(64, seed=2, parallel=False), acts)
    b = _rollout(VecTennis(64, seed=2, parallel=True), acts)
    for ra, rb in zip(a, b):
        for xa, xb in zip(ra, rb):
            np.testing.assert_array_equal(xa, xb)


def test_auto_reset_per_court():
    env = VecTennis(2, seed=0)
    env.set_state(0, ball=(-5.0, -2.6, 0.0, -5.0))  # court 0 ends at once; court 1 plays on
    before = env.step(np.zeros((2, 2, 2)))
    assert before.terminated[0] and not before.terminated[1]
    # Court 0: new episode's first obs (16 zeros + a served frame); final_obs keeps history.
    assert np.all(before.obs[0, :, :16] == 0.0)
    assert np.all(before.obs[0, :, 21] == 6.0)  # ball served at y = 6
    assert not np.array_equal(before.final_obs[0], before.obs[0])
    assert before.final_obs[0, 1, 21] < -2.0  # the ball was on the floor
    assert before.episode_length[0] == 1 and before.episode_score[0] == pytest.approx(0.0)
    # Court 1 untouched by the reset: final_obs == obs, no episode statistics.
    np.testing.assert_array_equal(before.final_obs[1], before.obs[1])
    assert np.isnan(before.episode_score[1]) and before.episode_length[1] == 0
    assert env.snapshot()["decisions"].tolist() == [0, 1]


def test_episode_score_is_max_over_agents_of_reward_sums():
    env = VecTennis(64, seed=4)
    rng = np.random.default_rng(0)
    sums = np.zeros((64, 2))
    checked = 0
    for _ in range(200):
        res = env.step(rng.uniform(-1, 1, (64, 2, 2)))
        sums += res.rewards
        done = res.terminated | res.truncated
        for c in np.flatnonzero(done):
            assert res.episode_score[c] == pytest.approx(sums[c].max(), abs=1e-6)
            checked += 1
        sums[done] = 0.0
    assert checked > 100


def test_no_auto_reset_mode_keeps_the_final_state():
    env = VecTennis(1, seed=0, auto_reset=False)
    env.set_state(0, ball=(5.0, -2.6, 0.0, -5.0))
    res = env.step(np.zeros((1, 2, 2)))
    assert res.terminated[0]
    np.testing.assert_array_equal(res.obs, res.final_obs)
    assert env.snapshot()["ball_y"][0] < -2.7
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((1, 2, 2)))
    env.reset()
    env.step(np.zeros((1, 2, 2)))


def test_reset_distribution():
    env = VecTennis(4000, seed=1)
    s = env.snapshot()
    left, right = s["racket_x"][:, 1], s["racket_x"][:, 0]
    assert left.min() >= -8.0 and left.max() <= -6.0 and right.min() >= 6.0 and right.max() <= 8.0
    assert abs(left.mean() + 7.0) < 0.05 and abs(right.mean() - 7.0) < 0.05
    np.testing.assert_array_equal(s["racket_y"], -1.5)
    np.testing.assert_array_equal(s["ball_y"], 6.0)
    bx = np.abs(s["ball_x"])
    assert bx.min() >= 6.0 and bx.max() <= 8.0 and abs(bx.mean() - 7.0) < 0.05
    assert 0.45 < np.mean(s["ball_x"] < 0) < 0.55  # a fair coin picks the serving side
    for key in ("ball_vx", "ball_vy", "racket_vx", "racket_vy"):
        assert np.all(s[key] == 0.0)
    assert np.all(s["last_hitter"] == -1) and np.all(s["decisions"] == 0)


def test_reset_draws_in_court_order_from_one_generator():
    # Court k of a big env gets the same serve as court k of a smaller env with the same seed.
    a = VecTennis(3, seed=9).snapshot()
    b = VecTennis(10, seed=9).snapshot()
    np.testing.assert_array_equal(a["ball_x"], b["ball_x"][:3])
    np.testing.assert_array_equal(a["racket_x"], b["racket_x"][:3])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 2)), r"shape \(3, 2, 2\).*got \(3, 2\)"),
        (np.zeros((2, 2, 2)), r"shape \(3, 2, 2\).*got \(2, 2, 2\)"),
        (np.zeros((3, 2, 3)), r"shape \(3, 2, 2\)"),
        (np.full((3, 2, 2), np.nan), "finite.*nan"),
        (np.where(np.arange(12).reshape(3, 2, 2) == 7, np.inf, 0.0), r"finite.*inf.*\(1, 1, 1\)"),
        ([["a", "b"]], r"\(3, 2, 2\)"),
    ],
)
def test_bad_actions_raise_value_error(bad, match):
    env = VecTennis(3, seed=0)
    before = env.snapshot()
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    after = env.snapshot()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_actions_outside_the_box_are_clipped():
    a = VecTennis(2, seed=0)
    b = VecTennis(2, seed=0)
    big = np.full((2, 2, 2), 5.0)
    np.testing.assert_array_equal(a.step(big).obs, b.step(np.ones((2, 2, 2))).obs)


def test_constructor_and_set_state_validation():
    with pytest.raises(ValueError, match="num_courts"):
        VecTennis(0)
    with pytest.raises(ValueError, match="params"):
        VecTennis(1, params={"gravity": -9.81})
    env = VecTennis(2, seed=0)
    with pytest.raises(ValueError, match="court"):
        env.set_state(2, ball=(0.0, 1.0))
    with pytest.raises(ValueError, match="ball"):
        env.set_state(0, ball=(0.0, np.nan))
    with pytest.raises(ValueError, match="last_hitter"):
        env.set_state(0, last_hitter="middle")
    before = env.snapshot()
    with pytest.raises(ValueError, match="racket_left"):
        env.set_state(0, ball=(1.0, 2.0), racket_left=(1.0, 2.0, 3.0))
    np.testing.assert_array_equal(env.snapshot()["ball_x"], before["ball_x"])  # nothing written
