"""Exploration noise with a decaying scale.

Both kinds draw from one seeded ``numpy.random.Generator`` so a run is reproducible from its seed.
Sigma decays multiplicatively per call of ``sample`` (one call per environment step) down to a
floor: exploration is needed early to find the first hits, while late noise only costs rallies.

It can also decay on evidence: ``record_evaluation(mean)`` multiplies sigma by ``eval_decay``
each time a greedy evaluation beats every earlier one. A fixed schedule has to guess when the
policy stops needing noise; the evaluations say so, and noisy training episodes (what the Udacity
criterion averages) then score what the greedy policy scores. ``solved_scale`` goes further:
when an evaluation first certifies the run's target, sigma and its floor are scaled by it (0: no
noise from then on), since a policy certified good needs its exploring episodes far less than a
policy still looking for its first hits.
"""

from __future__ import annotations

import numpy as np


class DecayingNoise:
    def __init__(self, kind: str = "gaussian", sigma: float = 0.3,
                 sigma_min: float = 0.05, decay: float = 0.999, theta: float = 0.15,
                 seed: int = 0, eval_decay: float = 1.0, solved_scale: float = 1.0) -> None:
        if kind not in ("gaussian", "ou"):
            raise ValueError(f"noise kind={kind!r}: expected 'gaussian' or 'ou'")
        if not 0.0 < eval_decay <= 1.0:
            raise ValueError(f"noise eval_decay={eval_decay!r}: must lie in (0, 1]")
        self.kind = kind
        self.sigma0, self.sigma_min, self.decay, self.theta = sigma, sigma_min, decay, theta
        if not 0.0 <= solved_scale <= 1.0:
            raise ValueError(f"noise solved_scale={solved_scale!r}: must lie in [0, 1]")
        self.eval_decay = float(eval_decay)
        self.solved_scale = float(solved_scale)
        self.solved = False
        self.sigma = float(sigma)
        self.best_eval = float("-inf")
        self.rng = np.random.default_rng(seed)
        # OU state, allocated on first use with the caller's shape (courts x agents x actions).
        self.state = np.zeros((0,), dtype=np.float32)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero the OU state (for all, or for the leading-axis entries where ``mask`` is set)."""
        if mask is None:
            self.state[...] = 0.0
        elif self.state.shape[:1] == np.shape(mask):
            self.state[np.asarray(mask, dtype=bool)] = 0.0

    def record_evaluation(self, mean: float, solved: bool = False) -> bool:
        """A greedy evaluation's mean, and whether it certified the run's target; decays sigma
        (by eval_decay) when the mean beats every earlier one, and scales sigma and its floor by
        solved_scale at the first certified solve. Returns whether the mean was a new best."""
        if solved and not self.solved:
            self.solved = True
            self.sigma *= self.solved_scale
            self.sigma_min *= self.solved_scale
        if not np.isfinite(mean) or mean <= self.best_eval:
            return False
        self.best_eval = float(mean)
        if self.eval_decay < 1.0:
            self.sigma = max(self.sigma_min, self.sigma * self.eval_decay)
        return True

    def sample(self, shape: tuple[int, ...]) -> np.ndarray:
        shape = tuple(shape)
        eps = self.rng.standard_normal(shape).astype(np.float32)
        if self.kind == "gaussian":
            out = self.sigma * eps
        else:
            if self.state.shape != shape:
                self.state = np.zeros(shape, dtype=np.float32)
            # Ornstein-Uhlenbeck, unit time step: mean-reverting toward 0 with rate theta.
            self.state += -self.theta * self.state + self.sigma * eps
            out = self.state.copy()
        self.sigma = max(self.sigma_min, self.sigma * self.decay)
        return out

    def get_state(self) -> dict:
        best = self.best_eval if np.isfinite(self.best_eval) else None
        return {"sigma": self.sigma, "ou_state": self.state.tolist(),
                "ou_shape": list(self.state.shape), "rng": self.rng.bit_generator.state,
                "best_eval": best, "solved": self.solved}

    def set_state(self, state: dict) -> None:
        self.sigma = float(state["sigma"])
        self.state = np.asarray(state["ou_state"], dtype=np.float32).reshape(state["ou_shape"])
        self.rng.bit_generator.state = state["rng"]
        best = state.get("best_eval")  # absent in checkpoints written before evidence decay
        self.best_eval = float("-inf") if best is None else float(best)
        if state.get("solved", False) and not self.solved:  # the floor is config, not state
            self.solved = True
            self.sigma_min *= self.solved_scale
