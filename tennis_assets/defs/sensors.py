"""Sensors: promote a better candidate, monitor each new champion, retrain when the
champion's score drifted (alerts are in alerts.py).

Each reads the instance's event log from a cursor, so each event is handled once however many
ticks pass, and nothing that happened between ticks is skipped.
"""


import json

import dagster as dg

from tennis_assets import settings
from tennis_assets.training.drift import SEVERITIES as DRIFT_VERDICTS
from tennis_assets.workflow.promotion import Champion, Evidence, decide

from .config import PARTITIONS
from .gates import BLOCKING_REPORT_CHECKS
from .jobs import monitor, promote, retrain

REPORT_KEY = dg.AssetKey("evaluation_report")
PRODUCTION_KEY = dg.AssetKey("production_model")
MONITORING_KEY = dg.AssetKey("production_monitoring")
SEVERITY_ORDER = DRIFT_VERDICTS[1:]


def _meta(record, name: str, default=None):
    value = record.asset_materialization.metadata.get(name)
    return default if value is None else value.value


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def _blocking_checks_passed(instance: dg.DagsterInstance, run_id: str, partition: str) -> bool:
    evaluations = {e.check_name: e.passed for e in check_evaluations(instance, run_id)
                   if e.asset_key == REPORT_KEY and e.partition in (partition, None)}
    return all(evaluations.get(name) is True for name in BLOCKING_REPORT_CHECKS)


def _champion(instance: dg.DagsterInstance) -> Champion:
    """The champion as production_model last recorded it."""
    latest = instance.fetch_materializations(PRODUCTION_KEY, limit=1).records
    if not latest:
        return Champion(None, None)
    return Champion(_meta(latest[0], "version"), _meta(latest[0], "mlflow_run_id"))


def evidence_from_event(instance: dg.DagsterInstance, record) -> Evidence:
    champion_version = _meta(record, "champion_version")
    return Evidence(
        partition=record.partition_key, train_run_id=_meta(record, "candidate_mlflow_run_id"),
        mean=float(_meta(record, "mean")),
        blocking_gates_passed=_blocking_checks_passed(instance, record.run_id,
                                                      record.partition_key),
        compared_version=None if champion_version in (None, "none") else champion_version,
        champion_mean=_meta(record, "champion_mean") if champion_version not in (None, "none")
        else None, report_run_id=record.run_id)


@dg.sensor(job=promote, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launch a promotion for each new evaluation report that the promotion "
                       "rule accepts (once per report).")
def promote_better_model(context: dg.SensorEvaluationContext):
    instance = context.instance
    result = instance.fetch_materializations(REPORT_KEY, limit=100, cursor=context.cursor,
                                             ascending=True)
    requests, skipped = [], []
    champion = _champion(instance)
    for record in result.records:
        partition, run_id = record.partition_key, record.run_id
        if partition not in PARTITIONS or _meta(record, "mean") is None:
            continue
        decision = decide(evidence_from_event(instance, record), champion)
        if not decision.promote:
            skipped.append(f"{partition}@{run_id[:8]}: {decision.reason}")
            continue
        requests.append(dg.RunRequest(
            run_key=f"promote-{partition}-{record.storage_id}",
            run_config={"ops": {"challenger_model": {"config": {
                "partition": partition, "report_run_id": run_id}}}},
            tags={"trigger": "promote_better_model", "report_run_id": run_id,
                  "candidate": partition}))
    if skipped:
        context.log.info("not promoted: " + "; ".join(skipped))
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)


@dg.sensor(job=monitor, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Monitor each new champion (a promotion or a rollback) on its "
                       "production court at once, so drift state always describes the model "
                       "that is served.")
def monitor_new_champion(context: dg.SensorEvaluationContext):
    result = context.instance.fetch_materializations(PRODUCTION_KEY, limit=100,
                                                     cursor=context.cursor, ascending=True)
    requests = [dg.RunRequest(run_key=f"monitor-champion-{record.storage_id}",
                              tags={"trigger": "monitor_new_champion",
                                    "champion_version": str(_meta(record, "version"))})
                for record in result.records if _meta(record, "changed", False)]
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)


@dg.sensor(job=retrain, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="For each production_monitoring result that drifted, retrain the "
                       "champion's candidate on the drifted court, warm-started from the "
                       "champion; its evaluation's gates and the promotion sensor decide the rest.")
def retrain_on_drift(context: dg.SensorEvaluationContext):
    minimum = settings.retrain_on_drift()
    result = context.instance.fetch_materializations(MONITORING_KEY, limit=100,
                                                     cursor=context.cursor, ascending=True)
    requests, skipped = [], []
    for record in result.records:
        severity = _meta(record, "severity", "none")
        label = f"monitoring run {record.run_id[:8]}"
        if not _meta(record, "drifted", False):
            continue
        if minimum is None or severity not in SEVERITY_ORDER or \
                SEVERITY_ORDER.index(severity) < SEVERITY_ORDER.index(minimum):
            skipped.append(f"{label}: {severity} drift, retraining from {minimum or 'off'}")
            continue
        partition = _meta(record, "model_partition")
        partition = partition if partition in PARTITIONS else PARTITIONS[0]
        court = _meta(record, "court_overrides", {}) or {}
        environment = _meta(record, "environment", "tennis") or "tennis"
        requests.append(dg.RunRequest(
            run_key=f"drift-{record.storage_id}", partition_key=partition,
            run_config={"ops": {"trained_agents": {"config": {
                "environment": {"env": environment, "env_kwargs": court},
                "init_checkpoint": "champion"}}}},
            tags={"trigger": "retrain_on_drift", "monitoring_run_id": record.run_id,
                  "drift_severity": severity, "court": json.dumps(court, sort_keys=True),
                  "champion_version": str(_meta(record, "model_version"))}))
    if skipped:
        context.log.info("not retrained: " + "; ".join(skipped))
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)
