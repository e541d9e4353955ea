"""Any PettingZoo ``ParallelEnv`` with ``Box`` spaces as N copies side by side (courts), behind
the interface of ``tennis_assets.sim.VecTennis``: ``reset(seed) -> obs [N, A, O]``,
``step(actions [N, A, act]) -> StepResult``, every court auto-resetting, seeded.

The env's own code is not changed: each court is one instance made by the user's callable.
- Agents are ``possible_agents`` in order. Observations are flattened and zero-padded to the
  largest agent's size; the learner's actions in [-1, 1] are mapped onto each agent's Box
  (its own low/high, its own number of dimensions, the rest of the row ignored).
- Agents may leave an episode at different times: from then on their observation is zeros,
  their reward 0 and ``active`` False; the episode ends when ``env.agents`` is empty, and the
  court is reset with the next seed of its stream.
- A court's episode is ``terminated`` when it ended with no agent truncated (a time limit is
  a truncation: the learner bootstraps through it); ``agent_terminated`` says it per agent.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tennis_assets.sim.vector_env import StepResult

from .scoring import score_episode

# Making and closing env instances is serialized across the process: envs may share global
# state with their module (MPE's close() calls pygame.quit(), which tears down the freetype that
# another thread's constructor has just initialized; unserialized it raises or aborts the process).
_LIFECYCLE = threading.Lock()


def load_factory(target: str) -> Callable[..., Any]:
    """The callable ``<module>:<name>`` names, importing the module; ValueError naming what is
    missing."""
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"pettingzoo:{target}: cannot import {module_name!r} ({exc}); is it "
                         "installed in this environment?") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        # ValueError: a bad environment name is bad input; callers report ValueError.
        raise ValueError(  # noqa: TRY004
            f"pettingzoo:{target}: {module_name!r} has no callable {name!r}")
    return factory


def _box(space: Any, what: str) -> tuple[int, np.ndarray, np.ndarray]:
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        # ValueError: a bad environment name is bad input; callers report ValueError.
        raise ValueError(f"{what} is {type(space).__name__}, not a Box: "  # noqa: TRY004
                         "only continuous observations and actions are supported")
    return int(np.prod(space.shape)), np.asarray(space.low, np.float64).ravel(), \
        np.asarray(space.high, np.float64).ravel()


class PettingZooVecEnv:
    """N copies of a PettingZoo ParallelEnv, vectorized like VecTennis."""

    worst_reward_to_come = None  # unknown: evaluations play every episode to its end

    def __init__(self, factory: Callable[..., Any], kwargs: dict[str, Any], num_courts: int,
                 seed: int | None = None, scoring: str = "mean", name: str = "") -> None:
        self.name = name
        try:
            with _LIFECYCLE:
                self.envs = [factory(**kwargs) for _ in range(num_courts)]
        except TypeError as exc:
            raise ValueError(f"{name or factory}: the env_kwargs do not fit its callable ({exc})"
                             ) from None
        self.agents = list(self.envs[0].possible_agents)
        if not self.agents:
            raise ValueError(f"{name}: the environment has no agents")
        self._spaces(self.envs[0])
        self.num_courts, self.num_agents = num_courts, len(self.agents)
        self.scoring = scoring
        self._seeds = np.random.default_rng(seed)
        self._sums = np.zeros((num_courts, self.num_agents))
        self._lengths = np.zeros(num_courts, dtype=np.int32)
        self._obs = np.zeros((num_courts, self.num_agents, self.obs_size), np.float32)
        self.reset()

    def _spaces(self, env: Any) -> None:
        obs = [_box(env.observation_space(a), f"{self.name}: {a}'s observation space")
               for a in self.agents]
        act = [_box(env.action_space(a), f"{self.name}: {a}'s action space") for a in self.agents]
        self._obs_dims = [o[0] for o in obs]
        self.obs_size = max(self._obs_dims)
        self._act_dims = [a[0] for a in act]
        self.action_size = max(self._act_dims)
        if not all(np.isfinite(a[1]).all() and np.isfinite(a[2]).all() for a in act):
            raise ValueError(f"{self.name}: an action space is unbounded; the learner's actions "
                             "lie in [-1, 1] and are mapped onto a bounded Box")
        self._low = [a[1] for a in act]
        self._span = [a[2] - a[1] for a in act]

    # ---- the VecTennis interface -----------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
        for c in range(self.num_courts):
            self._reset_court(c)
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.float64)
        expected = (self.num_courts, self.num_agents, self.action_size)
        if actions.shape != expected or not np.isfinite(actions).all():
            raise ValueError(f"actions must be finite, of shape {expected} [courts, agents, "
                             f"action_size], got {actions.shape}")
        n, m = self.num_courts, self.num_agents
        rewards = np.zeros((n, m), np.float32)
        active = np.zeros((n, m), bool)
        agent_terminated = np.zeros((n, m), bool)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        final_obs = np.empty_like(self._obs)
        score = np.full(n, np.nan, np.float32)
        length = np.zeros(n, np.int32)
        for c, env in enumerate(self.envs):
            alive = set(env.agents)
            active[c] = [a in alive for a in self.agents]
            obs, rew, term, trunc, _ = env.step(self._actions(actions[c], alive))
            self._lengths[c] += 1
            for i, agent in enumerate(self.agents):
                rewards[c, i] = float(rew.get(agent, 0.0))
                agent_terminated[c, i] = bool(term.get(agent, False))
                self._obs[c, i] = self._flat(obs.get(agent), i) if agent in obs else 0.0
            self._sums[c] += rewards[c]
            final_obs[c] = self._obs[c]
            if not env.agents:  # the episode is over for every agent
                truncated[c] = any(trunc.get(a, False) for a in alive)
                terminated[c] = not truncated[c]
                score[c], length[c] = score_episode(self._sums[c], self.scoring), self._lengths[c]
                self._reset_court(c)
        return StepResult(self._obs.copy(), rewards, terminated, truncated, final_obs, score,
                          length, active=active, agent_terminated=agent_terminated)

    @property
    def acting(self) -> np.ndarray:
        """bool [courts, agents]: the agents still in their court's episode, who act at the
        next step (its ``active``); the Unity protocol peer reports the others as gone."""
        return np.array([[a in set(env.agents) for a in self.agents] for env in self.envs])

    def close(self) -> None:
        with _LIFECYCLE:
            for env in self.envs:
                close = getattr(env, "close", None)
                if callable(close):
                    close()

    # ---- helpers --------------------------------------------------------------------------
    def _reset_court(self, c: int) -> None:
        obs, _ = self.envs[c].reset(seed=int(self._seeds.integers(2**31 - 1)))
        self._obs[c] = 0.0
        for i, agent in enumerate(self.agents):
            if agent in obs:
                self._obs[c, i] = self._flat(obs[agent], i)
        self._sums[c] = 0.0
        self._lengths[c] = 0

    def _flat(self, value: Any, i: int) -> np.ndarray:
        out = np.zeros(self.obs_size, np.float32)
        out[: self._obs_dims[i]] = np.asarray(value, np.float32).ravel()
        return out

    def _actions(self, row: np.ndarray, alive: set[str]) -> dict[str, np.ndarray]:
        """The learner's [-1, 1] actions of one court on each live agent's own Box."""
        out = {}
        for i, agent in enumerate(self.agents):
            if agent in alive:
                unit = (np.clip(row[i, : self._act_dims[i]], -1.0, 1.0) + 1.0) / 2.0
                out[agent] = (self._low[i] + unit * self._span[i]).astype(np.float32)
        return out
