"""DDPG self-play: one actor and one critic shared by every agent.

For agents that are alike (Tennis's two players each see a mirrored view, so both face the same
decision problem) one network can play every seat, and every agent's transition trains it: the
data per network grows with the number of agents. The critic sees one agent's observation and
action. The update itself (Lillicrap et al. 2015, with a pre-tanh penalty) is
``agents/update.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Learner, done_column
from .config import AgentConfig


class DDPGLearner(Learner):
    def __init__(self, config: AgentConfig, seed: int = 0) -> None:
        if config.algorithm != "ddpg":
            raise ValueError(f"DDPGLearner needs algorithm='ddpg', got {config.algorithm!r}")
        o, a = config.obs_size, config.action_size
        # Row: obs, action, reward, next obs, terminated.
        self._o, self._a = o, a
        self.own_action_cols = slice(o, o + a)
        super().__init__(config, members=1, actor_in=o, critic_in=o + a,
                         row_width=2 * o + a + 2, seed=seed)

    def _rows(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray,
              active: np.ndarray | None = None) -> np.ndarray:
        n, m = obs.shape[0], obs.shape[1]
        done = done_column(terminated, n, m)
        rows = np.concatenate([obs, actions, rewards[..., None], next_obs, done], axis=-1)
        if active is not None:  # an agent that had left the episode made no decision
            return rows[np.asarray(active, bool)][:, None, :]
        return rows.reshape(n * m, 1, -1)  # every player's transition is a sample

    def critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._o + self._a]

    def own_obs(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._o]

    def reward_done(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i = self._o + self._a
        return batch[..., i: i + 1], batch[..., -1:]

    def target_critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        nxt = batch[..., self._o + self._a + 1: 2 * self._o + self._a + 1]
        next_act = self.target_actions(nxt)
        return torch.cat([nxt, next_act], -1)

    def policy_critic_input(self, batch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([batch[..., : self._o], action], -1)
