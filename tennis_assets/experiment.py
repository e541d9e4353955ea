"""One experiment, start to finish: train a team, evaluate it greedily on fresh episodes, and
write everything a person wants to look at into one folder.

This is the main job in plain Python (no Dagster), so a notebook gets the same artifacts as the
command line:

    from tennis_assets.experiment import run_experiment
    result = run_experiment(algorithm="ddpg", seed=0, max_seconds=60)
    result.report.evaluation.mean
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tennis_assets.agents.config import AgentConfig
from tennis_assets.config.model import ConfigError, ConfigModel, FieldError, Record, unknown_name
from tennis_assets.config.options import settable
from tennis_assets.config.partial import layered
from tennis_assets.envs import EnvironmentConfig, describe, fit_agent
from tennis_assets.files import LockHeld, atomic_write_text, check_writable, exclusive_lock
from tennis_assets.settings import runs_dir
from tennis_assets.tracking.run_info import git_commit, machine_info, package_versions
from tennis_assets.training.config import TrainConfig
from tennis_assets.training.summary import TrainingSummary
from tennis_assets.workflow.candidate import CANDIDATE_FILES
from tennis_assets.workflow.evaluation import (
    EVALUATION_FILES,
    EvaluationConfig,
    EvaluationSummary,
    Gates,
    Latency,
    Rally,
    RandomBaseline,
    judge_gates,
    score_histogram,
)

__all__ = ["ARTIFACTS", "ExperimentConfig", "ExperimentResult", "RunFolderInUse", "RunReport",
           "TrainingInterrupted", "experiment_models", "plan_experiment", "run_experiment",
           "score_histogram"]

ARTIFACTS = {**CANDIDATE_FILES, **EVALUATION_FILES, "resume": "resume.safetensors",
             "report": "report.json"}
# What marks a folder as holding a run's results: its artifacts and the checkpoints' JSON copies.
RESULT_FILES = (*ARTIFACTS.values(), "checkpoint.json", "resume.json")
# What a resumed run may change: its budget, how often it saves, where it runs. Anything else
# would make it a different run than the one whose state it continues.
RESUME_ADJUSTABLE = {
    "agent": ("device", "torch_threads"),
    "training": ("max_seconds", "max_updates", "max_episodes", "stop_when_solved",
                 "checkpoint_path", "checkpoint_every_seconds", "checkpoint_every_updates",
                 "checkpoint_include_buffer"),
    "environment": (),
}


class ExperimentConfig(ConfigModel):
    """Where one experiment writes, and how it shows its progress."""

    out: str | None = None
    """Output folder (default: a new folder under $TENNIS_ASSETS_HOME/runs); refused if it
    holds a run's results, unless overwrite."""
    overwrite: bool = False
    """Let out replace the results of an earlier run in that folder."""
    resume: str | None = None
    """Continue the run whose resume.safetensors this is, with the run's own configuration,
    in its folder unless out says otherwise; only the budget and checkpointing may change."""
    progress: bool = True
    """Show a live progress bar while training."""


def experiment_models() -> tuple[type[ConfigModel], ...]:
    """The models whose fields ``run_experiment`` (and ``tennis-assets train``) take by name."""
    return (EnvironmentConfig, AgentConfig, TrainConfig, EvaluationConfig, ExperimentConfig)


def _route(settings: Mapping[str, Any]) -> dict[type[ConfigModel], dict[str, Any]]:
    """Each setting to the one model that declares it (field names are unique)."""
    models = experiment_models()
    owners = {name: m for m in models for name in settable(m)}
    unknown = sorted(set(settings) - set(owners))
    if unknown:
        raise ConfigError([FieldError("run_experiment", (name,),
                                      unknown_name(name, sorted(owners), "setting"))
                           for name in unknown])
    out: dict[type[ConfigModel], dict[str, Any]] = {m: {} for m in models}
    for name, value in settings.items():
        out[owners[name]][name] = value
    return out


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM; its resume state is in ``resume_path``."""

    def __init__(self, result, resume_path: Path, out_dir: Path, algorithm: str = "ddpg",
                 seed: int = 0) -> None:
        self.result, self.resume_path, self.out_dir = result, Path(resume_path), Path(out_dir)
        self.algorithm, self.seed = algorithm, seed
        saved = result.last_saved
        where = (f"its state is saved in {resume_path}" if saved
                 and saved["updates"] == result.updates else
                 f"the disk had no room for its final state: {resume_path} holds it as of "
                 f"{saved['seconds']:.0f} s ({saved['updates']} updates)" if saved else
                 "no resume state could be saved (disk full)")
        super().__init__(f"training {result.stop_reason} after {result.seconds:.1f} s "
                         f"({result.updates} updates); {where}")


class RunFolderInUse(FileExistsError):
    """``out_dir`` already holds another run's results, or another run is writing into it."""


