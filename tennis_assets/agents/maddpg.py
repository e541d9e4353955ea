"""MADDPG (Lowe et al. 2017, arXiv 1706.02275): decentralized actors, centralized critics.

For N agents: agent i has its own actor mu_i(o_i) and its own critic Q_i(o_1..o_N, a_1..a_N)
that sees every observation and every action; targets use the target actors of *every* agent,
y_i = r_i + gamma * (1 - terminated_i) * Q'_i(o'_1..o'_N, mu'_1(o'_1)..mu'_N(o'_N)); the actor
gradient of agent i goes through a_i = mu_i(o_i) with the other agents' actions taken from the
replay buffer (eq. 5 of the paper), and every network has a soft-updated target copy. The
agents' networks are one N-member ensemble, so one batched pass updates all of them.

Each replay row is stored from every agent's perspective (own fields first, then the others in
seat order after it), member-major, so a sample is already [agent, batch, features] and agent
i's critic input is a plain slice.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Learner, done_column
from .config import AgentConfig


class MADDPGLearner(Learner):
    def __init__(self, config: AgentConfig, seed: int = 0) -> None:
        if config.algorithm != "maddpg":
            raise ValueError(f"MADDPGLearner needs algorithm='maddpg', got {config.algorithm!r}")
        k, o, a = config.num_agents, config.obs_size, config.action_size
        # Row (agent i's perspective, the others in seat order after it): o_i, o_i+1, ...,
        # a_i, a_i+1, ..., r_i, o'_i, o'_i+1, ..., terminated_i.
        self._k, self._o, self._a = k, o, a
        self._i_rew = k * (o + a)
        self.own_action_cols = slice(k * o, k * o + a)
        # rolled[i] = (i, i+1, ..., i-1): member i's view of the seats, own first.
        self._rolled = np.array([[(i + j) % k for j in range(k)] for i in range(k)])
        # shared_critic: one critic for every seat. Rows are already in the agent's own view
        # (own observation and action first), which for alike agents (Tennis's mirrored
        # players) is the same decision problem in every seat: one critic, k times the data.
        super().__init__(config, members=k, actor_in=o, critic_in=k * (o + a),
                         row_width=2 * k * o + k * a + 2,
                         critic_members=1 if config.shared_critic else k, seed=seed)
        self._rolled_t = torch.as_tensor(self._rolled, device=self.device)

    def _rows(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray,
              active: np.ndarray | None = None) -> np.ndarray:
        n, k = obs.shape[0], self._k

        def views(x: np.ndarray) -> np.ndarray:  # [N, k, f] -> [N, k, k*f]: own first
            return x[:, self._rolled].reshape(n, k, -1)

        # Every seat's row of a joint step is stored (the centralised critics see all agents;
        # one that had left the episode shows as its zero observation).
        return np.concatenate([views(obs), views(actions), rewards[..., None],
                               views(next_obs), done_column(terminated, n, k)], axis=-1)

    def critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._i_rew]

    def own_obs(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[..., : self._o]

    def reward_done(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[..., self._i_rew: self._i_rew + 1], batch[..., -1:]

    def target_critic_input(self, batch: torch.Tensor) -> torch.Tensor:
        k, o = self._k, self._o
        nxt = batch[..., self._i_rew + 1: self._i_rew + 1 + k * o]
        next_act = self.target_actions(nxt[..., :o])  # [k, B, a]: member i's own next action
        # Member i wants (a'_i, a'_i+1, ...): the members' actions in its rolled seat order.
        return torch.cat([nxt, *next_act[self._rolled_t].unbind(1)], -1)

    def policy_critic_input(self, batch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        k, o, a = self._k, self._o, self._a
        return torch.cat([batch[..., : k * o], action, batch[..., k * o + a: k * (o + a)]], -1)
