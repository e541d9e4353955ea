
from typing import Any

import dagster as dg

from ..config import PromotionConfig
from ..resources import MlflowResource
from ..store import ModelStore


def choose_candidate(reports: dict[str, dict[str, Any]], config: PromotionConfig,
                     champion_version: str | None, champion_run: str | None
                     ) -> tuple[tuple[str, dict[str, Any]] | None, dict[str, str]]:
    """The best candidate whose latest report passed every blocking gate against the champion
    that is current now; also why each other candidate was passed over."""
    eligible, passed_over = {}, {}
    for partition, report in reports.items():
        compared = (report.get("champion") or {}).get("version")
        is_champion = champion_run is not None and \
            report["candidate"]["train_mlflow_run_id"] == champion_run
        if config.partition is not None and partition != config.partition:
            passed_over[partition] = f"not the requested partition {config.partition}"
        elif config.report_run_id is not None and \
                report["dagster_run_id"] != config.report_run_id:
            passed_over[partition] = f"latest report is not from run {config.report_run_id}"
        elif not report.get("gates_passed"):
            passed_over[partition] = f"failed its gates {report.get('gates')}"
        elif compared != champion_version and not is_champion:
            # Its beats_champion gate was judged against another champion: stale.
            passed_over[partition] = (f"report compared against champion v{compared}, the "
                                      f"champion is now v{champion_version}; re-evaluate")
        else:
            eligible[partition] = report
    if not eligible:
        return None, passed_over
    return max(eligible.items(), key=lambda item: item[1]["evaluation"]["mean"]), passed_over


def _rollback(context, tracker, name: str, model_store: ModelStore) -> dg.Output[dict]:
    try:
        restored = tracker.rollback(name)
    except RuntimeError as exc:
        raise dg.Failure(f"rollback: {exc}; production is unchanged") from None
    previous = tracker.champion(name, "previous")
    tags = restored.tags
    value = {"model_name": name, "version": restored.version,
             "partition": tags.get("partition"), "mlflow_run_id": restored.run_id,
             "eval_mlflow_run_id": tags.get("eval_mlflow_run_id"), "source": restored.source,
             "eval_mean": restored.eval_mean, "dagster_run_id": context.run.run_id,
             "report_dagster_run_id": tags.get("report_dagster_run_id"),
             "previous_version": previous.version if previous else None, "changed": True,
             "candidate": None, "rollback": True}
    pointer = model_store.write_production(value)
    context.log.warning(f"rolled back {name} to v{restored.version}")
    return dg.Output(value, metadata={
        "version": dg.MetadataValue.text(restored.version),
        "model_name": dg.MetadataValue.text(name),
        "partition": dg.MetadataValue.text(str(value["partition"])),
        "eval_mean": dg.MetadataValue.float(float(restored.eval_mean or float("nan"))),
        "previous_version": dg.MetadataValue.text(value["previous_version"] or "none"),
        "changed": dg.MetadataValue.bool(True),
        "rollback": dg.MetadataValue.bool(True),
        "dagster_run_id": dg.MetadataValue.text(context.run.run_id),
        "mlflow_run": dg.MetadataValue.url(tracker.run_url(restored.run_id)),
        "mlflow_run_id": dg.MetadataValue.text(restored.run_id or ""),
        "model_version": dg.MetadataValue.url(tracker.model_url(name, restored.version)),
        "pointer": dg.MetadataValue.path(str(pointer)),
    })


