"""production_monitoring: the champion watched for drift by the core workflow
(tennis_assets.workflow.monitoring); this asset adds the registry lookup, MLflow tracking, the
result file for the policy server, metadata and the drift check."""

import tempfile
from pathlib import Path

import dagster as dg

from ..config import MonitoringConfig
from ..metadata import dagster_metadata, image_md, rounded
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
    """The champion played under production's conditions, compared with its evaluation
    baseline.

    The conditions: the champion's own environment (its model version's tags) with the
    keyword arguments configured for production (config, else ``$TENNIS_ASSETS_ENV_KWARGS``;
    Tennis: the court), else the conditions it was judged on. On drift the check fails (WARN or
    ERROR by severity) and ``retrain_on_drift`` retrains under these conditions. The result,
    tied to the model version, lands in ``latest.json`` for the policy server.
    """
    from tennis_assets.settings import data_dir
    from tennis_assets.tracking import run_tags
    from tennis_assets.workflow.monitoring_file import write_result

    tracker, name = mlflow.tracker(), mlflow.registered_model
    settings = config.core()
    info = tracker.champion(name)
    if info is None:
        raise dg.Failure(f"no model has the 'champion' alias in {name!r}: nothing to monitor; "
                         "materialize production_model first")
    outcome, production, source, seed = _play_champion(context, tracker, info, settings)
    drift = outcome.drift
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run("production_monitoring", run_tags(
            context.run.run_id, asset="production_monitoring", model_version=info.version,
            **{"dagster.run_url": mlflow.dagster_run_url(context.run.run_id)})) as run:
        plot = outcome.track(run, tmp, title=f"champion v{info.version}: {drift.severity}",
                             params={"model_name": name, "model_version": info.version,
                                     "environment": production.env,
                                     "env_kwargs": dict(production.env_kwargs),
                                     "court_source": source,
                                     "episodes": settings.monitor_episodes, "seed": seed,
                                     "rules": [r.to_dict() for r in settings.rules]})
        plot_md = image_md(plot, "score distributions")

    value = outcome.result(model_name=name, model_version=info.version,
                           partition=info.tags.get("partition"), environment=production,
                           source=source, seed=seed, dagster_run_id=context.run.run_id,
                           mlflow_run_id=run.run_id)
    out_dir = Path(settings.output_dir) if settings.output_dir else data_dir() / "monitoring"
    latest = write_result(out_dir, value)
    yield dg.Output(value, metadata={
        **dagster_metadata(value.metadata(latest=str(latest))),
        "score_distributions": plot_md, "mlflow_run": dg.MetadataValue.url(run.url)})
    yield _drift_check(value, info.version)


def _play_champion(context, tracker, info, settings):
    """(the outcome, the environment production plays, where its conditions came from, the
    episodes' seed)."""
    from tennis_assets.training import load_learner
    from tennis_assets.workflow.monitoring import (
        monitor_champion,
        monitoring_seed,
        production_environment,
    )
    from tennis_assets.workflow.promotion import environment_from_tags

    judged = environment_from_tags(info.tags)
    production, source = production_environment(judged, settings.production_conditions())
    seed = settings.monitor_seed if settings.monitor_seed is not None \
        else monitoring_seed(context.run.run_id)
    eval_run = info.tags.get("eval_mlflow_run_id")
    baseline = tracker.metric_series(eval_run, "episode_score") if eval_run else None
    with tempfile.TemporaryDirectory() as tmp:
        learner = load_learner(tracker.champion_checkpoint(info, tmp), device="cpu")
    outcome = monitor_champion(learner, baseline, production, settings.monitor_episodes, seed,
                               settings.rules, judged)
    drift = outcome.drift
    # With no keyword arguments the source already says "default conditions".
    conditions = f"{production.env_kwargs} ({source})" if production.env_kwargs else f"({source})"
    context.log.info(f"champion v{info.version} on {production.env} {conditions}: mean "
                     f"{drift.mean:.3f} vs baseline {drift.baseline_mean:.3f}, "
                     f"p={drift.p_value:.2g} -> {drift.severity}")
    return outcome, production, source, seed


def _drift_check(value, version: str) -> dg.AssetCheckResult:
    conditions = value.court_overrides or "the default conditions"
    return dg.AssetCheckResult(
        check_name="champion_score_has_not_drifted", asset_key=MONITORING,
        passed=not value.drifted,
        severity=dg.AssetCheckSeverity.ERROR if value.severity == "critical"
        else dg.AssetCheckSeverity.WARN,
        description=f"champion v{version} on {conditions}: mean {value.mean:.3f} vs baseline "
                    f"{value.baseline_mean:.3f} (p={value.p_value:.2g}): {value.severity}",
        metadata={"model_version": version, "severity": value.severity,
                  **rounded({"p_value": value.p_value, "mean": value.mean,
                             "baseline_mean": value.baseline_mean,
                             "mean_drop": value.mean_drop}),
                  "court": dg.MetadataValue.json(value.court_overrides),
                  "rules": dg.MetadataValue.json(value.rules)})
