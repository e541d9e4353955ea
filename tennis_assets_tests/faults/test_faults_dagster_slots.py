"""A Dagster run killed with kill -9 while its step holds the `training` pool's only slot, on an
instance made from the repository's own dagster.yaml, with the real daemon running: the code
server that launched the run marks it failed, the daemon's run monitoring gives its slot back,
and the daemon's run retry (waiting on that slot) then runs to SUCCESS. Before the
run_monitoring settings the slot was never given back and every later step of the pool, the
retry's included, waited forever ("Step still blocked by limit for pool training").

The step stands in for trained_agents and the tuning workers (the test checks they use the same
pool): what is measured is the instance's handling of a dead run, not training."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tennis_assets.defs.runs import LOCATION, dagster_dev

REPO = Path(__file__).resolve().parents[2]
POOL = "training"

CODE = textwrap.dedent('''
    import os, time
    from pathlib import Path
    import dagster as dg

    @dg.op(pool="training")
    def train_step(context):
        if context.run.parent_run_id is None:
            # The first attempt says which process holds the slot, then trains "forever".
            Path(os.environ["FAULT_MARKER"]).write_text(str(os.getpid()))
            time.sleep(600)
        return "done"

    # In the run worker's process, as the main command runs its chains of steps: the process
    # killed is the one holding the slot.
    @dg.job(executor_def=dg.in_process_executor)
    def train():
        train_step()

    defs = dg.Definitions(jobs=[train])
''')


def _wait(what: str, timeout_s: float, check, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s: {what}"
        time.sleep(interval_s)


def _claimed(instance) -> set[str]:
    """The runs holding a slot of the training pool."""
    return set(instance.event_log_storage.get_concurrency_info(POOL).active_run_ids)


def _holding(instance) -> set[str]:
    """The runs holding a slot of the training pool or a place in its queue (the run queue
    counts those too: "blocked by global concurrency limits")."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return set(info.active_run_ids) | set(info.pending_run_ids)


def test_the_projects_training_steps_use_the_pool_this_test_kills_in():
    from tennis_assets.defs.assets import trained_agents

    assert trained_agents.op.pool == POOL


@pytest.mark.slow
def test_a_kill_9_run_gives_its_training_slot_back_and_its_retry_runs(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    settings = yaml.safe_load((home / "dagster.yaml").read_text())["run_monitoring"]
    (tmp_path / "slot_job.py").write_text(CODE)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": {
        "relative_path": "slot_job.py", "location_name": LOCATION,
        "working_directory": str(tmp_path)}}]}))
    marker = tmp_path / "worker.pid"
    os.environ["FAULT_MARKER"] = str(marker)  # inherited by the code servers and run workers
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.event_log_storage.set_concurrency_slots(POOL, 1)
            # `dagster dev`: webserver, the daemon (run queue, monitoring, run retries) and the
            # code server that launches the run workers.
            with dagster_dev(home, workspace) as launcher:
                # Up before the fault: the run-retry daemon only acts on failures after its
                # start.
                required = set(instance.get_required_daemon_types())
                _wait("the daemon to start", 180,
                      lambda: required <= set(instance.get_daemon_heartbeats()), interval_s=1.0)
                time.sleep(2)
                run_id = launcher.launch("train")
                pid = int(_wait("the step to start", 120, lambda: marker.exists()
                                and marker.read_text()))
                assert _claimed(instance) == {run_id}

                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                failed = _wait("the killed run to be marked failed", 60,
                               lambda: launcher.status(run_id) and time.monotonic()) - killed
                assert launcher.status(run_id) == "FAILURE"
                freed = _wait("the dead run's slot to be given back", 120,
                              lambda: run_id not in _holding(instance)
                              and time.monotonic()) - killed
                retry = _wait("the daemon's retry of the run", 60, lambda: next(iter(
                    instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))),
                    None))
                status = _wait("the retry to finish", 120,
                               lambda: launcher.status(retry.run_id))
                done = time.monotonic() - killed
    finally:
        os.environ.pop("FAULT_MARKER", None)
    assert status == "SUCCESS"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert _holding(instance) == set()  # the retry gave its slot back itself
    # Within the settings' bound: the run marked failed, then at most the grace period plus one
    # poll (and the daemon's first iteration, which may still be starting up).
    bound = settings["free_slots_after_run_end_seconds"] + settings["poll_interval_seconds"]
    print(f"kill -9 -> run FAILURE {failed:.1f} s, slot given back {freed:.1f} s, retry "
          f"SUCCESS {done:.1f} s (bound {bound} s after the failure); load "
          f"{os.getloadavg()[0]:.2f}")
    assert failed < 10
    assert freed - failed <= bound + 5, (failed, freed)
