"""Court parameters: the game's constants that a user may perturb.

The defaults reproduce the ML-Agents 0.4 Tennis build (see the project's tennis spec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tennis_assets.config_io import DictConfig


@dataclass(frozen=True)
class CourtParams(DictConfig):
    """Environment parameters of one court (shared by every court of a ``VecTennis``).

    ball_scale: multiplies the ball radius (0.5).
    racket_angle_deg: tilt of the racket; its hitting face normal is (cos, sin) of this angle
        for the left player, mirrored for the right. Must lie strictly between 0 and 90.
    gravity: vertical acceleration of ball and rackets, negative (default -9.81).
    real_ball_velocity: False reproduces the 0.4 build's observation bug (fields 6-7 repeat the
        agent's own velocity); True puts the ball's velocity there.
    max_decisions: decisions per episode before truncation (default 1000).
    """

    ball_scale: float = 1.0
    racket_angle_deg: float = 55.0
    gravity: float = -9.81
    real_ball_velocity: bool = False
    max_decisions: int = 1000

    def __post_init__(self) -> None:
        def bad(field: str, value: Any, need: str) -> ValueError:
            return ValueError(f"CourtParams.{field} must be {need}, got {value!r}")

        def real(field: str, value: Any) -> float:
            # bool is an int subclass; a True ball_scale is a caller bug, not 1.0.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(field, value, "a real number")
            if not math.isfinite(value):
                raise bad(field, value, "finite")
            return float(value)

        if real("ball_scale", self.ball_scale) <= 0.0:
            raise bad("ball_scale", self.ball_scale, "positive")
        # A ball wider than the gap between back wall and net cannot be served without an ending.
        if self.ball_scale > 10.0:
            raise bad("ball_scale", self.ball_scale, "at most 10 (the ball must fit on a half court)")
        angle = real("racket_angle_deg", self.racket_angle_deg)
        if not 0.0 < angle < 90.0:
            raise bad("racket_angle_deg", self.racket_angle_deg, "strictly between 0 and 90 degrees")
        if real("gravity", self.gravity) >= 0.0:
            raise bad("gravity", self.gravity, "negative (pointing down)")
        if not isinstance(self.real_ball_velocity, bool):
            raise bad("real_ball_velocity", self.real_ball_velocity, "a bool")
        if isinstance(self.max_decisions, bool) or not isinstance(self.max_decisions, int):
            raise bad("max_decisions", self.max_decisions, "an int")
        if self.max_decisions < 1:
            raise bad("max_decisions", self.max_decisions, ">= 1")
