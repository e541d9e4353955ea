"""The adapter over the real ML-Agents protocol (UnityEnvironment as gRPC server on loopback,
the peer as the Unity client) gives what the in-process simulator gives."""

from __future__ import annotations

import numpy as np
import pytest

from tennis_assets.sim import ScriptedSwingPolicy, VecTennis
from tennis_assets.training import evaluate
from tennis_assets.unity import UnityTennis

from .conftest import port_is_free

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")

FIELDS = ("obs", "rewards", "terminated", "truncated", "final_obs", "episode_length")


def assert_same_step(got, want, where=""):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                      err_msg=f"{name} {where}")
    np.testing.assert_allclose(got.episode_score, want.episode_score, atol=1e-6,
                               err_msg=f"episode_score {where}")


@pytest.mark.parametrize("layout", ["teams", "single"])
def test_reset_step_and_episode_ends_match_the_simulator(port, peer_thread, layout):
    peer, _ = peer_thread(port, courts=3, layout=layout)
    with UnityTennis(base_port=port, seed=11, timeout_s=60, time_scale=7.5) as env:
        assert (env.num_courts, env.num_agents, env.obs_size, env.action_size) == (3, 2, 24, 2)
        assert len(env.behaviours) == (2 if layout == "teams" else 1)
        ref = VecTennis(3, seed=11)
        obs = ref.reset()
        np.testing.assert_array_equal(env.reset(), obs)
        # A half-strength rally: hits (+0.1) and misses (-0.01), ends within a few hundred steps.
        policy = ScriptedSwingPolicy(swing=0.3)
        rng = np.random.default_rng(1)
        ends, rewards = 0, 0.0
        for i in range(400):
            actions = policy(obs) if i % 3 else rng.uniform(-1, 1, (3, 2, 2))
            actions = actions.astype(np.float32)  # what the protocol carries
            got, want = env.step(actions), ref.step(actions)
            assert_same_step(got, want, f"at step {i}")
            obs = want.obs
            ends += int(want.done.sum())
            rewards += float(np.abs(want.rewards).sum())
        assert ends >= 5 and rewards > 0, "the comparison saw too few episode ends"
        # reset(seed=...) re-seeds through the protocol as VecTennis.reset(seed=...) does, with a
        # seed beyond the int32 the protocol's own seed field carries.
        big = 4_000_000_007
        np.testing.assert_array_equal(env.reset(seed=big), ref.reset(seed=big))
    assert peer.time_scale == pytest.approx(7.5)
    assert peer.seed == 11


def test_evaluation_through_the_protocol_equals_the_built_in_one(port, peer_thread):
    peer_thread(port, courts=6)
    scripted = ScriptedSwingPolicy(swing=0.3)

    def policy(obs):
        return scripted(obs).astype(np.float32)

    with UnityTennis(base_port=port, seed=0, timeout_s=60) as env:
        got = evaluate(policy, episodes=6, seed=2_000_000_123, env=env)
        # Fewer courts than episodes: courts play them one after another.
        more = evaluate(policy, episodes=9, seed=5, env=env, stop_when_decided=True)
    want = evaluate(policy, episodes=6, seed=2_000_000_123)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.lengths, want.lengths)
    assert got.decisions == want.decisions
    assert more.episodes == 9 and not np.isnan(more.scores).any()


def test_the_step_checks_actions_like_the_simulator(port, peer_thread):
    peer_thread(port, courts=2)
    with UnityTennis(base_port=port, seed=0, timeout_s=60) as env:
        assert not port_is_free(port)  # the check the fixture makes afterwards can fail
        with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
            env.step(np.zeros((1, 2, 2)))
        with pytest.raises(ValueError, match="NaN"):
            env.step(np.full((2, 2, 2), np.nan))
        env.step(np.full((2, 2, 2), 5.0))  # clipped, as VecTennis does
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros((2, 2, 2)))


@pytest.mark.slow
def test_a_launched_build_serves_the_simulator(port, launcher):
    # UnityEnvironment's own launch path: it runs the "build" with --mlagents-port and
    # -nographics -batchmode, on base_port + worker_id.
    build = launcher(courts=2)
    with UnityTennis(str(build), base_port=port - 2, worker_id=2, seed=9, timeout_s=60,
                     no_graphics=True) as env:
        ref = VecTennis(2, seed=9)
        np.testing.assert_array_equal(env.reset(), ref.reset())
        rng = np.random.default_rng(0)
        for i in range(60):
            actions = rng.uniform(-1, 1, (2, 2, 2)).astype(np.float32)
            assert_same_step(env.step(actions), ref.step(actions), f"at step {i}")
