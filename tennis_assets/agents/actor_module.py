"""The greedy actor as an ``nn.Module``: what ``torch.export`` and the ONNX exporter take.

The learners keep their networks in one flat parameter vector with a hand-written backward
pass (see ``networks``); this module is a view of the actor's part of that vector (its tensors
share storage, nothing is copied) with the forward pass of ``Learner.act(explore=False)``:
three layers, ReLU, ReLU, tanh. Its batch dimension is free, so one export serves any batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ActorModule(nn.Module):
    """obs float32 [N, agents, obs_size] -> greedy actions float32 [N, agents, action_size]."""

    def __init__(self, layers: list[torch.Tensor], agents: int, obs_size: int,
                 action_size: int) -> None:
        super().__init__()
        members = layers[0].shape[0]
        if members not in (1, agents):
            raise ValueError(f"actor with {members} members for {agents} agents")
        # One actor shared by both seats (DDPG self-play) or one per seat (MADDPG).
        self.shared = members == 1
        self.agents, self.obs_size, self.action_size = agents, obs_size, action_size
        for name, tensor in zip(("w1", "b1", "w2", "b2", "w3", "b3"), layers):
            self.register_buffer(name, tensor[0] if self.shared else tensor)

    @classmethod
    def from_learner(cls, learner: Any) -> "ActorModule":
        cfg = learner.config
        layers = [t.detach() for t in learner.p["actor"]]
        return cls(layers, cfg.num_agents, cfg.obs_size, cfg.action_size).eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.shared:
            x = obs.reshape(-1, self.obs_size)
            h = torch.relu(x @ self.w1 + self.b1)
            h = torch.relu(h @ self.w2 + self.b2)
            return torch.tanh(h @ self.w3 + self.b3).reshape(-1, self.agents, self.action_size)
        x = obs.transpose(0, 1)  # member i plays seat i: [agents, N, obs]
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.tanh(torch.baddbmm(self.b3, h, self.w3)).transpose(0, 1)
