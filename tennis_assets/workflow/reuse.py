"""Content-addressed reuse of a candidate's training.

A training from scratch is a function of its learner and run configuration (the seed among
them), the environment and the code that trains: the same inputs give the same weights. So a
finished training is indexed under a digest of exactly those inputs, and a later candidate with
the same digest (the ``tuned`` candidate when the study kept the baseline's values, a retrain
of an unchanged configuration) takes the recorded result instead of training again.

- Only trainings that ended on something the inputs decide are recorded (a solve certified,
  the update or episode budget): one cut by the wall clock (``max_seconds``) or interrupted
  depends on the machine's speed, and is trained again.
- Warm starts are not reused: their result also depends on the weights they start from.
- One training per digest at a time: a second candidate with the same digest waits for the
  first (a file lock in the index folder), then reuses what it recorded; if the first failed or
  was killed, the second trains itself. The lock is a local-file lock: on storage shared between
  machines (NFS) two hosts may both train, which costs time, never correctness.
- A record whose files have gone (a deleted run folder) is ignored and trained again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError

from tennis_assets.agents.config import AgentConfig
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.training.config import TrainConfig

from .candidate import TrainedAgent

log = logging.getLogger(__name__)

# Bumped when what a key covers changes, so that older records are not matched.
KEY_VERSION = 1
# The packages whose source decides what a training produces, and the libraries it computes
# with.
CODE_PACKAGES = ("agents", "training", "sim", "envs")
LIBRARIES = ("torch", "numpy", "numba")
# The run configuration's fields that say where and how often state is saved: they do not
# change the weights.
UNKEYED_TRAIN_FIELDS = ("checkpoint_path", "checkpoint_every_updates", "checkpoint_every_seconds",
                        "checkpoint_include_buffer")
# Why a training stopped, when that was decided by its inputs alone.
REPRODUCIBLE_STOPS = ("solved", "max_updates", "max_episodes")


@functools.cache
def code_digest() -> str:
    """sha256 of the training code's source files and the computing libraries' versions."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    for library in LIBRARIES:
        digest.update(f"{library}=={metadata.version(library)}".encode())
    return digest.hexdigest()


def training_key(agent: AgentConfig, train: TrainConfig, environment: EnvironmentConfig) -> str:
    """The digest a training from scratch is indexed under."""
    run = {k: v for k, v in train.to_dict().items() if k not in UNKEYED_TRAIN_FIELDS}
    doc = {"key_version": KEY_VERSION, "agent": agent.to_dict(), "train": run,
           "environment": environment.to_dict(), "code": code_digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def reproducible(agent: TrainedAgent) -> bool:
    """Whether the training ended on something its inputs decide (so a rerun would match)."""
    return agent.summary.stop_reason in REPRODUCIBLE_STOPS and agent.init_checkpoint is None


class TrainingIndex:
    """Finished trainings by key: ``<root>/<key>.json`` holds the TrainedAgent a training
    produced; ``<root>/<key>.lock`` is held while one trains."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def find(self, key: str) -> TrainedAgent | None:
        """The recorded training of ``key``, or None (none, unreadable, or its files gone)."""
        path = self.root / f"{key}.json"
        try:
            agent = TrainedAgent.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("training index: %s is unreadable (%s); training again", path, exc)
            return None
        files = (agent.checkpoint, agent.history_csv, agent.eval_history_csv)
        if not all(Path(f).is_file() for f in files):
            log.warning("training index: the files of %s are gone; training again", key[:12])
            return None
        return agent

    def record(self, key: str, agent: TrainedAgent) -> bool:
        """Record a finished training under ``key`` (only a reproducible one); returns whether
        it was recorded."""
        from tennis_assets.files import atomic_write_text

        if not reproducible(agent):
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / f"{key}.json", agent.model_dump_json(indent=2))
        return True

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[bool]:
        """Held while the caller looks up, and if need be trains and records, ``key``: a second
        caller with the same key waits here (yielding True: it waited), then finds the first
        one's record. The kernel drops the lock when its holder dies, kill -9 included."""
        self.root.mkdir(parents=True, exist_ok=True)
        # The lock file stays: removing it while another process waits on it would let a third
        # lock a new file beside the waiting one.
        with open(self.root / f"{key}.lock", "a+") as handle:
            waited = False
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("training index: another run trains %s; waiting for it", key[:12])
                fcntl.flock(handle, fcntl.LOCK_EX)
                waited = True
            yield waited
