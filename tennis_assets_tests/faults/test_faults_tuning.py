"""A tuning worker killed with SIGKILL in the middle of a trial, on a real SQLite Optuna storage:
its heartbeat stops, the next worker fails the trial, re-queues it once and runs it, and nothing
is left RUNNING, without re-running the dead worker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna

from tennis_assets import tuning
from tennis_assets.defs.config import TuningConfig

HEARTBEAT_S, GRACE_S = 1, 2

# A worker as the tune_trials step runs one: it joins the study and runs its share under a
# batch, with a trial far longer than the test waits.
WORKER = f"""
import sys
from tennis_assets import tuning
from tennis_assets.defs.config import TuningConfig

agent, train = TuningConfig(profile="tiny", trial_max_seconds=300.0,
                            trial_max_updates=10_000_000).build()
study = tuning.open_study("hb", sys.argv[1], pruner="none", create=False,
                          heartbeat_interval={HEARTBEAT_S}, grace_period={GRACE_S})
tuning.optimize(study, 1, agent, train, params=["tau"], batch="run-1", worker=0)
"""


def _running_heartbeat(db: Path) -> tuple[int, str] | None:
    """(number, last heartbeat) of the study's RUNNING trial that has a heartbeat, if any."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT t.number, h.heartbeat FROM trials t JOIN trial_heartbeats h "
            "ON h.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def test_a_killed_workers_trial_is_failed_retried_once_and_none_is_left_running(tmp_path):
    db = tmp_path / "optuna.db"
    url = f"sqlite:///{db}"
    # Created first, as the create_study step does, so the worker only joins it.
    tuning.open_study("hb", url, pruner="none", heartbeat_interval=HEARTBEAT_S,
                      grace_period=GRACE_S)
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, url], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        first = None
        while (first := _running_heartbeat(db)) is None:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker never started a trial"
            time.sleep(0.1)
        # The worker beats while it trains: its trial's heartbeat moves on.
        while (beat := _running_heartbeat(db)) is not None and beat[1] == first[1]:
            assert time.monotonic() < deadline, "the heartbeat never moved"
            time.sleep(0.1)
        assert beat is not None and beat[0] == first[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    killed = first[0]
    study = optuna.load_study(study_name="hb", storage=tuning.make_storage(url, None))
    assert study.trials[killed].state == optuna.trial.TrialState.RUNNING  # nobody finished it

    time.sleep(GRACE_S + 1.5)  # heartbeats are stored to the second
    # Opening the study (as summarize_study does) already fails the dead trial and re-queues it.
    opened = tuning.open_study("hb", url, pruner="none", create=False,
                               heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    states = [t.state for t in opened.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]

    agent, train = TuningConfig(profile="tiny", trial_max_updates=50).build()
    tuning.run_study("hb", url, 2, agent, train, params=["tau"], pruner="none",
                     heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)

    trials = optuna.load_study(study_name="hb",
                               storage=tuning.make_storage(url, None)).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.COMPLETE,
                                         optuna.trial.TrialState.COMPLETE]
    dead, retry, new = trials
    assert dead.number == killed
    # The retry is the dead trial's configuration, queued once, and run by the second worker.
    assert retry.system_attrs["failed_trial"] == killed
    assert retry.system_attrs["retry_history"] == [killed]
    assert retry.params == dead.params and "tau" in dead.params
    assert "failed_trial" not in new.system_attrs
    # The dead worker's share still holds exactly its one trial; the copy is not counted in it.
    assert dead.user_attrs["batch"] == "run-1" and "batch" not in retry.user_attrs
    assert tuning.check_batch(opened, "run-1",
                              [{"worker": 0, "n_trials": 1, "trials": [killed]}]) == [killed]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials WHERE state IN ('RUNNING', 'WAITING')"
                            ).fetchone() == (0,)
