"""Run configuration: Dagster Config classes that mirror the core's dataclasses and validate.

Every value is checked by the core dataclass it ends up in (``AgentConfig``, ``TrainConfig``),
so a bad value fails as a pydantic error naming the field (e.g. ``agent.actor_lr``) before any
work starts. Choices (profile, environment, algorithm, sampler) are enums, which the launchpad
checks as you type.

When a value is checked: Dagster's config schema has no numeric bounds, and Dagster builds a
Config object (so pydantic checks it) only when the step that takes it starts. So constraints
are checked earlier here: tuning_study's config mapping builds its TuningConfig at launch
(``build_config``), and the first step of a run checks every other asset's config of the run
(``check_run_config``, called when the MLflow and Optuna resources are set up; it also checks
that trained_agents' courts and replay buffer fit in memory), so a bad value
for evaluation_report fails the run before trained_agents trains. Both name each field by its
path in the run config (``ops.evaluation_report.config.episodes: ...``).

Profiles (tennis_assets.profiles) size the whole graph; the UI default is
``$TENNIS_ASSETS_PROFILE`` (default ``quick``). Any field set explicitly overrides the profile.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Mapping, Optional

import dagster as dg
from pydantic import Field, ValidationError, field_validator, model_validator

from tennis_assets import settings
from tennis_assets.profiles import PROFILES

PARTITIONS = ("baseline", "tuned")


class Profile(str, Enum):
    tiny = "tiny"
    quick = "quick"
    full = "full"


class Environment(str, Enum):
    # builtin: the numba simulator; unity: a Unity build or Editor through mlagents-envs
    # (the unity_environment resource, tennis_assets.defs.environment).
    builtin = "builtin"
    unity = "unity"


class Algorithm(str, Enum):
    ddpg = "ddpg"
    maddpg = "maddpg"


class Sampler(str, Enum):
    # tennis_assets.tuning.SAMPLERS, where each is described.
    tpe = "tpe"
    random = "random"
    cmaes = "cmaes"
    nsga2 = "nsga2"
    qmc = "qmc"
    gp = "gp"


class Pruner(str, Enum):
    median = "median"
    hyperband = "hyperband"
    successive_halving = "successive_halving"
    none = "none"


class Engine(str, Enum):
    # optuna: worker steps of this Dagster run; ray: the trials on a Ray cluster
    # (tennis_assets.ray_tuning, the `ray` extra).
    optuna = "optuna"
    ray = "ray"


class RaySearcher(str, Enum):
    optuna = "optuna"
    hyperopt = "hyperopt"
    random = "random"


class RayScheduler(str, Enum):
    fifo = "fifo"
    asha = "asha"
    pbt = "pbt"


def default_profile() -> Profile:
    return Profile(settings.profile())


def _profile_of(value: Profile | str) -> dict[str, dict[str, Any]]:
    return PROFILES[Profile(value).value]


def _over_profile(config: Any, section: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The profile's ``section`` with each of ``names`` that ``config`` sets explicitly."""
    values = dict(_profile_of(config.profile)[section])
    values.update({n: getattr(config, n) for n in names if getattr(config, n) is not None})
    return values


def _overrides_config(core: type, name: str, doc: str, exclude: tuple[str, ...] = (),
                      choices: dict[str, tuple[str, ...]] | None = None) -> type:
    """A Config class with every field of the core dataclass ``core`` (except ``exclude``) as
    an optional override, so the launchpad offers exactly what the core accepts: a field added
    to the core appears here with no second list to keep. String fields with a fixed set of
    values become enums, which the launchpad checks as you type. Values are validated by the
    core dataclass itself, each against the defaults of the others."""
    import dataclasses
    import typing

    from pydantic import create_model

    hints = typing.get_type_hints(core)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(core):
        if f.name in exclude:
            continue
        kind = hints[f.name]
        if choices and f.name in choices:
            kind = Enum(f"{name}_{f.name}", {c: c for c in choices[f.name]}, type=str)
        fields[f.name] = (Optional[kind], Field(default=None,
                                                description=f"default {f.default!r}"))

    def validate(self):
        values = self.set_values()
        for field_name, value in values.items():
            try:
                core(**{field_name: value})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{field_name}: {exc}") from None
        return self

    def set_values(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Enum) else v)
                for k, v in self.model_dump().items() if v is not None}

    model = create_model(name, __base__=dg.Config, __doc__=doc,
                         __validators__={"_valid_for_core": model_validator(mode="after")(
                             validate)}, **fields)
    model.set_values = set_values
    return model


