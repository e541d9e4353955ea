"""Launch named jobs on an instance the way the Dagster UI does: through the code location
that workspace.yaml names, so each run carries its job's origin and shows up on the job's
page, in the Overview timeline and in the asset's history (a run executed in-process with
``execute_in_process`` appears only in the global run list).

The run goes through the instance's run launcher (a run worker process of its own, or a
container under DockerRunLauncher), not its run queue: the queue needs the daemon, and a
command that waits for its runs should not depend on one.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import dagster as dg

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "tennis_assets"


@dataclass
class LaunchedRun:
    job: str
    partition: str | None
    run_id: str
    status: str

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


class JobLauncher:
    """Launches runs of the code location's named jobs and waits for them."""

    def __init__(self, instance: dg.DagsterInstance, workspace) -> None:
        self.instance, self.workspace = instance, workspace
        self.location = workspace.get_code_location(LOCATION)
        self.repo = self.location.get_repository("__repository__")

    @classmethod
    @contextlib.contextmanager
    def open(cls, instance: dg.DagsterInstance,
             workspace_file: Path = REPO_ROOT / "workspace.yaml") -> Iterator["JobLauncher"]:
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        # A code server process, as `dagster dev` starts one, for the life of the launcher.
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace_file)]),
                                     read_only=False) as process:
            request = process.create_request_context()
            errors = request.get_code_location_error(LOCATION)
            if errors is not None:
                raise RuntimeError(f"code location {LOCATION!r} failed to load: "
                                   f"{errors.to_string()}")
            yield cls(instance, request)

    def launch(self, job: str, run_config: Mapping[str, Any] | None = None,
               partition: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        # The CLI's own run creation (`dagster job launch`): the same snapshots and origins
        # the UI records.
        from dagster._cli.job import _create_run

        remote_job = self.repo.get_full_job(job)
        run_tags = dict(tags or {})
        if partition is not None:
            run_tags["dagster/partition"] = partition
        run = _create_run(instance=self.instance, code_location=self.location,
                          remote_repo=self.repo, remote_job=remote_job,
                          run_config=dict(run_config or {}), tags=run_tags, op_selection=None,
                          run_id=None)
        self.instance.launch_run(run.run_id, self.workspace)
        return run.run_id

    def status(self, run_id: str) -> str | None:
        """The run's final status (SUCCESS, FAILURE, CANCELED), or None while it is not over."""
        run = self.instance.get_run_by_id(run_id)
        return run.status.value if run is not None and run.is_finished else None

    def wait(self, run_id: str, poll_s: float = 0.5) -> str:
        while (status := self.status(run_id)) is None:
            time.sleep(poll_s)
        return status

    def run(self, job: str, run_config: Mapping[str, Any] | None = None,
            partition: str | None = None, tags: Mapping[str, str] | None = None) -> LaunchedRun:
        run_id = self.launch(job, run_config, partition, tags)
        return LaunchedRun(job, partition, run_id, self.wait(run_id))
