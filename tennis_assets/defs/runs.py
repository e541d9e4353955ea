"""Launch runs of the named jobs through a Dagster webserver's GraphQL API, as the UI's
Launchpad does, with dagster-graphql's public client: each run is created from the code
location (its job's origin and the repository label), so it shows on its job's page, in the
Overview timeline and in its assets' history. The run goes through the instance's run
coordinator (the queue of dagster.yaml, dequeued by the daemon) and its run launcher.

``dagster_dev`` starts ``dagster dev`` (webserver, daemon and one code server) for the life of
a command that launches runs itself (the main command); the compose stack's driver
(scripts/stack_drive.py) talks to the stack's webserver instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tennis_assets import settings

if TYPE_CHECKING:  # the sensors import PLAN_TAG: the code location does not load the client
    from dagster_graphql import DagsterGraphQLClient

LOCATION = "tennis_assets"
REPOSITORY = "__repository__"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
# A run launched by a driver that launches its follow-ups itself (the main command's plan, the
# stack test): the promotion sensor leaves its reports to that driver.
PLAN_TAG = "tennis_assets/plan"

_LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@dataclass(frozen=True)
class LaunchedRun:
    job: str
    partition: str | None
    run_id: str
    status: str

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


class Launcher:
    """Submits runs of the code location's named jobs to a webserver and reads their status."""

    def __init__(self, client: DagsterGraphQLClient) -> None:
        self.client = client

    def launch(self, job: str, run_config: Mapping[str, Any] | None = None,
               partition: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        run_tags = dict(tags or {})
        if partition is not None:
            run_tags["dagster/partition"] = partition
        return self.client.submit_job_execution(
            job, repository_location_name=LOCATION, repository_name=REPOSITORY,
            run_config=dict(run_config or {}), tags=run_tags)

    def status(self, run_id: str) -> str | None:
        """The run's final status (SUCCESS, FAILURE, CANCELED), or None while it is not over."""
        status = self.client.get_run_status(run_id).value
        return status if status in FINISHED else None

    def cancel_queued(self, run_ids: list[str]) -> list[str]:
        """Cancel those of ``run_ids`` that are still waiting in the queue (a daemon started
        later would launch them); returns them. Runs already started are left to Ctrl-C."""
        from dagster_graphql import DagsterGraphQLClientError

        cancelled = []
        for run_id in run_ids:
            try:
                if self.client.get_run_status(run_id).value in ("QUEUED", "NOT_STARTED"):
                    self.client.terminate_run(run_id)
                    cancelled.append(run_id)
            except DagsterGraphQLClientError:
                continue  # over or gone meanwhile: nothing waits
        return cancelled

    def wait(self, run_id: str, poll_s: float = 0.5) -> str:
        while (status := self.status(run_id)) is None:
            time.sleep(poll_s)
        return status

    def run(self, job: str, run_config: Mapping[str, Any] | None = None,
            partition: str | None = None, tags: Mapping[str, str] | None = None) -> LaunchedRun:
        run_id = self.launch(job, run_config, partition, tags)
        return LaunchedRun(job, partition, run_id, self.wait(run_id))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def location_state(host: str, port: int) -> tuple[str | None, str | None]:
    """(load status, load error) of the code location as the webserver reports it, or
    (None, None) while the webserver does not answer."""
    request = urllib.request.Request(
        f"http://{host}:{port}/graphql", data=json.dumps({"query": _LOCATION_QUERY}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            doc = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None, None
    workspace = (doc.get("data") or {}).get("workspaceOrError") or {}
    for entry in workspace.get("locationEntries", []):
        if entry["name"] == LOCATION:
            loaded = entry.get("locationOrLoadError") or {}
            return entry["loadStatus"], loaded.get("message")
    return None, None


def dev_environment(home: Path) -> dict[str, str]:
    """The environment of ``dagster dev`` and so of every run it starts: the instance in
    ``home`` and this process's data directory, absolute (dagster dev runs from ``home``, where
    a relative default would put the runs' models and pointer in another folder)."""
    return settings.child_environment({
        "DAGSTER_HOME": str(home),
        settings.DATA_DIR_ENV: str(settings.data_dir()),
        # `dagster dev` says `dg dev` supersedes it; dg dev needs a dg project file.
        "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded"})


@contextlib.contextmanager
def dagster_dev(home: Path, workspace: Path, port: int | None = None,
                startup_timeout_s: float = 300) -> Iterator[Launcher]:
    """``dagster dev`` on 127.0.0.1 for the instance in ``home``: yields a Launcher once the
    code location has loaded; on leaving, stops it as Ctrl-C does (webserver, daemon and code
    server shut down cleanly; runs that are over stay recorded)."""
    port = port or free_port()
    dagster = Path(sys.executable).with_name("dagster")
    # Run from the instance's folder: dagster dev warns about a dagster.yaml in its working
    # directory that is not $DAGSTER_HOME's (the repository root has one).
    # A session of its own, so that it and everything it started (webserver, daemon, code
    # server, run workers) can be signalled as one group.
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port),
         "--log-level", "error"], cwd=home, start_new_session=True,
        preexec_fn=_interrupt_when_parent_dies,  # noqa: PLW1509 - one prctl call
        env=dev_environment(home))
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with code {process.returncode} "
                                   "before its webserver answered")
            status, error = location_state("127.0.0.1", port)
            if error:
                raise RuntimeError(f"code location {LOCATION!r} failed to load: {error}")
            if status == "LOADED":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev did not load {LOCATION!r} within "
                                   f"{startup_timeout_s:.0f} s")
            time.sleep(0.25)
        from dagster_graphql import DagsterGraphQLClient

        yield Launcher(DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30))
    except KeyboardInterrupt:
        # Ctrl-C: passed on to the whole group, as a terminal passes it to its foreground
        # job: run workers in flight stop as they do on Ctrl-C (a training run saves its
        # resume state).
        _stop(process, group=True)
        raise
    finally:
        _stop(process)


def _interrupt_when_parent_dies() -> None:
    """In the child before it runs dagster dev (Linux): SIGINT's default action (a command
    started in the background by a shell inherits SIGINT ignored, and dagster dev would then
    never stop on it), and a SIGINT when the command that started it dies (kill -9, a test's
    timeout), so that its group is never left running."""
    import ctypes

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def _stop(process: subprocess.Popen, group: bool = False, timeout_s: float = 180) -> None:
    """SIGINT, as Ctrl-C, to dagster dev (or its whole group): it shuts its webserver, daemon
    and code server down (SIGTERM would leave them running). Whatever of the group is left
    after ``timeout_s`` (dagster dev waits a minute for each of its processes) is killed."""
    if process.poll() is None:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # nothing of it may outlive the command
