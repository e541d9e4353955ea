"""A small PettingZoo ParallelEnv whose agents leave an episode at different times, so that the
protocol's terminal-then-silence path is exercised (MPE's agents all stay to the end).

Three agents walk on a line toward 0; observation (position, step / 10, agent index); reward
minus the distance after the move. Agent k terminates once |position| < 0.2 or, at the latest,
is cut off (truncated) after ``3 + 2k`` decisions, so agents leave one by one; the episode ends
when none is left. Starts are drawn from the reset seed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class LeavingWalkers(ParallelEnv):
    metadata: ClassVar[dict[str, str]] = {"name": "leaving_walkers_v0"}

    def __init__(self, agents: int = 3) -> None:
        self.possible_agents = [f"walker_{k}" for k in range(agents)]
        self.agents: list[str] = []
        self._pos: dict[str, float] = {}
        self._steps = 0
        self._observation_space = spaces.Box(-10.0, 10.0, (3,), np.float32)
        self._action_space = spaces.Box(-0.5, 0.5, (1,), np.float32)

    def observation_space(self, agent):
        return self._observation_space

    def action_space(self, agent):
        return self._action_space

    def _obs(self, agent: str) -> np.ndarray:
        k = self.possible_agents.index(agent)
        return np.array([self._pos[agent], self._steps / 10, k], dtype=np.float32)

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._pos = {a: float(rng.uniform(-2.0, 2.0)) for a in self.agents}
        self._steps = 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self._steps += 1
        obs, rewards, terms, truncs = {}, {}, {}, {}
        for agent in self.agents:
            k = self.possible_agents.index(agent)
            self._pos[agent] += float(np.asarray(actions[agent]).ravel()[0])
            obs[agent] = self._obs(agent)
            rewards[agent] = -abs(self._pos[agent])
            terms[agent] = abs(self._pos[agent]) < 0.2
            truncs[agent] = not terms[agent] and self._steps >= 3 + 2 * k
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, {a: {} for a in obs}


def parallel_env(**kwargs) -> LeavingWalkers:
    return LeavingWalkers(**kwargs)
