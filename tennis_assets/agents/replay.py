"""Preallocated ring buffer of fixed-width float32 rows, stored member-major.

Each transition is one row per ensemble member (observation, action, reward, next observation and
done flag packed side by side), laid out as ``[members, capacity, width]``. A sample is then a
single ``index_select`` that yields ``[members, batch, width]``, exactly the layout the ensemble
networks consume, instead of one gather per field plus a transpose: at batch 128 the per-op
overhead, not the copy, is what costs.
"""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    def __init__(self, capacity: int, width: int, members: int = 1,
                 device: torch.device | str = "cpu", seed: int = 0) -> None:
        for name, v in (("capacity", capacity), ("width", width), ("members", members)):
            if int(v) < 1:
                raise ValueError(f"ReplayBuffer {name}={v!r}: must be >= 1")
        self.capacity, self.width, self.members = int(capacity), int(width), int(members)
        self.device = torch.device(device)
        self.data = torch.zeros(self.members, self.capacity, self.width, dtype=torch.float32,
                                device=self.device)
        self.pos = 0  # next row to write
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return self.size

    def add(self, rows: np.ndarray | torch.Tensor) -> None:
        """rows: [k, members, width] (or [k, width] when members == 1)."""
        rows_t = torch.as_tensor(rows, dtype=torch.float32)
        if rows_t.dim() == 2 and self.members == 1:
            rows_t = rows_t.unsqueeze(1)
        if rows_t.dim() != 3 or rows_t.shape[1:] != (self.members, self.width):
            raise ValueError(f"ReplayBuffer.add: rows of shape {tuple(rows_t.shape)}, expected "
                             f"[k, {self.members}, {self.width}]")
        rows_t = rows_t.transpose(0, 1)  # [members, k, width]
        n = rows_t.shape[1]
        if n == 0:
            return
        if n > self.capacity:  # only the newest capacity rows can survive anyway
            rows_t = rows_t[:, -self.capacity:]
            n = self.capacity
        rows_t = rows_t.to(self.device)
        end = self.pos + n
        if end <= self.capacity:
            self.data[:, self.pos:end] = rows_t
        else:
            first = self.capacity - self.pos
            self.data[:, self.pos:] = rows_t[:, :first]
            self.data[:, : n - first] = rows_t[:, first:]
        self.pos = end % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> torch.Tensor:
        """[members, batch_size, width], rows drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator,
                            device=self.device)
        return self.data.index_select(1, idx)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "data": self.data[:, : self.size].clone(),
            "meta": torch.tensor([self.pos, self.size], dtype=torch.int64),
            "rng": self.generator.get_state().clone(),
        }

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        pos, size = (int(v) for v in state["meta"].tolist())
        data = state["data"]
        if (data.dim() != 3 or data.shape[0] != self.members or data.shape[2] != self.width
                or size > self.capacity or data.shape[1] != size):
            raise ValueError(
                f"ReplayBuffer state does not fit: rows {tuple(data.shape)}, size {size}; buffer "
                f"has {self.members} members, capacity {self.capacity}, width {self.width}")
        self.data.zero_()
        self.data[:, :size] = data.to(self.device)
        self.pos, self.size = pos % self.capacity, size
        self.generator.set_state(state["rng"].to(torch.uint8).cpu())
