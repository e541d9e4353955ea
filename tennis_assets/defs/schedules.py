"""Weekly retraining of every candidate; the cron comes from $TENNIS_ASSETS_RETRAIN_CRON."""

import os

import dagster as dg

from .config import PARTITIONS
from .jobs import retrain

RETRAIN_CRON = os.environ.get("TENNIS_ASSETS_RETRAIN_CRON", "0 3 * * 1")  # Mondays 03:00


@dg.schedule(job=retrain, cron_schedule=RETRAIN_CRON, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Retrain and re-evaluate each candidate; promotion follows by sensor.")
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    for partition in PARTITIONS:
        yield dg.RunRequest(run_key=f"weekly-{stamp}-{partition}", partition_key=partition,
                            tags={"trigger": "weekly_retrain"})
