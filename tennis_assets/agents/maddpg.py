"""MADDPG (Lowe et al. 2017, arXiv 1706.02275): decentralized actors, centralized critics.

Agent i has its own actor mu_i(o_i) and its own critic Q_i(o_i, o_j, a_i, a_j) that sees both
observations and both actions; targets use the target actors of *both* agents,
y_i = r_i + gamma * (1 - terminated) * Q'_i(o'_i, o'_j, mu'_i(o'_i), mu'_j(o'_j)); the actor
gradient of agent i goes through a_i = mu_i(o_i) with the other agent's action taken from the
replay buffer (eq. 5 of the paper), and every network has a soft-updated target copy. The two
agents' networks are one two-member ensemble, so one batched pass updates both.

Each replay row is stored from both agents' perspectives (own fields first), member-major, so a
sample is already [agent, batch, features] and agent i's critic input is a plain slice.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Learner
from .config import AgentConfig


class MADDPGLearner(Learner):
    def __init__(self, config: AgentConfig, seed: int = 0) -> None:
        if config.algorithm != "maddpg":
            raise ValueError(f"MADDPGLearner needs algorithm='maddpg', got {config.algorithm!r}")
        if config.num_agents != 2:
            raise ValueError(f"MADDPGLearner supports num_agents=2, got {config.num_agents}")
        o, a = config.obs_size, config.action_size
        # Row (agent i's perspective): o_i, o_j, a_i, a_j, r_i, o'_i, o'_j, terminated.
        self._o, self._a = o, a
        self._i_rew = 2 * o + 2 * a
        self.own_action_cols = slice(2 * o, 2 * o + a)
        # shared_critic: one critic for both players. Rows are already in the player's own view
        # (own observation and action first), which the mirrored observations make the same
        # decision problem for both seats, so one critic learns from twice the data.
        super().__init__(config, members=2, actor_in=o, critic_in=2 * o + 2 * a,
                         row_width=4 * o + 2 * a + 2,
                         critic_members=1 if config.shared_critic else 2, seed=seed)

    def _rows(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        swap = [1, 0]
        n = obs.shape[0]

        def both(x: np.ndarray) -> np.ndarray:  # [N, 2, k] -> [N, 2, 2k]: own first, then other
            return np.concatenate([x.reshape(n, 1, -1), x[:, swap].reshape(n, 1, -1)], axis=1)

        done = np.broadcast_to(terminated.astype(np.float32)[:, None, None], (n, 2, 1))
        return np.concatenate([both(obs), both(actions), rewards[..., None], both(next_obs),
                               done], axis=-1)

    def critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._i_rew]

    def own_obs(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._o]

    def reward_done(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[..., self._i_rew: self._i_rew + 1], batch[..., -1:]

    def target_critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        o = self._o
        nxt = batch[..., self._i_rew + 1: self._i_rew + 1 + 2 * o]
        next_act = self.target_actions(nxt[..., :o])
        # Member i wants (a'_i, a'_j): the other member's actions are the same tensor, flipped.
        return torch.cat([nxt, next_act, next_act.flip(0)], -1)

    def policy_critic_input(self, batch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        o, a = self._o, self._a
        return torch.cat([batch[..., : 2 * o], action, batch[..., 2 * o + a: 2 * o + 2 * a]], -1)
