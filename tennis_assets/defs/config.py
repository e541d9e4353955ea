"""Run configuration: Dagster Config classes derived from the core's configuration models.

Nothing is declared here that a core model declares: every field of a derived class is a field
of a core model (``tennis_assets.agents.AgentConfig``, ``tennis_assets.training.TrainConfig``,
``tennis_assets.sim.CourtParams``, ``tennis_assets.tuning_config.TuningConfig``, the workflow's
``CandidateConfig``, ``EvaluationConfig``, ``ChallengerConfig``, ``ProductionConfig`` and
``MonitoringConfig``), with its description, as an optional override: unset fields keep the
profile's value, else the model's default. Choices (``Literal`` fields) become enums that the
launchpad checks as you type.

When a value is checked: Dagster's config schema has no numeric bounds, and Dagster builds a
Config object only when the step that takes it starts. So the core models validate each run's
whole configuration once, earlier: tuning_study's config mapping at launch (``build_config``),
and the first step of a run checks every other asset's config of the run (``check_run_config``,
called when the MLflow and Optuna resources are set up; it also checks that trained_agents'
courts and replay buffer fit in memory), so a bad value for evaluation_report fails the run
before trained_agents trains. Errors name each field by its path in the run config
(``ops.evaluation_report.config.eval_episodes: ...``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Optional

import dagster as dg
from pydantic import Field, ValidationError, create_model

from tennis_assets.agents.config import AgentConfig
from tennis_assets.config.model import ConfigError, ConfigModel, field_errors
from tennis_assets.config.options import settable
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.profiles import resolve
from tennis_assets.training.config import TrainConfig
from tennis_assets.tuning_config import TuningConfig as CoreTuningConfig
from tennis_assets.workflow.candidate import CANDIDATES, CandidateConfig
from tennis_assets.workflow.evaluation import EvaluationConfig as CoreEvaluationConfig
from tennis_assets.workflow.monitoring import MonitoringConfig as CoreMonitoringConfig
from tennis_assets.workflow.production import ProductionConfig
from tennis_assets.workflow.promotion import ChallengerConfig as CoreChallengerConfig

PARTITIONS = CANDIDATES


@dataclass(frozen=True)
class Part:
    """A core model's fields in a derived config: at the top level (``section`` None) or
    nested under ``section``; ``only`` limits them to some fields."""

    model: type[ConfigModel]
    section: str | None = None
    only: tuple[str, ...] | None = None

    def names(self) -> tuple[str, ...]:
        return self.only if self.only is not None else settable(self.model)


_ENUMS: dict[tuple[str, ...], type[Enum]] = {}


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A Literal's choices as an enum: Dagster's schema takes a bare Literal, not an optional
    one, and the launchpad checks an enum as you type."""
    if values not in _ENUMS:
        # The functional API with a computed name: typeshed types the call as an instance.
        _ENUMS[values] = Enum(name, {v: v for v in values}, type=str)  # type: ignore[assignment]
    return _ENUMS[values]


def _plain(annotation: Any, name: str) -> Any:
    """The annotation without its constraints (Dagster's schema has no bounds; the core model
    checks them), with nested models as Configs of their own and choices as enums."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _plain(args[0], name)
    if origin is Literal:
        return _choices(name, args)
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return _complete_config(annotation)
    if origin is list and args:
        return list[_plain(args[0], name)]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType) and args:
        kept = [_plain(a, name) for a in args if a is not type(None)]
        # A union of a computed tuple of types is only spelled this way.
        return kept[0] if len(kept) == 1 else typing.Union[tuple(kept)]  # noqa: UP007
    return annotation


def _description(field: Any) -> str:
    default = field.get_default(call_default_factory=True)
    shown = (default.changes() or "default") if isinstance(default, ConfigModel) \
        else repr(default)
    return f"{field.description or ''} (default {shown})".strip()


def _overrides_config(model: type[ConfigModel], names: tuple[str, ...] | None = None
                      ) -> type[dg.Config]:
    """A Config with ``model``'s fields (or ``names`` of them), each an optional override."""
    fields: dict[str, Any] = {}
    for name in names or settable(model):
        info = model.model_fields[name]
        kind = _plain(info.annotation, f"{model.__name__}_{name}")
        if isinstance(kind, type) and issubclass(kind, dg.Config):
            nested = _overrides_config(_core_of(kind))
            fields[name] = (nested, Field(default_factory=nested, description=info.description))
        else:
            # Dagster's config schema reads typing.Optional (a union built at run time).
            fields[name] = (Optional[kind],  # noqa: UP045
                            Field(default=None, description=_description(info)))
    cls = create_model(f"{model.__name__}Overrides", __base__=dg.Config,
                       __doc__=model.__doc__, **fields)
    cls.__core__ = model  # type: ignore[attr-defined]
    return cls


