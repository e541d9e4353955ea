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
from pydantic import Field

from tennis_assets.config.model import ConfigModel, Seed

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
    gif_max_frames: int = Field(300, ge=1)
    """Decisions shown in the rally GIF."""
    latency_samples: int = Field(200, ge=1)
    """Single decisions timed for the latency percentiles."""
# The gates whose failure means a broken candidate (its run fails); the others are findings.
BLOCKING_GATES = ("solves_tennis",)


def score_histogram(scores: np.ndarray) -> dict[str, int]:
    """Counts of evaluation scores in 0.5-wide bins (the game's ceiling is about 2.7)."""
    edges = np.arange(0.0, 3.01, 0.5)
    counts, _ = np.histogram(np.clip(scores, 0.0, 3.0), bins=edges)
    return {f"{lo:.1f}-{hi:.1f}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}


def evaluation_block(ev, seed: int) -> dict[str, Any]:
    """What a report says of one greedy evaluation."""
    return {**ev.summary(), "seed": int(seed), "threshold": ev.threshold,
            "score_histogram": score_histogram(ev.scores),
            "scores": [round(float(s), 2) for s in ev.scores]}


def single_decision_latency(learner, samples: int, obs=None) -> dict[str, float]:
    """Milliseconds for one greedy decision on one court (what a policy server pays per
    request); ``obs`` [1, 2, obs_size], default a served built-in court."""
    from tennis_assets.sim import VecTennis

    if obs is None:
        obs = VecTennis(num_courts=1, seed=0).reset()
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


def plot_histogram(scores, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.hist(np.clip(scores, 0, 3), bins=np.arange(0, 3.01, 0.1), color="tab:blue")
    ax.axvline(0.5, color="tab:red", ls="--", lw=1, label="0.5")
    ax.set_xlabel("episode score")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass
class CandidateEvaluation:
    evaluation: Any  # tennis_assets.training.EvalResult
    block: dict[str, Any]
    latency: dict[str, float]
    champion: dict[str, Any] | None  # mean/median/solved of the champion on the same episodes
    paths: dict[str, Path]
    rally: dict[str, float] | None


def evaluate_candidate(learner, out_dir: str | Path, *, label: str, episodes: int, seed: int,
                       court=None, threshold: float = 0.5, latency_samples: int = 200,
                       rally_seed: int | None = None, rally_max_frames: int = 300,
                       champion_learner=None, env=None) -> CandidateEvaluation:
    """Greedy evaluation of ``learner`` on ``episodes`` fresh episodes from ``seed``.

    champion_learner: plays the very same episodes (``evaluate`` re-seeds the environment);
    a champion of another game (other observation or action sizes) is not compared.
    env: judge on this environment (a Unity build) instead of the built-in court; no rally is
    rendered then (the replay shows the built-in physics, not the game that was judged).
    rally_seed None: no rally replay."""
    from tennis_assets.training import evaluate, greedy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluate(greedy(learner), episodes=episodes, seed=seed, params=court,
                  threshold=threshold, env=env)
    sample = env.reset()[:1] if env is not None else None
    latency = single_decision_latency(learner, latency_samples, sample)
    latency["per_decision_batched_us"] = ev.latency_per_decision_s * 1e6

    champion = None
    if champion_learner is not None and _same_game(champion_learner, learner):
        champ = evaluate(greedy(champion_learner), episodes=episodes, seed=seed, params=court,
                         threshold=threshold, env=env)
        champion = {"mean": champ.mean, "median": champ.median, "solved": champ.solved,
                    "scores": [round(float(s), 2) for s in champ.scores]}

    paths = {"histogram": plot_histogram(
        ev.scores, out / EVALUATION_FILES["histogram"],
        f"{label}: {ev.episodes} fresh episodes, mean {ev.mean:.3f}")}
    rally = None
    if rally_seed is not None and env is None:
        from tennis_assets.sim import render_episode_gif

        gif, score, length = render_episode_gif(
            greedy(learner), out / EVALUATION_FILES["rally"], params=court, seed=rally_seed,
            max_decisions=rally_max_frames, max_frames=rally_max_frames)
        paths["rally"] = gif
        rally = {"score": float(score), "length": int(length)}
    return CandidateEvaluation(ev, evaluation_block(ev, seed), latency, champion, paths, rally)


def _same_game(a, b) -> bool:
    return (a.config.obs_size, a.config.action_size) == (b.config.obs_size, b.config.action_size)


def report_gates(report: dict[str, Any], target: float, max_latency_ms: float
                 ) -> dict[str, bool]:
    """The quality gates of an evaluation report: it solves (mean >= target), it beats the
    champion on the same episodes (the promotion rule's comparison), its p95 latency is under
    the threshold."""
    from tennis_assets.workflow.promotion import compare_with_champion

    mean = report["evaluation"]["mean"]
    champion = report.get("champion") or {}
    return {
        "solves_tennis": bool(math.isfinite(mean) and mean >= target - 1e-9),
        "beats_champion": compare_with_champion(mean, champion.get("mean")).promote,
        "latency_under_threshold": bool(report["latency"]["p95_ms"] <= max_latency_ms),
    }


def candidate_report(judged: CandidateEvaluation, *, partition: str, court: dict[str, Any],
                     target: float, max_latency_ms: float, champion: dict[str, Any] | None,
                     **context: Any) -> dict[str, Any]:
    """The evaluation report of one candidate: what ``evaluate_candidate`` measured, the
    champion it was compared with, the gates and whether the blocking ones passed. ``context``
    (the runs and files it came from) is kept as given."""
    report: dict[str, Any] = {
        "partition": partition, "court": court, **context,
        "evaluation": judged.block, "latency": judged.latency, "champion": champion,
        "rally": judged.rally,
    }
    report["gates"] = report_gates(report, target, max_latency_ms)
    report["gates_passed"] = all(report["gates"][name] for name in BLOCKING_GATES)
    return report


def track_report(run, report: dict[str, Any], judged: CandidateEvaluation,
                 out_dir: str | Path) -> Path:
    """Record a candidate report in a tracker run (params, per-episode scores, metrics, gates
    as tags, the report and its pictures as artifacts); the report learns its run's id and URL
    and is written to ``out_dir``/report.json."""
    from tennis_assets.files import atomic_write_json

    ev, champion = judged.evaluation, report.get("champion")
    run.log_params({"episodes": ev.episodes, "seed": report["evaluation"]["seed"],
                    "court": report["court"], "target_score": ev.threshold,
                    "candidate_run_id": report["candidate"]["train_mlflow_run_id"],
                    "champion_version": champion["version"] if champion else None})
    run.log_series("episode_score", [float(s) for s in ev.scores])
    run.log_metrics({"mean": ev.mean, "median": ev.median, "std": ev.std, "solved": ev.solved,
                     "latency_p95_ms": judged.latency["p95_ms"],
                     "champion_mean": champion["mean"] if champion else None,
                     "gates_passed": report["gates_passed"]})
    run.set_tags({f"gate.{k}": v for k, v in report["gates"].items()})
    report["mlflow_run_id"], report["mlflow_run_url"] = run.run_id, run.url
    path = atomic_write_json(Path(out_dir) / "report.json", report)
    for artifact in (path, *judged.paths.values()):
        run.log_artifact(artifact, "evaluation")
    return path
