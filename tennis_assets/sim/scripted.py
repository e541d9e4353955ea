"""Hand-written policies for the Tennis simulator: a rallying scripted swing and uniform random.

Both map observations [N, 2, 24] to actions [N, 2, 2] and use nothing but each agent's own
(mirrored) 24-float observation, so they also work on any other source of the same observations.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .physics import DT, MAX_BALL_SPEED, PHYSICS_STEPS, RUN_SPEED, WALL_X

DECISION_DT = DT * PHYSICS_STEPS


@njit(cache=True)
def _predict_contact(bx, by, vx, vy, gravity, contact_y, ball_r):
    """Fly the ball forward (same integrator and clamp as the court) until it descends through
    contact_y. Returns (time, x) or (-1, x) when it leaves this player's half (x > 0) or reaches
    the back wall first."""
    x, y = bx, by
    for k in range(1, 400):
        vy = max(min(vy + gravity * DT, MAX_BALL_SPEED), -MAX_BALL_SPEED)
        vx = max(min(vx, MAX_BALL_SPEED), -MAX_BALL_SPEED)
        x += vx * DT
        y += vy * DT
        if x > 0.0 or x - ball_r <= -WALL_X:
            return -1.0, x
        if vy < 0.0 and y <= contact_y:
            return k * DT, x
    return -1.0, x


@njit(cache=True)
def _scripted_actions(obs, out, swing, contact_y, lead, home_x, gravity, ball_r):
    for c in range(obs.shape[0]):
        for a in range(obs.shape[1]):
            o = obs[c, a]
            x = o[16]
            bx, by = o[20], o[21]
            # The quirk hides the ball's velocity, so estimate it from the last two frames. At an
            # episode's start the older frame is zero-filled and the served ball is at rest.
            old_empty = True
            for j in range(8, 16):
                if o[j] != 0.0:
                    old_empty = False
            if old_empty:
                vx, vy = 0.0, 0.0
            else:
                vx = (bx - o[12]) / DECISION_DT
                # The difference is the mean vertical speed over the last decision; the current
                # one is half a decision of gravity further on.
                vy = (by - o[13]) / DECISION_DT + gravity * DECISION_DT / 2.0
            t, xc = _predict_contact(bx, by, vx, vy, gravity, contact_y, ball_r)
            if t < 0.0:
                a0 = (home_x - x) / (RUN_SPEED * DECISION_DT)
            else:
                decisions_left = math.ceil(t / DECISION_DT - 1e-9)
                if decisions_left <= 1:
                    a0 = swing
                else:
                    # Stand where a swing begun at the start of the contact decision meets the ball.
                    t_swing = t - (decisions_left - 1) * DECISION_DT
                    start = xc - lead - swing * RUN_SPEED * t_swing
                    a0 = (start - x) / (RUN_SPEED * DECISION_DT)
            out[c, a, 0] = max(-1.0, min(1.0, a0))
            out[c, a, 1] = -1.0  # never jump


class ScriptedSwingPolicy:
    """Rallies from observations alone: predicts where the falling ball reaches hitting height,
    waits behind that point, and swings toward the net (a0 = ``swing``) during the decision in
    which contact is due, which sends the ball off at the velocity clamp, about (9, 9).

    Calling it with obs [N, 2, 24] returns actions [N, 2, 2] (float32).
    """

    def __init__(
        self,
        swing: float = 0.6,
        contact_y: float = -1.5,
        lead: float = 0.5,
        home_x: float = -7.0,
        gravity: float = -9.81,
        ball_scale: float = 1.0,
    ) -> None:
        self.swing = float(swing)
        self.contact_y = float(contact_y)
        self.lead = float(lead)
        self.home_x = float(home_x)
        self.gravity = float(gravity)
        self.ball_r = 0.5 * float(ball_scale)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 3 or obs.shape[1:] != (2, 24):
            raise ValueError(f"obs must have shape (N, 2, 24), got {obs.shape}")
        out = np.empty(obs.shape[:2] + (2,), dtype=np.float64)
        _scripted_actions(
            obs, out, self.swing, self.contact_y, self.lead, self.home_x, self.gravity, self.ball_r
        )
        return out.astype(np.float32)


class RandomPolicy:
    """Uniform actions in [-1, 1], from its own seeded generator."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        n = np.asarray(obs).shape[0]
        return self.rng.uniform(-1.0, 1.0, size=(n, 2, 2)).astype(np.float32)
