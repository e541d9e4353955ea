"""Training and evaluation run through the ML-Agents protocol exactly as in-process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tennis_assets.agents import AgentConfig
from tennis_assets.training import TrainConfig, train
from tennis_assets.unity import UnityTennis

from .conftest import free_port

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")

SMALL = {"actor_hidden": 32, "critic_hidden": 32, "batch_size": 32, "buffer_size": 5000,
         "learning_starts": 128}


@pytest.mark.slow
def test_a_short_training_run_through_the_protocol_matches_in_process(port, peer_thread):
    eval_port = free_port()
    peer_thread(port, courts=4)
    peer_thread(eval_port, courts=5)
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=300, eval_every_updates=100,
                     selection_episodes=5, final_eval_episodes=5, seed=3)
    with UnityTennis(base_port=port, timeout_s=10) as env, \
            UnityTennis(base_port=eval_port, timeout_s=10) as eval_env:
        remote = train(AgentConfig(**SMALL), tc, progress=False, env=env, eval_env=eval_env)
    local = train(AgentConfig(**SMALL), tc, progress=False)

    assert remote.updates == 300 and remote.stop_reason == "max_updates"
    assert remote.episodes == local.episodes > 0 and remote.env_steps == local.env_steps
    cols = ["episode", "court", "score", "length", "updates", "env_steps"]
    assert remote.history[cols].equals(local.history[cols])
    np.testing.assert_array_equal(remote.eval_history["greedy_mean"],
                                  local.eval_history["greedy_mean"])
    np.testing.assert_array_equal(remote.final_eval.scores, local.final_eval.scores)
    assert torch.equal(remote.learner.params, local.learner.params)


def test_training_on_the_training_env_alone_evaluates_there_too(port, peer_thread):
    peer, _ = peer_thread(port, courts=2)
    tc = TrainConfig(num_courts=8, max_seconds=None, max_updates=60, eval_every_updates=30,
                     selection_episodes=3, seed=1)
    with UnityTennis(base_port=port, timeout_s=10) as env:
        res = train(AgentConfig(**SMALL), tc, progress=False, env=env)
    assert res.updates == 60 and len(res.eval_history) == 2
    assert res.env_steps % 2 == 0  # the build's 2 courts, not num_courts=8
    assert peer.commands.count("reset") >= 2 + 2 * 2  # start, and two per evaluation plus one


def test_sizes_the_learner_does_not_fit_are_refused(port, peer_thread):
    peer_thread(port)
    with (UnityTennis(base_port=port, timeout_s=10) as env,
          pytest.raises(ValueError, match="the environment has 2 agents, 24 observations "
                                          "and 2 actions per agent, the learner 2, 27 and 3")):
        train(AgentConfig(obs_size=27, action_size=3), TrainConfig(max_updates=1), env=env)
