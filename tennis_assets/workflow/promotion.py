"""The promotion rule, in one place: which candidate may replace the champion, and why not.

Pure functions over plain values, asked in one place: the ``challenger_model`` asset, with the
champion the registry names. A candidate judged against an older champion is judged again
against the current one (``rejudge``) before ``decide`` reads its evidence; the sensors only
trigger promotions.

Staging to production: a candidate that ``decide`` accepts becomes the registry's
``challenger``; it becomes ``champion`` only after the challenger checks pass
(``confirm_challenger``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from tennis_assets.config.metadata import Json, Link, Metadata, RunLink
from tennis_assets.config.model import ConfigModel, Record
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.workflow.candidate import Candidate
from tennis_assets.workflow.evaluation import (
    RANDOM_BASELINE_P,
    CandidateRef,
    EvaluationReport,
    RandomBaseline,
)


class ChallengerConfig(ConfigModel):
    """Which candidate becomes the challenger, and what its replay demands before it may
    replace the champion."""

    partition: Candidate | None = None
    """The candidate to promote; None: the best one the promotion rule accepts."""
    report_run_id: str | None = None
    """Only the report of this run (the promotion sensor sets it)."""
    replay_episodes: int = Field(100, ge=1)
    """Fresh episodes on which the challenger (and the champion) is replayed through the
    registry before the champion alias moves."""
    champion_margin: float = Field(0.05, ge=0.0)
    """challenger_not_worse_than_champion: mean >= champion mean - margin on the same
    episodes."""


def confirmation_seed(version: str) -> int:
    """A seed range of its own (training, selection, evaluation and monitoring have theirs):
    the challenger is confirmed on episodes it was never judged on."""
    return 2_500_000_000 + (int(version) % 100_000) * 1_000


@dataclass(frozen=True)
class Evidence:
    """What one candidate's evaluation showed."""

    partition: str
    train_run_id: str | None  # the MLflow run that trained it: one model version per run
    mean: float
    blocking_gates_passed: bool
    compared_version: str | None  # the champion it played against (None: there was none)
    champion_mean: float | None  # that champion's mean on the very same episodes
    report_run_id: str | None = None

    @classmethod
    def from_report(cls, report: EvaluationReport) -> Evidence:
        """From an evaluation report (the evaluation_report asset's value)."""
        champion = report.champion
        return cls(partition=report.partition,
                   train_run_id=report.candidate.train_mlflow_run_id
                   if report.candidate else None,
                   mean=float(report.evaluation.mean),
                   blocking_gates_passed=report.gates_passed,
                   compared_version=champion.version if champion else None,
                   champion_mean=champion.mean if champion else None,
                   report_run_id=report.dagster_run_id)


class ChallengerRecord(Record):
    """The candidate registered as the registry's ``challenger``, awaiting its replay."""

    model_name: str
    version: str
    partition: str
    train_mlflow_run_id: str | None = None
    report_dagster_run_id: str | None = None
    environment: EnvironmentConfig = EnvironmentConfig()
    """The environment (and conditions) it was judged on, and is replayed on."""
    eval_mean: float
    champion_version: str | None = None
    """The champion it was judged against (None: there was none)."""
    passed_over: dict[str, str] = Field(default_factory=dict)
    """Why each other candidate was not chosen."""

    def metadata(self, model_url: str | None = None) -> Metadata:
        return {
            "version": self.version, "partition": self.partition, "eval_mean": self.eval_mean,
            "champion_version": self.champion_version or "none",
            "environment": self.environment.env,
            "env_kwargs": Json(dict(self.environment.env_kwargs)),
            "passed_over": Json(self.passed_over),
            "model_version": Link(model_url) if model_url else None,
            "report_run": RunLink(self.report_dagster_run_id),
        }


@dataclass(frozen=True)
class Champion:
    version: str | None
    train_run_id: str | None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def compare_with_champion(mean: float, champion_mean: float | None,
                          champion_version: str | None = None) -> Decision:
    """Strictly better than the champion on the same episodes (or no champion yet)."""
    if champion_mean is None:
        return Decision(True, "no champion yet")
    who = f"champion v{champion_version}" if champion_version else "champion"
    if not (math.isfinite(mean) and mean > champion_mean):
        return Decision(False, f"not better than {who}: {mean:.3f} vs {champion_mean:.3f}")
    return Decision(True, f"better than {who}: {mean:.3f} vs {champion_mean:.3f}")


