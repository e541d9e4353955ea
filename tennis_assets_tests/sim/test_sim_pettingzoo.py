from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from tennis_assets.sim import CourtParams, TennisParallelEnv, VecTennis


def test_parallel_api_test_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test reports soft failures as warnings
        parallel_api_test(TennisParallelEnv(), num_cycles=1000)


def test_matches_vec_tennis_and_ends_the_episode():
    env = TennisParallelEnv()
    obs, infos = env.reset(seed=5)
    vec = VecTennis(1, seed=5)
    first = vec.reset(seed=5)
    np.testing.assert_array_equal(obs["player_right"], first[0, 0])
    np.testing.assert_array_equal(obs["player_left"], first[0, 1])
    total = {a: 0.0 for a in env.possible_agents}
    steps = 0
    while env.agents:
        actions = {a: np.zeros(2, dtype=np.float32) for a in env.agents}
        obs, rew, term, trunc, infos = env.step(actions)
        steps += 1
        for a, r in rew.items():
            total[a] += r
    assert all(term.values()) and not any(trunc.values())  # a ball ending, not the cap
    assert env.agents == []
    assert infos["player_left"]["episode_length"] == steps
    assert infos["player_left"]["episode_score"] == pytest.approx(max(total.values()), abs=1e-6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_truncation_and_render():
    env = TennisParallelEnv(CourtParams(max_decisions=3), render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, _ = env.step({a: np.zeros(2) for a in env.agents})
    assert all(trunc.values()) and not any(term.values()) and env.agents == []
    frame = env.render()
    assert frame.shape == (270, 480, 3) and frame.dtype == np.uint8
    assert env.state().shape == (12,)


def test_bad_step_input():
    env = TennisParallelEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        env.step({"player_left": np.zeros(2)})
    with pytest.raises(ValueError, match=r"\(2,\)"):
        env.step({"player_left": np.zeros(3), "player_right": np.zeros(2)})
    with pytest.raises(ValueError, match="render_mode"):
        TennisParallelEnv(render_mode="human")
