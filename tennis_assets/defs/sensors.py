"""Sensors: promote a better candidate; retrain when the champion's score drifted; alert on
every failed check.

Both read the instance's event log from a cursor, so each event is handled once however many
ticks pass, and nothing that happened between ticks is skipped.
"""


import json
import os

import dagster as dg

from .config import PARTITIONS
from .gates import BLOCKING_REPORT_CHECKS
from .jobs import promote, retrain
from .resources import AlertWebhook

REPORT_KEY = dg.AssetKey("evaluation_report")
PRODUCTION_KEY = dg.AssetKey("production_model")
MONITORING_KEY = dg.AssetKey("production_monitoring")
SEVERITY_ORDER = ("warning", "critical")


def _meta(record, name: str, default=None):
    value = record.asset_materialization.metadata.get(name)
    return default if value is None else value.value


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def _blocking_checks_passed(instance: dg.DagsterInstance, run_id: str, partition: str) -> bool:
    evaluations = {e.check_name: e.passed for e in _check_evaluations(instance, run_id)
                   if e.asset_key == REPORT_KEY and e.partition in (partition, None)}
    return all(evaluations.get(name) is True for name in BLOCKING_REPORT_CHECKS)


def _champion(instance: dg.DagsterInstance) -> tuple[str | None, str | None]:
    """(version, MLflow run) of the champion as production_model last recorded it."""
    latest = instance.fetch_materializations(PRODUCTION_KEY, limit=1).records
    if not latest:
        return None, None
    return _meta(latest[0], "version"), _meta(latest[0], "mlflow_run_id")


@dg.sensor(job=promote, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launch a promotion for each new evaluation report that passed its "
                       "blocking gates and beats the current champion (once per report).")
def promote_better_model(context: dg.SensorEvaluationContext):
    instance = context.instance
    result = instance.fetch_materializations(REPORT_KEY, limit=100, cursor=context.cursor,
                                             ascending=True)
    requests, skipped = [], []
    champion_version, champion_run = _champion(instance)
    for record in result.records:
        partition, run_id = record.partition_key, record.run_id
        mean = _meta(record, "mean")
        if partition not in PARTITIONS or mean is None:
            continue
        label = f"{partition}@{run_id[:8]}"
        if not _blocking_checks_passed(instance, run_id, partition):
            skipped.append(f"{label}: gates failed")
            continue
        if champion_version is not None:
            if champion_run is not None and \
                    _meta(record, "candidate_mlflow_run_id") == champion_run:
                skipped.append(f"{label}: already champion")
                continue
            compared = _meta(record, "champion_version")
            if compared != champion_version:
                skipped.append(f"{label}: compared against v{compared}, champion is now "
                               f"v{champion_version}")
                continue
            # The champion played the report's very episodes: compare like with like.
            champion_mean = _meta(record, "champion_mean")
            if mean <= champion_mean:
                skipped.append(f"{label}: {mean:.3f} <= champion {champion_mean:.3f}")
                continue
        requests.append(dg.RunRequest(
            run_key=f"promote-{partition}-{record.storage_id}",
            run_config={"ops": {"production_model": {"config": {
                "partition": partition, "report_run_id": run_id}}}},
            tags={"trigger": "promote_better_model", "report_run_id": run_id,
                  "candidate": partition}))
    if skipped:
        context.log.info("not promoted: " + "; ".join(skipped))
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)


def retrain_min_severity() -> str | None:
    """$TENNIS_ASSETS_RETRAIN_ON_DRIFT: the least severe drift that retrains (warning, the
    default, or critical), or off."""
    value = os.environ.get("TENNIS_ASSETS_RETRAIN_ON_DRIFT", "warning").strip().lower()
    if value == "off":
        return None
    if value not in SEVERITY_ORDER:
        raise ValueError(f"TENNIS_ASSETS_RETRAIN_ON_DRIFT={value!r}: expected one of "
                         f"{list(SEVERITY_ORDER) + ['off']}")
    return value


@dg.sensor(job=retrain, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="For each production_monitoring result that drifted, retrain the "
                       "champion's candidate on the drifted court, warm-started from the "
                       "champion; its evaluation's gates and the promotion sensor decide the rest.")
def retrain_on_drift(context: dg.SensorEvaluationContext):
    minimum = retrain_min_severity()
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
        requests.append(dg.RunRequest(
            run_key=f"drift-{record.storage_id}", partition_key=partition,
            run_config={"ops": {"trained_agents": {"config": {
                "court": court, "init_checkpoint": "champion"}}}},
            tags={"trigger": "retrain_on_drift", "monitoring_run_id": record.run_id,
                  "drift_severity": severity, "court": json.dumps(court, sort_keys=True),
                  "champion_version": str(_meta(record, "model_version"))}))
    if skipped:
        context.log.info("not retrained: " + "; ".join(skipped))
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)


def _alert_text(evaluation, run_id: str) -> str:
    where = evaluation.asset_key.to_user_string()
    if evaluation.partition:
        where += f"[{evaluation.partition}]"
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    return (f":rotating_light: tennis-assets: check `{evaluation.check_name}` on `{where}` "
            f"failed ({severity}) in Dagster run {run_id}")


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Post each failed asset check once to the alert webhook and the alert "
                       "log.")
def alert_on_failed_checks(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook):
    """Walks finished runs (succeeded: WARN checks; failed: blocking ones) in storage order.

    The cursor moves past a run only after all of its alerts were delivered; an alert that was
    delivered before a crash is recognised in the alert log and not sent again.
    """
    instance = context.instance
    cursors = json.loads(context.cursor) if context.cursor else {}
    sent = alert_webhook.sent_ids()
    delivered = 0
    for event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
        key = event_type.value
        result = instance.fetch_run_status_changes(event_type, limit=50,
                                                   cursor=cursors.get(key), ascending=True)
        for record in result.records:
            run_id = record.run_id
            for evaluation in _check_evaluations(instance, run_id):
                if evaluation.passed:
                    continue
                alert_id = (f"{run_id}:{evaluation.asset_key.to_user_string()}:"
                            f"{evaluation.check_name}:{evaluation.partition or ''}")
                if alert_id in sent:
                    continue
                try:
                    alert_webhook.send(alert_id, _alert_text(evaluation, run_id), {
                        "run_id": run_id, "asset": evaluation.asset_key.to_user_string(),
                        "check": evaluation.check_name, "partition": evaluation.partition,
                        "severity": evaluation.severity.value if evaluation.severity else None})
                except OSError as exc:
                    # Keep the cursor before this run: the next tick retries what is left.
                    context.log.warning(f"alert {alert_id} not delivered: {exc}")
                    context.update_cursor(json.dumps(cursors))
                    return dg.SkipReason(f"webhook unavailable ({exc}); {delivered} delivered")
                sent.add(alert_id)
                delivered += 1
            cursors[key] = _record_cursor(record)
    context.update_cursor(json.dumps(cursors))
    return dg.SkipReason(f"{delivered} alert(s) delivered" if delivered
                         else "no new failed checks")


def _record_cursor(record) -> str:
    from dagster._core.event_api import EventLogCursor

    return EventLogCursor.from_storage_id(record.storage_id).to_string()
