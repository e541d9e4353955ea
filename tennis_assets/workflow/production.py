"""Moving production, atomically: one registry change at a time, decided on a fresh read of the
registry, with the pointer file (``champion.json``) staged before the alias moves and put in
place after it, so a failure part-way (a full disk, a registry that stops answering, a kill)
leaves the champion, its aliases and its pointer as they were, and a success leaves the pointer
saying exactly what the registry says.

Two guards keep changes one at a time: a file lock beside the pointer (every process on the
machine, or sharing the volume, CLI and Dagster alike) and, in Dagster, the ``promotion`` pool
(every run of an instance, wherever it runs). Even without either, one training run still maps
to one model version (``MlflowTracker.register_challenger`` converges).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import model_validator

from tennis_assets.config.metadata import Json, Link, Metadata
from tennis_assets.config.model import ConfigModel, Record
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.files import StagedFile

LOCK_NAME = ".promotion.lock"
# The registry's aliases are the truth; the pointer is a copy of them for readers without MLflow.
POINTER_FIX = ("it is a copy of the registry's champion alias, which is unaffected (the policy "
               "server follows the alias): delete it, and the next promotion or rollback "
               "writes it again from the registry")


class ProductionConfig(ConfigModel):
    """How production moves."""

    rollback: bool = False
    """Instead of promoting the challenger, make the 'previous' version champion again (the
    rollback job sets this)."""


class PromotionBusy(RuntimeError):
    """Another promotion held the lock for longer than the wait allowed."""


@contextlib.contextmanager
def promotion_lock(folder: str | os.PathLike, timeout_s: float = 300.0) -> Iterator[Path]:
    """Hold the promotion lock of ``folder`` (created if missing). The kernel drops an flock
    when its holder dies, kill -9 included, so a crashed promotion never blocks the next."""
    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise PromotionBusy(f"another promotion (process {holder}) has held {path} "
                                        f"for over {timeout_s:.0f} s; nothing was changed")
                time.sleep(0.05)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))  # who holds it, for the message above
            handle.flush()
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def register_challenger(tracker, name: str, lock_folder: str | os.PathLike, source: str,
                        run_id: str, tags: Mapping[str, Any] | None = None,
                        description: str | None = None):
    """``tracker.register_challenger`` under the promotion lock (one version per run)."""
    with promotion_lock(lock_folder):
        return tracker.register_challenger(name, source=source, run_id=run_id, tags=tags,
                                           description=description)


class ChampionRecord(Record):
    """What production is: the champion as its registered version says, the move that made
    it, and the version it replaced. The pointer file (``champion.json``) holds exactly this,
    and so does the production_model asset's value."""

    model_name: str
    version: str
    partition: str | None = None
    mlflow_run_id: str | None = None
    """The training run the champion's model version came from."""
    eval_mlflow_run_id: str | None = None
    source: str | None = None
    eval_mean: float | None = None
    environment: EnvironmentConfig = EnvironmentConfig()
    """The environment (and conditions) it was judged on."""
    dagster_run_id: str | None = None
    """The run that moved production."""
    previous_version: str | None = None
    changed: bool = True
    """False: the move found this version already champion."""
    rollback: bool = False

    @model_validator(mode="before")
    @classmethod
    def _earlier_shape(cls, data: Any) -> Any:
        # Pointer files written before environments named only Tennis's court.
        if isinstance(data, dict) and "court" in data:
            data = {k: v for k, v in data.items() if k != "court"} | {
                "environment": {"env": "tennis", "env_kwargs": data["court"] or {}}}
        return data

    def outcome(self) -> str:
        """What the move did, in one sentence."""
        previous = f"v{self.previous_version}" if self.previous_version else "none"
        if self.rollback:
            return (f"rolled back to v{self.version} (previous {previous})" if self.changed
                    else f"nothing to roll back to (no previous champion): v{self.version} "
                         "stays champion")
        return (f"v{self.version} promoted (previous {previous})" if self.changed
                else f"v{self.version} already champion: unchanged")

    def metadata(self, model_url: str | None = None, run_url: str | None = None) -> Metadata:
        return {
            "outcome": self.outcome(),
            "version": self.version, "model_name": self.model_name,
            "partition": str(self.partition), "eval_mean": self.eval_mean,
            "environment": self.environment.env,
            "env_kwargs": Json(dict(self.environment.env_kwargs)),
            "previous_version": self.previous_version or "none",
            "changed": self.changed, "rollback": self.rollback,
            "mlflow_run_id": self.mlflow_run_id or "",
            "mlflow_run": Link(run_url) if run_url else None,
            "model_version": Link(model_url) if model_url else None,
        }


def production_record(tracker, name: str, champion, previous_version: str | None,
                      changed: bool, rollback: bool, run_id: str | None) -> ChampionRecord:
    """What the pointer file and the production asset say about the champion ``champion`` (a
    ChampionInfo): every field read from its registered version."""
    from tennis_assets.workflow.promotion import environment_from_tags

    tags = champion.tags
    return ChampionRecord(
        model_name=name, version=champion.version, partition=tags.get("partition"),
        mlflow_run_id=champion.run_id, eval_mlflow_run_id=tags.get("eval_mlflow_run_id"),
        source=champion.source, eval_mean=champion.eval_mean,
        environment=environment_from_tags(tags), dagster_run_id=run_id,
        previous_version=previous_version, changed=changed, rollback=rollback)


