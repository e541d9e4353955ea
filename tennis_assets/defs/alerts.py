"""Alerts to the webhook (Slack-compatible JSON) and the alert log: one per failed run of a
named job, one per failed check in a run that succeeded (a drift finding, a slow candidate),
and an announcement for each promotion or rollback that changed the champion.

A candidate that is merely not better than the champion fails no run and sends nothing (its
``beats_champion`` result is a decision, gates.DECISION_CHECKS, never alerted). A broken
candidate fails its run: one alert names the job, the partition, the first failing step, why it
failed and the failed checks, with links to the Dagster run and its MLflow runs.
"""

import dagster as dg

from tennis_assets import settings

from .gates import DECISION_CHECKS
from .jobs import ALERTED_JOBS, ANNOUNCED_JOBS
from .resources import AlertWebhook
from .sensors import check_evaluations

PARTITION_TAG = "dagster/partition"


def _where(evaluation) -> str:
    where = evaluation.asset_key.to_user_string()
    return f"{where}[{evaluation.partition}]" if evaluation.partition else where


def _failed_checks(instance, run_id: str) -> list:
    """Failed checks that are faults (decisions such as beats_champion are not)."""
    return [e for e in check_evaluations(instance, run_id)
            if not e.passed and e.check_name not in DECISION_CHECKS]


def run_url(run_id: str) -> str:
    return f"{settings.dagster_ui_url()}/runs/{run_id}"


def mlflow_runs(instance, run_id: str) -> list[str]:
    """The MLflow runs this Dagster run recorded (the ``mlflow_run`` link of each asset it
    materialized)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    urls = []
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        value = materialization.metadata.get("mlflow_run") if materialization else None
        if value is not None and value.value not in urls:
            urls.append(str(value.value))
    return urls


def failure_reason(context: dg.RunFailureSensorContext) -> str:
    """Why the run failed, in one line: the first failed step's error, else the run's."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is not None and error.message:
            return error.message.strip().splitlines()[0]
    message = context.failure_event.message or ""
    return message.strip().splitlines()[0] if message.strip() else "no reason recorded"


@dg.run_failure_sensor(monitored_jobs=ALERTED_JOBS, minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Post each failed run of a named job once, naming its job, "
                                   "partition, first failing step, why it failed and the failed "
                                   "checks, with links to the run and its MLflow runs.")
def alert_on_failed_runs(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
    run = context.dagster_run
    alert_id = f"run-failure:{run.run_id}"
    if alert_id in alert_webhook.sent_ids():
        return
    partition = run.tags.get(PARTITION_TAG)
    steps = context.get_step_failure_events()
    first_step = steps[0].step_key if steps else None
    checks = _failed_checks(context.instance, run.run_id)
    reason = failure_reason(context)
    mlflow = mlflow_runs(context.instance, run.run_id)
    failed = ", ".join(f"`{e.check_name}` on `{_where(e)}`" for e in checks)
    text = (f":rotating_light: tennis-assets: run of `{run.job_name}`"
            f"{f' [{partition}]' if partition else ''} failed at step `{first_step or '?'}`: "
            f"{reason}" + (f"; failed checks: {failed}" if failed else "")
            + f". Dagster run: {run_url(run.run_id)}"
            + (f"; MLflow: {' '.join(mlflow)}" if mlflow else ""))
    alert_webhook.send(alert_id, text, {
        "kind": "run_failure", "run_id": run.run_id, "job": run.job_name,
        "partition": partition, "step": first_step, "reason": reason,
        "run_url": run_url(run.run_id), "mlflow_run_urls": mlflow,
        "failed_checks": [{"check": e.check_name, "asset": e.asset_key.to_user_string(),
                           "partition": e.partition} for e in checks]})


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=ANNOUNCED_JOBS,
                      minimum_interval_seconds=30,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Announce each promotion or rollback that changed the "
                                  "champion (a run that changed nothing is not announced).")
def announce_champion_changes(context: dg.RunStatusSensorContext, alert_webhook: AlertWebhook):
    run = context.dagster_run
    alert_id = f"run-success:{run.run_id}"
    if alert_id in alert_webhook.sent_ids():
        return
    records = context.instance.fetch_materializations(dg.AssetKey("production_model"),
                                                      limit=20).records
    mine = [r for r in records if r.run_id == run.run_id]
    materialization = mine[0].asset_materialization if mine else None
    meta = materialization.metadata if materialization is not None else {}
    if not (meta and meta["changed"].value):
        # A run-status sensor reacts to every run it sees; this one had nothing to announce.
        context.log.info(f"run {run.run_id[:8]} did not change the champion: not announced")
        return
    version, previous = meta["version"].value, meta["previous_version"].value
    model = meta.get("model_version")
    text = (f":trophy: tennis-assets: `{run.job_name}`: the champion is now v{version} "
            f"(previous v{previous}). Dagster run: {run_url(run.run_id)}"
            + (f"; model version: {model.value}" if model is not None else ""))
    alert_webhook.send(alert_id, text, {"kind": "run_success", "run_id": run.run_id,
                                        "job": run.job_name, "version": version,
                                        "previous_version": previous, "changed": True,
                                        "run_url": run_url(run.run_id)})


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Post each failed asset check of a run that succeeded once (a failed "
                       "run is alerted as a whole by alert_on_failed_runs).")
def alert_on_failed_checks(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook):
    """Walks succeeded runs in storage order, a page at a time. The cursor moves past a page
    only after all of its alerts were delivered; a page is walked again after a failed
    delivery or a crash, and the alerts already delivered are recognised in the alert log and
    not sent again."""
    instance = context.instance
    cursor = context.cursor or None
    sent = alert_webhook.sent_ids()
    delivered = 0
    result = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=50,
                                               cursor=cursor, ascending=True)
    for record in result.records:
        run_id = record.run_id
        for evaluation in _failed_checks(instance, run_id):
            alert_id = (f"{run_id}:{evaluation.asset_key.to_user_string()}:"
                        f"{evaluation.check_name}:{evaluation.partition or ''}")
            if alert_id in sent:
                continue
            severity = evaluation.severity.value if evaluation.severity else "ERROR"
            description = evaluation.description or ""
            detail = f": {description}" if description else ""
            text = (f":warning: tennis-assets: check `{evaluation.check_name}` on "
                    f"`{_where(evaluation)}` failed ({severity}){detail}. Dagster run: "
                    f"{run_url(run_id)}")
            try:
                alert_webhook.send(alert_id, text, {
                    "kind": "check_failure", "run_id": run_id,
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name, "partition": evaluation.partition,
                    "severity": severity, "run_url": run_url(run_id)})
            except OSError as exc:
                # Keep the cursor before this page: the next tick retries what is left.
                context.log.warning(f"alert {alert_id} not delivered: {exc}")
                return dg.SkipReason(f"webhook unavailable ({exc}); {delivered} delivered")
            sent.add(alert_id)
            delivered += 1
    context.update_cursor(result.cursor or cursor)
    return dg.SkipReason(f"{delivered} alert(s) delivered" if delivered
                         else "no new failed checks")


__all__ = ["alert_on_failed_checks", "alert_on_failed_runs", "announce_champion_changes"]
