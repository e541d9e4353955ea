"""Weekly retraining of every candidate and daily drift monitoring of the champion; the crons
come from $TENNIS_ASSETS_RETRAIN_CRON and $TENNIS_ASSETS_MONITOR_CRON."""

import dagster as dg

from tennis_assets import settings

from .config import PARTITIONS
from .jobs import monitor, retrain

RETRAIN_CRON = settings.retrain_cron()
MONITOR_CRON = settings.monitor_cron()


@dg.schedule(job=retrain, cron_schedule=RETRAIN_CRON, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Retrain and re-evaluate each candidate; promotion follows by sensor.")
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    for partition in PARTITIONS:
        yield dg.RunRequest(run_key=f"weekly-{stamp}-{partition}", partition_key=partition,
                            tags={"trigger": "weekly_retrain"})


@dg.schedule(job=monitor, cron_schedule=MONITOR_CRON, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Test the champion's score on the production court for drift; the "
                         "retrain_on_drift sensor reacts.")
def daily_monitoring(context: dg.ScheduleEvaluationContext):
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    return dg.RunRequest(run_key=f"monitor-{stamp}", tags={"trigger": "daily_monitoring"})
