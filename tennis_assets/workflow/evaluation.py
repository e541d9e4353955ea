"""Evaluate one candidate: greedy play on fresh episodes (the champion on the very same ones),
single-decision latency, a score histogram and a rally replay.

The ``evaluation`` block built here is the one every report carries (experiment reports and
the Dagster evaluation report alike)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tennis_assets.config.metadata import Json, Link, Metadata, Picture, RunLink
from tennis_assets.config.model import ConfigModel, Record, Seed
from tennis_assets.envs.config import EnvironmentConfig

EVALUATION_FILES = {"histogram": "score_histogram.png", "rally": "rally.gif"}


class EvaluationConfig(ConfigModel):
    """How a candidate is judged: greedy episodes, latency, pictures."""

    eval_episodes: int = Field(100, ge=1, json_schema_extra={"cli_aliases": ["--episodes"]})
    """Fresh greedy episodes the candidate (and the champion, on the same ones) plays."""
    eval_seed: Seed = 0
    """Offset into the fresh evaluation seeds (disjoint from training and model selection)."""
    max_latency_ms: float = Field(5.0, gt=0.0)
    """latency_under_threshold warns when the p95 of one greedy decision exceeds this."""
    gif: bool = True
    """Render one greedy rally as an animated GIF."""
    gif_max_frames: int = Field(300, ge=1, le=10_000)
    """Decisions shown in the rally GIF (10,000 frames: a GIF of hundreds of MB)."""
    latency_samples: int = Field(200, ge=1, le=100_000)
    """Single decisions timed for the latency percentiles (100,000: about a minute on a CPU;
    more would hold the run for nothing)."""
# The gates whose failure means a broken candidate (its run fails); the others are findings.
BLOCKING_GATES = ("solves",)
# Beating a random policy, for an environment with no solve score: a one-sided rank test on the
# same episodes at this level.
RANDOM_BASELINE_P = 0.01


class EvaluationSummary(Record):
    """What a report says of one greedy evaluation."""

    mean: float
    median: float
    std: float
    solved: bool
    """mean >= threshold."""
    mean_length: float
    latency_per_decision_s: float
    episodes: int
    complete: bool
    """False when stopped early because the threshold was already decided."""
    seconds: float
    seed: int
    threshold: float | None
    score_histogram: dict[str, int]
    scores: list[float]

    @classmethod
    def of(cls, ev: Any, seed: int) -> EvaluationSummary:
        """From a tennis_assets.training.EvalResult played from ``seed``."""
        return cls(**ev.summary(), seed=int(seed), threshold=ev.threshold,
                   score_histogram=score_histogram(ev.scores),
                   scores=[round(float(s), 2) for s in ev.scores])


class Latency(Record):
    """Milliseconds for one greedy decision on one court (what a policy server pays)."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    samples: int
    per_decision_batched_us: float | None = None


class ChampionComparison(Record):
    """The champion on the very same episodes."""

    mean: float
    median: float
    solved: bool
    scores: list[float]
    version: str | None = None
    run_id: str | None = None
    partition: str | None = None


class Rally(Record):
    """The rendered greedy rally."""

    score: float
    length: int


class RandomBaseline(Record):
    """A uniform random policy on the very same episodes, and how clearly the candidate beat
    it (one-sided Mann-Whitney U: candidate's scores greater)."""

    mean: float
    p_value: float


class Gates(Record):
    """The quality gates of an evaluation report."""

    solves: bool
    """Greedy mean >= the environment's solve score (Tennis 0.5), or, where it has none,
    clearly better than a random policy on the same episodes: a broken candidate fails it
    (blocking)."""
    beats_champion: bool
    """Strictly better than the champion on the same episodes (a decision, not a fault)."""
    latency_under_threshold: bool
    """p95 of one greedy decision under the threshold (a warning)."""

    def blocking_passed(self) -> bool:
        return all(getattr(self, name) for name in BLOCKING_GATES)


class CandidateRef(Record):
    """Where a judged candidate came from."""

    train_dagster_run_id: str | None = None
    train_mlflow_run_id: str | None = None
    checkpoint: str
    model_source: str | None = None
    agent_config: dict[str, Any] = {}  # noqa: RUF012 - a pydantic field: each instance gets a copy
    reused_from: str | None = None
    """The Dagster run whose training this candidate reused (same configuration, seed and code)."""