def decide(candidate: Evidence, champion: Champion) -> Decision:
    if not candidate.blocking_gates_passed:
        return Decision(False, "failed a blocking gate")
    if champion.version is None:
        return Decision(True, "no champion yet")
    if champion.train_run_id is not None and candidate.train_run_id == champion.train_run_id:
        return Decision(False, f"already champion v{champion.version}")
    if candidate.compared_version != champion.version:
        # Judged against another champion: its comparison says nothing about this one
        # (``rejudge`` judges it again first).
        return Decision(False, f"compared against v{candidate.compared_version}, the champion "
                               f"is now v{champion.version}; judge it again (rejudge)")
    return compare_with_champion(candidate.mean, candidate.champion_mean, champion.version)


def stale(candidate: Evidence, champion: Champion) -> bool:
    """Judged against another champion than the current one (or none while one exists): its
    comparison says nothing about the current champion, so it is judged again."""
    return (candidate.blocking_gates_passed and champion.version is not None
            and candidate.compared_version != champion.version
            and not (champion.train_run_id is not None
                     and candidate.train_run_id == champion.train_run_id))


def rejudge_seed(version: str) -> int:
    """A seed range of its own, past the confirmation's: fresh episodes for a candidate judged
    again against champion ``version``."""
    return 2_700_000_000 + (int(version) % 100_000) * 1_000


def rejudge(candidate: Evidence, report: EvaluationReport, tracker, name: str, episodes: int,
            workdir: str) -> Evidence:
    """``candidate`` judged again against the registry's current champion: both play the very
    same fresh episodes of the environment the candidate was judged on. A champion of another
    environment is not compared (the candidate keeps its evidence)."""
    from pathlib import Path

    from tennis_assets.training import evaluate, greedy, load_learner

    info = tracker.champion(name)
    environment = report.environment
    if info is None or report.candidate is None or \
            environment_from_tags(info.tags).env != environment.env:
        return candidate
    learner = load_learner(report.candidate.checkpoint, device="cpu")
    champion = load_learner(tracker.champion_checkpoint(info, Path(workdir) / "champion"),
                            device="cpu")
    seed, target = rejudge_seed(info.version), environment.fixed_target()
    mine, theirs = (evaluate(greedy(policy), episodes=episodes, seed=seed,
                             environment=environment, threshold=target)
                    for policy in (learner, champion))
    return dataclasses.replace(candidate, mean=float(mine.mean), compared_version=info.version,
                               champion_mean=float(theirs.mean))


def choose(candidates: Iterable[Evidence], champion: Champion
           ) -> tuple[Evidence | None, dict[str, str]]:
    """The best candidate ``decide`` accepts, and why each other one was passed over."""
    accepted, passed_over = [], {}
    for candidate in candidates:
        decision = decide(candidate, champion)
        if decision.promote:
            accepted.append(candidate)
        else:
            passed_over[candidate.partition] = decision.reason
    if not accepted:
        return None, passed_over
    best = max(accepted, key=lambda c: c.mean)
    for other in accepted:
        if other is not best:
            passed_over[other.partition] = f"{other.mean:.3f} < {best.partition} {best.mean:.3f}"
    return best, passed_over


@dataclass(frozen=True)
class Confirmation:
    """The challenger checks' verdicts, from one replay of challenger and champion."""

    loads_and_plays: bool
    solves: bool
    not_worse: bool
    mean: float
    champion_mean: float | None
    reasons: dict[str, str]

    @property
    def passed(self) -> bool:
        return self.loads_and_plays and self.solves and self.not_worse


def confirm(mean: float, finite_actions: bool, champion_mean: float | None,
            target: float | None, margin: float,
            random: RandomBaseline | None = None) -> Confirmation:
    """Verdicts for a challenger replayed through its registered model: it played with finite
    actions, it solves (mean >= target; with no target, clearly better than ``random`` on the
    same episodes) and it is not worse than the champion on the same episodes by more than
    ``margin``."""
    plays = bool(finite_actions and math.isfinite(mean))
    if target is not None:
        solves = plays and mean >= target - 1e-9
        why = f"mean {mean:.3f} {'>=' if solves else '<'} {target}"
    else:
        solves = bool(plays and random is not None and mean > random.mean
                      and random.p_value < RANDOM_BASELINE_P)
        why = (f"mean {mean:.3f} vs a random policy's {random.mean:.3f} on the same episodes "
               f"(p = {random.p_value:.2g})" if random is not None else "no random baseline")
    not_worse = plays and (champion_mean is None or mean >= champion_mean - margin - 1e-9)
    reasons = {
        "loads_and_plays": "played with finite actions" if plays else "non-finite actions",
        "solves": why,
        "not_worse": ("no champion" if champion_mean is None else
                      f"mean {mean:.3f} vs champion {champion_mean:.3f} (margin {margin})"),
    }
    return Confirmation(plays, solves, not_worse, mean, champion_mean, reasons)


