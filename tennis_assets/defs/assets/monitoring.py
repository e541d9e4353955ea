import json
import tempfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import MonitoringConfig
from ..metadata import image_md
from ..resources import MlflowResource
from ..store import atomic_write_text

MONITORING = dg.AssetKey("production_monitoring")
# Seeds of monitoring episodes: a range of their own, away from training, model selection
# (1e9...) and final evaluation (2e9...), so production is never judged on episodes it was
# selected or evaluated on.
MONITOR_SEED_BASE = 3_000_000_000
# The baseline of a champion that has no recorded evaluation: a replay on the default court.
REFERENCE_SEED = 2_999_999_000

champion_score_has_not_drifted = dg.AssetCheckSpec(
    "champion_score_has_not_drifted", asset=MONITORING, blocking=False,
    description="The champion's scores on the production court are not significantly below "
                "its evaluation baseline (one-sided Mann-Whitney U and a minimum mean drop; "
                "severity from the monitoring rules).")


def _baseline(tracker, info, learner, episodes: int) -> tuple[list[float], str]:
    """The champion's scores when it was judged: its evaluation run's per-episode scores."""
    from tennis_assets.training import evaluate, greedy

    eval_run = info.tags.get("eval_mlflow_run_id")
    if eval_run:
        scores = tracker.metric_series(eval_run, "episode_score")
        if len(scores) >= 2:
            return scores, f"MLflow evaluation run {eval_run}"
    ev = evaluate(greedy(learner), episodes=episodes, seed=REFERENCE_SEED)
    return [float(s) for s in ev.scores], "replay on the default court (no evaluation run)"


def write_latest(out_dir: Path, value: dict[str, Any]) -> Path:
    """latest.json (read by the policy server's drift metrics) and an append-only history."""
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = out_dir / "latest.json"
    atomic_write_text(latest, json.dumps(value, indent=2, default=str))
    with open(out_dir / "history.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in value.items() if k != "scores"}, default=str)
                + "\n")
    return latest


@dg.asset(
    deps=["production_model"],
    group_name="monitoring",
    kinds={"mlflow", "python"},
    check_specs=[champion_score_has_not_drifted],
    tags={"stage": "monitoring"},
)
def production_monitoring(context: dg.AssetExecutionContext, config: MonitoringConfig,
                          mlflow: MlflowResource):
    """The champion played on the production court, compared with its evaluation baseline.

    Plays N fresh greedy episodes (100 by default) on the configured court (ball scale, racket
    angle, gravity: config, else ``$TENNIS_ASSETS_COURT``) and tests whether the scores fell
    below the per-episode scores of the champion's own evaluation (one-sided Mann-Whitney U;
    the rules' p-value levels and minimum mean drops give the severity). On drift the check
    ``champion_score_has_not_drifted`` fails (WARN or ERROR by severity; alerts follow) and
    the sensor ``retrain_on_drift`` retrains on this court. The result also lands in
    ``latest.json`` for the policy server's Prometheus metrics.
    """
    from tennis_assets.settings import data_dir
    from tennis_assets.sim import CourtParams
    from tennis_assets.tracking import run_tags
    from tennis_assets.training import evaluate, greedy, load_learner
    from tennis_assets.training.drift import DriftRule, score_drift
    from tennis_assets.training.plots import plot_score_drift

    tracker = mlflow.tracker()
    name = mlflow.registered_model
    info = tracker.champion(name)
    if info is None:
        raise dg.Failure(f"no model has the 'champion' alias in {name!r}: nothing to monitor; "
                         "materialize production_model first")
    court_values = config.court_values()
    court = CourtParams(**court_values)
    episodes = config.resolved_episodes()
    seed = config.seed if config.seed is not None else \
        MONITOR_SEED_BASE + zlib.crc32(context.run.run_id.encode()) % 100_000_000
    rules = [DriftRule(r.severity.value, r.max_p_value, r.min_mean_drop) for r in config.rules]

    with tempfile.TemporaryDirectory() as tmp:
        learner = load_learner(tracker.champion_checkpoint(info, tmp), device="cpu")
    ev = evaluate(greedy(learner), episodes=episodes, seed=seed, params=court)
    baseline, baseline_source = _baseline(tracker, info, learner, episodes)
    drift = score_drift(ev.scores, baseline, rules)
    context.log.info(f"champion v{info.version} on {court_values or 'the default court'}: "
                     f"mean {drift.mean:.3f} vs baseline {drift.baseline_mean:.3f}, "
                     f"p={drift.p_value:.2g} -> {drift.severity}")

    out_dir = Path(config.output_dir) if config.output_dir else data_dir() / "monitoring"
    tags = run_tags(context.run.run_id, asset="production_monitoring",
                    model_version=info.version)
    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run("production_monitoring", tags) as run:
        plot = plot_score_drift(ev.scores, baseline, Path(tmp) / "score_drift.png",
                                title=f"champion v{info.version}: {drift.severity}")
        run.log_params({"model_name": name, "model_version": info.version,
                        "court": court.to_dict(), "episodes": episodes, "seed": seed,
                        "baseline_source": baseline_source,
                        "rules": [r.to_dict() for r in rules]})
        run.log_series("episode_score", [float(s) for s in ev.scores])
        run.log_metrics({k: v for k, v in drift.summary().items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.log_metrics({"drifted": float(drift.drifted)})
        run.log_artifact(plot)
        plot_md = image_md(plot, "score distributions")

    value = {"time": datetime.now(timezone.utc).isoformat(), "model_name": name,
             "model_version": info.version, "model_partition": info.tags.get("partition"),
             "court": court.to_dict(), "court_overrides": court_values, "seed": seed,
             "baseline_source": baseline_source, "dagster_run_id": context.run.run_id,
             "mlflow_run_id": run.run_id, **drift.summary(),
             "scores": [round(float(s), 2) for s in ev.scores]}
    latest = write_latest(out_dir, value)
    yield dg.Output(value, metadata={
        "model_version": dg.MetadataValue.text(info.version),
        "model_partition": dg.MetadataValue.text(str(info.tags.get("partition"))),
        "court": dg.MetadataValue.json(court.to_dict()),
        "court_overrides": dg.MetadataValue.json(court_values),
        "mean": dg.MetadataValue.float(drift.mean),
        "baseline_mean": dg.MetadataValue.float(drift.baseline_mean),
        "p_value": dg.MetadataValue.float(drift.p_value),
        "statistic": dg.MetadataValue.float(drift.statistic),
        "test": dg.MetadataValue.text(drift.summary()["test"]),
        "severity": dg.MetadataValue.text(drift.severity),
        "drifted": dg.MetadataValue.bool(drift.drifted),
        "episodes": dg.MetadataValue.int(episodes),
        "baseline_source": dg.MetadataValue.text(baseline_source),
        "score_distributions": plot_md,
        "latest": dg.MetadataValue.path(str(latest)),
        "mlflow_run": dg.MetadataValue.url(run.url) if run.url else dg.MetadataValue.text("-"),
    })
    yield dg.AssetCheckResult(
        check_name="champion_score_has_not_drifted", asset_key=MONITORING,
        passed=not drift.drifted,
        severity=dg.AssetCheckSeverity.ERROR if drift.severity == "critical"
        else dg.AssetCheckSeverity.WARN,
        metadata={"severity": drift.severity, "p_value": drift.p_value, "mean": drift.mean,
                  "baseline_mean": drift.baseline_mean, "mean_drop": drift.mean_drop,
                  "court": dg.MetadataValue.json(court_values),
                  "rules": dg.MetadataValue.json(drift.rules)})
