"""Resources: MLflow (plus optional W&B and Neptune), Optuna storage, the alert webhook.

Each is a thin ConfigurableResource over tennis_assets.tracking / tennis_assets.tuning; the heavy
libraries are imported inside methods so that loading the Definitions stays fast.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from tennis_assets import settings
from tennis_assets.files import append_line, read_json_lines
from tennis_assets.redaction import redact_webhook
from tennis_assets.settings import data_dir

if TYPE_CHECKING:
    from tennis_assets.tracking.tracker import Tracker


def _preflight(context: dg.InitResourceContext, resource: str, check, *args) -> None:
    """At a step's start (Dagster sets resources up there; the in-process executor once for the
    whole run, before any step): the run's asset configs, then the resource itself, so a bad
    value or an unusable store fails the step before its work, never after a long step."""
    from tennis_assets.tracking.preflight import ResourceError

    from .config import check_run_config

    if context.run is not None:  # None for a sensor's resources
        try:
            check_run_config(context.run.run_config)
        except ValueError as exc:
            # A config error does not go away on retry.
            raise dg.Failure(str(exc), allow_retries=False) from None
    try:
        check(*args)
    except ResourceError as exc:
        raise dg.Failure(f"resource {resource}: {exc}") from None


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry through an explicit client (see tennis_assets.tracking).

    tracking_uri empty: ``$MLFLOW_TRACKING_URI``, else SQLite and a local artifact folder in the
    data directory. wandb_mode: disabled, offline, online, or auto (online only with
    ``$WANDB_API_KEY``) for W&B as a second tracker; empty: ``$TENNIS_ASSETS_WANDB_MODE``
    (default disabled). neptune_mode: disabled, offline, async, or auto (async only with
    ``$NEPTUNE_API_TOKEN``) for Neptune (extra ``neptune``); empty:
    ``$TENNIS_ASSETS_NEPTUNE_MODE`` (default disabled); its project
    ``neptune_project`` (empty: ``$NEPTUNE_PROJECT``). ui_url: where people open MLflow
    (links in metadata); empty: ``$MLFLOW_UI_URL``, else the tracking server's own address.
    """

    tracking_uri: str = ""
    experiment: str = "tennis-assets"
    registered_model: str = "tennis-policy"
    ui_url: str = ""
    wandb_mode: str = ""
    wandb_project: str = "tennis-assets"
    neptune_mode: str = ""
    neptune_project: str = ""

    dagster_ui_url: str = ""

    _tracker: Any = PrivateAttr(default=None)

    def artifact_url(self, run_id: str | None, artifact_path: str) -> str | None:
        """Where the MLflow UI serves one artifact of a run (its ``get-artifact`` route), for
        pictures shown in place on an asset's page."""
        if not run_id:
            return None
        query = urllib.parse.urlencode({"path": artifact_path, "run_uuid": run_id})
        return f"{self.tracker().ui_url}/get-artifact?{query}"

    def dagster_run_url(self, run_id: str) -> str:
        """The run's page in the Dagster UI (empty ``dagster_ui_url``:
        ``$TENNIS_ASSETS_DAGSTER_UI_URL``)."""
        return f"{(self.dagster_ui_url or settings.dagster_ui_url()).rstrip('/')}/runs/{run_id}"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        _preflight(context, "mlflow", self._check_stores)

    def _check_stores(self) -> None:
        from tennis_assets.tracking import preflight
        from tennis_assets.tracking.mlflow_tracking import default_artifact_root

        name = ("MlflowResource.tracking_uri" if self.tracking_uri else
                "MlflowResource.tracking_uri (empty: $MLFLOW_TRACKING_URI, else the data "
                "directory's database)")
        uri = preflight.check_tracking_uri(self.tracking_uri or settings.mlflow_tracking_uri(),
                                           name)
        if not uri.startswith("http"):
            # Where a local store's experiment keeps its artifacts (MlflowTracker's default).
            preflight.check_artifact_root(default_artifact_root(), "MLflow artifact folder")
        from tennis_assets.tracking.wandb_tracking import resolve_mode

        try:  # a wrong mode (resource or environment) is named before the run's work
            wandb_mode, neptune_mode = self.modes()
            resolve_mode(wandb_mode)
        except ValueError as exc:
            raise preflight.ResourceError(str(exc)) from None
        if neptune_mode != "disabled":
            from tennis_assets.tracking.neptune_tracking import check_available

            check_available(neptune_mode, "MlflowResource.neptune_mode" if self.neptune_mode
                            else settings.NEPTUNE_MODE_ENV)

    def modes(self) -> tuple[str, str]:
        """The W&B and Neptune modes: this resource's, else the environment's."""
        return (self.wandb_mode or settings.wandb_mode(),
                self.neptune_mode or settings.neptune_mode())

    def tracker(self):
        if self._tracker is None:
            from tennis_assets.tracking.mlflow_tracking import MlflowTracker

            self._tracker = MlflowTracker(self.tracking_uri or None, self.experiment,
                                          ui_url=self.ui_url or None)
        return self._tracker

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
        from tennis_assets.tracking.tracker import fan_out

        secondary: list[Tracker] = []
        wandb_mode, neptune_mode = self.modes()
        if wandb_mode != "disabled":
            from tennis_assets.tracking.wandb_tracking import WandbTracker

            secondary.append(WandbTracker(self.wandb_project, wandb_mode))
        if neptune_mode != "disabled":
            from tennis_assets.tracking.neptune_tracking import NeptuneTracker

            secondary.append(NeptuneTracker(self.neptune_project, neptune_mode))
        with fan_out(self.tracker(), secondary, name, tags) as run:
            yield run


