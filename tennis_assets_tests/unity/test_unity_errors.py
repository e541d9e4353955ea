"""Each way a build can be wrong gives a message naming the problem, and leaves no process and
no bound port behind (the ``port`` fixture checks both after every test)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from tennis_assets.config.model import ConfigError
from tennis_assets.envs import EnvironmentConfig
from tennis_assets.unity import (
    UnityBuildError,
    UnityConnectionError,
    UnityEnv,
    UnityTennis,
    UnityTimeoutError,
)

from .conftest import port_is_free

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")


def test_missing_binary(port, tmp_path):
    missing = tmp_path / "NoSuchTennis"
    with pytest.raises(UnityBuildError, match=f"no Unity build at '{re.escape(str(missing))}'"):
        UnityTennis(str(missing), base_port=port, timeout_s=5)


def test_binary_that_is_not_executable(port, tmp_path):
    build = tmp_path / "Tennis.x86_64"
    build.write_text("#!/bin/sh\n")
    build.chmod(0o644)
    with pytest.raises(UnityBuildError, match="is not executable; run: chmod \\+x"):
        UnityTennis(str(build), base_port=port, timeout_s=5)


@pytest.mark.parametrize("options, message", [
    ({"agents": 3}, "expected a two-player game .* the build has 3 behaviours"),
    ({"agents": 3, "layout": "single"}, "has 3 agents; a two-player build has two per court"),
    ({"discrete": True}, "has a discrete action space .*Tennis needs continuous actions"),
])
def test_build_that_is_not_two_player_continuous(port, peer_thread, options, message):
    _, thread = peer_thread(port, **options)
    with pytest.raises(UnityBuildError, match=message):
        UnityTennis(base_port=port, timeout_s=10)
    thread.join(5.0)
    assert not thread.is_alive(), "the peer was not told the connection closed"


SPREAD = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                           env_kwargs={"continuous_actions": True})


@pytest.mark.parametrize("peer_options, env_options, message", [
    ({"discrete": True}, {}, "has a discrete action space .*the adapter needs continuous actions"),
    ({"courts": 3}, {"agents_per_court": 4},
     r"3 agents in each of 2 team\(s\) do not make courts of agents_per_court=4"),
    ({"courts": 2, "environment": SPREAD}, {"agents_per_court": 4},
     r"6 agents in each of 1 team\(s\) do not make courts of agents_per_court=4"),
])
def test_build_whose_agents_do_not_fit(port, peer_thread, peer_options, env_options, message):
    _, thread = peer_thread(port, **peer_options)
    with pytest.raises(UnityBuildError, match=message):
        UnityEnv(base_port=port, timeout_s=10, **env_options)
    thread.join(5.0)
    assert not thread.is_alive(), "the peer was not told the connection closed"


def test_bad_options_are_refused_before_anything_is_bound(port):
    with pytest.raises(ConfigError, match=r"UnityOptions.time_scale: Input should be greater "
                                          r"than 0 .*UnityOptions.agents_per_cort: unknown field; "
                                          r"did you mean agents_per_court"):
        UnityEnv(base_port=port, time_scale=0, agents_per_cort=3)
    with pytest.raises(ValueError, match="a Tennis court has two players"):
        UnityTennis(base_port=port, agents_per_court=3)
    # The same rule when the configuration is made (a Dagster run config, the CLI).
    with pytest.raises(ConfigError, match=r"env_kwargs.base_port: Input should be less than or "
                                          r"equal to 65535"):
        EnvironmentConfig(env="unity:Tennis.x86_64", env_kwargs={"base_port": 70000})
    assert port_is_free(port)


def test_nothing_answers_in_time(port):
    start = time.monotonic()
    with pytest.raises(UnityTimeoutError, match=f"port {port}: no answer within 0.5 s"):
        UnityTennis(base_port=port, timeout_s=0.5)
    assert time.monotonic() - start < 5


@pytest.mark.slow
def test_launched_build_that_hangs_mid_run_is_killed(port, launcher):
    build = launcher(stall_after=5)  # handshake (2), first reset, two steps, then silence
    env = UnityTennis(str(build), base_port=port - 1, worker_id=1, timeout_s=15)
    env.timeout_s = 1.0  # a short wait for the stall, a long one for the launch
    env.step(np.zeros((1, 2, 2), dtype=np.float32))
    with pytest.raises(UnityTimeoutError, match=r"Unity build .* no answer within 1 s"):
        for _ in range(5):
            env.step(np.zeros((1, 2, 2), dtype=np.float32))


@pytest.mark.slow
def test_launched_build_that_exits_mid_run(port, launcher):
    build = launcher(exit_after=5)
    with (UnityTennis(str(build), base_port=port, timeout_s=15) as env,
          pytest.raises(UnityConnectionError,
                        match=r"the Unity process exited \(environment shut down with "
                              r"return code 3\)")):
        for _ in range(5):
            env.step(np.zeros((1, 2, 2), dtype=np.float32))


def test_port_already_in_use(port, peer_thread):
    peer_thread(port)
    with (UnityTennis(base_port=port, timeout_s=10),
          pytest.raises(UnityConnectionError, match=f"port {port} is already in use")):
        UnityTennis(base_port=port, timeout_s=1)


def test_unity_that_closes_the_connection_mid_run(port, peer_thread):
    peer_thread(port, quit_after=5)  # a goodbye (status 400), as a closing Unity player sends
    with (UnityTennis(base_port=port, timeout_s=10) as env,
          pytest.raises(UnityConnectionError, match=f"port {port}: Unity closed the connection")):
        for _ in range(5):
            env.step(np.zeros((1, 2, 2), dtype=np.float32))