def _agent_overrides() -> type:
    from tennis_assets.agents.config import DEVICES, NOISE_KINDS, AgentConfig

    return _overrides_config(
        AgentConfig, "AgentOverrides",
        "Learner hyperparameters (tennis_assets.agents.AgentConfig); unset fields keep the "
        "tuned defaults, or the study's best values for the ``tuned`` partition.",
        # Chosen elsewhere: the algorithm and seed at the top level, the sizes by the game.
        exclude=("algorithm", "seed", "obs_size", "action_size", "num_agents"),
        choices={"noise": NOISE_KINDS, "device": DEVICES})


def _court_config() -> type:
    from tennis_assets.sim import CourtParams

    return _overrides_config(
        CourtParams, "CourtConfig",
        "Court parameters that differ from the defaults (tennis_assets.sim.CourtParams); unset "
        "fields keep the default court's value.")


AgentOverrides = _agent_overrides()
CourtConfig = _court_config()


class TrainingConfig(dg.Config):
    """How trained_agents trains (tennis_assets.training.TrainConfig plus the agent overrides)."""

    profile: Profile = Field(default_factory=default_profile,
                             description="tiny (tests), quick (minutes), full")
    environment: Environment = Field(default=Environment.builtin,
                                     description="simulator the agents train on")
    algorithm: Algorithm = Algorithm.ddpg
    seed: int = Field(default=0, ge=0)
    max_seconds: Optional[float] = Field(default=None, gt=0, description="wall-clock budget")
    max_updates: Optional[int] = Field(default=None, ge=1)
    num_courts: Optional[int] = Field(default=None, ge=1)
    eval_every_updates: Optional[int] = Field(default=None, ge=1)
    eval_episodes: Optional[int] = Field(default=None, ge=1)
    stop_when_solved: Optional[bool] = None
    checkpoint_every_seconds: Optional[float] = Field(
        default=None, gt=0, description="save the resume state this often (default 10 s): a "
                                        "killed or terminated run's retry continues from it")
    init_checkpoint: Optional[str] = Field(
        default=None, description="start from these weights: a .safetensors checkpoint path, or "
                                  "'champion' for the registered champion")
    agent: AgentOverrides = Field(default_factory=AgentOverrides)
    court: CourtConfig = Field(default_factory=CourtConfig,
                               description="train (and evaluate) on this court; the drift "
                                           "sensor sets it to the court that drifted")

    def train_overrides(self) -> dict[str, Any]:
        values = _over_profile(self, "train", (
            "max_seconds", "max_updates", "num_courts", "eval_every_updates", "eval_episodes",
            "stop_when_solved", "checkpoint_every_seconds"))
        values["seed"] = self.seed
        court = self.court.set_values()
        if court:
            values["court"] = court
        return values

    def agent_overrides(self) -> dict[str, Any]:
        return {**_profile_of(self.profile)["agent"], **self.agent.set_values(),
                "seed": self.seed}

    def build(self, tuned_params: dict[str, Any] | None = None):
        """(AgentConfig, TrainConfig): tuned defaults, then the study's best values, then the
        profile and explicit fields."""
        from tennis_assets.training.defaults import default_configs

        agent, train = default_configs(self.algorithm.value)
        agent = agent.replace(**{**(tuned_params or {}), **self.agent_overrides()})
        train = train.replace(**self.train_overrides())
        return agent, train


