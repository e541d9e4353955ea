"""n-step returns for vectorized courts, turned into ordinary one-step-shaped transitions.

Each court keeps a window of its last ``n`` steps. A full window leaves as one transition
``(o_t, a_t, R, o_{t+n}, c)`` with ``R = sum_i gamma^i r_{t+i}`` (per player); an episode's end
flushes the whole window, so no transition spans two episodes. The learner's target stays
``y = R + gamma^n (1 - c) Q'(o', mu'(o'))``, which puts every case in the one column a replay row
already has:

- a full window of a running episode: c = 0;
- the episode terminated inside the window: c = 1 (no bootstrap);
- a truncated episode's last k < n steps: c = 1 - gamma^(k - n), so gamma^n (1 - c) = gamma^k.

With n = 1 nothing goes through here and rows are exactly what they were.
"""

from __future__ import annotations

import numpy as np


class NStepWindow:
    def __init__(self, n: int, gamma: float) -> None:
        if int(n) < 2:
            raise ValueError(f"NStepWindow n={n!r}: use it for n >= 2 (n = 1 needs no window)")
        self.n, self.gamma = int(n), float(gamma)
        self.powers = self.gamma ** np.arange(self.n, dtype=np.float64)
        # Allocated at the first push, with the caller's court count (empty until then).
        self.obs = np.zeros((0, self.n), np.float32)  # [courts, n, agents, obs]
        self.actions = np.zeros((0, self.n), np.float32)
        self.rewards = np.zeros((0, self.n), np.float64)  # [courts, n, agents]
        self.length = np.zeros(0, dtype=np.int64)

    def _alloc(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        k = obs.shape[0]
        self.obs = np.zeros((k, self.n) + obs.shape[1:], np.float32)
        self.actions = np.zeros((k, self.n) + actions.shape[1:], np.float32)
        self.rewards = np.zeros((k, self.n) + rewards.shape[1:], np.float64)
        self.length = np.zeros(k, dtype=np.int64)

    def push(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
             ) -> tuple[np.ndarray, ...] | None:
        """One vectorized step in; the transitions it completes out, as arrays
        (obs, actions, returns, next_obs, c) with a leading transition axis, or None."""
        if self.obs.ndim != obs.ndim + 1 or self.obs.shape[0] != obs.shape[0]:
            self._alloc(obs, actions, rewards)
        courts = np.arange(obs.shape[0])
        self.obs[courts, self.length] = obs
        self.actions[courts, self.length] = actions
        self.rewards[courts, self.length] = rewards
        self.length += 1
        ended = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        out_o, out_a, out_r, out_next, out_c = [], [], [], [], []

        full = np.flatnonzero((self.length == self.n) & ~ended)
        if full.size:
            out_o.append(self.obs[full, 0])
            out_a.append(self.actions[full, 0])
            out_r.append(np.einsum("knm,n->km", self.rewards[full], self.powers))
            out_next.append(next_obs[full])
            out_c.append(np.zeros(full.size, np.float32))
            # Slide those windows by one: entry 0 has left.
            self.obs[full, :-1] = self.obs[full, 1:]
            self.actions[full, :-1] = self.actions[full, 1:]
            self.rewards[full, :-1] = self.rewards[full, 1:]
            self.length[full] -= 1

        for c in np.flatnonzero(ended):  # rare: episode ends, a Python loop is fine
            k = int(self.length[c])
            for j in range(k):
                m = k - j  # steps from entry j to the end
                out_o.append(self.obs[c, j][None])
                out_a.append(self.actions[c, j][None])
                out_r.append((self.powers[:m, None] * self.rewards[c, j:k]).sum(0)[None])
                out_next.append(next_obs[c][None])
                cval = 1.0 if terminated[c] else 1.0 - self.gamma ** (m - self.n)
                out_c.append(np.array([cval], np.float32))
            self.length[c] = 0

        if not out_o:
            return None
        return (np.concatenate(out_o), np.concatenate(out_a),
                np.concatenate(out_r).astype(np.float32), np.concatenate(out_next),
                np.concatenate(out_c))

    def get_state(self) -> dict:
        # In-flight windows are not worth a checkpoint: a resumed run serves fresh points.
        return {}