@dg.asset(
    deps=[dg.AssetDep("evaluation_report", partition_mapping=dg.AllPartitionMapping())],
    group_name="production",
    kinds={"mlflow"},
    tags={"stage": "production"},
)
def production_model(context: dg.AssetExecutionContext, config: PromotionConfig,
                     mlflow: MlflowResource, model_store: ModelStore) -> dg.Output[dict]:
    """The promoted champion: an MLflow registered model version with the alias ``champion``.

    Promotes the best candidate whose latest evaluation report passed ``solves_tennis`` and
    ``beats_champion``; a candidate that failed a gate is never eligible, nor one whose report
    was compared against a champion that has since been replaced. The champion it replaces
    keeps the alias ``previous``; materializing with ``rollback: true`` swaps the two back.
    """
    from tennis_assets.tracking import run_tags

    tracker = mlflow.tracker()
    name = mlflow.registered_model
    current = tracker.champion(name)
    if config.rollback:
        return _rollback(context, tracker, name, model_store)
    reports = model_store.latest_reports()
    chosen, passed_over = choose_candidate(reports, config, current.version if current else None,
                                           current.run_id if current else None)
    if chosen is None:
        raise dg.Failure(
            "no candidate is eligible for promotion; production is unchanged",
            metadata={"passed_over": dg.MetadataValue.json(passed_over),
                      "champion_version": dg.MetadataValue.text(
                          current.version if current else "none")})
    partition, report = chosen
    train_run = report["candidate"]["train_mlflow_run_id"]
    champion_mean = (report.get("champion") or {}).get("mean")
    if current is not None and current.run_id == train_run:
        context.log.info(f"{partition} (MLflow run {train_run}) is already champion "
                         f"v{current.version}; nothing to promote")
        promoted, changed = current, False
    elif current is not None and champion_mean is not None and \
            report["evaluation"]["mean"] <= champion_mean:
        # The gate lets a candidate within the margin through; replacing the champion takes a
        # strictly better score on the same episodes.
        context.log.info(f"{partition} scored {report['evaluation']['mean']:.3f}, champion "
                         f"v{current.version} {champion_mean:.3f} on the same episodes: kept")
        promoted, changed = current, False
    else:
        promoted = tracker.register_champion(
            name, source=report["candidate"]["model_source"], run_id=train_run,
            tags={"eval_mean": report["evaluation"]["mean"], "partition": partition,
                  "dagster_run_id": context.run.run_id,
                  "report_dagster_run_id": report["dagster_run_id"],
                  "eval_mlflow_run_id": report.get("mlflow_run_id"),
                  **{k: v for k, v in run_tags().items() if k.startswith("git.")}},
            description=f"{partition} candidate, greedy mean {report['evaluation']['mean']:.3f} "
                        f"over {report['evaluation']['episodes']} fresh episodes")
        changed = True
    previous = tracker.champion(name, "previous")
    # Describe the champion as it stands, which is the candidate only if it was promoted now.
    tags = promoted.tags
    value = {"model_name": name, "version": promoted.version,
             "partition": partition if changed else tags.get("partition", partition),
             "mlflow_run_id": promoted.run_id,
             "eval_mlflow_run_id": report.get("mlflow_run_id") if changed
             else tags.get("eval_mlflow_run_id"),
             "source": promoted.source,
             "eval_mean": report["evaluation"]["mean"] if changed else promoted.eval_mean,
             "dagster_run_id": context.run.run_id if changed
             else tags.get("dagster_run_id", context.run.run_id),
             "report_dagster_run_id": report["dagster_run_id"] if changed
             else tags.get("report_dagster_run_id"),
             "previous_version": previous.version if previous else None, "changed": changed,
             "candidate": partition}
    pointer = model_store.root() / "production" / "champion.json"
    if changed or not pointer.exists():
        # Rewritten only when the champion changes: its run ids say who promoted it.
        pointer = model_store.write_production(value)
    return dg.Output(value, metadata={
        "version": dg.MetadataValue.text(promoted.version),
        "model_name": dg.MetadataValue.text(name),
        "partition": dg.MetadataValue.text(value["partition"]),
        "eval_mean": dg.MetadataValue.float(float(value["eval_mean"] or float("nan"))),
        "previous_version": dg.MetadataValue.text(value["previous_version"] or "none"),
        "changed": dg.MetadataValue.bool(changed),
        "best_candidate": dg.MetadataValue.text(partition),
        "dagster_run_id": dg.MetadataValue.text(context.run.run_id),
        "promoted_by_dagster_run": dg.MetadataValue.text(value["dagster_run_id"]),
        "mlflow_run": dg.MetadataValue.url(tracker.run_url(promoted.run_id)),
        "mlflow_run_id": dg.MetadataValue.text(promoted.run_id or ""),
        "model_version": dg.MetadataValue.url(tracker.model_url(name, promoted.version)),
        "pointer": dg.MetadataValue.path(str(pointer)),
        "passed_over": dg.MetadataValue.json(passed_over),
    })
