"""The server's numpy actor gives the learner's own greedy actions, for both learners."""

from __future__ import annotations

import numpy as np
import pytest

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.serving.policy import greedy_policy


@pytest.mark.parametrize("algorithm", ["ddpg", "maddpg"])
def test_numpy_actor_matches_learner_act(algorithm):
    learner = make_learner(AgentConfig(algorithm=algorithm, buffer_size=256, seed=4,
                                       device="cpu"))
    policy, implementation = greedy_policy(learner)
    assert implementation == "numpy"
    rng = np.random.default_rng(1)
    for n in (1, 3, 64):
        obs = (rng.standard_normal((n, 2, 24)) * 5).astype(np.float32)
        actions = policy(obs)
        assert actions.shape == (n, 2, 2) and actions.dtype == np.float32
        np.testing.assert_allclose(actions, learner.act(obs, explore=False), atol=1e-5)
    # Per-player networks (MADDPG) must not be mixed up: swapping seats swaps the actions
    # only for the shared actor.
    obs = rng.standard_normal((1, 2, 24)).astype(np.float32)
    swapped = policy(obs[:, ::-1].copy())[:, ::-1]
    assert np.allclose(swapped, policy(obs), atol=1e-6) == (algorithm == "ddpg")


def test_one_observation_takes_well_under_a_millisecond():
    import time

    learner = make_learner(AgentConfig(buffer_size=256, device="cpu"))  # default network sizes
    policy, _ = greedy_policy(learner)
    obs = np.random.default_rng(2).standard_normal((1, 2, 24)).astype(np.float32)
    times = []
    for _ in range(300):
        started = time.perf_counter()
        policy(obs)
        times.append(time.perf_counter() - started)
    # About 15 us on an idle core; the bound leaves room for a machine shared with other work.
    assert np.median(times) < 1e-3 / 4, np.median(times)


def test_serving_imports_no_dagster_mlflow_or_torch_until_used():
    import subprocess
    import sys

    code = ("import sys, tennis_assets.serving, tennis_assets.serving.server, "
            "tennis_assets.serving.metrics, tennis_assets.serving.monitoring; "
            "print(sorted(m for m in ('dagster', 'mlflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
