"""evaluation_report: a candidate judged by the core workflow
(tennis_assets.workflow.evaluation) side by side with the champion; this asset adds the
registry lookup, MLflow tracking, metadata and the gates."""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import EvaluationConfig
from ..gates import beats_champion, blocked, latency_under_threshold, report_check_results, solves
from ..metadata import dagster_metadata, table_md
from ..partitions import agent_partitions, candidate_partition
from ..resources import MlflowResource
from ..store import ModelStore, TrainedAgent


def _champion(context, tracker, name: str, tmp: str):
    """(learner, registry info) of the champion, or (None, None)."""
    from tennis_assets.training import load_learner

    info = tracker.champion(name)
    if info is None:
        return None, None
    return load_learner(tracker.champion_checkpoint(info, tmp), device="cpu"), info


def _picture_urls(mlflow: MlflowResource, report) -> dict[str, str]:
    """Where MLflow serves the report's pictures: the evaluation run's (histogram, rally) and
    the training run's (learning curve) artifacts."""
    train_run = report.candidate.train_mlflow_run_id if report.candidate else None
    found = {path: mlflow.artifact_url(run, f"{folder}/{Path(path).name}")
             for path, run, folder in ((report.histogram_png, report.mlflow_run_id, "evaluation"),
                                       (report.rally_gif, report.mlflow_run_id, "evaluation"),
                                       (report.learning_curve_png, train_run, "training"))
             if path}
    return {path: url for path, url in found.items() if url}


def _comparison(reports, champion) -> list[dict[str, Any]]:
    rows = [r.comparison_row() for _, r in sorted(reports.items())]
    if champion is not None:
        rows.append({"candidate": f"champion v{champion.version} (same episodes)",
                     "mean": champion.mean, "solved": champion.solved})
    return rows


@dg.asset(
    partitions_def=agent_partitions,
    group_name="candidates",
    kinds={"mlflow", "python"},
    check_specs=[solves, beats_champion, latency_under_threshold],
    tags={"stage": "evaluation"},
)
def evaluation_report(context: dg.AssetExecutionContext, config: EvaluationConfig,
                      trained_agents: TrainedAgent, mlflow: MlflowResource,
                      model_store: ModelStore):
    """Greedy evaluation of a candidate on fresh episodes, side by side with the champion and
    a random policy.

    Episodes on seeds disjoint from training and model selection, of the environment (and the
    conditions) the candidate trained on; the champion and a random policy play the very same
    episodes. ``solves`` blocks a broken candidate (the environment's solve score, or where it
    has none, clearly better than random); ``beats_champion`` records whether it is better,
    which the promotion rule reads.
    """
    from tennis_assets.tracking import run_tags
    from tennis_assets.training import final_seed
    from tennis_assets.workflow.evaluation import (
        CandidateRef,
        candidate_report,
        evaluate_candidate,
        track_report,
    )

    partition = candidate_partition(context)
    settings = config.core()
    train_seed = trained_agents.train_config.seed
    seed = final_seed(train_seed, 1 + settings.eval_seed)
    tracker = mlflow.tracker()
    with tempfile.TemporaryDirectory() as tmp:
        champ_learner, info = _champion(context, tracker, mlflow.registered_model, tmp)
    judged = evaluate_candidate(
        trained_agents.learner(), model_store.report_dir(partition, context.run.run_id),
        label=partition, episodes=settings.eval_episodes, seed=seed,
        environment=trained_agents.environment, latency_samples=settings.latency_samples,
        rally_seed=final_seed(train_seed, 9_999) if settings.gif else None,
        rally_max_frames=settings.gif_max_frames, champion_learner=champ_learner)
    champion = None if judged.champion is None else judged.champion.model_copy(update={
        "version": info.version, "run_id": info.run_id,
        "partition": info.tags.get("partition")})
    if info is not None and champion is None:
        context.log.warning(f"champion v{info.version} plays another game: not compared")

    report = candidate_report(
        judged, partition=partition, max_latency_ms=settings.max_latency_ms, champion=champion,
        dagster_run_id=context.run.run_id, learning_curve_png=trained_agents.learning_curve,
        candidate=CandidateRef(train_dagster_run_id=trained_agents.dagster_run_id,
                               train_mlflow_run_id=trained_agents.mlflow_run_id,
                               checkpoint=trained_agents.checkpoint,
                               model_source=trained_agents.model_source,
                               agent_config=trained_agents.agent_config.to_dict(),
                               reused_from=trained_agents.reused_from))
    out_dir = model_store.report_dir(partition, context.run.run_id)
    with mlflow.start_run(f"evaluate-{partition}", run_tags(
            context.run.run_id, asset="evaluation_report", partition=partition,
            candidate_run_id=trained_agents.mlflow_run_id,
            **{"dagster.run_url": mlflow.dagster_run_url(context.run.run_id)})) as run:
        report = track_report(run, report, judged, out_dir)

    model_store.write_latest_report(partition, report)
    others = {p: r for p, r in model_store.latest_reports().items()}
    metadata = {**dagster_metadata(report.metadata(), _picture_urls(mlflow, report)),
                "comparison": table_md(_comparison(others, champion))}
    results = report_check_results(report, settings.max_latency_ms, trained_agents)
    failure = blocked(results, metadata, f"candidate {partition}")
    if failure is not None:
        yield from results
        raise failure
    yield dg.Output(report, metadata=metadata)
    yield from results
