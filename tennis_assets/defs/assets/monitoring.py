"""production_monitoring: the champion watched for drift by the core workflow
(tennis_assets.workflow.monitoring); this asset adds the registry lookup, MLflow tracking, the
result file for the policy server, metadata and the drift check."""

import tempfile
from pathlib import Path

import dagster as dg

from ..config import MonitoringConfig
from ..metadata import image_md, rounded, run_link
from ..resources import MlflowResource

MONITORING = dg.AssetKey("production_monitoring")

champion_score_has_not_drifted = dg.AssetCheckSpec(
    "champion_score_has_not_drifted", asset=MONITORING, blocking=False,
    description="The champion's scores on the production court are not significantly below "
                "its evaluation baseline (one-sided Mann-Whitney U and a minimum mean drop; "
                "severity from the monitoring rules).")


@dg.asset(
    deps=["production_model"],
    group_name="production",
    kinds={"mlflow", "python"},
    check_specs=[champion_score_has_not_drifted],
    tags={"stage": "monitoring"},
)
def production_monitoring(context: dg.AssetExecutionContext, config: MonitoringConfig,
                          mlflow: MlflowResource):
    """The champion played on the production court, compared with its evaluation baseline.

    The court: the configured production court (config, else ``$TENNIS_ASSETS_COURT``), else
    the court the champion was judged on (its model version's ``court`` tag). On drift the
    check fails (WARN or ERROR by severity) and ``retrain_on_drift`` retrains on this court.
    The result, tied to the model version, lands in ``latest.json`` for the policy server.
    """
    from tennis_assets.settings import data_dir
    from tennis_assets.tracking import run_tags
    from tennis_assets.training import load_learner
    from tennis_assets.workflow.monitoring import (court_for_champion, monitor_champion,
                                                   monitoring_seed)
    from tennis_assets.workflow.monitoring_file import write_result

    tracker, name = mlflow.tracker(), mlflow.registered_model
    settings = config.core()
    info = tracker.champion(name)
    if info is None:
        raise dg.Failure(f"no model has the 'champion' alias in {name!r}: nothing to monitor; "
                         "materialize production_model first")
    court, court_source = court_for_champion(settings.production_court(), info.tags)
    judged_court = court_for_champion(None, info.tags)[0]
    episodes = settings.monitor_episodes
    seed = settings.monitor_seed if settings.monitor_seed is not None \
        else monitoring_seed(context.run.run_id)
    rules = settings.rules
    eval_run = info.tags.get("eval_mlflow_run_id")
    baseline = tracker.metric_series(eval_run, "episode_score") if eval_run else None
    with tempfile.TemporaryDirectory() as tmp:
        learner = load_learner(tracker.champion_checkpoint(info, tmp), device="cpu")
    outcome = monitor_champion(learner, baseline, court, episodes, seed, rules, judged_court)
    drift = outcome.drift
    context.log.info(f"champion v{info.version} on {court or 'the default court'} "
                     f"({court_source}): mean {drift.mean:.3f} vs baseline "
                     f"{drift.baseline_mean:.3f}, p={drift.p_value:.2g} -> {drift.severity}")

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run("production_monitoring", run_tags(
            context.run.run_id, asset="production_monitoring", model_version=info.version,
            **{"dagster.run_url": mlflow.dagster_run_url(context.run.run_id)})) as run:
        plot = outcome.track(run, tmp, title=f"champion v{info.version}: {drift.severity}",
                             params={"model_name": name, "model_version": info.version,
                                     "court": court, "court_source": court_source,
                                     "episodes": episodes, "seed": seed,
                                     "rules": [r.to_dict() for r in rules]})
        plot_md = image_md(plot, "score distributions")

    value = outcome.result(model_name=name, model_version=info.version,
                           partition=info.tags.get("partition"), court=court,
                           court_source=court_source, seed=seed,
                           dagster_run_id=context.run.run_id, mlflow_run_id=run.run_id)
    out_dir = Path(settings.output_dir) if settings.output_dir else data_dir() / "monitoring"
    latest = write_result(out_dir, value)
    yield dg.Output(value, metadata={
        "model_version": dg.MetadataValue.text(info.version),
        "model_partition": dg.MetadataValue.text(str(info.tags.get("partition"))),
        "court": dg.MetadataValue.json(value["court"]),
        "court_overrides": dg.MetadataValue.json(court),
        "court_source": dg.MetadataValue.text(court_source),
        **rounded({"mean": drift.mean, "baseline_mean": drift.baseline_mean,
                   "p_value": drift.p_value, "statistic": drift.statistic}),
        "test": dg.MetadataValue.text(drift.summary()["test"]),
        "severity": dg.MetadataValue.text(drift.severity),
        "drifted": dg.MetadataValue.bool(drift.drifted),
        "episodes": dg.MetadataValue.int(episodes),
        "baseline_source": dg.MetadataValue.text(outcome.baseline_source),
        "score_distributions": plot_md,
        "latest": dg.MetadataValue.path(str(latest)),
        "mlflow_run": dg.MetadataValue.url(run.url),
        **run_link("dagster_run", context.run.run_id),
    })
    yield dg.AssetCheckResult(
        check_name="champion_score_has_not_drifted", asset_key=MONITORING,
        passed=not drift.drifted,
        severity=dg.AssetCheckSeverity.ERROR if drift.severity == "critical"
        else dg.AssetCheckSeverity.WARN,
        description=f"champion v{info.version} on {court or 'the default court'}: mean "
                    f"{drift.mean:.3f} vs baseline {drift.baseline_mean:.3f} "
                    f"(p={drift.p_value:.2g}): {drift.severity}",
        metadata={"model_version": info.version, "severity": drift.severity,
                  **rounded({"p_value": drift.p_value, "mean": drift.mean,
                             "baseline_mean": drift.baseline_mean,
                             "mean_drop": drift.mean_drop}),
                  "court": dg.MetadataValue.json(court),
                  "rules": dg.MetadataValue.json(drift.rules)})
