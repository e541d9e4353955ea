"""A build shape other than Tennis's over the real ML-Agents protocol: the peer serves MPE's
simple_spread (3 agents, 18 observations, 5 continuous actions) and a game whose agents leave
at different times; UnityEnv reads them through mlagents-envs' real UnityEnvironment on loopback
gRPC, and gives what the same environment gives in-process: observations, rewards, episode
ends, masks, a whole evaluation and a short MADDPG training run."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
import torch

from tennis_assets.agents import AgentConfig
from tennis_assets.envs import EnvironmentConfig, make_env
from tennis_assets.sim import VecTennis
from tennis_assets.training import TrainConfig, evaluate, train
from tennis_assets.unity import UnityEnv

from .conftest import free_port, port_is_free

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")

SPREAD = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                           env_kwargs={"continuous_actions": True})
LEAVING = EnvironmentConfig(env="pettingzoo:tennis_assets_tests.unity.leaving_env:parallel_env")
FIELDS = ("obs", "rewards", "terminated", "truncated", "final_obs", "episode_length", "active",
          "agent_terminated")


def assert_same_step(got, want, where=""):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                      err_msg=f"{name} {where}")
    np.testing.assert_array_equal(got.episode_score, want.episode_score,
                                  err_msg=f"episode_score {where}")


def linear_policy(obs_size: int, action_size: int, seed: int = 4):
    """A fixed deterministic policy (a random linear map through tanh), in float32."""
    weights = np.random.default_rng(seed).normal(0, 0.5, (obs_size, action_size))

    def act(obs):
        return np.tanh(obs @ weights).astype(np.float32)

    return act


@pytest.mark.parametrize("peer_options, env_options", [
    ({"groups": True}, {}),  # each court a multi-agent group: courts found by group
    ({}, {"agents_per_court": 3}),  # no groups: courts of 3 consecutive agents
])
def test_simple_spread_steps_match_in_process(port, peer_thread, peer_options, env_options):
    peer, _ = peer_thread(port, courts=3, environment=SPREAD, **peer_options)
    with UnityEnv(base_port=port, seed=11, timeout_s=10, time_scale=3.0, **env_options) as env:
        assert (env.num_courts, env.num_agents, env.obs_size, env.action_size) == (3, 3, 18, 5)
        assert env.behaviours == ["simple_spread_v3?team=0"] and env.scoring == "mean"
        assert env.worst_reward_to_come is None
        ref = make_env(SPREAD, 3, seed=11)
        np.testing.assert_array_equal(env.reset(), ref.reset())
        rng = np.random.default_rng(1)
        ends = cut = 0
        for i in range(80):  # 25 decisions per episode: three ends per court
            actions = rng.uniform(-1.2, 1.2, (3, 3, 5)).astype(np.float32)  # some clipped
            got, want = env.step(actions), ref.step(actions)
            assert_same_step(got, want, f"at step {i}")
            ends += int(want.done.sum())
            cut += int(want.truncated.sum())
        assert ends == cut == 9  # MPE's episodes end at its time limit
        np.testing.assert_array_equal(env.reset(seed=4_000_000_007),
                                      ref.reset(seed=4_000_000_007))
    assert peer.seed == 11 and peer.time_scale == pytest.approx(3.0)
    assert peer.commands.count("step") == 80


def test_agents_that_leave_early_are_reported_as_in_process(port, peer_thread):
    """Agents terminate or are cut off one by one: each sends its terminal step once and stops
    asking; the adapter's active and agent_terminated masks, zeroed observations and court ends
    are PettingZooVecEnv's."""
    peer_thread(port, courts=3, environment=LEAVING, groups=True)
    with UnityEnv(base_port=port, seed=5, timeout_s=10) as env:
        assert (env.num_agents, env.obs_size, env.action_size) == (3, 3, 1)
        ref = make_env(LEAVING, 3, seed=5)
        np.testing.assert_array_equal(env.reset(), ref.reset())
        rng = np.random.default_rng(2)
        partial = individual_ends = court_ends = 0
        for i in range(90):
            actions = rng.uniform(-1, 1, (3, 3, 1)).astype(np.float32)
            got, want = env.step(actions), ref.step(actions)
            assert_same_step(got, want, f"at step {i}")
            partial += int((~want.active.all(axis=1)).sum())
            individual_ends += int((want.agent_terminated & ~want.done[:, None]).sum())
            court_ends += int(want.done.sum())
    assert partial > 20 and individual_ends > 5 and court_ends > 10


