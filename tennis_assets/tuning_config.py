"""How a tuning study searches: the engine, its sampler or searcher, its pruner or scheduler,
and the budget of each trial. The choices are declared here once; tennis_assets.tuning and
tennis_assets.ray_tuning implement them."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from tennis_assets.config.model import ConfigModel, Seed

Sampler = Literal["tpe", "random", "cmaes", "nsga2", "qmc", "gp"]
Pruner = Literal["median", "hyperband", "successive_halving", "none"]
Engine = Literal["optuna", "ray"]
RaySearcher = Literal["optuna", "hyperopt", "random"]
RayScheduler = Literal["fifo", "asha", "pbt"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
PRUNERS: tuple[str, ...] = get_args(Pruner)
SEARCHERS: tuple[str, ...] = get_args(RaySearcher)
SCHEDULERS: tuple[str, ...] = get_args(RayScheduler)
# CMA-ES adapts one search distribution to a single score; it has no notion of a Pareto front.
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)


class TuningConfig(ConfigModel):
    """An Optuna study of short training runs, run by worker steps or on a Ray cluster."""

    study_name: str = Field("tennis-ddpg", min_length=1)
    """The study's name in its storage; a new run adds trials to it."""
    n_trials: int = Field(4, ge=1)
    """Trials this run adds to the study."""
    n_workers: int = Field(1, ge=1, le=256)
    """Parallel worker steps sharing the study, each running an exact share of n_trials."""
    trial_max_seconds: float | None = Field(12.0, gt=0.0)
    """Wall-clock budget of one trial's training (None: no limit of this kind)."""
    trial_max_updates: int | None = Field(None, ge=1)
    """Update budget of one trial's training (None: no limit of this kind)."""
    sampler: Sampler = "tpe"
    """tpe (Bayesian), random, cmaes (single objective), nsga2 (multi-objective), qmc (Sobol),
    gp (Gaussian process); with engine=ray, OptunaSearch's sampler."""
    pruner: Pruner = "median"
    """Stop weak trials early on intermediate greedy means (after a warm-up); none: never."""
    multi_objective: bool = False
    """Maximise the score and minimise the training seconds (a Pareto front)."""
    engine: Engine = "optuna"
    """optuna: n_workers steps of the run share the study; ray: the trials run on a Ray
    cluster (extra 'ray') and land in the same study."""
    ray_searcher: RaySearcher = "optuna"
    """engine=ray: OptunaSearch, HyperOptSearch (Hyperopt's TPE) or random points."""
    ray_scheduler: RayScheduler = "asha"
    """engine=ray: fifo, asha (early stopping) or pbt (population-based training)."""
    ray_address: str = ""
    """engine=ray: an existing cluster (ray://host:10001 or auto); empty:
    $TENNIS_ASSETS_RAY_ADDRESS, else a local Ray instance."""
    params: list[str] | None = None
    """AgentConfig fields to tune (None: all of tennis_assets.tuning.SEARCH_SPACE)."""
    min_completed_trials: int = Field(2, ge=1)
    """Completed trials of this run below which its enough_completed_trials check warns."""
    sampler_seed: Seed = 0
    """Seed of the sampler (each worker adds its index) and of the trials' training runs."""
    storage: str = ""
    """The study's storage URL (a journal file, an RDB or Redis URL); empty: the
    optuna_storage resource's, else $TENNIS_ASSETS_OPTUNA_STORAGE."""

    @model_validator(mode="after")
    def _consistent(self) -> TuningConfig:
        if self.trial_max_seconds is None and self.trial_max_updates is None:
            raise ValueError("set trial_max_seconds or trial_max_updates: a trial needs a budget")
        if self.n_workers > self.n_trials:
            raise ValueError(f"n_workers={self.n_workers} > n_trials={self.n_trials}: every "
                             "worker needs at least one trial")
        if self.multi_objective and self.sampler in SINGLE_OBJECTIVE_SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} optimizes a single objective; for "
                             "multi_objective use nsga2, tpe, gp, qmc or random")
        if self.engine == "ray":
            from tennis_assets.ray_tuning import check_ray_choices

            check_ray_choices(self.ray_searcher, self.ray_scheduler, self.multi_objective,
                              self.n_workers, self.params)
        return self

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            from tennis_assets.tuning import check_params

            check_params(value)
        return value
