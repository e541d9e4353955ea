"""Which multi-agent environment a run plays, and the environment's own rules: how an episode
is scored, what solves it, and which keyword arguments are its conditions (what drift
monitoring varies)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import ValidationInfo, field_validator

from tennis_assets.config.model import ConfigModel

Scoring = Literal["max", "mean", "sum"]
SCORINGS: tuple[str, ...] = get_args(Scoring)
KINDS = ("tennis", "pettingzoo", "unity")


def parse_spec(spec: str) -> tuple[str, str]:
    """(kind, target) of an environment spec: ``tennis``; ``pettingzoo:<module>:<callable>``
    (target ``<module>:<callable>``); ``unity:<path>`` (target the build, empty for the
    Editor)."""
    kind, sep, target = spec.partition(":")
    if kind == "tennis" and not sep:
        return kind, ""
    if kind == "pettingzoo":
        module, colon, name = target.partition(":")
        if colon and module and name.isidentifier():
            return kind, target
        raise ValueError(f"{spec!r}: expected pettingzoo:<module>:<callable>, e.g. "
                         "pettingzoo:mpe2.simple_spread_v3:parallel_env")
    if kind == "unity" and sep:
        return kind, target
    raise ValueError(f"{spec!r}: expected tennis, pettingzoo:<module>:<callable> or "
                     "unity:<path of an ML-Agents build> (unity: alone for the Editor)")


class EnvironmentConfig(ConfigModel):
    """The multi-agent environment of a run and its rules."""

    env: str = "tennis"
    """tennis (the built-in simulator), pettingzoo:<module>:<callable> (any PettingZoo
    ParallelEnv with Box spaces), or unity:<path> (an ML-Agents build; unity: for the Editor)."""
    env_kwargs: dict[str, Any] = {}  # noqa: RUF012 - a pydantic field: each instance gets a copy
    """The environment's keyword arguments, its conditions (what drift monitoring varies):
    Tennis's court (ball_scale, racket_angle_deg, gravity, real_ball_velocity, max_decisions),
    the PettingZoo callable's, or the Unity build's (tennis_assets.unity.UnityOptions:
    agents_per_court, base_port, time_scale, timeout_s, ...)."""
    scoring: Scoring | None = None
    """How an episode is scored from the agents' returns: max (the better agent's sum), mean
    (the team's mean), sum; None: the environment's rule (Tennis: max; otherwise mean)."""
    solve_score: float | None = None
    """The greedy mean the solves gate requires; None: Tennis's 0.5, otherwise beating a random
    policy on the same episodes (one-sided Mann-Whitney U, p < 0.01)."""

    @field_validator("env")
    @classmethod
    def _known_spec(cls, value: str) -> str:
        parse_spec(value)
        return value

    @field_validator("env_kwargs")
    @classmethod
    def _tennis_kwargs_are_a_court(cls, value: dict[str, Any],
                                   info: ValidationInfo) -> dict[str, Any]:
        kind = parse_spec(info.data["env"])[0] if "env" in info.data else None
        if kind == "tennis":
            from tennis_assets.sim.params import CourtParams

            CourtParams.from_dict(value)
        elif kind == "unity":
            from tennis_assets.unity.options import UnityOptions

            UnityOptions.from_dict(value)
        return value

    @property
    def kind(self) -> str:
        return parse_spec(self.env)[0]

    @property
    def target(self) -> str:
        return parse_spec(self.env)[1]

    def rule(self) -> Scoring:
        """The scoring rule in force."""
        if self.scoring is not None:
            return self.scoring
        return "max" if self.kind == "tennis" else "mean"

    def fixed_target(self) -> float | None:
        """The score that solves this environment, when it has one (None: the solves gate
        compares with a random policy instead)."""
        if self.solve_score is not None:
            return self.solve_score
        if self.kind == "tennis" and self.scoring in (None, "max"):
            from tennis_assets.sim.params import SOLVED_SCORE

            return SOLVED_SCORE
        return None

    def court(self):
        """Tennis's court (CourtParams) from env_kwargs."""
        from tennis_assets.sim.params import CourtParams

        return CourtParams.from_dict(self.env_kwargs)

    def with_kwargs(self, changes: dict[str, Any]) -> EnvironmentConfig:
        """The same environment under other conditions (drift monitoring, a changed court)."""
        return self.replace(env_kwargs={**self.env_kwargs, **changes})