_COMPLETE: dict[type, type[dg.Config]] = {}


def _complete_config(model: type[ConfigModel]) -> type[dg.Config]:
    """A Config with ``model``'s fields and defaults (an item of a list field, such as a drift
    rule, is given whole)."""
    if model not in _COMPLETE:
        # Any: mypy checks a **mapping's values against every keyword create_model takes.
        fields: dict[str, Any] = {
            name: (_plain(info.annotation, f"{model.__name__}_{name}"),
                   Field(default=info.default, description=info.description))
            for name, info in model.model_fields.items()}
        cls = create_model(f"{model.__name__}Item", __base__=dg.Config, __doc__=model.__doc__,
                           **fields)
        cls.__core__ = model  # type: ignore[attr-defined]
        _COMPLETE[model] = cls
    return _COMPLETE[model]


def _core_of(cls: type) -> type[ConfigModel]:
    return cls.__core__  # type: ignore[attr-defined]


def _set_values(config: dg.Config) -> dict[str, Any]:
    """The fields a run config sets, nested sections as dicts of theirs (empty ones left out)."""
    out: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, dg.Config):
            nested = _set_values(value)
            if nested:
                out[name] = nested
        elif isinstance(value, list):
            out[name] = [_set_values(v) if isinstance(v, dg.Config) else _value(v)
                         for v in value]
        elif value is not None:
            out[name] = _value(value)
    return out


def _value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def derive_config(name: str, doc: str, *parts: Part) -> type[dg.Config]:
    """One Dagster Config with the fields of ``parts``; ``overrides(model)`` gives the values a
    run set for one part's model, ``error_paths(path)`` where each model's errors point."""
    fields: dict[str, Any] = {}
    for part in parts:
        section = _overrides_config(part.model, part.names())
        if part.section is None:
            for field_name, info in section.model_fields.items():
                fields[field_name] = (info.annotation, info)
        else:
            fields[part.section] = (section, Field(default_factory=section,
                                                   description=part.model.__doc__))
    cls = create_model(name, __base__=dg.Config, __doc__=doc, **fields)
    cls.__parts__ = parts  # type: ignore[attr-defined]
    return cls


class DerivedConfig:
    """What every derived run config can say about itself."""

    def overrides(self, model: type[ConfigModel]) -> dict[str, Any]:
        part = next(p for p in self.__parts__ if p.model is model)  # type: ignore[attr-defined]
        if part.section is None:
            values = _set_values(self)  # type: ignore[arg-type]
            return {k: v for k, v in values.items() if k in part.names()}
        return _set_values(getattr(self, part.section))

    def profile_name(self) -> str:
        return self.overrides(CandidateConfig).get("profile") or CandidateConfig().profile

    @classmethod
    def error_paths(cls, path: str) -> dict[str, str]:
        return {p.model.__name__: path if p.section is None else f"{path}.{p.section}"
                for p in cls.__parts__}  # type: ignore[attr-defined]


_PROFILE = Part(CandidateConfig, only=("profile",))


class TrainingConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "TrainingConfigBase", "", Part(CandidateConfig), Part(EnvironmentConfig, "environment"),
        Part(AgentConfig, "agent"), Part(TrainConfig, "train"))):
    """How trained_agents trains: where the candidate comes from (profile, warm start), what
    it plays (``environment``: Tennis unless it says otherwise, its conditions in
    ``env_kwargs``), the learner's hyperparameters (``agent``) and the run (``train``)."""

    def candidate(self) -> CandidateConfig:
        return CandidateConfig(**self.overrides(CandidateConfig))

    def environment_config(self) -> EnvironmentConfig:
        return EnvironmentConfig(**self.overrides(EnvironmentConfig))

    def build(self, tuned_params: Mapping[str, Any] | None = None
              ) -> tuple[AgentConfig, TrainConfig]:
        """(AgentConfig, TrainConfig): the tuned defaults, the profile, the study's best
        values, then the fields this run sets; the learner sized for the environment."""
        from tennis_assets.workflow.candidate import candidate_configs

        return candidate_configs(self.profile_name(), self.overrides(AgentConfig),
                                 self.overrides(TrainConfig), tuned_params,
                                 self.environment_config())


class TuningConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "TuningConfigBase", "", _PROFILE, Part(EnvironmentConfig, "environment"),
        Part(CoreTuningConfig))):
    """How tuning_study searches: an Optuna study of short training runs (the profile's
    training configuration with the trial budget) on the environment, run by worker steps or
    on a Ray cluster."""

    def core(self) -> CoreTuningConfig:
        return resolve(CoreTuningConfig(), self.profile_name(), self.overrides(CoreTuningConfig))

    def environment_config(self) -> EnvironmentConfig:
        return EnvironmentConfig(**self.overrides(EnvironmentConfig))

    def build(self) -> tuple[AgentConfig, TrainConfig]:
        """(AgentConfig, TrainConfig) of one trial."""
        from tennis_assets.tuning import trial_configs

        return trial_configs(self.core(), self.profile_name(), self.environment_config())


class EvaluationConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "EvaluationConfigBase", "", _PROFILE, Part(CoreEvaluationConfig))):
    """How evaluation_report scores a candidate and what its gates demand."""

    def core(self) -> CoreEvaluationConfig:
        return resolve(CoreEvaluationConfig(), self.profile_name(),
                       self.overrides(CoreEvaluationConfig))


class ChallengerConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "ChallengerConfigBase", "", _PROFILE, Part(CoreChallengerConfig))):
    """Which candidate becomes the challenger, and what its replay demands before it may
    replace the champion."""

    def core(self) -> CoreChallengerConfig:
        return resolve(CoreChallengerConfig(), self.profile_name(),
                       self.overrides(CoreChallengerConfig))


class PromotionConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "PromotionConfigBase", "", Part(ProductionConfig))):
    """How production_model moves the champion alias."""

    def core(self) -> ProductionConfig:
        return ProductionConfig(**self.overrides(ProductionConfig))


class MonitoringConfig(DerivedConfig, derive_config(  # type: ignore[misc]
        "MonitoringConfigBase", "", _PROFILE, Part(CoreMonitoringConfig))):
    """How production_monitoring plays the champion and decides whether its score drifted."""

    def core(self) -> CoreMonitoringConfig:
        return resolve(CoreMonitoringConfig(), self.profile_name(),
                       self.overrides(CoreMonitoringConfig))


# The Config of each asset whose op takes one directly; Dagster builds it at that op's step.
# tuning_study's TuningConfig is checked at launch by its config mapping instead.
STEP_CONFIGS: dict[str, type[DerivedConfig]] = {
    "trained_agents": TrainingConfig,
    "evaluation_report": EvaluationConfig,
    "challenger_model": ChallengerConfig,
    "production_model": PromotionConfig,
    "production_monitoring": MonitoringConfig,
}


def _resolve(config: Any) -> Any:
    """The core configuration a derived config stands for (its whole validation)."""
    if isinstance(config, TrainingConfig):
        config.candidate()
        return config.build()
    if isinstance(config, TuningConfig):
        config.environment_config()
    return config.core()


def _errors(cls: type[DerivedConfig], values: Mapping[str, Any], path: str
            ) -> tuple[Any, list[str]]:
    """(the built and resolved config, []) or (None, the errors, each naming its field by its
    path in the run config)."""
    try:
        built = cls(**values)
    except ValidationError as exc:
        return None, [e.render(path) for e in field_errors(exc, "")
                      if not (isinstance(e.got, str) and "'env'" in e.got)]
    try:
        return (built, _resolve(built)), []
    except ConfigError as exc:
        return None, exc.lines(cls.error_paths(path))


def build_config(cls: type[DerivedConfig], values: Mapping[str, Any], path: str) -> Any:
    """``cls(**values)``, resolved; a value the core rejects raises
    ``DagsterInvalidConfigError`` naming the field by its path in the run config (``path``,
    e.g. ``ops.tuning_study.config``)."""
    result, errors = _errors(cls, values, path)
    if errors:
        # Dagster passes its own errors out of a config mapping as they are (any other is an
        # "unexpected error"); the fields are named in the message itself.
        raise dg.DagsterInvalidConfigError(
            "\n    ".join([f"Error in config for {path}:", *errors]), [], dict(values))
    return result[0]


def check_run_config(run_config: Mapping[str, Any] | None) -> None:
    """Every asset config of a run (``STEP_CONFIGS``) checked at once, so that a bad value for a
    later step fails the run's first step, not the later step after the training before it."""
    ops = (run_config or {}).get("ops") or {}
    errors = []
    for name, cls in STEP_CONFIGS.items():
        values = (ops.get(name) or {}).get("config")
        if not isinstance(values, Mapping):
            continue  # not configured: the defaults are valid
        result, found = _errors(cls, values, f"ops.{name}.config")
        errors += found
        if result is not None and isinstance(result[0], TrainingConfig):
            from tennis_assets.training import check_memory

            # Courts and a replay buffer that cannot fit fail the run here (MemoryLimitError,
            # naming num_courts and buffer_size), not as an out-of-memory kill mid-training.
            agent, train = result[1]
            check_memory(agent, train, eval_episodes=train.selection_episodes)
    if errors:
        raise ValueError("\n    ".join(["Error in the run's config:", *errors]))