class EvaluationReport(Record):
    """One candidate judged: what evaluate_candidate measured, the champion it was compared
    with, the gates, and the runs and files it came from."""

    partition: str
    environment: EnvironmentConfig = EnvironmentConfig()
    """The environment (and its conditions) it was judged on."""
    evaluation: EvaluationSummary
    latency: Latency
    champion: ChampionComparison | None = None
    rally: Rally | None = None
    random: RandomBaseline | None = None
    gates: Gates
    candidate: CandidateRef | None = None
    dagster_run_id: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    histogram_png: str | None = None
    rally_gif: str | None = None
    learning_curve_png: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_shape(cls, data: Any) -> Any:
        # Reports written before environments: a court and an "environment" name, the solve
        # gate called solves_tennis.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "court" in data or isinstance(data.get("environment"), str):
            data["environment"] = {"env": "tennis", "env_kwargs": data.pop("court", {}) or {}}
        gates = data.get("gates")
        if isinstance(gates, dict) and "solves_tennis" in gates:
            data["gates"] = {("solves" if k == "solves_tennis" else k): v
                             for k, v in gates.items()}
        return data

    @property
    def court(self) -> dict[str, Any]:
        """The conditions it was judged on (Tennis: the court's overrides; {}: the default)."""
        return dict(self.environment.env_kwargs)

    @property
    def gates_passed(self) -> bool:
        """Every blocking gate passed: a broken candidate is one that did not."""
        return self.gates.blocking_passed()

    def metadata(self) -> Metadata:
        ev, champion = self.evaluation, self.champion
        return {
            "mean": ev.mean, "median": ev.median, "std": ev.std,
            "latency_p95_ms": self.latency.p95_ms,
            "champion_mean": champion.mean if champion else None,
            "episodes": ev.episodes, "solved": ev.solved, "gates_passed": self.gates_passed,
            "champion_version": champion.version if champion and champion.version else "none",
            "random_mean": self.random.mean if self.random else None,
            "environment": self.environment.env,
            "env_kwargs": Json(self.court),
            "score_histogram": Picture(self.histogram_png, "score histogram"),
            "learning_curve": Picture(self.learning_curve_png, "learning curve"),
            "rally": Picture(self.rally_gif, "rally"),
            "mlflow_run": Link(self.mlflow_run_url) if self.mlflow_run_url else None,
            "mlflow_run_id": self.mlflow_run_id,
            "candidate_mlflow_run_id": self.candidate.train_mlflow_run_id
            if self.candidate else None,
            "trained_in": RunLink(self.candidate.train_dagster_run_id if self.candidate else None),
            "training_reused_from": RunLink(self.candidate.reused_from)
            if self.candidate and self.candidate.reused_from else None,
        }

    def comparison_row(self) -> dict[str, Any]:
        return {"candidate": self.partition, "mean": self.evaluation.mean,
                "solved": self.evaluation.solved, "p95_ms": self.latency.p95_ms,
                "gates_passed": self.gates_passed,
                "dagster_run": (self.dagster_run_id or "")[:8]}


def score_histogram(scores: np.ndarray) -> dict[str, int]:
    """Counts of evaluation scores in 0.5-wide bins (the game's ceiling is about 2.7)."""
    edges = np.arange(0.0, 3.01, 0.5)
    counts, _ = np.histogram(np.clip(scores, 0.0, 3.0), bins=edges)
    return {f"{lo:.1f}-{hi:.1f}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}


def single_decision_latency(learner, samples: int, obs=None) -> dict[str, float]:
    """Milliseconds for one greedy decision on one court (what a policy server pays per
    request); ``obs`` [1, agents, obs_size], default zeros of the learner's shape."""
    if obs is None:
        cfg = learner.config
        obs = np.zeros((1, cfg.num_agents, cfg.obs_size), np.float32)
    for _ in range(5):  # first calls pay for lazy initialisation
        learner.act(obs, explore=False)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        learner.act(obs, explore=False)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "samples": int(samples)}


