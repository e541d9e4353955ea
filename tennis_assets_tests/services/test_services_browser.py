"""`dagster dev` from the repository's workspace.yaml, seen in a real browser: headless Chromium,
driven by chromedriver over the W3C WebDriver HTTP API, opens the asset graph and finds the four
assets, and the job page of a run launched the way the main command launches it shows that
run; the screenshots stay in test-artifacts/ for a person to look at."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from tennis_assets.defs.runs import Launcher
from tennis_assets_tests.system_services import missing

from .processes import free_port, session_members, stop_session

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "dagster-asset-graph.png"
JOB_ARTIFACT = REPO / "test-artifacts" / "dagster-job-page.png"
ASSETS = ("tuning_study", "trained_agents", "evaluation_report", "challenger_model",
          "production_model")
BODY_TEXT = "return document.body.innerText"
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
GRAPH_TEXT = ("return Array.from(document.querySelectorAll('svg foreignObject'))"
              ".map(e => e.textContent).join('\\n')")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1600,1000"]


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        missing("chromium and chromedriver", "chromium chromium-driver")
    return chromium, driver


def _http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _wait(what: str, check, timeout_s: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: process exited ({proc.returncode}):\n"
                                 f"{log.read_text()[-3000:]}")
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _start(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    # A session of its own: dagster dev ignores SIGTERM to itself alone, and its webserver,
    # daemon and code server (or chromedriver's Chromium) are stopped with it as one group.
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def test_asset_graph_renders_in_chromium(tmp_path):
    chromium, chromedriver = _browser()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TENNIS_ASSETS_HOME": str(tmp_path / "data"),
           "TENNIS_ASSETS_PROFILE": "tiny"}
    for name in ("MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
                 "TENNIS_ASSETS_ALERT_WEBHOOK"):
        env.pop(name, None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dagster = Path(sys.executable).parent / "dagster"
    dev_log = tmp_path / "dagster-dev.log"
    dev = _start([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                  "-p", str(port)], dev_log, cwd=REPO, env=env)
    driver = None
    started: set[int] = set()
    try:
        def location_loaded():
            body = json.dumps({"query": LOCATIONS}).encode()
            request = urllib.request.Request(f"{url}/graphql", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                entries = json.loads(response.read())["data"]["workspaceOrError"][
                    "locationEntries"]
            kinds = [e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"]
                     for e in entries]
            assert "PythonError" not in kinds, entries
            return entries and all(k == "RepositoryLocation" for k in kinds)

        _wait("dagster dev answers and loads the code location", location_loaded, 120, dev,
              dev_log)
        started |= session_members(dev.pid)
        # Launched as `python -m tennis_assets.pipeline` launches its runs (through the
        # webserver's GraphQL API): a promotion with no candidate yet (it succeeds, promoting
        # nothing) is the cheapest such run.
        launched = Launcher(DagsterGraphQLClient("127.0.0.1", port_number=port)).run("promote")
        assert launched.success, launched
        run_id = launched.run_id

        driver_port = free_port()
        driver_log = tmp_path / "chromedriver.log"
        driver = _start([chromedriver, f"--port={driver_port}"], driver_log)
        wd = f"http://127.0.0.1:{driver_port}"
        _wait("chromedriver is ready",
              lambda: _http("GET", f"{wd}/status", timeout=5)["value"]["ready"], 30, driver,
              driver_log)
        profile = tmp_path / "chromium-profile"
        session = _http("POST", f"{wd}/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]}}}},
            timeout=90)["value"]["sessionId"]
        started |= session_members(driver.pid)
        base = f"{wd}/session/{session}"
        try:
            # The lineage graph upstream of the last asset: the whole chain, every group open
            # (the global lineage page starts with each group collapsed to its name).
            _http("POST", f"{base}/url", {"url": f"{url}/assets/production_model?view=lineage"
                                                 "&lineageScope=upstream&lineageDepth=5"})

            def graph_text():
                # The graph's nodes are HTML inside the SVG's foreignObject elements.
                text = _http("POST", f"{base}/execute/sync", {"script": GRAPH_TEXT,
                                                              "args": []})["value"]
                return text if all(name in text for name in ASSETS) else None

            try:
                text = _wait("the asset graph shows the four assets", graph_text, 60, driver,
                             driver_log)
                # On 127.0.0.1 the UI greets a new user with a dialog over the graph; a user
                # clicks Skip, so does the test.
                for button in _http("POST", f"{base}/elements", {
                        "using": "xpath", "value": "//button[normalize-space(.)='Skip']"})["value"]:
                    element = next(iter(button.values()))
                    _http("POST", f"{base}/element/{element}/click", {})
                    time.sleep(1.0)
            finally:
                # Kept either way: a failing page is the one worth seeing.
                shot = _http("GET", f"{base}/screenshot")["value"]
                ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
                ARTIFACT.write_bytes(base64.b64decode(shot))
            # The job's own page lists the launched run (runs executed in-process outside the
            # code location never appear there).
            _http("POST", f"{base}/url",
                  {"url": f"{url}/locations/tennis_assets/jobs/promote/runs"})
            try:
                _wait("the promote job page lists the run",
                      lambda: run_id[:8] in _http("POST", f"{base}/execute/sync", {
                          "script": BODY_TEXT, "args": []})["value"], 60, driver, driver_log)
            except AssertionError as error:
                body = _http("POST", f"{base}/execute/sync", {"script": BODY_TEXT,
                                                              "args": []})["value"]
                raise AssertionError(f"run {run_id} not on the page; it reads:\n{body[:3000]}"
                                     ) from error
            finally:
                shot = _http("GET", f"{base}/screenshot")["value"]
                JOB_ARTIFACT.write_bytes(base64.b64decode(shot))
            # The UI sets the page title after it renders the run list, not with it; on two
            # cores busy with the rest of the suite that took over 20 s.
            seen = []

            def job_title():
                seen.append(_http("GET", f"{base}/title")["value"])
                return seen[-1] if "promote" in seen[-1] else None
            try:
                title = _wait("the job page's title names the job", job_title, 60, driver,
                              driver_log)
            except AssertionError as error:
                raise AssertionError(f"last title seen: {seen[-1:]!r}") from error
            assert "promote" in title, title
            assert all(name in text for name in ASSETS)
            assert ARTIFACT.stat().st_size > 10_000
        finally:
            _http("DELETE", base)
    finally:
        left = set()
        if driver is not None:
            left |= stop_session(driver)
        left |= stop_session(dev)
        alive = {pid for pid in started if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"}
    assert not left and not alive, f"processes left running: {sorted(left | alive)}"
