"""One Tennis court as a PettingZoo ParallelEnv (for tools that expect the PettingZoo API)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from .params import CourtParams
from .vector_env import VecTennis

# Index in the agent axis of VecTennis arrays: 0 = right-hand player "B", 1 = left-hand "A".
AGENTS = ("player_right", "player_left")


class TennisParallelEnv(ParallelEnv):
    """Single-court Tennis. Both agents act every step; when the ball ends the point (or the
    decision cap is reached) both are removed from ``agents`` until ``reset``.

    Observations are the 24-float mirrored views of ``VecTennis``; actions are 2 floats in
    [-1, 1]. Infos of the final step carry ``episode_score`` and ``episode_length``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "name": "tennis_v0",
                                          "is_parallelizable": True, "render_fps": 10}

    def __init__(self, params: CourtParams | None = None, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.params = params or CourtParams()
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._env = VecTennis(1, self.params, seed=None, auto_reset=False)
        self._obs_space = spaces.Box(-np.inf, np.inf, shape=(24,), dtype=np.float32)
        self._act_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs = self._env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._split(obs[0]), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the episode has ended (no agents left); call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"actions are missing for agents {missing}; "
                             "expected one (2,) array per agent")
        joint = np.empty((1, 2, 2), dtype=np.float64)
        for i, agent in enumerate(AGENTS):
            a = np.asarray(actions[agent], dtype=np.float64)
            if a.shape != (2,):
                raise ValueError(f"action for {agent} must have shape (2,), got {a.shape}")
            joint[0, i] = a
        res = self._env.step(joint)
        obs = self._split(res.obs[0])
        rewards = {a: float(res.rewards[0, i]) for i, a in enumerate(AGENTS)}
        term = bool(res.terminated[0])
        trunc = bool(res.truncated[0])
        terminations = {a: term for a in AGENTS}
        truncations = {a: trunc for a in AGENTS}
        if term or trunc:
            info = {"episode_score": float(res.episode_score[0]),
                    "episode_length": int(res.episode_length[0])}
            infos = {a: dict(info) for a in AGENTS}
            self.agents = []
        else:
            infos = {a: {} for a in AGENTS}
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        from .render import court_state, render_frame

        return render_frame(court_state(self._env.snapshot()), self.params)

    def state(self) -> np.ndarray:
        """Global state: ball (x, y, vx, vy) then each racket's (x, y, vx, vy), right player
        first."""
        s = self._env.snapshot()
        parts = [s["ball_x"], s["ball_y"], s["ball_vx"], s["ball_vy"]]
        for i in range(2):
            parts += [s["racket_x"][:, i], s["racket_y"][:, i],
                      s["racket_vx"][:, i], s["racket_vy"][:, i]]
        return np.array([p[0] for p in parts], dtype=np.float32)

    def close(self) -> None:
        pass

    def _split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[i].copy() for i, a in enumerate(AGENTS)}

    def _check_agent(self, agent: str) -> None:
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r}; agents are {list(AGENTS)}")