class TuningConfig(dg.Config):
    """How tuning_study searches (an Optuna study of short training runs, run by Optuna's
    worker steps or on a Ray cluster)."""

    profile: Profile = Field(default_factory=default_profile)
    environment: Environment = Environment.builtin
    study_name: str = "tennis-ddpg"
    n_trials: Optional[int] = Field(default=None, ge=1, description="trials added by this run")
    n_workers: int = Field(default=1, ge=1, le=256,
                           description="parallel worker steps sharing the study; each runs an "
                                       "exact share of n_trials (pool 'training' decides how "
                                       "many run at once)")
    trial_max_seconds: Optional[float] = Field(default=None, gt=0)
    trial_max_updates: Optional[int] = Field(default=None, ge=1)
    sampler: Sampler = Field(default=Sampler.tpe,
                             description="tpe, random, cmaes (single objective), nsga2, qmc, "
                                         "gp; with engine=ray, OptunaSearch's sampler")
    pruner: Pruner = Pruner.median
    multi_objective: bool = Field(default=False,
                                  description="maximise score and minimise training seconds")
    engine: Engine = Field(default=Engine.optuna,
                           description="optuna: n_workers steps of this run share the study; "
                                       "ray: the trials run on a Ray cluster (extra 'ray')")
    ray_searcher: RaySearcher = Field(default=RaySearcher.optuna,
                                      description="engine=ray: OptunaSearch, HyperOptSearch "
                                                  "(Hyperopt's TPE) or random points")
    ray_scheduler: RayScheduler = Field(default=RayScheduler.asha,
                                        description="engine=ray: fifo, asha (early stopping) or "
                                                    "pbt (population-based training)")
    ray_address: str = Field(default="", description="engine=ray: an existing cluster "
                                                     "(ray://host:10001 or auto); empty: "
                                                     "$TENNIS_ASSETS_RAY_ADDRESS, else a local "
                                                     "Ray instance")
    params: Optional[list[str]] = Field(default=None,
                                        description="AgentConfig fields to tune (default: all "
                                                    "of tennis_assets.tuning.SEARCH_SPACE)")
    min_completed_trials: Optional[int] = Field(default=None, ge=1)
    seed: int = 0

    @field_validator("environment")
    @classmethod
    def _builtin_only(cls, v):
        # Trials run many short trainings in parallel; one Unity build per trial is not wired.
        if v != Environment.builtin:
            raise ValueError(f"environment={v.value}: tuning runs on the builtin simulator only")
        return v

    @field_validator("params")
    @classmethod
    def _known_params(cls, v):
        if v is not None:
            from tennis_assets.tuning import SEARCH_SPACE

            unknown = sorted(set(v) - set(SEARCH_SPACE))
            if unknown:
                raise ValueError(f"params {unknown} not in the search space {sorted(SEARCH_SPACE)}")
            if not v:
                raise ValueError("params: list at least one parameter")
        return v

    @model_validator(mode="after")
    def _workers_have_trials(self) -> "TuningConfig":
        n_trials = self.resolved()["n_trials"]
        if self.n_workers > n_trials:
            raise ValueError(f"n_workers={self.n_workers} > n_trials={n_trials}: every worker "
                             "needs at least one trial")
        from tennis_assets.tuning import check_sampler

        check_sampler(self.sampler.value, self.multi_objective)
        if self.engine == Engine.ray:
            from tennis_assets.ray_tuning import check_ray_choices

            check_ray_choices(self.ray_searcher.value, self.ray_scheduler.value,
                              self.multi_objective, self.n_workers, self.params)
        return self

    def resolved(self) -> dict[str, Any]:
        return _over_profile(self, "tuning", ("n_trials", "trial_max_seconds",
                                              "trial_max_updates", "min_completed_trials"))

    def build(self):
        """(AgentConfig, TrainConfig) of one trial: the training profile, with the trial budget."""
        t = self.resolved()
        agent, train = TrainingConfig(profile=self.profile, seed=self.seed).build()
        train = train.replace(max_seconds=t["trial_max_seconds"],
                              max_updates=t["trial_max_updates"],
                              stop_when_solved=False)
        return agent, train


class EvaluationConfig(dg.Config):
    """How evaluation_report scores a candidate and what the gates demand."""

    profile: Profile = Field(default_factory=default_profile)
    episodes: Optional[int] = Field(default=None, ge=1,
                                    description="greedy episodes (default 100)")
    seed: int = Field(default=0, ge=0, description="offset into the fresh evaluation seeds")
    target_score: float = Field(default=0.5, description="solves_tennis: mean >= this")
    max_latency_ms: float = Field(default=5.0, gt=0,
                                  description="WARN when p95 single-observation latency exceeds")
    gif: bool = True
    gif_max_frames: Optional[int] = Field(default=None, ge=1)
    latency_samples: Optional[int] = Field(default=None, ge=1)

    def resolved(self) -> dict[str, Any]:
        return _over_profile(self, "evaluation", ("episodes", "gif_max_frames",
                                                  "latency_samples"))


class ChallengerConfig(dg.Config):
    """Which candidate becomes the challenger, and what its checks demand before it may
    replace the champion."""

    profile: Profile = Field(default_factory=default_profile)
    partition: Optional[str] = Field(
        default=None, description="candidate partition; default: the best one the promotion "
                                  "rule accepts")
    report_run_id: Optional[str] = Field(
        default=None, description="set by the promotion sensor: the Dagster run of the report")
    episodes: Optional[int] = Field(default=None, ge=1,
                                    description="fresh episodes of the challenger checks' replay")
    target_score: float = Field(default=0.5, description="challenger_solves: mean >= this")
    champion_margin: float = Field(default=0.05, ge=0,
                                   description="challenger_not_worse_than_champion: mean >= "
                                               "champion mean - margin on the same episodes")

    @field_validator("partition")
    @classmethod
    def _known_partition(cls, v):
        if v is not None and v not in PARTITIONS:
            raise ValueError(f"partition={v!r}: expected one of {list(PARTITIONS)}")
        return v

    def resolved_episodes(self) -> int:
        return int(_over_profile(self, "evaluation", ("episodes",))["episodes"])

    @staticmethod
    def confirmation_seed(version: str) -> int:
        # A seed range of its own (training, selection, evaluation and monitoring have theirs):
        # the challenger is confirmed on episodes it was never judged on.
        return 2_500_000_000 + (int(version) % 100_000) * 1_000


class PromotionConfig(dg.Config):
    """How production_model moves the champion alias."""

    rollback: bool = Field(
        default=False, description="instead of promoting the challenger, make the 'previous' "
                                   "version champion again (the rollback job sets this)")


