"""The Dagster webserver loads workspace.yaml, and a materialization launched through its
GraphQL API (as the UI does) runs to success."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status } ... on PythonError { message } }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        doc = json.loads(response.read())
    assert "errors" not in doc, doc
    return doc["data"]


def test_webserver_launches_a_materialization(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Runs start straight away (no daemon needed to dequeue them).
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TENNIS_ASSETS_HOME": str(tmp_path / "data"),
           "TENNIS_ASSETS_PROFILE": "tiny"}
    env.pop("MLFLOW_TRACKING_URI", None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen([str(webserver), "-h", "127.0.0.1", "-p", str(port),
                             "-w", "workspace.yaml"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "webserver exited early"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "webserver did not answer /server_info"
            time.sleep(0.5)

        while True:
            entries = _graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entries:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        location = entries[0]["name"]
        params = {"selector": {"repositoryLocationName": location,
                               "repositoryName": "__repository__", "jobName": "tune"},
                  "runConfigData": {"ops": {"tuning_study": {"config": {"profile": "tiny"}}}},
                  "mode": "default"}
        launched = _graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        deadline = time.monotonic() + 150
        status = None
        while time.monotonic() < deadline:
            status = _graphql(url, STATUS, {"runId": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
        assert status == "SUCCESS"
        stored = tmp_path / "data" / "assets" / "tuning_study" / "__unpartitioned__.json"
        assert json.loads(stored.read_text())["value"]["n_trials"] == 3
    finally:
        # Its own session: the webserver and the code server it started go down together.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
