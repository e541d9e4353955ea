"""Alerts to the webhook (Slack-compatible JSON) and the alert log: one per failed run of a
named job, one per failed check in a run that succeeded (a drift finding, a slow candidate),
and an announcement for each successful promotion or rollback.

A candidate that is merely not better than the champion fails no run and sends nothing (its
``beats_champion`` result is a decision, gates.DECISION_CHECKS). A broken candidate fails its
run: one alert names the job, the partition, the first failing step and the failed checks.
"""

import dagster as dg

from .gates import DECISION_CHECKS
from .jobs import ALERTED_JOBS, ANNOUNCED_JOBS
from .resources import AlertWebhook
from .sensors import check_evaluations

PARTITION_TAG = "dagster/partition"


def _where(evaluation) -> str:
    where = evaluation.asset_key.to_user_string()
    return f"{where}[{evaluation.partition}]" if evaluation.partition else where


def _failed_checks(instance, run_id: str) -> list:
    return [e for e in check_evaluations(instance, run_id) if not e.passed]


@dg.run_failure_sensor(monitored_jobs=ALERTED_JOBS, minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Post each failed run of a named job once, naming its job, "
                                   "partition, first failing step and failed checks.")
def alert_on_failed_runs(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
    run = context.dagster_run
    alert_id = f"run-failure:{run.run_id}"
    if alert_id in alert_webhook.sent_ids():
        return
    partition = run.tags.get(PARTITION_TAG)
    steps = context.get_step_failure_events()
    first_step = steps[0].step_key if steps else None
    checks = _failed_checks(context.instance, run.run_id)
    failed = ", ".join(f"`{e.check_name}` on `{_where(e)}`" for e in checks) or "none"
    text = (f":rotating_light: tennis-assets: run of `{run.job_name}`"
            f"{f' [{partition}]' if partition else ''} failed at step `{first_step or '?'}`; "
            f"failed checks: {failed}. Dagster run {run.run_id}")
    alert_webhook.send(alert_id, text, {
        "kind": "run_failure", "run_id": run.run_id, "job": run.job_name,
        "partition": partition, "step": first_step,
        "failed_checks": [{"check": e.check_name, "asset": e.asset_key.to_user_string(),
                           "partition": e.partition} for e in checks]})


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=ANNOUNCED_JOBS,
                      minimum_interval_seconds=30,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Announce each successful promotion or rollback.")
def announce_champion_changes(context: dg.RunStatusSensorContext, alert_webhook: AlertWebhook):
    run = context.dagster_run
    alert_id = f"run-success:{run.run_id}"
    if alert_id in alert_webhook.sent_ids():
        return
    records = context.instance.fetch_materializations(dg.AssetKey("production_model"),
                                                      limit=20).records
    mine = [r for r in records if r.run_id == run.run_id]
    if mine:
        meta = mine[0].asset_materialization.metadata
        version, previous = meta["version"].value, meta["previous_version"].value
        changed = meta["changed"].value
        what = (f"champion is now v{version}, previous v{previous}" if changed
                else f"champion v{version} unchanged")
    else:
        version, previous, changed = None, None, False
        what = "no candidate was accepted; the champion is unchanged"
    text = f":trophy: tennis-assets: `{run.job_name}` succeeded: {what}. Dagster run {run.run_id}"
    alert_webhook.send(alert_id, text, {"kind": "run_success", "run_id": run.run_id,
                                        "job": run.job_name, "version": version,
                                        "previous_version": previous, "changed": changed})


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Post each failed asset check of a run that succeeded once (a failed "
                       "run is alerted as a whole by alert_on_failed_runs).")
def alert_on_failed_checks(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook):
    """Walks succeeded runs in storage order. The cursor moves past a run only after all of
    its alerts were delivered; an alert delivered before a crash is recognised in the alert
    log and not sent again."""
    instance = context.instance
    cursor = context.cursor or None
    sent = alert_webhook.sent_ids()
    delivered = 0
    result = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=50,
                                               cursor=cursor, ascending=True)
    for record in result.records:
        run_id = record.run_id
        for evaluation in _failed_checks(instance, run_id):
            if evaluation.check_name in DECISION_CHECKS:
                continue
            alert_id = (f"{run_id}:{evaluation.asset_key.to_user_string()}:"
                        f"{evaluation.check_name}:{evaluation.partition or ''}")
            if alert_id in sent:
                continue
            severity = evaluation.severity.value if evaluation.severity else "ERROR"
            description = evaluation.description or ""
            detail = f": {description}" if description else ""
            text = (f":warning: tennis-assets: check `{evaluation.check_name}` on "
                    f"`{_where(evaluation)}` failed ({severity}){detail} in Dagster run {run_id}")
            try:
                alert_webhook.send(alert_id, text, {
                    "kind": "check_failure", "run_id": run_id,
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name, "partition": evaluation.partition,
                    "severity": severity})
            except OSError as exc:
                # Keep the cursor before this run: the next tick retries what is left.
                context.log.warning(f"alert {alert_id} not delivered: {exc}")
                context.update_cursor(cursor)
                return dg.SkipReason(f"webhook unavailable ({exc}); {delivered} delivered")
            sent.add(alert_id)
            delivered += 1
        cursor = _record_cursor(record)
    context.update_cursor(cursor)
    return dg.SkipReason(f"{delivered} alert(s) delivered" if delivered
                         else "no new failed checks")


def _record_cursor(record) -> str:
    from dagster._core.event_api import EventLogCursor

    return EventLogCursor.from_storage_id(record.storage_id).to_string()


__all__ = ["alert_on_failed_checks", "alert_on_failed_runs", "announce_champion_changes"]
