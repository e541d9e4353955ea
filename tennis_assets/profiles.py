"""Run profiles: how big one pass of the whole workflow is (training, tuning, evaluation).

``tiny`` is for tests (seconds; its agents do not learn), ``quick`` for the README command and the
UI default (a few minutes on a 2-core laptop; its training budget is counted in updates), ``full``
for real runs. Each profile is a set of partial configurations of the models it sizes, checked
against them at import; values set explicitly in a run override the profile's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from tennis_assets.config.model import ConfigModel
from tennis_assets.config.partial import Partial, layered

ProfileName = Literal["tiny", "quick", "full"]
PROFILE_NAMES: tuple[str, ...] = get_args(ProfileName)

M = TypeVar("M", bound=ConfigModel)


@dataclass(frozen=True)
class Profile:
    """Partial configurations, at most one per model."""

    partials: tuple[Partial[Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        models = [p.model for p in self.partials]
        if len(set(models)) != len(models):
            raise ValueError("a profile holds at most one partial configuration per model")

    def values(self, model: type[ConfigModel]) -> dict[str, Any]:
        """The fields this profile sets on ``model`` (none: {})."""
        return next((dict(p.values) for p in self.partials if p.model is model), {})


def _profiles() -> dict[str, Profile]:
    # Imported here: these models live with the code that reads them, which imports this
    # module's names.
    from tennis_assets.agents.config import AgentConfig
    from tennis_assets.training.config import TrainConfig
    from tennis_assets.tuning_config import TuningConfig
    from tennis_assets.workflow.evaluation import EvaluationConfig
    from tennis_assets.workflow.monitoring import MonitoringConfig
    from tennis_assets.workflow.promotion import ChallengerConfig

    return {
        "tiny": Profile((
            Partial(TrainConfig, num_courts=4, max_seconds=30.0, max_updates=300,
                    eval_every_updates=100, selection_episodes=5),
            Partial(AgentConfig, learning_starts=256, buffer_size=20_000),
            Partial(TuningConfig, n_trials=3, trial_max_seconds=10.0, trial_max_updates=200,
                    min_completed_trials=2),
            Partial(EvaluationConfig, eval_episodes=20, gif_max_frames=60, latency_samples=50),
            Partial(ChallengerConfig, replay_episodes=20),
            Partial(MonitoringConfig, monitor_episodes=20),
        )),
        # Stop once a greedy evaluation certifies 2.2 (the game's ceiling is about 2.7): a
        # champion that is clearly good, not one that just passed 0.5. The budget is counted in
        # updates, so the champion does not depend on how busy the machine is (with 60 s on a
        # busy 2-core VM the baseline made 24,124 updates, never certified 2.2 and became a
        # 1.315 champion); max_seconds only guards against a stuck machine. A greedy
        # evaluation every 1,000 updates: the baseline spent 11.6 of its 42.0 s evaluating at
        # 500 and 5.8 of 33.9 s at 1,000, certifying 2.2 at the same 34,000 updates.
        "quick": Profile((
            Partial(TrainConfig, max_updates=40_000, max_seconds=180.0, stop_when_solved=True,
                    eval_every_updates=1000, target_score=2.2),
            Partial(TuningConfig, n_trials=4, trial_max_seconds=12.0, trial_max_updates=None,
                    min_completed_trials=2),
            Partial(EvaluationConfig, eval_episodes=100, gif_max_frames=200,
                    latency_samples=200),
        )),
        "full": Profile((
            Partial(TrainConfig, max_seconds=180.0, stop_when_solved=False),
            Partial(TuningConfig, n_trials=20, trial_max_seconds=40.0, trial_max_updates=None,
                    min_completed_trials=10),
            Partial(EvaluationConfig, eval_episodes=100, gif_max_frames=300,
                    latency_samples=500),
        )),
    }


@functools.cache
def profiles() -> dict[str, Profile]:
    """The profiles by name (built on first use: the models they size import this module's
    names)."""
    built = _profiles()
    if tuple(built) != PROFILE_NAMES:
        raise RuntimeError(f"profiles {tuple(built)} and ProfileName {PROFILE_NAMES} disagree")
    return built


def resolve(base: M, profile: str, *overrides: Mapping[str, Any] | None) -> M:
    """``base`` with the profile's fields for its model, then each layer of overrides;
    validated once, errors naming the model and field."""
    return layered(base, profiles()[profile].values(type(base)), *overrides)
