"""A training run's own state, and its one serialisation: the resume checkpoint.

``RunState`` is what the loop carries from step to step besides the learner (whose networks,
Adam moments, replay buffer and noise are ``Learner.state_dict``/``extra_state``): counters,
histories, first-solve records and the best weights so far. ``save_resume`` is the only writer
of a resume checkpoint (the loop's periodic and final saves, and ``warm_start_checkpoint``) and
``load_resume`` its only reader. The state goes into the checkpoint's JSON document as the
``progress`` dict (``PROGRESS_KEYS``), the best weights as the tensor ``extra.best_params``.

Compatibility: this is the schema the loop has written since resume checkpoints exist (the same
13 keys), so a resume checkpoint written before this module resumes unchanged
(tennis_assets_tests/training/test_run_state.py resumes files written by that code). A
checkpoint whose ``progress`` lacks any of the keys (a policy checkpoint, whose ``progress`` is a
run's summary, or a file from another program) is refused with a ``CheckpointError`` naming the
file and the missing keys: resuming from it would restart the evaluation seeds and lose the
histories without a word. Its weights can still start a run: ``warm_start_checkpoint``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tennis_assets.agents import AgentConfig, Learner

from .checkpoints import CheckpointError, load_checkpoint, read_tensor, save_checkpoint

# The progress document, key by key. "updates" and "seconds" are what readers such as the
# fault tests and the Dagster training asset look at; the learner's own counters (in its
# tensors) are what a resume restores.
PROGRESS_KEYS = ("env_steps", "episodes", "evals", "seconds", "updates", "solved_greedy",
                 "solved_udacity", "best_greedy_mean", "best_updates", "last_eval_updates",
                 "history", "eval_history", "resumes")
BEST_PARAMS = "extra.best_params"


@dataclass
class RunState:
    env_steps: int = 0  # court-decisions simulated
    episodes: int = 0  # training episodes finished
    evals: int = 0  # greedy evaluations made (each draws its own selection seed)
    seconds: float = 0.0  # wall seconds of training before the current session
    # First greedy mean >= target ({"seconds", "updates", "env_steps", "episodes"}) and first
    # last-100 training average >= target ({"episodes", "seconds", "updates", "env_steps"}).
    solved_greedy: dict[str, float] | None = None
    solved_udacity: dict[str, float] | None = None
    # Model selection: the best greedy mean so far, at how many updates, and those weights.
    best_greedy_mean: float = -math.inf
    best_updates: int = -1
    best_params: torch.Tensor | None = None
    last_eval_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per episode
    eval_history: list[dict[str, Any]] = field(default_factory=list)  # one row per evaluation
    resumes: int = 0  # how many sessions continued this run before the current one

    def progress(self, updates: int, seconds: float) -> dict[str, Any]:
        """The JSON document of this state, at ``updates`` updates and ``seconds`` of training."""
        return {"env_steps": self.env_steps, "episodes": self.episodes, "evals": self.evals,
                "seconds": seconds, "updates": updates,
                "solved_greedy": self.solved_greedy, "solved_udacity": self.solved_udacity,
                "best_greedy_mean": (self.best_greedy_mean
                                     if math.isfinite(self.best_greedy_mean) else None),
                "best_updates": self.best_updates, "last_eval_updates": self.last_eval_updates,
                "history": self.history, "eval_history": self.eval_history,
                "resumes": self.resumes}

    @classmethod
    def from_progress(cls, progress: Any, path: str | os.PathLike,
                      best_params: torch.Tensor | None) -> RunState:
        """The state a progress document holds, or a CheckpointError naming ``path``."""
        missing = [k for k in PROGRESS_KEYS if not isinstance(progress, dict) or k not in progress]
        if missing:
            raise CheckpointError(
                f"checkpoint {path}: not a resume state (its progress lacks {missing}); resume "
                "from a run's resume.safetensors, or start a new run from these weights "
                "(a warm start)")
        p = progress
        try:
            best = p["best_greedy_mean"]
            return cls(env_steps=int(p["env_steps"]), episodes=int(p["episodes"]),
                       evals=int(p["evals"]), seconds=float(p["seconds"]),
                       solved_greedy=p["solved_greedy"], solved_udacity=p["solved_udacity"],
                       best_greedy_mean=-math.inf if best is None else float(best),
                       best_updates=int(p["best_updates"]), best_params=best_params,
                       last_eval_updates=int(p["last_eval_updates"]),
                       history=list(p["history"]), eval_history=list(p["eval_history"]),
                       resumes=int(p["resumes"]))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path}: malformed resume state ({e})") from e


def check_resume_document(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """A CheckpointError naming ``path`` unless its JSON document ``doc`` holds a resume state:
    what a caller checks before it creates folders or starts work."""
    RunState.from_progress(doc.get("progress"), path, best_params=None)


def save_resume(path: str | os.PathLike, learner: Learner, train_config: Any, state: RunState,
                seconds: float, include_buffer: bool = True, environment: Any = None) -> Path:
    """Write the resume checkpoint: the learner's state, ``state`` at ``seconds`` of training,
    the best weights so far, and the environment the run plays."""
    extra = {} if state.best_params is None else {BEST_PARAMS: state.best_params}
    return save_checkpoint(path, learner, train_config=train_config,
                           progress=state.progress(learner.updates, seconds),
                           include_buffer=include_buffer, extra_tensors=extra,
                           environment=environment)


def load_resume(path: str | os.PathLike, learner: Learner, expected_config: AgentConfig,
                retune: bool = False) -> RunState:
    """Restore ``learner`` from the resume checkpoint ``path`` and return the run's state
    (``load_checkpoint`` checks the configuration; ``retune``: see there)."""
    learner, doc = load_checkpoint(path, learner, expected_config=expected_config, retune=retune)
    best = read_tensor(path, BEST_PARAMS)
    if best is not None:
        best = best.to(learner.params.device)
    return RunState.from_progress(doc.get("progress"), path, best)


def warm_start_checkpoint(path: str | os.PathLike, learner: Learner, train_config: Any,
                          start_mean: float, environment: Any = None) -> Path:
    """A resume checkpoint that makes ``train(resume_from=path)`` continue from ``learner``'s
    weights as a new run: counters and histories start empty, and the starting weights count
    as the best so far with greedy mean ``start_mean``, so model selection replaces them only
    with weights that evaluate better. The buffer starts empty (it is not in ``learner``'s
    policy checkpoint)."""
    state = RunState(best_greedy_mean=float(start_mean), best_updates=learner.updates,
                     best_params=learner.params, last_eval_updates=learner.updates)
    return save_resume(path, learner, train_config, state, seconds=0.0, include_buffer=False,
                       environment=environment)
