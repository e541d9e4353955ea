"""One experiment, start to finish: train a team, evaluate it greedily on fresh episodes, and
write everything a person wants to look at into one folder.

This is the main job in plain Python (no Dagster), so a notebook gets the same artifacts as the
command line:

    from tennis_assets.experiment import run_experiment
    result = run_experiment(algorithm="ddpg", seed=0, max_seconds=60)
    result.report["evaluation"]["mean"]
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator


from tennis_assets.files import LockHeld, atomic_write_text, check_writable, exclusive_lock
from tennis_assets.settings import runs_dir
from tennis_assets.tracking.run_info import git_commit, machine_info, package_versions
from tennis_assets.workflow.candidate import CANDIDATE_FILES
from tennis_assets.workflow.evaluation import EVALUATION_FILES, score_histogram  # noqa: F401

ARTIFACTS = {**CANDIDATE_FILES, **EVALUATION_FILES, "resume": "resume.safetensors",
             "report": "report.json"}
# What marks a folder as holding a run's results: its artifacts and the checkpoints' JSON copies.
RESULT_FILES = (*ARTIFACTS.values(), "checkpoint.json", "resume.json")
DEFAULT_SECONDS = 60.0
# What a resumed run may change: its budget, how often it saves, where it runs. Anything else
# would make it a different run than the one whose state it continues.
RESUME_ADJUSTABLE = {
    "agent": ("device", "torch_threads"),
    "training": ("max_seconds", "max_updates", "max_episodes", "stop_when_solved",
                 "checkpoint_path", "checkpoint_every_seconds", "checkpoint_every_updates",
                 "checkpoint_include_buffer"),
}
_UNSET: Any = object()  # "not given": a new run's DEFAULT_SECONDS, a resumed run's own budget


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


@dataclass
class ExperimentResult:
    out_dir: Path
    paths: dict[str, Path]
    report: dict[str, Any]
    train_result: Any  # tennis_assets.training.TrainResult
    evaluation: Any  # tennis_assets.training.EvalResult


def _apply_overrides(config: Any, overrides: dict[str, Any] | None, what: str) -> Any:
    if not overrides:
        return config
    data = config.to_dict()
    unknown = sorted(set(overrides) - set(data))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; known: {sorted(data)}")
    data.update(overrides)
    return type(config).from_dict(data)


def environment_info() -> dict[str, Any]:
    """What a reader of a report needs to reproduce or compare its figures (the same facts the
    tracked runs carry as tags)."""
    return {**machine_info(), "cpu_count": os.cpu_count(), "packages": package_versions(),
            "git_commit": git_commit()}


def _resumed_configs(resume_from: Path, algorithm: str | None, seed: int | None,
                     agent_overrides: dict[str, Any], train_overrides: dict[str, Any]
                     ) -> tuple[Any, Any]:
    """The checkpoint's own agent and training configs, with only RESUME_ADJUSTABLE settings
    changed; any other given value that differs from the checkpoint's is an error naming it."""
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import CheckpointError, TrainConfig
    from tennis_assets.training.checkpoints import read_metadata

    doc = read_metadata(resume_from)
    if not doc.get("train_config"):
        raise CheckpointError(f"checkpoint {resume_from} holds no training configuration (it "
                              "was not written by a training run); resume from a run's "
                              "resume.safetensors, or start a new run")
    try:
        agent = AgentConfig.from_dict(doc["agent_config"])
        train = TrainConfig.from_dict(doc["train_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {resume_from}: invalid configuration ({e})") from e
    given = {"agent": dict(agent_overrides), "training": dict(train_overrides)}
    if algorithm is not None:
        given["agent"]["algorithm"] = algorithm
    if seed is not None:
        given["agent"]["seed"] = given["training"]["seed"] = seed
    differing = []
    for what, config in (("agent", agent), ("training", train)):
        stored = config.to_dict()
        unknown = sorted(set(given[what]) - set(stored))
        if unknown:
            raise ValueError(f"unknown {what} setting(s) {unknown}; known: {sorted(stored)}")
        differing += [f"{key}: checkpoint {stored[key]!r}, given {value!r}"
                      for key, value in sorted(given[what].items())
                      if key not in RESUME_ADJUSTABLE[what] and value != stored[key]]
    differing = list(dict.fromkeys(differing))  # seed is in both configs: name it once
    if differing:
        raise ValueError(
            f"resuming {resume_from} continues that run with its own configuration, but these "
            f"settings differ from it: {'; '.join(differing)}. Leave them out to continue the "
            f"run (only {', '.join(RESUME_ADJUSTABLE['training'] + RESUME_ADJUSTABLE['agent'])}"
            " may change), or start a new run without --resume")
    adjust = {what: {k: v for k, v in given[what].items() if k in RESUME_ADJUSTABLE[what]}
              for what in given}
    return (_apply_overrides(agent, adjust["agent"], "agent"),
            _apply_overrides(train, adjust["training"], "training"))


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


def run_experiment(
    algorithm: str | None = None,
    seed: int | None = None,
    max_seconds: float | None = _UNSET,
    out_dir: str | os.PathLike | None = None,
    eval_episodes: int = 100,
    agent_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    resume_from: str | os.PathLike | None = None,
    progress: bool = True,
    gif: bool = True,
    overwrite: bool = False,
) -> ExperimentResult:
    """Train ``algorithm`` (default ddpg) with its tuned defaults, evaluate the result greedily
    on ``eval_episodes`` fresh episodes (seeds disjoint from training and model selection), and
    write the checkpoint, histories, learning curve, rally GIF and report into ``out_dir``
    (default: a new folder under the data directory's runs/).

    seed: default 0. max_seconds: the training budget (None: no time limit), default 60 s.
    out_dir: refused if it holds another run's results, unless ``overwrite`` (which removes
    them first).
    resume_from: continue that run's checkpoint with the run's own configuration (agent and
    training, from the checkpoint), in the checkpoint's folder unless ``out_dir`` says
    otherwise. algorithm, seed and overrides, where given, must agree with it, except the
    budget and checkpoint settings in RESUME_ADJUSTABLE; max_seconds defaults to the run's own.

    Everything is checked (configs, checkpoint, folder, memory) before a folder is created."""
    # Imported here so `tennis-assets --help` and the Dagster layer's definitions stay fast.
    from tennis_assets.agents.config import check_seed
    from tennis_assets.training.defaults import default_configs
    from tennis_assets.training.memory import check_memory

    if isinstance(eval_episodes, bool) or not isinstance(eval_episodes, int) or eval_episodes < 1:
        raise ValueError(f"eval_episodes={eval_episodes!r} must be an integer >= 1")
    if seed is not None:
        seed = check_seed(seed)
    agent_overrides, train_overrides = dict(agent_overrides or {}), dict(train_overrides or {})
    if max_seconds is not _UNSET:
        train_overrides = {"max_seconds": max_seconds, **train_overrides}
    resume = None if resume_from is None else Path(resume_from)
    if resume is not None:
        if not resume.is_file():
            raise FileNotFoundError(f"resume_from: no checkpoint at {resume}")
        agent_config, train_config = _resumed_configs(resume, algorithm, seed, agent_overrides,
                                                      train_overrides)
    else:
        agent_config, train_config = default_configs(algorithm or "ddpg")
        seed = 0 if seed is None else seed
        agent_config = _apply_overrides(agent_config, {"seed": seed, **agent_overrides},
                                        "agent")
        train_config = _apply_overrides(
            train_config, {"seed": seed, "max_seconds": DEFAULT_SECONDS, **train_overrides},
            "training")
    algorithm, seed = agent_config.algorithm, agent_config.seed
    out = _choose_out_dir(out_dir, resume, overwrite)
    # The loop writes the full training state (buffer, optimizer, history) to resume.safetensors
    # in the run's folder; checkpoint.safetensors below holds only the selected policy. The
    # memory check needs only to know that the buffer is saved, so the folder can wait.
    own_checkpoint_path = "checkpoint_path" not in train_overrides
    if own_checkpoint_path:
        train_config = train_config.replace(checkpoint_path=ARTIFACTS["resume"])
    check_memory(agent_config, train_config, eval_episodes=eval_episodes)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    created = out is None or not out.exists()
    if out is None:
        out = _make_default_out_dir(algorithm, seed, stamp)
    if own_checkpoint_path:
        train_config = train_config.replace(checkpoint_path=str(out / ARTIFACTS["resume"]))
    try:
        with _claim(out, resume, overwrite):
            if overwrite:
                _clear_results(out, keep=resume)
            return _train_and_report(agent_config, train_config, out, resume, eval_episodes,
                                     progress, gif, stamp)
    except BaseException:
        # A run that failed before it wrote anything leaves no empty folder behind.
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _train_and_report(agent_config, train_config, out: Path, resume: Path | None,
                      eval_episodes: int, progress: bool, gif: bool,
                      stamp: str) -> ExperimentResult:
    """Train, evaluate and write every artifact and the report into ``out`` (held)."""
    from tennis_assets.training import final_seed
    from tennis_assets.workflow.candidate import train_candidate
    from tennis_assets.workflow.evaluation import evaluate_candidate

    algorithm, seed = agent_config.algorithm, agent_config.seed
    paths = {name: out / filename for name, filename in ARTIFACTS.items()}
    started = time.perf_counter()
    trained = train_candidate(agent_config, train_config, out, progress=progress,
                              resume_from=None if resume is None else str(resume),
                              title=f"{algorithm} seed {seed}: best greedy mean {{best:.2f}}")
    if trained.result.interrupted:
        raise TrainingInterrupted(trained.result, paths["resume"], out, algorithm, seed)
    judged = evaluate_candidate(trained.learner, out, label=f"{algorithm} seed {seed}",
                                episodes=eval_episodes, seed=final_seed(seed),
                                court=train_config.court_params(),
                                threshold=train_config.target_score,
                                # The replay is one more fresh episode, not a scored one.
                                rally_seed=final_seed(seed, 9_999) if gif else None)
    paths.update(judged.paths)
    if not gif:
        del paths["rally"]
        # Only an earlier run (continued or overwritten here) can have left one.
        (out / ARTIFACTS["rally"]).unlink(missing_ok=True)
    result, evaluation = trained.result, judged.evaluation

    report = {
        "algorithm": algorithm,
        "seed": seed,
        "created": stamp,
        "resumed_from": None if resume is None else str(resume),
        "agent_config": agent_config.to_dict(),
        "train_config": train_config.to_dict(),
        "training": result.summary(),
        "evaluation": judged.block,
        "latency": judged.latency,
        "rally": judged.rally,
        "wall_seconds": time.perf_counter() - started,
        "environment": environment_info(),
        "artifacts": {name: p.name for name, p in paths.items()},
    }
    atomic_write_text(paths["report"], json.dumps(report, indent=2, default=float))
    return ExperimentResult(out, paths, report, result, evaluation)
