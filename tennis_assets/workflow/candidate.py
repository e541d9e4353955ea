"""Train one candidate: optional warm start, the training loop, and the files a reader wants
(policy checkpoint, histories as CSV, learning curve)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from tennis_assets import settings
from tennis_assets.agents.config import AgentConfig
from tennis_assets.config.metadata import FilePath, Json, Link, Metadata, Picture, RunLink
from tennis_assets.config.model import ConfigModel, Record
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.profiles import ProfileName
from tennis_assets.training.config import TrainConfig
from tennis_assets.training.summary import TrainingSummary

log = logging.getLogger(__name__)

# The candidates the platform trains side by side: the tuned defaults, and the study's best.
Candidate = Literal["baseline", "tuned"]
CANDIDATES: tuple[str, ...] = get_args(Candidate)


class CandidateConfig(ConfigModel):
    """Where a candidate comes from: which profile sizes it, where its weights start."""

    profile: ProfileName = Field(default_factory=settings.profile)
    """tiny (tests; its agents cannot learn), quick (minutes), full; default
    $TENNIS_ASSETS_PROFILE, else quick."""
    init_checkpoint: str | None = None
    """Start from these weights: a .safetensors checkpoint path, or 'champion' for the
    registered champion."""
    reuse: bool = True
    """Take a finished training of the same configuration, seed, environment and code instead
    of training again (trainings from scratch that ended on a solve or their update or episode
    budget; the materialization links to the run that trained it)."""

CANDIDATE_FILES = {
    "checkpoint": "checkpoint.safetensors",
    "history": "history.csv",
    "eval_history": "eval_history.csv",
    "learning_curve": "learning_curve.png",
}


class TrainedAgent(Record):
    """One trained candidate: where its checkpoint and histories are, and how it was made (the
    trained_agents asset's value; evaluation reads the checkpoint it names)."""

    partition: str
    checkpoint: str
    history_csv: str
    eval_history_csv: str
    learning_curve: str
    agent_config: AgentConfig
    train_config: TrainConfig
    environment: EnvironmentConfig = EnvironmentConfig()
    summary: TrainingSummary
    dagster_run_id: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    model_source: str | None = None
    """The MLflow model the training run logged (what a registration points at)."""
    tuned_params: dict[str, Any] = {}  # noqa: RUF012 - a pydantic field: each instance gets a copy
    init_checkpoint: str | None = None
    resource_usage: dict[str, float] = {}  # noqa: RUF012 - as above
    warm_start_mean: float | None = None
    reused_from: str | None = None
    """The Dagster run that trained these weights, when this candidate reused its training
    (tennis_assets.workflow.reuse); None: trained by ``dagster_run_id`` itself."""
    training_key: str | None = None
    """The digest the training is indexed under for reuse (None: not reusable)."""

    @model_validator(mode="before")
    @classmethod
    def _earlier_shape(cls, data: Any) -> Any:
        # Values stored before the record was typed kept five fields in a free-form "extra",
        # the environment as a name and Tennis's court in the training configuration.
        if isinstance(data, dict) and "extra" in data:
            data = {**{k: v for k, v in data.items() if k != "extra"}, **data["extra"]}
        if isinstance(data, dict) and isinstance(data.get("environment"), str):
            data = {**data, "environment": {}}
        train = data.get("train_config") if isinstance(data, dict) else None
        if isinstance(train, dict) and "court" in train:
            data = {**data, "train_config": {k: v for k, v in train.items() if k != "court"},
                    "environment": {"env": "tennis", "env_kwargs": train["court"] or {}}}
        return data

    def history(self):
        import pandas as pd

        return pd.read_csv(self.history_csv)

    def eval_history(self):
        import pandas as pd

        return pd.read_csv(self.eval_history_csv)

    def learner(self):
        from tennis_assets.training import load_learner

        return load_learner(self.checkpoint, device="cpu")

    def metadata(self) -> Metadata:
        summary, usage = self.summary, self.resource_usage
        solved = summary.solved_greedy
        return {
            "best_greedy_mean": summary.best_greedy_mean,
            "seconds": summary.seconds, "warm_start_mean": self.warm_start_mean,
            "cpu_seconds": usage.get("cpu_seconds"),
            "cpu_percent_mean": usage.get("cpu_percent_mean"),
            "memory_rss_peak_mb": usage.get("memory_rss_peak_bytes", 0.0) / 2**20,
            "updates": summary.updates, "episodes": summary.episodes,
            "stop_reason": summary.stop_reason,
            "solved_greedy": Json(solved.model_dump() if solved else {}),
            "checkpoint": FilePath(self.checkpoint),
            "learning_curve": Picture(self.learning_curve, "learning curve"),
            "agent_config": Json(self.agent_config.to_dict()),
            "tuned_params": Json(self.tuned_params),
            "mlflow_run": Link(self.mlflow_run_url) if self.mlflow_run_url else None,
            "mlflow_run_id": self.mlflow_run_id,
            "dagster_run": RunLink(self.dagster_run_id),
            "reused_from": RunLink(self.reused_from) if self.reused_from else None,
            "training_key": self.training_key[:16] if self.training_key else None,
        }


@dataclass
class TrainedCandidate:
    learner: Any
    result: Any  # tennis_assets.training.TrainResult
    agent_config: Any
    train_config: Any
    paths: dict[str, Path]
    warm_start_mean: float | None
    resource_usage: dict[str, float]


@dataclass
class WarmStart:
    agent_config: Any
    train_config: Any
    resume_from: Path
    start_mean: float


def candidate_configs(profile: str, agent_overrides: Mapping[str, Any] | None = None,
                      train_overrides: Mapping[str, Any] | None = None,
                      tuned: Mapping[str, Any] | None = None,
                      environment: EnvironmentConfig | None = None) -> tuple[Any, Any]:
    """(AgentConfig, TrainConfig) of a candidate: the algorithm's tuned defaults, the profile,
    the study's best values (``tuned``), then what the run sets, the learner sized for
    ``environment`` (default Tennis); each validated once."""
    from tennis_assets.envs import describe, fit_agent
    from tennis_assets.profiles import resolve
    from tennis_assets.training.defaults import default_configs

    agent, train = default_configs((agent_overrides or {}).get("algorithm", "ddpg"))
    agent = resolve(agent, profile, dict(tuned or {}), agent_overrides)
    if environment is not None and environment.kind != "tennis":
        agent = fit_agent(agent, describe(environment))
    return agent, resolve(train, profile, train_overrides)


def warm_start(checkpoint: str | Path, agent_config, train_config, workdir: Path,
               environment: EnvironmentConfig | None = None) -> WarmStart:
    """Continue from a checkpoint's weights under this run's budget.

    The checkpoint's own learner settings are kept (its tensors only fit them); the starting
    weights are scored on selection episodes and count as the best so far."""
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import evaluate, greedy, load_learner, selection_seed
    from tennis_assets.training.checkpoints import read_metadata
    from tennis_assets.training.loop import warm_start_checkpoint

    stored = AgentConfig.from_dict(read_metadata(checkpoint)["agent_config"])
    agent = stored.replace(device=agent_config.device, torch_threads=agent_config.torch_threads)
    learner = load_learner(checkpoint)
    start = evaluate(greedy(learner), episodes=train_config.selection_episodes,
                     seed=selection_seed(train_config.seed, 9_999), environment=environment)
    resume = warm_start_checkpoint(Path(workdir) / "warm_start.safetensors", learner,
                                   train_config, start.mean, environment=environment)
    train = train_config
    if train.max_updates is not None:
        # Budgets count the resumed run as a whole: extend by the updates already in the weights.
        train = train.replace(max_updates=learner.updates + train.max_updates)
    return WarmStart(agent, train, resume, float(start.mean))


def resume_state(path: str | Path, agent_config) -> tuple[str | None, Any]:
    """(``path``, its agent configuration) if an earlier attempt of this training left a
    readable resume state there, else (None, ``agent_config``). The state's own configuration
    is kept (a warm start may have replaced the configured one); device and threads are this
    machine's."""
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training.checkpoints import CheckpointError, read_metadata

    path = Path(path)
    if not path.is_file():
        return None, agent_config
    try:
        stored = AgentConfig.from_dict(read_metadata(path)["agent_config"])
    except (CheckpointError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring an unreadable resume state (%s): training starts over", exc)
        return None, agent_config
    return str(path), stored.replace(device=agent_config.device,
                                     torch_threads=agent_config.torch_threads)


def interruption(result, resume: str | Path, how_to_continue: str) -> str:
    """What to tell a user whose training ``result`` was stopped by a signal."""
    saved = result.last_saved
    return (f"training was {result.stop_reason} after {result.seconds:.0f} s; "
            + (f"its state is saved in {resume}: {how_to_continue} to continue from "
               f"{saved['updates']} updates" if saved else "no resume state could be saved"))


def train_candidate(agent_config, train_config, out_dir: str | Path, *, title: str,
                    init_checkpoint: str | Path | None = None, resume_from: str | None = None,
                    env=None, progress: bool = False,
                    callback: Callable[[str, dict[str, Any]], bool | None] | None = None,
                    workdir: str | Path | None = None,
                    environment: EnvironmentConfig | None = None) -> TrainedCandidate:
    """Train, then write the policy checkpoint, histories and learning curve into ``out_dir``.

    title: the learning curve's title; ``{best}`` is replaced by the best greedy mean.
    init_checkpoint: warm start from these weights (see ``warm_start``); resume_from: continue
    an interrupted run of the same configuration from its resume checkpoint."""
    from tennis_assets.files import DiskFullError, atomic_write
    from tennis_assets.tracking.resource_usage import ResourceUsage
    from tennis_assets.training import plot_learning_curve, save_checkpoint, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / filename for name, filename in CANDIDATE_FILES.items()}
    warm_mean = None
    if init_checkpoint is not None:
        start = warm_start(init_checkpoint, agent_config, train_config, Path(workdir or out),
                           environment)
        agent_config, train_config = start.agent_config, start.train_config
        resume_from, warm_mean = str(start.resume_from), start.start_mean
    with ResourceUsage() as usage:
        result = train(agent_config, train_config, progress=progress, callback=callback,
                       resume_from=resume_from, env=env, environment=environment)
    train_config = result.train_config  # its target resolved from the environment's rule
    try:
        save_checkpoint(paths["checkpoint"], result.learner, train_config=train_config,
                        progress=result.summary().to_dict(), include_buffer=False,
                        environment=environment)
        for name in ("history", "eval_history"):
            frame = getattr(result, name)
            atomic_write(paths[name], functools.partial(frame.to_csv, index=False))
    except DiskFullError as exc:
        saved = result.last_saved
        raise DiskFullError(exc.path, exc, note=(
            f"the resume state {train_config.checkpoint_path} holds the run as of "
            f"{saved['seconds']:.0f} s ({saved['updates']} updates): continue from it"
            if saved and train_config.checkpoint_path else
            "no resume state was saved: this training is lost")) from exc
    plot_learning_curve(result.history, result.eval_history, paths["learning_curve"],
                        title=title.format(best=result.best_greedy_mean),
                        target=train_config.target_score)
    return TrainedCandidate(result.learner, result, agent_config, train_config, paths,
                            warm_mean, usage.summary())