def read_pointer(pointer: str | os.PathLike) -> ChampionRecord | None:
    """The champion the pointer file names (None: nothing promoted yet); a ``CorruptFileError``
    naming it when it cannot be read."""
    path = Path(pointer)
    if not path.exists():
        return None
    return ChampionRecord.read(path, "the champion pointer", POINTER_FIX)


# Greedy episodes a version plays before an alias moves onto it: enough to show that it acts
# with finite actions on its court, not a judgement of its skill (the challenger's checks are).
VERIFY_EPISODES = 4


def check_servable(tracker, info, seed: int = 0) -> None:
    """Load version ``info`` as the policy server does (ONNX actor checked against its
    checkpoint) and play ``VERIFY_EPISODES`` greedy episodes on its court; a RuntimeError
    naming the version and the problem when it cannot be served."""
    from types import SimpleNamespace

    from tennis_assets.serving.model_source import load_version
    from tennis_assets.workflow.promotion import environment_from_tags, play_model

    what = f"model {info.name} v{info.version}"
    try:
        model = load_version(tracker, info, "verify")
        environment = environment_from_tags(info.tags)
        _, finite = play_model(SimpleNamespace(predict=model.act), environment,
                               VERIFY_EPISODES, seed)
    except Exception as exc:  # noqa: BLE001 - any failure to load or play is the finding
        raise RuntimeError(f"{what} cannot be served ({type(exc).__name__}: {exc})") from None
    if not finite:
        raise RuntimeError(f"{what} plays non-finite or misshapen actions")


def move_champion(tracker, name: str, pointer: str | os.PathLike, *, version: str | None = None,
                  rollback: bool = False, run_id: str | None = None,
                  lock_timeout_s: float = 300.0) -> ChampionRecord:
    """Make challenger ``version`` the champion (the old one becomes ``previous``), or with
    ``rollback`` swap champion and previous; then write ``pointer``. Idempotent: promoting the
    version that already is champion changes nothing but a stale pointer, and so does a
    rollback with no previous champion (``changed`` False says so). The version the
    champion alias moves to must load and play as the policy server serves it
    (``check_servable``) before any alias moves. Raises RuntimeError (nothing changed) when
    the registry does not allow the move or the target cannot be served."""
    if rollback == (version is not None):
        raise ValueError("move_champion: give either a challenger version or rollback=True")
    pointer = Path(pointer)
    with promotion_lock(pointer.parent, lock_timeout_s):
        before = tracker.aliases(name)  # read under the lock: what this move starts from
        current = tracker.champion(name)
        if rollback:
            if current is None:
                raise RuntimeError(f"model {name}: nothing has been promoted yet, so there is "
                                   "nothing to roll back; production is unchanged")
            target = tracker.champion(name, "previous")
            # No previous champion: an outcome, not a failure (nothing moves).
            expected_previous: str | None = current.version if target else None
            target, changed = (target, True) if target else (current, False)
        else:
            target = tracker.champion(name, "challenger")
            if current is not None and current.version == version:
                target, changed = current, False
                expected_previous = before["previous"]
                if before["challenger"] == version:
                    # A repeated registration of the champion's run: not a challenger.
                    tracker.delete_alias(name, "challenger")
            elif target is None or target.version != version:
                raise RuntimeError(f"model {name}: the challenger is "
                                   f"{'v' + target.version if target else 'unset'}, not "
                                   f"v{version}; nothing moved")
            else:
                changed = True
                same_model = current is not None and current.run_id == target.run_id
                expected_previous = (before["previous"] if current is None or same_model
                                     else current.version)
        if changed:
            try:
                check_servable(tracker, target)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; champion stays "
                                   f"{'v' + current.version if current else 'unset'}, nothing "
                                   "moved") from None
        value = production_record(tracker, name, target, expected_previous, changed, rollback,
                                  run_id)
        # Staged first: a disk too full for the pointer stops the move before the alias moves.
        staged = StagedFile(pointer, value.to_json())
        try:
            if changed:
                if rollback:
                    tracker.rollback(name)
                else:
                    tracker.promote_challenger(name, version)
            after, previous = tracker.champion(name), tracker.champion(name, "previous")
            actual = production_record(tracker, name, after, previous.version if previous
                                       else None, changed, rollback, run_id)
            if actual != value:
                # The registry is the truth: the pointer follows it even if someone outside
                # the lock moved an alias meanwhile.
                staged.discard()
                value, staged = actual, StagedFile(pointer, actual.to_json())
            staged.commit()
        except BaseException:
            staged.discard()
            if changed:
                # Part-way is not a state production may be left in: back to where it was.
                with contextlib.suppress(Exception):
                    tracker.restore_aliases(name, before)
            raise
    return value