def plot_histogram(scores, path: Path, title: str, mark: float | None = None,
                   mark_label: str = "") -> Path:
    """The scores' histogram, with a line at ``mark`` (the solve score, or the random mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.hist(scores, bins=30, color="tab:blue")
    if mark is not None:
        ax.axvline(mark, color="tab:red", ls="--", lw=1, label=mark_label or f"{mark:g}")
        ax.legend()
    ax.set_xlabel("episode score")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass
class CandidateEvaluation:
    """What evaluate_candidate measured, before it becomes a report."""

    evaluation: Any  # tennis_assets.training.EvalResult
    summary: EvaluationSummary
    latency: Latency
    champion: ChampionComparison | None  # the champion on the same episodes
    random: RandomBaseline
    paths: dict[str, Path]
    rally: Rally | None
    environment: EnvironmentConfig


@dataclass(frozen=True)
class _Episodes:
    """Where a judgement plays: the same fresh episodes for every policy it compares."""

    episodes: int
    seed: int
    environment: EnvironmentConfig
    threshold: float | None
    env: Any = None

    def play(self, act_fn):
        from tennis_assets.training import evaluate

        return evaluate(act_fn, episodes=self.episodes, seed=self.seed,
                        environment=self.environment, threshold=self.threshold, env=self.env)


def _champion_on_the_same_episodes(champion_learner, learner, where: _Episodes
                                   ) -> ChampionComparison | None:
    """The champion on the very same episodes; a champion of another game (other agents or
    sizes) is not compared."""
    from tennis_assets.training import greedy

    if champion_learner is None or not _same_game(champion_learner, learner):
        return None
    champ = where.play(greedy(champion_learner))
    return ChampionComparison(mean=champ.mean, median=champ.median, solved=champ.solved,
                              scores=[round(float(s), 2) for s in champ.scores])


def _random_on_the_same_episodes(learner, scores, where: _Episodes) -> RandomBaseline:
    from tennis_assets.training.evaluation import random_policy

    cfg = learner.config
    baseline = where.play(random_policy(cfg.action_size, cfg.num_agents, where.seed))
    return _against(scores, baseline.mean, baseline.scores)


def _against(scores, random_mean: float, random_scores) -> RandomBaseline:
    """How clearly ``scores`` beat a random policy's on the same episodes (one-sided Mann-Whitney
    U; identical samples give p = 1)."""
    from scipy.stats import mannwhitneyu

    test = mannwhitneyu(scores, random_scores, alternative="greater", method="asymptotic")
    p_value = float(test.pvalue) if np.isfinite(test.pvalue) else 1.0
    return RandomBaseline(mean=float(random_mean), p_value=p_value)


def random_baseline(scores, environment: EnvironmentConfig, episodes: int,
                    seed: int) -> RandomBaseline:
    """A uniform random policy on the same ``episodes`` fresh episodes from ``seed``, against
    ``scores``."""
    from tennis_assets.envs import make_env
    from tennis_assets.training import evaluate
    from tennis_assets.training.evaluation import random_policy

    env = make_env(environment, episodes, seed)
    try:
        policy = random_policy(env.action_size, env.num_agents, seed)
        baseline = evaluate(policy, episodes=episodes, seed=seed, env=env, threshold=None)
    finally:
        if callable(getattr(env, "close", None)):
            env.close()
    return _against(scores, baseline.mean, baseline.scores)


def evaluate_candidate(learner, out_dir: str | Path, *, label: str, episodes: int, seed: int,
                       environment: EnvironmentConfig | None = None,
                       latency_samples: int = 200, rally_seed: int | None = None,
                       rally_max_frames: int = 300, champion_learner=None,
                       env=None) -> CandidateEvaluation:
    """Greedy evaluation of ``learner`` on ``episodes`` fresh episodes from ``seed`` of
    ``environment`` (default Tennis), beside a random policy on the very same episodes.

    champion_learner: plays the very same episodes.
    env: judge on this already open environment (a Unity build); no rally is rendered then.
    rally_seed None: no rally replay (only Tennis has a renderer)."""
    from tennis_assets.training import greedy

    environment = environment or EnvironmentConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    where = _Episodes(episodes, seed, environment, environment.fixed_target(), env)
    ev = where.play(greedy(learner))
    sample = env.reset()[:1] if env is not None else None
    latency = Latency(**single_decision_latency(learner, latency_samples, sample),
                      per_decision_batched_us=ev.latency_per_decision_s * 1e6)
    champion = _champion_on_the_same_episodes(champion_learner, learner, where)
    random = _random_on_the_same_episodes(learner, ev.scores, where)
    target = environment.fixed_target()
    paths = {"histogram": plot_histogram(
        ev.scores, out / EVALUATION_FILES["histogram"],
        f"{label}: {ev.episodes} fresh episodes, mean {ev.mean:.3f}",
        mark=target if target is not None else random.mean,
        mark_label=f"solve score {target:g}" if target is not None
        else f"random policy {random.mean:.2f}")}
    rally = None
    if rally_seed is not None and env is None and environment.kind == "tennis":
        from tennis_assets.sim import render_episode_gif

        gif, score, length = render_episode_gif(
            greedy(learner), out / EVALUATION_FILES["rally"], params=environment.court(),
            seed=rally_seed, max_decisions=rally_max_frames, max_frames=rally_max_frames)
        paths["rally"] = gif
        rally = Rally(score=float(score), length=int(length))
    return CandidateEvaluation(ev, EvaluationSummary.of(ev, seed), latency, champion, random,
                               paths, rally, environment)


def _same_game(a, b) -> bool:
    fields = ("num_agents", "obs_size", "action_size")
    return all(getattr(a.config, f) == getattr(b.config, f) for f in fields)


def judge_gates(judged: CandidateEvaluation, max_latency_ms: float) -> Gates:
    """The quality gates: it solves (mean >= the environment's solve score, or where it has
    none, clearly better than a random policy on the same episodes), it beats the champion on
    the same episodes (the promotion rule's comparison), its p95 latency is under the
    threshold."""
    from tennis_assets.workflow.promotion import compare_with_champion

    mean, target, champion = judged.summary.mean, judged.environment.fixed_target(), \
        judged.champion
    if target is not None:
        solves = bool(math.isfinite(mean) and mean >= target - 1e-9)
    else:
        solves = bool(math.isfinite(mean) and mean > judged.random.mean
                      and judged.random.p_value < RANDOM_BASELINE_P)
    return Gates(
        solves=solves,
        beats_champion=compare_with_champion(mean, champion.mean if champion else None).promote,
        latency_under_threshold=bool(judged.latency.p95_ms <= max_latency_ms))


def candidate_report(judged: CandidateEvaluation, *, partition: str, max_latency_ms: float,
                     champion: ChampionComparison | None, **context: Any) -> EvaluationReport:
    """The evaluation report of one candidate: what ``evaluate_candidate`` measured, the
    champion it was compared with (with its registry identity) and the gates. ``context``: the
    report's other fields (the runs and files it came from)."""
    from dataclasses import replace

    return EvaluationReport(
        partition=partition, environment=judged.environment, evaluation=judged.summary,
        latency=judged.latency, champion=champion, rally=judged.rally, random=judged.random,
        gates=judge_gates(replace(judged, champion=champion), max_latency_ms),
        histogram_png=str(judged.paths["histogram"]),
        rally_gif=str(judged.paths["rally"]) if "rally" in judged.paths else None, **context)


def track_report(run, report: EvaluationReport, judged: CandidateEvaluation,
                 out_dir: str | Path) -> EvaluationReport:
    """Record a candidate report in a tracker run (params, per-episode scores, metrics, gates
    as tags, the report and its pictures as artifacts); returns the report with its run's id
    and URL, written to ``out_dir``/report.json."""
    from tennis_assets.files import atomic_write_text

    ev, champion = judged.evaluation, report.champion
    run.log_params({"episodes": ev.episodes, "seed": report.evaluation.seed,
                    "environment": report.environment.env, "env_kwargs": report.court,
                    "target_score": ev.threshold,
                    "candidate_run_id": report.candidate.train_mlflow_run_id
                    if report.candidate else None,
                    "champion_version": champion.version if champion else None})
    run.log_series("episode_score", [float(s) for s in ev.scores])
    run.log_metrics({"mean": ev.mean, "median": ev.median, "std": ev.std, "solved": ev.solved,
                     "random_mean": report.random.mean if report.random else None,
                     "latency_p95_ms": report.latency.p95_ms,
                     "champion_mean": champion.mean if champion else None,
                     "gates_passed": report.gates_passed})
    run.set_tags({f"gate.{k}": v for k, v in report.gates.model_dump().items()})
    report = report.model_copy(update={"mlflow_run_id": run.run_id, "mlflow_run_url": run.url})
    path = Path(out_dir) / "report.json"
    atomic_write_text(path, report.to_json())
    for artifact in (path, *judged.paths.values()):
        run.log_artifact(artifact, "evaluation")
    return report
