"""No credential in anything a person or a log store can read: the pipeline runs with a
password-bearing PostgreSQL URL for its Optuna study (a real server, which ignores the password
under trust authentication) and a webhook whose path is its token (a real HTTP receiver); then
Dagster's event log, the MLflow runs' params and tags, the stored asset values, the alert log
and the posted alerts are searched for both secrets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from .postgres import SUPERUSER

pytestmark = pytest.mark.slow

# With the characters that end a URL part ('#' a fragment, '/' a path, '?' a query): a password
# is masked whatever it holds (tennis_assets_tests/test_redaction.py has every character).
PASSWORD = "pw#S3/CR?ET-4242"
TOKEN = "T0KEN-S3CRET-9876"


class _Receiver:
    def __init__(self) -> None:
        self.posts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.posts.append(json.loads(self.rfile.read(
                    int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _definitions(resources):
    from tennis_assets.defs.assets import (
        challenger_checks,
        challenger_model,
        evaluation_report,
        production_model,
        trained_agents,
        tuning_study,
    )
    from tennis_assets.defs.checks import enough_completed_trials
    from tennis_assets.defs.jobs import ALL_JOBS

    return dg.Definitions(
        assets=[tuning_study, trained_agents, evaluation_report, challenger_model,
                production_model],
        asset_checks=[enough_completed_trials, challenger_checks], jobs=ALL_JOBS[:5],
        resources=resources)


def test_no_secret_in_event_log_mlflow_values_or_alerts(tmp_path, postgres, pg_database):
    from dagster._serdes import serialize_value
    from mlflow.tracking import MlflowClient

    from tennis_assets.defs.alerts import alert_on_failed_runs
    from tennis_assets.defs.resources import AlertWebhook, MlflowResource, OptunaResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    database = pg_database("secrets")
    storage = f"postgresql://{SUPERUSER}:{PASSWORD}@{postgres.host}:{postgres.port}/{database}"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    receiver = _Receiver()
    try:
        resources = {
            "io_manager": JsonIOManager(base_dir=str(tmp_path / "assets")),
            "model_store": ModelStore(base_dir=str(tmp_path / "models")),
            "mlflow": MlflowResource(tracking_uri=mlflow_uri),
            "optuna_storage": OptunaResource(storage_url=storage),
            "alert_webhook": AlertWebhook(url=receiver.url, log_path=str(tmp_path / "alerts.log")),
        }
        defs = _definitions(resources)
        tiny = {"config": {"profile": "tiny"}}
        with dg.instance_for_test() as instance:
            alert_ctx = {"alert_webhook": resources["alert_webhook"]}
            ctx = dg.build_sensor_context(instance=instance, resources=alert_ctx)
            # The run-status cursor starts now.
            cursor = alert_on_failed_runs.evaluate_tick(ctx).cursor
            tune = defs.resolve_job_def("tune").execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"ops": {"tuning_study": {"config": {
                    "profile": "tiny", "n_trials": 2, "trial_max_updates": 100}}}})
            assert tune.success
            retrain = defs.resolve_job_def("retrain").execute_in_process(
                instance=instance, partition_key="tuned", raise_on_error=False,
                run_config={"ops": {"trained_agents": tiny, "evaluation_report": tiny}})
            assert not retrain.success  # tiny agents cannot play: a failed run, alerted
            for _ in range(10):
                ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources=alert_ctx)
                new = alert_on_failed_runs.evaluate_tick(ctx).cursor
                if new == cursor:
                    break
                cursor = new
            events = "\n".join(serialize_value(e) for run in (tune, retrain)
                               for e in instance.all_logs(run.run_id))
        assert receiver.posts, "the failed run was not alerted"
    finally:
        receiver.close()

    readable = {"Dagster event log": events,
                "alert log": (tmp_path / "alerts.log").read_text(),
                "posted alerts": json.dumps(receiver.posts),
                "stored asset values": "\n".join(p.read_text() for p in
                                                 (tmp_path / "assets").rglob("*.json"))}
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    readable["MLflow params and tags"] = json.dumps(
        [{"params": r.data.params, "tags": r.data.tags} for r in runs])
    assert runs and "storage" in readable["MLflow params and tags"]
    assert f"{postgres.host}:{postgres.port}" in readable["Dagster event log"]  # URLs do appear
    for where, text in readable.items():
        assert PASSWORD not in text, f"the storage password is in the {where}"
        assert TOKEN not in text, f"the webhook token is in the {where}"