class Severity(str, Enum):
    warning = "warning"
    critical = "critical"


class DriftRuleConfig(dg.Config):
    """Drift of ``severity`` when the test's p-value < max_p_value and the mean score fell by
    at least min_mean_drop (tennis_assets.training.drift.DriftRule)."""

    severity: Severity = Severity.warning
    max_p_value: float = Field(default=0.01, gt=0, lt=1)
    min_mean_drop: float = Field(default=0.1, ge=0)


def _default_rules() -> list[DriftRuleConfig]:
    from tennis_assets.training.drift import DEFAULT_RULES

    return [DriftRuleConfig(severity=Severity(r.severity), max_p_value=r.max_p_value,
                            min_mean_drop=r.min_mean_drop) for r in DEFAULT_RULES]


class MonitoringConfig(dg.Config):
    """How production_monitoring plays the champion and decides whether its score drifted."""

    profile: Profile = Field(default_factory=default_profile)
    episodes: Optional[int] = Field(default=None, ge=10,
                                    description="greedy episodes (default 100; the drift test "
                                                "needs at least 10)")
    seed: Optional[int] = Field(default=None, ge=0,
                                description="episode seed; default: fresh for every run")
    court: CourtConfig = Field(default_factory=CourtConfig,
                               description="the production court; unset: $TENNIS_ASSETS_COURT, "
                                           "else the default court")
    rules: list[DriftRuleConfig] = Field(default_factory=_default_rules,
                                         description="alert rules; the most severe that holds "
                                                     "names the drift's severity")
    output_dir: Optional[str] = Field(
        default=None, description="where latest.json goes for the policy server's drift "
                                  "metrics (default: <data dir>/monitoring)")

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, v):
        if not v:
            raise ValueError("rules: list at least one drift rule")
        return v

    def court_values(self) -> dict[str, Any]:
        return self.court.set_values() or settings.production_court()

    def resolved_episodes(self) -> int:
        return int(_over_profile(self, "evaluation", ("episodes",))["episodes"])


# The Config of each asset whose op takes one directly; Dagster builds it at that op's step.
# tuning_study's TuningConfig is checked at launch by its config mapping instead.
STEP_CONFIGS: dict[str, type] = {
    "trained_agents": TrainingConfig,
    "evaluation_report": EvaluationConfig,
    "challenger_model": ChallengerConfig,
    "production_model": PromotionConfig,
    "production_monitoring": MonitoringConfig,
}


def _field_errors(exc: ValidationError, path: str) -> list[str]:
    """pydantic's errors, each as ``<path in the run config>.<field>: <why> (got <value>)``."""
    errors = []
    for error in exc.errors(include_url=False):
        value = error.get("input")
        if isinstance(value, Mapping) and set(value) == {"env"}:
            continue  # an environment variable Dagster resolves later; its step checks it
        where = ".".join([path, *map(str, error["loc"])])
        got = f" (got {value!r})" if error["loc"] else ""
        errors.append(f"{where}: {error['msg'].removeprefix('Value error, ')}{got}")
    return errors


def build_config(cls: type, values: Mapping[str, Any], path: str):
    """``cls(**values)``; a value pydantic rejects raises ``DagsterInvalidConfigError`` naming
    the field by its path in the run config (``path``, e.g. ``ops.tuning_study.config``)."""
    try:
        return cls(**values)
    except ValidationError as exc:
        # Dagster passes its own errors out of a config mapping as they are (any other is an
        # "unexpected error"); the fields are named in the message itself.
        raise dg.DagsterInvalidConfigError(
            "\n    ".join([f"Error in config for {path}:", *_field_errors(exc, path)]), [],
            dict(values)) from None


def check_run_config(run_config: Mapping[str, Any] | None) -> None:
    """Every asset config of a run (``STEP_CONFIGS``) checked at once, so that a bad value for a
    later step fails the run's first step, not the later step after the training before it."""
    ops = (run_config or {}).get("ops") or {}
    errors = []
    for name, cls in STEP_CONFIGS.items():
        values = (ops.get(name) or {}).get("config")
        if not isinstance(values, Mapping):
            continue  # not configured: the defaults are valid
        try:
            built = cls(**values)
        except ValidationError as exc:
            errors += _field_errors(exc, f"ops.{name}.config")
            continue
        if isinstance(built, TrainingConfig):
            from tennis_assets.training import check_memory

            # Courts and a replay buffer that cannot fit fail the run here (MemoryLimitError,
            # naming num_courts and buffer_size), not as an out-of-memory kill mid-training.
            agent, train = built.build()
            check_memory(agent, train, eval_episodes=train.eval_episodes)
    if errors:
        raise ValueError("\n    ".join(["Error in the run's config:", *errors]))
