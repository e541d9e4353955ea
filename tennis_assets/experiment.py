"""One experiment, start to finish: train a team, evaluate it greedily on fresh episodes, and
write everything a person wants to look at into one folder.

This is the main job in plain Python (no Dagster), so a notebook gets the same artifacts as the
command line:

    from tennis_assets.experiment import run_experiment
    result = run_experiment(algorithm="ddpg", seed=0, max_seconds=60)
    result.report["evaluation"]["mean"]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from tennis_assets.settings import runs_dir
from tennis_assets.tracking.run_info import git_commit, machine_info, package_versions
from tennis_assets.workflow.candidate import CANDIDATE_FILES
from tennis_assets.workflow.evaluation import EVALUATION_FILES, score_histogram  # noqa: F401

ARTIFACTS = {**CANDIDATE_FILES, **EVALUATION_FILES, "resume": "resume.safetensors",
             "report": "report.json"}


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM; its resume state is in ``resume_path``."""

    def __init__(self, result, resume_path: Path, out_dir: Path) -> None:
        self.result, self.resume_path, self.out_dir = result, Path(resume_path), Path(out_dir)
        super().__init__(f"training {result.stop_reason} after {result.seconds:.1f} s "
                         f"({result.updates} updates); its state is saved in {resume_path}")


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


def run_experiment(
    algorithm: str = "ddpg",
    seed: int = 0,
    max_seconds: float | None = 60.0,
    out_dir: str | os.PathLike | None = None,
    eval_episodes: int = 100,
    agent_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    resume_from: str | os.PathLike | None = None,
    progress: bool = True,
    gif: bool = True,
) -> ExperimentResult:
    """Train ``algorithm`` with its tuned defaults, evaluate the result greedily on
    ``eval_episodes`` fresh episodes (seeds disjoint from training and model selection), and
    write the checkpoint, histories, learning curve, rally GIF and report into ``out_dir``
    (default: a new folder under the data directory's runs/)."""
    # Imported here so `tennis-assets --help` and the Dagster layer's definitions stay fast.
    from tennis_assets.training import final_seed
    from tennis_assets.training.defaults import default_configs
    from tennis_assets.workflow.candidate import train_candidate
    from tennis_assets.workflow.evaluation import evaluate_candidate

    if isinstance(eval_episodes, bool) or not isinstance(eval_episodes, int) or eval_episodes < 1:
        raise ValueError(f"eval_episodes={eval_episodes!r} must be an integer >= 1")
    agent_config, train_config = default_configs(algorithm)
    agent_config = _apply_overrides(agent_config, {"seed": seed, **(agent_overrides or {})},
                                    "agent")
    if resume_from is not None and not Path(resume_from).is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {resume_from}")

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out_dir) if out_dir is not None else runs_dir() / f"{stamp}-{algorithm}-seed{seed}"
    paths = {name: out / filename for name, filename in ARTIFACTS.items()}
    # The loop writes the full training state (buffer, optimizer, history) to resume.safetensors
    # at its end; checkpoint.safetensors below holds only the selected policy.
    train_config = _apply_overrides(
        train_config, {"seed": seed, "max_seconds": max_seconds,
                       "checkpoint_path": str(paths["resume"]), **(train_overrides or {})},
        "training")
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    trained = train_candidate(agent_config, train_config, out, progress=progress,
                              resume_from=None if resume_from is None else str(resume_from),
                              title=f"{algorithm} seed {seed}: best greedy mean {{best:.2f}}")
    if trained.result.interrupted:
        raise TrainingInterrupted(trained.result, paths["resume"], out)
    judged = evaluate_candidate(trained.learner, out, label=f"{algorithm} seed {seed}",
                                episodes=eval_episodes, seed=final_seed(seed),
                                court=train_config.court_params(),
                                threshold=train_config.target_score,
                                # The replay is one more fresh episode, not a scored one.
                                rally_seed=final_seed(seed, 9_999) if gif else None)
    paths.update(judged.paths)
    if not gif:
        del paths["rally"]
    result, evaluation = trained.result, judged.evaluation

    report = {
        "algorithm": algorithm,
        "seed": seed,
        "created": stamp,
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
    paths["report"].write_text(json.dumps(report, indent=2, default=float))
    return ExperimentResult(out, paths, report, result, evaluation)
