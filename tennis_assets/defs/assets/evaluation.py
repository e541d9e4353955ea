"""evaluation_report: a candidate judged by the core workflow
(tennis_assets.workflow.evaluation) side by side with the champion; this asset adds the
registry lookup, MLflow tracking, metadata and the gates."""

import tempfile
from typing import Any

import dagster as dg


from ..config import Environment, EvaluationConfig
from ..environment import UnityEnvironmentResource
from ..gates import (beats_champion, latency_under_threshold, report_check_results,
                     solves_tennis)
from ..metadata import image_md, rounded, run_link, table_md
from ..partitions import agent_partitions, candidate
from ..resources import MlflowResource
from ..store import ModelStore, TrainedAgent


def _champion(context, tracker, name: str, tmp: str):
    """(learner, registry info) of the champion, or (None, None)."""
    from tennis_assets.training import load_learner

    info = tracker.champion(name)
    if info is None:
        return None, None
    return load_learner(tracker.champion_checkpoint(info, tmp), device="cpu"), info


def _comparison(reports: dict[str, dict[str, Any]], champion: dict | None) -> list[dict]:
    rows = [{"candidate": p, "mean": r["evaluation"]["mean"], "solved": r["evaluation"]["solved"],
             "p95_ms": r["latency"]["p95_ms"], "gates_passed": r["gates_passed"],
             "dagster_run": r["dagster_run_id"][:8]} for p, r in sorted(reports.items())]
    if champion is not None:
        rows.append({"candidate": f"champion v{champion['version']} (same episodes)",
                     "mean": champion["mean"], "solved": champion["solved"]})
    return rows


@dg.asset(
    partitions_def=agent_partitions,
    group_name="candidates",
    kinds={"mlflow", "python"},
    check_specs=[solves_tennis, beats_champion, latency_under_threshold],
    tags={"stage": "evaluation"},
)
def evaluation_report(context: dg.AssetExecutionContext, config: EvaluationConfig,
                      trained_agents: TrainedAgent, mlflow: MlflowResource,
                      model_store: ModelStore, unity_environment: UnityEnvironmentResource):
    """Greedy evaluation of a candidate on fresh episodes, side by side with the champion.

    Episodes on seeds disjoint from training and model selection, on the court the candidate
    trained on; the champion plays the very same episodes. A candidate trained on a Unity build
    is judged on a fresh launch of that build. ``solves_tennis`` blocks a broken candidate;
    ``beats_champion`` records whether it is better, which the promotion rule reads.
    """
    from tennis_assets.sim import CourtParams
    from tennis_assets.tracking import run_tags
    from tennis_assets.training import final_seed
    from tennis_assets.workflow.evaluation import (candidate_report, evaluate_candidate,
                                                   track_report)

    partition = candidate(context)
    settings = config.resolved()
    court = dict(trained_agents.train_config.get("court", {}))
    train_seed = int(trained_agents.train_config.get("seed", 0))
    seed = final_seed(train_seed, 1 + config.seed)
    tracker = mlflow.tracker()
    on_unity = trained_agents.extra.get("environment") == Environment.unity.value
    env = unity_environment.open(seed=seed) if on_unity else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            champ_learner, info = _champion(context, tracker, mlflow.registered_model, tmp)
        judged = evaluate_candidate(
            trained_agents.learner(), model_store.report_dir(partition, context.run.run_id),
            label=partition, episodes=settings["episodes"], seed=seed,
            court=CourtParams(**court), threshold=config.target_score,
            latency_samples=settings["latency_samples"],
            rally_seed=final_seed(train_seed, 9_999) if config.gif else None,
            rally_max_frames=settings["gif_max_frames"], champion_learner=champ_learner, env=env)
    finally:
        if env is not None:
            env.close()
    champion = None if judged.champion is None else {
        **judged.champion, "version": info.version, "run_id": info.run_id,
        "partition": info.tags.get("partition")}
    if info is not None and champion is None:
        context.log.warning(f"champion v{info.version} plays another game: not compared")

    report = candidate_report(
        judged, partition=partition, court=court, target=config.target_score,
        max_latency_ms=config.max_latency_ms, champion=champion,
        environment=trained_agents.extra.get("environment", Environment.builtin.value),
        dagster_run_id=context.run.run_id,
        candidate={"train_dagster_run_id": trained_agents.dagster_run_id,
                   "train_mlflow_run_id": trained_agents.mlflow_run_id,
                   "checkpoint": trained_agents.checkpoint,
                   "model_source": trained_agents.extra.get("model_source"),
                   "agent_config": trained_agents.agent_config},
        paths={"histogram": str(judged.paths["histogram"]),
               "rally_gif": str(judged.paths["rally"]) if "rally" in judged.paths else None,
               "learning_curve": trained_agents.learning_curve})
    ev = judged.evaluation
    out_dir = model_store.report_dir(partition, context.run.run_id)
    with mlflow.start_run(f"evaluate-{partition}", run_tags(
            context.run.run_id, asset="evaluation_report", partition=partition,
            candidate_run_id=trained_agents.mlflow_run_id,
            **{"dagster.run_url": mlflow.dagster_run_url(context.run.run_id)})) as run:
        track_report(run, report, judged, out_dir)

    model_store.write_latest_report(partition, report)
    yield dg.Output(report, metadata={
        **rounded({"mean": ev.mean, "median": ev.median, "std": ev.std,
                   "latency_p95_ms": judged.latency["p95_ms"],
                   "champion_mean": champion["mean"] if champion else None}),
        "episodes": dg.MetadataValue.int(ev.episodes),
        "solved": dg.MetadataValue.bool(ev.solved),
        "gates_passed": dg.MetadataValue.bool(report["gates_passed"]),
        "champion_version": dg.MetadataValue.text(champion["version"] if champion else "none"),
        "court": dg.MetadataValue.json(court),
        "score_histogram": image_md(judged.paths["histogram"], "score histogram"),
        "learning_curve": image_md(trained_agents.learning_curve, "learning curve"),
        "rally": image_md(judged.paths.get("rally"), "rally"),
        "comparison": table_md(_comparison(model_store.latest_reports(), champion)),
        "mlflow_run": dg.MetadataValue.url(run.url),
        "mlflow_run_id": dg.MetadataValue.text(run.run_id),
        "candidate_mlflow_run_id": dg.MetadataValue.text(trained_agents.mlflow_run_id or ""),
        **run_link("trained_in", trained_agents.dagster_run_id),
    })
    yield from report_check_results(report, config.target_score, config.max_latency_ms)