# Held by a run in its folder while it runs: a second run started on the same folder (two
# commands with the same --out at once) is refused instead of replacing the first's results.
RUN_LOCK = ".run.lock"


class RunReport(Record):
    """report.json of one experiment: its configuration, what training did, how the result
    played on fresh episodes, and where and with what it ran."""

    algorithm: str
    seed: int
    created: str
    resumed_from: str | None = None
    environment: EnvironmentConfig
    agent_config: AgentConfig
    train_config: TrainConfig
    evaluation_config: EvaluationConfig
    training: TrainingSummary
    evaluation: EvaluationSummary
    latency: Latency
    rally: Rally | None = None
    random: RandomBaseline
    """A uniform random policy on the very same fresh episodes."""
    gates: Gates
    """The quality gates a candidate of the platform would face (no champion to beat)."""
    wall_seconds: float
    machine: dict[str, Any]
    """Machine, package versions and git commit."""
    artifacts: dict[str, str]


@dataclass
class ExperimentResult:
    out_dir: Path
    paths: dict[str, Path]
    report: RunReport
    train_result: Any  # tennis_assets.training.TrainResult
    evaluation: Any  # tennis_assets.training.EvalResult


def environment_info() -> dict[str, Any]:
    """What a reader of a report needs to reproduce or compare its figures (the same facts the
    tracked runs carry as tags)."""
    return {**machine_info(), "cpu_count": os.cpu_count(), "packages": package_versions(),
            "git_commit": git_commit()}


