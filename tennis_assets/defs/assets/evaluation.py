
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import Environment, EvaluationConfig
from ..environment import UnityEnvironmentResource
from ..gates import (BLOCKING_REPORT_CHECKS, beats_champion, latency_under_threshold,
                     report_check_results, report_gates, solves_tennis)
from ..metadata import image_md, table_md
from ..partitions import agent_partitions
from ..resources import MlflowResource
from ..store import ModelStore, TrainedAgent


def single_decision_latency(learner, samples: int, obs=None) -> dict[str, float]:
    """Seconds for one greedy decision on one court (what a policy server pays per request);
    ``obs`` [1, 2, obs_size], default a served built-in court."""
    import numpy as np

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
            "mean_ms": float(ms.mean()), "samples": samples}


def plot_histogram(scores, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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


def _comparison_rows(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for partition, rep in sorted(reports.items()):
        ev = rep["evaluation"]
        rows.append({"candidate": partition, "mean": ev["mean"], "median": ev["median"],
                     "solved": ev["solved"], "p95_ms": rep["latency"]["p95_ms"],
                     "gates_passed": rep["gates_passed"], "dagster_run": rep["dagster_run_id"][:8]})
    return rows


@dg.asset(
    partitions_def=agent_partitions,
    group_name="evaluation",
    kinds={"mlflow", "python"},
    check_specs=[solves_tennis, beats_champion, latency_under_threshold],
    tags={"stage": "evaluation"},
)
def evaluation_report(context: dg.AssetExecutionContext, config: EvaluationConfig,
                      trained_agents: TrainedAgent, mlflow: MlflowResource,
                      model_store: ModelStore, unity_environment: UnityEnvironmentResource):
    """Greedy evaluation of a candidate on fresh episodes, side by side with the champion.

    100 episodes (by default) on seeds disjoint from every seed used in training and model
    selection; the current champion plays the very same episodes. A candidate trained with
    ``environment: unity`` is judged on a fresh launch of that build, the champion with it.
    Records score statistics, the solved flag, single-decision latency, a score histogram, the
    learning curve and (on the built-in court) a rally GIF, and carries the quality gates:
    ``solves_tennis`` and ``beats_champion`` block promotion.
    """
    from tennis_assets.experiment import score_histogram
    from tennis_assets.sim import CourtParams, render_episode_gif
    from tennis_assets.tracking import run_tags
    from tennis_assets.training import evaluate, final_seed, greedy, load_learner

    partition = context.partition_key
    settings = config.resolved()
    learner = trained_agents.learner()
    court = CourtParams(**trained_agents.train_config.get("court", {}))
    train_seed = int(trained_agents.train_config.get("seed", 0))
    seed = final_seed(train_seed, 1 + config.seed)
    out_dir = model_store.report_dir(partition, context.run.run_id)
    tracker = mlflow.tracker()

    on_unity = trained_agents.extra.get("environment") == Environment.unity.value
    # A candidate trained on a Unity build is judged on that build (a fresh launch), and the
    # champion with it; the built-in court otherwise.
    env = unity_environment.open(seed=seed) if on_unity else None
    try:
        ev = evaluate(greedy(learner), episodes=settings["episodes"], seed=seed, params=court,
                      threshold=config.target_score, env=env)
        sample = env.reset()[:1] if env is not None else None
        latency = single_decision_latency(learner, settings["latency_samples"], sample)
        latency["per_decision_batched_us"] = ev.latency_per_decision_s * 1e6

        champion = None
        info = tracker.champion(mlflow.registered_model)
        if info is not None:
            with tempfile.TemporaryDirectory() as tmp:
                champ_learner = load_learner(tracker.champion_checkpoint(info, tmp),
                                             device="cpu")
            sizes = (champ_learner.config.obs_size, champ_learner.config.action_size)
            if sizes != (learner.config.obs_size, learner.config.action_size):
                # Another game (e.g. a 27/3 build against a 24/2 champion): no common episodes.
                context.log.warning(f"champion v{info.version} plays {sizes[0]} observations /"
                                    f" {sizes[1]} actions, the candidate "
                                    f"{learner.config.obs_size} / {learner.config.action_size}:"
                                    " not compared")
            else:
                # evaluate() re-seeds the environment: the champion plays the same episodes.
                champ_ev = evaluate(greedy(champ_learner), episodes=settings["episodes"],
                                    seed=seed, params=court, threshold=config.target_score,
                                    env=env)
                champion = {"version": info.version, "mean": champ_ev.mean,
                            "median": champ_ev.median, "solved": champ_ev.solved,
                            "run_id": info.run_id, "partition": info.tags.get("partition")}
    finally:
        if env is not None:
            env.close()

    histogram_png = plot_histogram(ev.scores, out_dir / "score_histogram.png",
                                   f"{partition}: {ev.episodes} fresh episodes, mean "
                                   f"{ev.mean:.3f}")
    gif = None
    # The replay renders the built-in court's physics: for a Unity build it would show a game
    # the candidate was not judged on.
    if config.gif and not on_unity:
        gif, rally_score, rally_length = render_episode_gif(
            greedy(learner), out_dir / "rally.gif", params=court,
            seed=final_seed(train_seed, 9_999), max_decisions=settings["gif_max_frames"],
            max_frames=settings["gif_max_frames"])

    report: dict[str, Any] = {
        "partition": partition,
        "environment": trained_agents.extra.get("environment", Environment.builtin.value),
        "dagster_run_id": context.run.run_id,
        "candidate": {"train_dagster_run_id": trained_agents.dagster_run_id,
                      "train_mlflow_run_id": trained_agents.mlflow_run_id,
                      "checkpoint": trained_agents.checkpoint,
                      "model_source": trained_agents.extra.get("model_source"),
                      "agent_config": trained_agents.agent_config},
        "evaluation": {**ev.summary(), "seed": seed, "threshold": ev.threshold,
                       "score_histogram": score_histogram(ev.scores),
                       "scores": [round(float(s), 2) for s in ev.scores]},
        "latency": latency,
        "champion": champion,
        "paths": {"histogram": str(histogram_png), "rally_gif": str(gif) if gif else None,
                  "learning_curve": trained_agents.learning_curve},
    }
    gates = report_gates(report, config.target_score, config.champion_margin,
                         config.max_latency_ms)
    report["gates"] = gates
    report["gates_passed"] = all(gates[name] for name in BLOCKING_REPORT_CHECKS)

    with mlflow.start_run(f"evaluate-{partition}",
                          run_tags(context.run.run_id, asset="evaluation_report",
                                   partition=partition,
                                   candidate_run_id=trained_agents.mlflow_run_id)) as run:
        run.log_params({"episodes": ev.episodes, "seed": seed, "target_score": config.target_score,
                        "champion_margin": config.champion_margin,
                        "max_latency_ms": config.max_latency_ms,
                        "candidate_run_id": trained_agents.mlflow_run_id,
                        "champion_version": champion["version"] if champion else None})
        run.log_series("episode_score", [float(s) for s in ev.scores])
        run.log_metrics({"mean": ev.mean, "median": ev.median, "std": ev.std,
                         "solved": ev.solved, "mean_length": ev.mean_length,
                         "latency_p50_ms": latency["p50_ms"], "latency_p95_ms": latency["p95_ms"],
                         "champion_mean": champion["mean"] if champion else None,
                         "gates_passed": report["gates_passed"]})
        run.set_tags({f"gate.{k}": v for k, v in gates.items()})
        report["mlflow_run_id"], report["mlflow_run_url"] = run.run_id, run.url
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
        for path in (out_dir / "report.json", histogram_png, gif,
                     Path(trained_agents.learning_curve)):
            if path is not None and Path(path).exists():
                run.log_artifact(path, "evaluation")

    model_store.write_latest_report(partition, report)
    others = model_store.latest_reports()
    rows = _comparison_rows(others)
    if champion is not None:
        rows.append({"candidate": f"champion v{champion['version']} (same episodes)",
                     "mean": champion["mean"], "median": champion["median"],
                     "solved": champion["solved"], "p95_ms": None, "gates_passed": None,
                     "dagster_run": None})

    yield dg.Output(report, metadata={
        "mean": dg.MetadataValue.float(ev.mean),
        "median": dg.MetadataValue.float(ev.median),
        "std": dg.MetadataValue.float(ev.std),
        "episodes": dg.MetadataValue.int(ev.episodes),
        "solved": dg.MetadataValue.bool(ev.solved),
        "gates_passed": dg.MetadataValue.bool(report["gates_passed"]),
        "latency_p95_ms": dg.MetadataValue.float(latency["p95_ms"]),
        "champion_version": dg.MetadataValue.text(champion["version"] if champion else "none"),
        "champion_mean": dg.MetadataValue.float(champion["mean"] if champion else float("nan")),
        "score_histogram": image_md(histogram_png, "score histogram"),
        "score_counts": dg.MetadataValue.json(report["evaluation"]["score_histogram"]),
        "learning_curve": image_md(trained_agents.learning_curve, "learning curve"),
        "rally": image_md(gif, "rally"),
        "comparison": table_md(rows),
        "mlflow_run": dg.MetadataValue.url(run.url),
        "mlflow_run_id": dg.MetadataValue.text(run.run_id),
        "candidate_mlflow_run": dg.MetadataValue.url(trained_agents.mlflow_run_url or ""),
        "candidate_mlflow_run_id": dg.MetadataValue.text(trained_agents.mlflow_run_id or ""),
    })
    yield from report_check_results(report, config.target_score, config.champion_margin,
                                    config.max_latency_ms)