class OptunaResource(dg.ConfigurableResource):
    """Where studies live: an RDB URL (sqlite:///..., postgresql://...), a journal file path, or
    empty for a journal file in the data directory (safe for several processes at once)."""

    storage_url: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from tennis_assets.tracking.preflight import check_optuna_storage

        name = ("OptunaResource.storage_url" if self.storage_url else
                "OptunaResource.storage_url (empty: $TENNIS_ASSETS_OPTUNA_STORAGE, else the data "
                "directory's journal)")
        _preflight(context, "optuna_storage", check_optuna_storage, self.url(), name)

    def url(self) -> str:
        return self.storage_url or settings.optuna_storage()

    def display(self) -> str:
        """The storage as people may see it (logs, metadata): password masked, and in the form
        the ``optuna`` CLI and optuna-dashboard accept."""
        from tennis_assets.tuning import storage_for_cli

        return storage_for_cli(self.url())


class AlertWebhook(dg.ConfigurableResource):
    """Posts alerts as Slack-compatible JSON (``{"text": ...}``) and appends them to a JSON-lines
    log. url empty: ``$TENNIS_ASSETS_ALERT_WEBHOOK``, else log only."""

    url: str = ""
    log_path: str = ""
    timeout_s: float = 10.0

    def webhook_url(self) -> str:
        return self.url or settings.alert_webhook()

    def log_file(self) -> Path:
        return Path(self.log_path) if self.log_path else data_dir() / "alerts.log"

    def sent_ids(self) -> set[str]:
        path = self.log_file()
        if not path.exists():
            return set()
        # A record cut short by a crash is skipped (and logged): that alert is sent again.
        return {entry["id"] for entry in read_json_lines(path, "the alert log",
                                                          skip_corrupt=True)
                if isinstance(entry, dict) and entry.get("delivered") and "id" in entry}

    def send(self, alert_id: str, text: str, details: Mapping[str, Any]) -> None:
        """Post, then log. Raises if the webhook refuses, so the caller keeps its cursor and the
        alert is retried on the next tick."""
        url = self.webhook_url()
        if url:
            body = json.dumps({"text": text, "alert_id": alert_id, **details}).encode()
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.status >= 300:
                    raise urllib.error.HTTPError(url, response.status, "webhook refused",
                                                 response.headers, None)
        # The webhook's path is its credential: the log names only its host.
        entry = {"id": alert_id, "time": datetime.now(UTC).isoformat(), "text": text,
                 "posted_to": redact_webhook(url) if url else None, "delivered": True,
                 **details}
        append_line(self.log_file(), json.dumps(entry, default=str))