def _resumed_configs(resume_from: Path, agent_given: dict[str, Any],
                     train_given: dict[str, Any], env_given: dict[str, Any]
                     ) -> tuple[Any, Any, EnvironmentConfig]:
    """The checkpoint's own agent and training configs, with only RESUME_ADJUSTABLE settings
    changed; any other given value that differs from the checkpoint's is an error naming it."""
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import CheckpointError, TrainConfig
    from tennis_assets.training.checkpoints import read_metadata, stored_environment
    from tennis_assets.training.run_state import check_resume_document

    doc = read_metadata(resume_from)
    if not doc.get("train_config"):
        raise CheckpointError(f"checkpoint {resume_from} holds no training configuration (it "
                              "was not written by a training run); resume from a run's "
                              "resume.safetensors, or start a new run")
    check_resume_document(resume_from, doc)
    try:
        agent = AgentConfig.from_dict(doc["agent_config"])
        train = TrainConfig.from_dict(doc["train_config"])
        environment = stored_environment(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {resume_from}: invalid configuration ({e})") from None
    differing = []
    for what, config, values in (("agent", agent, agent_given), ("training", train, train_given),
                                 ("environment", environment, env_given)):
        stored = config.model_dump()
        differing += [f"{key}: checkpoint {stored[key]!r}, given {value!r}"
                      for key, value in sorted(values.items())
                      if key not in RESUME_ADJUSTABLE[what] and value != stored[key]]
    if differing:
        raise ValueError(
            f"resuming {resume_from} continues that run with its own configuration, but these "
            f"settings differ from it: {'; '.join(differing)}. Leave them out to continue the "
            f"run (only {', '.join(RESUME_ADJUSTABLE['training'] + RESUME_ADJUSTABLE['agent'])}"
            " may change), or start a new run without --resume")
    adjust = {what: {k: v for k, v in values.items() if k in RESUME_ADJUSTABLE[what]}
              for what, values in (("agent", agent_given), ("training", train_given))}
    return layered(agent, adjust["agent"]), layered(train, adjust["training"]), environment


def _holds_results(folder: Path) -> list[str]:
    return [name for name in RESULT_FILES if (folder / name).exists()]


def _choose_out_dir(out_dir: str | os.PathLike | None, resume_from: Path | None,
                    overwrite: bool) -> Path | None:
    """The folder the run writes into, checked but not created; None: a new default folder.

    A resumed run continues in its checkpoint's folder unless told otherwise; any other folder
    that already holds a run's results is refused unless ``overwrite``."""
    own = resume_from.resolve().parent if resume_from is not None else None
    if out_dir is None:
        return own
    if not str(out_dir).strip():
        raise ValueError("out_dir is empty; name a folder (--out PATH), or leave it out for a "
                         f"new folder under {runs_dir()}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file, not a folder; choose another "
                                 "folder (--out NEW)")
    found = _holds_results(out) if out.is_dir() else []
    if found and not overwrite and out.resolve() != own:
        raise _in_use(out, found)
    return out


def _in_use(out: Path, found: list[str]) -> RunFolderInUse:
    return RunFolderInUse(
        f"{out} already holds a run's results ({', '.join(found[:3])}"
        f"{', ...' if len(found) > 3 else ''}); "
        f"write this run elsewhere (--out NEW, or no --out for a new folder under "
        f"{runs_dir()}) or replace them (--overwrite, overwrite=True)")


@contextlib.contextmanager
def _claim(out: Path, resume_from: Path | None, overwrite: bool) -> Iterator[None]:
    """Hold ``out`` for this run: writable, no other run writing into it now, and (checked
    again under the lock: a run that finished meanwhile may have filled it) no other run's
    results unless ``overwrite``."""
    check_writable(out)
    try:
        with exclusive_lock(out / RUN_LOCK):
            own = resume_from.resolve().parent if resume_from is not None else None
            found = _holds_results(out)
            if found and not overwrite and out.resolve() != own:
                raise _in_use(out, found)
            yield
    except LockHeld as held:
        raise RunFolderInUse(
            f"{out} is in use by another run (process {held.holder}) writing its results "
            f"there; wait for it to end, or write this run elsewhere (--out NEW, or no --out "
            f"for a new folder under {runs_dir()})") from None


def _make_default_out_dir(algorithm: str, seed: int, stamp: str) -> Path:
    """A new, empty folder under runs/: the random suffix and the exclusive mkdir keep two runs
    started in the same second apart."""
    parent = check_writable(runs_dir())
    for _ in range(100):
        out = parent / f"{stamp}-{algorithm}-seed{seed}-{secrets.token_hex(3)}"
        try:
            out.mkdir()
        except FileExistsError:
            continue
        return out
    raise FileExistsError(f"could not create a new run folder under {parent}")


def _clear_results(folder: Path, keep: Path | None) -> None:
    """Remove an earlier run's results (--overwrite), so no file of it is left beside this
    run's; ``keep``: the checkpoint being resumed from, if it lies there."""
    for name in RESULT_FILES:
        path = folder / name
        if keep is not None and path.resolve() in (keep.resolve(),
                                                   keep.resolve().with_suffix(".json")):
            continue
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Plan:
    """An experiment's configuration, resolved and checked before anything is written."""

    environment: EnvironmentConfig
    agent: Any  # AgentConfig
    train: Any  # TrainConfig
    evaluation: Any  # EvaluationConfig
    experiment: ExperimentConfig
    resume: Path | None
    own_checkpoint_path: bool


def plan_experiment(**settings: Any) -> _Plan:
    """The configurations ``run_experiment`` would use, checked (values, checkpoint, folder,
    memory) without creating or writing anything."""
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import TrainConfig
    from tennis_assets.training.defaults import default_configs
    from tennis_assets.training.memory import check_memory
    from tennis_assets.workflow.evaluation import EvaluationConfig

    routed = _route(settings)
    experiment = ExperimentConfig(**routed[ExperimentConfig])
    evaluation = EvaluationConfig(**routed[EvaluationConfig])
    agent_given, train_given = routed[AgentConfig], routed[TrainConfig]
    env_given = routed[EnvironmentConfig]
    resume = None if experiment.resume is None else Path(experiment.resume)
    if resume is not None:
        if not resume.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {resume}")
        agent, train, environment = _resumed_configs(resume, agent_given, train_given,
                                                     env_given)
    else:
        environment = EnvironmentConfig(**env_given)
        agent, train = default_configs(agent_given.get("algorithm", "ddpg"))
        agent, train = layered(agent, agent_given), layered(train, train_given)
        if environment.kind != "tennis":
            agent = fit_agent(agent, describe(environment))
    _choose_out_dir(experiment.out, resume, experiment.overwrite)
    # The loop writes the full training state (buffer, optimizer, history) to resume.safetensors
    # in the run's folder; checkpoint.safetensors holds only the selected policy. The memory
    # check needs only to know that the buffer is saved, so the folder can wait.
    own = "checkpoint_path" not in train_given
    if own:
        train = train.replace(checkpoint_path=ARTIFACTS["resume"])
    check_memory(agent, train, eval_episodes=evaluation.eval_episodes)
    return _Plan(environment, agent, train, evaluation, experiment, resume, own)


def _open_folder(plan: _Plan, stamp: str) -> tuple[Path, bool]:
    """(the run's folder, whether this run created it)."""
    out = _choose_out_dir(plan.experiment.out, plan.resume, plan.experiment.overwrite)
    created = out is None or not out.exists()
    if out is None:
        return _make_default_out_dir(plan.agent.algorithm, plan.train.seed, stamp), True
    return out, created


def run_experiment(**settings: Any) -> ExperimentResult:
    """Train with the algorithm's tuned defaults, evaluate the result greedily on fresh
    episodes (seeds disjoint from training and model selection), and write the checkpoint,
    histories, learning curve, rally GIF and report into one folder.

    ``settings``: any field of AgentConfig, TrainConfig, EvaluationConfig or ExperimentConfig
    by name (names are unique), e.g. ``run_experiment(seed=0, max_seconds=60, out="RUN")``.
    ``resume`` continues that run's checkpoint with the run's own configuration; other given
    settings must agree with it, except the budget and checkpoint settings in
    RESUME_ADJUSTABLE. Everything is checked (configs, checkpoint, folder, memory) before a
    folder is created."""
    plan = plan_experiment(**settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out, created = _open_folder(plan, stamp)
    train_config = plan.train
    if plan.own_checkpoint_path:
        train_config = train_config.replace(checkpoint_path=str(out / ARTIFACTS["resume"]))
    try:
        with _claim(out, plan.resume, plan.experiment.overwrite):
            if plan.experiment.overwrite:
                _clear_results(out, keep=plan.resume)
            return _train_and_report(plan, train_config, out, stamp)
    except BaseException:
        # A run that failed before it wrote anything leaves no empty folder behind.
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _train_and_report(plan: _Plan, train_config: Any, out: Path,
                      stamp: str) -> ExperimentResult:
    """Train, evaluate and write every artifact and the report into ``out`` (held)."""
    from tennis_assets.training import final_seed
    from tennis_assets.workflow.candidate import train_candidate
    from tennis_assets.workflow.evaluation import evaluate_candidate

    agent_config, evaluation, resume = plan.agent, plan.evaluation, plan.resume
    algorithm, seed = agent_config.algorithm, train_config.seed
    paths = {name: out / filename for name, filename in ARTIFACTS.items()}
    started = time.perf_counter()
    trained = train_candidate(agent_config, train_config, out,
                              progress=plan.experiment.progress, environment=plan.environment,
                              resume_from=None if resume is None else str(resume),
                              title=f"{algorithm} seed {seed}: best greedy mean {{best:.2f}}")
    if trained.result.interrupted:
        raise TrainingInterrupted(trained.result, paths["resume"], out, algorithm, seed)
    train_config = trained.train_config
    judged = evaluate_candidate(trained.learner, out, label=f"{algorithm} seed {seed}",
                                episodes=evaluation.eval_episodes,
                                seed=final_seed(seed, evaluation.eval_seed),
                                environment=plan.environment,
                                latency_samples=evaluation.latency_samples,
                                rally_max_frames=evaluation.gif_max_frames,
                                # The replay is one more fresh episode, not a scored one.
                                rally_seed=final_seed(seed, 9_999) if evaluation.gif else None)
    paths.update(judged.paths)
    if "rally" not in judged.paths:  # --no-gif, or an environment without a renderer
        del paths["rally"]
        # Only an earlier run (continued or overwritten here) can have left one.
        (out / ARTIFACTS["rally"]).unlink(missing_ok=True)
    result, evaluated = trained.result, judged.evaluation

    report = RunReport(
        algorithm=algorithm, seed=seed, created=stamp,
        resumed_from=None if resume is None else str(resume), environment=plan.environment,
        agent_config=agent_config,
        train_config=train_config, evaluation_config=evaluation, training=result.summary(),
        evaluation=judged.summary, latency=judged.latency, rally=judged.rally,
        random=judged.random, gates=judge_gates(judged, evaluation.max_latency_ms),
        wall_seconds=time.perf_counter() - started, machine=environment_info(),
        artifacts={name: p.name for name, p in paths.items()})
    atomic_write_text(paths["report"], report.to_json())
    return ExperimentResult(out, paths, report, result, evaluated)