def test_evaluation_through_the_protocol_equals_in_process(port, peer_thread):
    eval_port = free_port()
    peer_thread(port, courts=6, environment=SPREAD)
    peer_thread(eval_port, courts=4, environment=SPREAD)
    policy = linear_policy(18, 5)
    with UnityEnv(base_port=port, timeout_s=10, agents_per_court=3) as env, \
            UnityEnv(base_port=eval_port, timeout_s=10, agents_per_court=3) as four:
        got = evaluate(policy, episodes=6, seed=2_000_000_123, env=env)
        # Fewer courts than episodes: courts play them one after another.
        more = evaluate(policy, episodes=9, seed=5, env=four)
    want = evaluate(policy, episodes=6, seed=2_000_000_123, environment=SPREAD)
    local_four = make_env(SPREAD, 4, seed=0)
    want_more = evaluate(policy, episodes=9, seed=5, env=local_four)
    local_four.close()
    for a, b in ((got, want), (more, want_more)):
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.lengths, b.lengths)
        assert a.decisions == b.decisions and a.complete
    assert more.episodes == 9 and (more.lengths == 25).all()
    assert port_is_free(eval_port)


SMALL = {"algorithm": "maddpg", "num_agents": 3, "obs_size": 18, "action_size": 5,
         "actor_hidden": 32, "critic_hidden": 32, "batch_size": 32, "buffer_size": 5000,
         "learning_starts": 128}


@pytest.mark.slow
def test_maddpg_training_through_the_protocol_matches_in_process(port, peer_thread):
    eval_port = free_port()
    peer_thread(port, courts=4, environment=SPREAD, groups=True)
    peer_thread(eval_port, courts=5, environment=SPREAD, groups=True)
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=300, eval_every_updates=100,
                     selection_episodes=5, final_eval_episodes=5, seed=3)
    with UnityEnv(base_port=port, timeout_s=10) as env, \
            UnityEnv(base_port=eval_port, timeout_s=10) as eval_env:
        remote = train(AgentConfig(**SMALL), tc, progress=False, env=env, eval_env=eval_env,
                       environment=SPREAD)
    local = train(AgentConfig(**SMALL), tc, progress=False, environment=SPREAD)

    assert remote.updates == 300 and remote.stop_reason == "max_updates"
    assert remote.episodes == local.episodes > 0 and remote.env_steps == local.env_steps
    cols = ["episode", "court", "score", "length", "updates", "env_steps"]
    assert remote.history[cols].equals(local.history[cols])
    assert len(remote.eval_history) == 2  # after 102 and 204 updates
    np.testing.assert_array_equal(remote.eval_history["greedy_mean"],
                                  local.eval_history["greedy_mean"])
    np.testing.assert_array_equal(remote.final_eval.scores, local.final_eval.scores)
    assert torch.equal(remote.learner.params, local.learner.params)


@pytest.mark.slow
def test_a_launched_build_serves_simple_spread(port, launcher):
    # UnityEnvironment's own launch path, the environment named on the launcher's command line.
    build = launcher("Spread.x86_64", courts=2, env=SPREAD.env, env_kwargs=SPREAD.env_kwargs,
                     groups=True)
    with UnityEnv(str(build), base_port=port, seed=9, timeout_s=30) as env:
        ref = make_env(SPREAD, 2, seed=9)
        np.testing.assert_array_equal(env.reset(), ref.reset())
        rng = np.random.default_rng(0)
        for i in range(30):
            actions = rng.uniform(-1, 1, (2, 3, 5)).astype(np.float32)
            assert_same_step(env.step(actions), ref.step(actions), f"at step {i}")


def listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


@pytest.mark.slow
def test_make_env_launches_a_second_build_on_the_next_free_port(port, launcher):
    """A run's evaluations open the build again while training holds its port: the second
    launch takes the next free port, and both are released at the end."""
    build = launcher(courts=2)
    cfg = EnvironmentConfig(env=f"unity:{build}", scoring="max",
                            env_kwargs={"base_port": port, "timeout_s": 30})
    before = listening_ports()
    policy = linear_policy(24, 2)
    with make_env(cfg, 8, seed=5) as first:
        assert first.port == port and first.num_courts == 2  # the build's courts, not 8
        assert (first.num_agents, first.scoring) == (2, "max")
        got = evaluate(policy, episodes=5, seed=77, environment=cfg)
        assert not port_is_free(port)
    want = evaluate(policy, episodes=5, seed=77, env=VecTennis(2, seed=0))
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.lengths, want.lengths)
    assert listening_ports() <= before
