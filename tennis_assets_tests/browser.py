"""Headless Chromium for tests, driven by chromedriver over the W3C WebDriver HTTP API (no
client library: a handful of endpoints), and the waiting and process handling that tests of
`dagster dev` in a browser share."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tennis_assets_tests.services.processes import free_port, session_members, stop_session
from tennis_assets_tests.system_services import missing

BODY_TEXT = "return document.body.innerText"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1600,1000"]
# The rows of the table whose header starts with "Key" (an asset page's metadata), as the cells'
# text.
METADATA_ROWS = """
const table = Array.from(document.querySelectorAll('table')).find(
    t => t.rows.length && t.rows[0].innerText.trim().startsWith('Key'));
return table ? Array.from(table.rows).slice(1).map(r => Array.from(r.cells).map(c => c.innerText))
             : [];"""
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def wait(what: str, check: Callable[[], Any], timeout_s: float, proc: subprocess.Popen,
         log: Path) -> Any:
    """``check()``'s first truthy value; fails naming ``what`` (with the end of the process's
    log) when the process exits or the time is up. Connection errors count as not yet."""
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


def start(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    # A session of its own: dagster dev ignores SIGTERM to itself alone, and its webserver,
    # daemon and code server (or chromedriver's Chromium) are stopped with it as one group.
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def location_loaded(url: str) -> bool:
    """The webserver at ``url`` answers and every code location has loaded (a load error fails
    at once, with its message)."""
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": LOCATIONS}
                                                                       ).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    kinds = [e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"]
             for e in entries]
    assert "PythonError" not in kinds, entries
    return bool(entries) and all(k == "RepositoryLocation" for k in kinds)


class Browser:
    """One WebDriver session: open pages, read them, click, screenshot."""

    def __init__(self, base: str, driver: subprocess.Popen, log: Path) -> None:
        self.base, self.driver, self.log = base, driver, log

    def open(self, url: str) -> None:
        http("POST", f"{self.base}/url", {"url": url})

    def metadata(self) -> dict[str, str]:
        """An asset page's metadata table, key -> value as shown (empty while it loads)."""
        rows = self.script(METADATA_ROWS)
        return {row[0].strip(): row[-1].strip() for row in rows or [] if len(row) >= 2}

    def current_url(self) -> str:
        return str(http("GET", f"{self.base}/url")["value"])

    def script(self, source: str, *args: Any) -> Any:
        return http("POST", f"{self.base}/execute/sync", {"script": source,
                                                          "args": list(args)})["value"]

    def text(self) -> str:
        return str(self.script(BODY_TEXT))

    def title(self) -> str:
        return str(http("GET", f"{self.base}/title")["value"])

    def elements(self, xpath: str) -> list[str]:
        found = http("POST", f"{self.base}/elements", {"using": "xpath", "value": xpath})
        return [next(iter(e.values())) for e in found["value"]]

    def click(self, element: str) -> None:
        http("POST", f"{self.base}/element/{element}/click", {})

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float = 60) -> Any:
        return wait(what, check, timeout_s, self.driver, self.log)

    def wait_for_text(self, what: str, *needles: str, timeout_s: float = 60) -> str:
        """The page's text once it holds every needle; fails with what it read instead."""
        seen = [""]

        def has_all() -> str | None:
            seen[0] = self.text()
            return seen[0] if all(n in seen[0] for n in needles) else None
        try:
            return str(self.wait_for(what, has_all, timeout_s))
        except AssertionError as error:
            raise AssertionError(f"{what}: the page reads:\n{seen[0][:3000]}") from error

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(http("GET", f"{self.base}/screenshot")["value"]))


def chromium_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        missing("chromium and chromedriver", "chromium chromium-driver")
    assert chromium and driver  # missing() skips or fails
    return chromium, driver


@contextmanager
def chromium(tmp_path: Path, started: set[int]) -> Iterator[Browser]:
    """A headless Chromium session; the pids of chromedriver's group are added to
    ``started``, and the group is stopped on leaving."""
    binary, chromedriver = chromium_paths()
    port = free_port()
    log = tmp_path / "chromedriver.log"
    driver = start([chromedriver, f"--port={port}"], log)
    try:
        wd = f"http://127.0.0.1:{port}"
        wait("chromedriver is ready", lambda: http("GET", f"{wd}/status", timeout=5)["value"][
            "ready"], 30, driver, log)
        profile = tmp_path / "chromium-profile"
        session = http("POST", f"{wd}/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary,
                                   "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]}}}},
            timeout=90)["value"]["sessionId"]
        started |= session_members(driver.pid)
        base = f"{wd}/session/{session}"
        try:
            yield Browser(base, driver, log)
        finally:
            http("DELETE", base)
    finally:
        left = stop_session(driver)
        assert not left, f"chromedriver's processes left running: {sorted(left)}"
