"""Court parameters: the game's constants that a user may perturb, and the game's own rules
that other layers read (how many courts make sense, what counts as solved).

The defaults reproduce the ML-Agents 0.4 Tennis build (see the project's tennis spec).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tennis_assets.config.model import ConfigModel

# The Udacity benchmark's rule for Tennis: a greedy mean of 0.5 over fresh episodes (each episode
# scored as the better player's sum) solves the game.
SOLVED_SCORE = 0.5

Courts = Annotated[int, Field(ge=1)]
"""How many courts are simulated side by side."""


class CourtParams(ConfigModel):
    """Environment parameters of one court (shared by every court of a ``VecTennis``)."""

    ball_scale: float = Field(1.0, gt=0.0, le=10.0)
    """Multiplies the ball radius (0.5); at most 10, or the ball cannot be served on a half
    court."""
    racket_angle_deg: float = Field(55.0, gt=0.0, lt=90.0)
    """Tilt of the racket: its hitting face normal is (cos, sin) of this angle for the left
    player, mirrored for the right."""
    gravity: float = Field(-9.81, lt=0.0)
    """Vertical acceleration of ball and rackets (negative: pointing down)."""
    real_ball_velocity: bool = False
    """False reproduces the 0.4 build's observation bug (fields 6-7 repeat the agent's own
    velocity); True puts the ball's velocity there."""
    max_decisions: int = Field(1000, ge=1)
    """Decisions per episode before truncation."""