def version_record(report: EvaluationReport, run_id: str, mlflow_run_url: Callable[[str], str],
                   dagster_run_url: Callable[[str], str]) -> tuple[dict[str, Any], str]:
    """(tags, description) of the model version registered from ``report`` by Dagster run
    ``run_id``: the court it was judged on, its partition, the evaluation's seed, episodes and
    score, and links to the runs that trained, judged and registered it."""
    ev, candidate = report.evaluation, report.candidate or CandidateRef(checkpoint="")
    report_run = report.dagster_run_id or ""
    tags = {"partition": report.partition, "court": json.dumps(report.court),
            "environment": json.dumps(report.environment.to_dict(), sort_keys=True),
            "eval_mean": round(ev.mean, 4), "eval_episodes": ev.episodes,
            "eval_seed": ev.seed, "eval_mlflow_run_id": report.mlflow_run_id,
            "eval_mlflow_run_url": report.mlflow_run_url,
            "train_mlflow_run_url": mlflow_run_url(candidate.train_mlflow_run_id or ""),
            "report_dagster_run_id": report_run,
            "report_dagster_run_url": dagster_run_url(report_run),
            "train_dagster_run_id": candidate.train_dagster_run_id,
            "dagster_run_id": run_id, "dagster_run_url": dagster_run_url(run_id)}
    description = (f"{report.partition} candidate: greedy mean {ev.mean:.3f} over "
                   f"{ev.episodes} fresh episodes (seed {ev.seed}) of {report.environment.env} "
                   f"{report.court or '(default conditions)'}; Dagster run "
                   f"{dagster_run_url(report_run)}")
    return tags, description


def environment_from_tags(tags: dict[str, str]) -> EnvironmentConfig:
    """The environment a model version was judged on, from its tags (versions registered
    before environments name only Tennis's court)."""
    raw = tags.get("environment")
    if raw:
        return EnvironmentConfig.from_dict(json.loads(raw))
    return EnvironmentConfig(env_kwargs=json.loads(tags.get("court") or "{}"))


def replay_registered(tracker, name: str, version: str, episodes: int, seed: int,
                      margin: float, workdir: str) -> Confirmation:
    """Load the ``challenger`` (which must be ``version``) and the champion through their
    registered MLflow models, play both on the same fresh episodes of the environment the
    challenger was judged on, and ``confirm``. Raises when the challenger cannot be loaded or
    played at all."""
    info = tracker.champion(name, "challenger")
    if info is None or info.version != version:
        raise RuntimeError(f"alias challenger points at {info.version if info else 'nothing'}, "
                           f"not v{version}")
    environment = environment_from_tags(info.tags)
    ev, finite = play_model(tracker.load_policy(info, workdir), environment, episodes, seed)
    champion_mean, champion = None, tracker.champion(name)
    if champion is not None and environment_from_tags(champion.tags).env == environment.env:
        champion_mean = play_model(tracker.load_policy(champion, f"{workdir}/champion"),
                                   environment, episodes, seed)[0].mean
    random = None
    if environment.fixed_target() is None:
        from tennis_assets.workflow.evaluation import random_baseline

        random = random_baseline(ev.scores, environment, episodes, seed)
    return confirm(ev.mean, finite, champion_mean, environment.fixed_target(), margin, random)


def play_model(model, environment: EnvironmentConfig, episodes: int, seed: int):
    """Greedy episodes through a model with ``predict`` (an MLflow pyfunc); (EvalResult, all
    actions finite). A non-finite or misshapen action plays as zeros and is reported."""
    import numpy as np

    from tennis_assets.envs import make_env
    from tennis_assets.training import evaluate

    env = make_env(environment, episodes, seed)
    shape = (env.num_agents, env.action_size)
    finite = True

    def act(obs):
        nonlocal finite
        actions = np.asarray(model.predict(obs.astype(np.float32)), dtype=np.float32)
        if actions.shape != (obs.shape[0], *shape) or not np.isfinite(actions).all():
            finite = False
            return np.zeros((obs.shape[0], *shape), dtype=np.float32)
        return actions

    try:
        return evaluate(act, episodes=episodes, seed=seed, env=env,
                        threshold=environment.fixed_target()), finite
    finally:
        if callable(getattr(env, "close", None)):
            env.close()
