"""Sensors: trigger a promotion for each new candidate, monitor each new champion, retrain
when the champion's score drifted (alerts are in alerts.py).

Each reads the instance's event log from a cursor, so each event is handled once however many
ticks pass, and nothing that happened between ticks is skipped. They only trigger: whether a
candidate replaces the champion is decided in one place, the ``challenger_model`` asset, against
the champion the registry names (tennis_assets.workflow.promotion). Runs launched by a driver
that launches their follow-ups itself (the main command's plan, the stack test; tag
``tennis_assets/plan``) are left to it.
"""


import json

import dagster as dg

from tennis_assets import settings
from tennis_assets.training.drift import SEVERITIES as DRIFT_VERDICTS

from .config import PARTITIONS
from .gates import BLOCKING_REPORT_CHECKS
from .jobs import monitor, promote, retrain
from .runs import PLAN_TAG

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
    return [r.event_log_entry.dagster_event.event_specific_data for r in records
            if r.event_log_entry.dagster_event is not None]


def _blocking_checks_passed(instance: dg.DagsterInstance, run_id: str, partition: str) -> bool:
    evaluations = {e.check_name: e.passed for e in check_evaluations(instance, run_id)
                   if e.asset_key == REPORT_KEY and e.partition in (partition, None)}
    return all(evaluations.get(name) is True for name in BLOCKING_REPORT_CHECKS)


def _planned(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run was launched by a driver that launches its follow-ups itself."""
    run = instance.get_run_by_id(run_id)
    return run is not None and PLAN_TAG in run.tags


@dg.sensor(job=promote, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launch a promotion for each new evaluation report whose blocking gates "
                       "passed (once per report); the promotion decides against the current "
                       "champion.")
def promote_better_model(context: dg.SensorEvaluationContext):
    instance = context.instance
    result = instance.fetch_materializations(REPORT_KEY, limit=100, cursor=context.cursor,
                                             ascending=True)
    requests, skipped = [], []
    for record in result.records:
        partition, run_id = record.partition_key, record.run_id
        if partition not in PARTITIONS or _meta(record, "mean") is None or \
                _planned(instance, run_id):
            continue
        if not _blocking_checks_passed(instance, run_id, partition):
            skipped.append(f"{partition}@{run_id[:8]}: failed a blocking gate")
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
    instance = context.instance
    result = instance.fetch_materializations(PRODUCTION_KEY, limit=100, cursor=context.cursor,
                                             ascending=True)
    latest = instance.fetch_materializations(MONITORING_KEY, limit=1).records
    requests, skipped = [], []
    for record in result.records:
        version = str(_meta(record, "version"))
        if not _meta(record, "changed", False) or _planned(instance, record.run_id):
            continue
        if latest and latest[0].storage_id > record.storage_id and \
                str(_meta(latest[0], "model_version")) == version:
            skipped.append(f"v{version}: monitored since (run {latest[0].run_id[:8]})")
            continue
        requests.append(dg.RunRequest(run_key=f"monitor-champion-{record.storage_id}",
                                      tags={"trigger": "monitor_new_champion",
                                            "champion_version": version}))
    if skipped:
        context.log.info("not monitored again: " + "; ".join(skipped))
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
