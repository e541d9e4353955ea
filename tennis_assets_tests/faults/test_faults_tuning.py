"""A tuning worker killed with SIGKILL in the middle of a trial, on a real SQLite Optuna storage
(its heartbeat stops) and on a real journal file (no heartbeat: its process is gone): the next
worker fails the trial, re-queues it once and runs it, and nothing is left RUNNING, without
re-running the dead worker. A live worker's trial, and one of another machine, are left alone."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tennis_assets import tuning
from tennis_assets.tuning import study_config, trial_configs

HEARTBEAT_S, GRACE_S = 1, 2

# A worker as the tune_trials step runs one: it joins the study and runs its share under a
# batch, with a trial far longer than the test waits.
WORKER = f"""
import sys
from tennis_assets import tuning
from tennis_assets.tuning import study_config, trial_configs

agent, train = trial_configs(study_config("tiny", trial_max_seconds=300.0,
                            trial_max_updates=10_000_000), "tiny")
study = tuning.open_study("hb", sys.argv[1], pruner="none", create=False,
                          heartbeat_interval={HEARTBEAT_S}, grace_period={GRACE_S})
tuning.optimize(study, 1, agent, train, params=["tau"], batch="run-1", worker=0)
"""
# A process that outlives the test's checks and does nothing.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _url(tmp_path: Path, kind: str) -> str:
    return (f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite"
            else f"journal:{tmp_path / 'optuna.log'}")


def _open(url: str):
    """The study as a worker joins it, which fails the trials of dead workers."""
    return tuning.open_study("hb", url, pruner="none", create=False,
                             heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)


def _stored(url: str) -> list:
    """The study's trials as stored, read without failing any."""
    return optuna.load_study(study_name="hb",
                             storage=tuning.make_storage(url, None)).get_trials()


def _running_heartbeat(db: Path) -> tuple[int, str] | None:
    """(number, last heartbeat) of the study's RUNNING trial that has a heartbeat, if any."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT t.number, h.heartbeat FROM trials t JOIN trial_heartbeats h "
            "ON h.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _running_of(url: str, pid: int) -> int | None:
    """The number of the RUNNING trial tagged with the worker ``pid``, if any."""
    return next((t.number for t in _stored(url) if t.state == TrialState.RUNNING
                 and t.user_attrs.get("worker_pid") == pid), None)


def _wait_in_trial(url: str, proc: subprocess.Popen, log: Path) -> int:
    """The number of the trial the worker ``proc`` trains, once it does: on SQLite its
    heartbeat has moved on, on the journal the trial carries the worker's pid."""
    deadline = time.monotonic() + 60

    def tick(what: str) -> None:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the worker never {what}"
        time.sleep(0.1)

    if not url.startswith("sqlite:///"):
        while (number := _running_of(url, proc.pid)) is None:
            tick("started a trial")
    else:
        db = Path(url[len("sqlite:///"):])
        while (first := _running_heartbeat(db)) is None:
            tick("started a trial")
        # The worker beats while it trains: its trial's heartbeat moves on.
        while (beat := _running_heartbeat(db)) is not None and beat[1] == first[1]:
            tick("moved its heartbeat")
        assert beat is not None and beat[0] == first[0]
        number = first[0]
    # Killed before it drew its parameters, a trial has nothing to retry: wait for them (on a
    # loaded machine the trial is stored well before the sampler runs).
    while not _stored(url)[number].params:
        tick("drew its parameters")
    return number


def _wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 30
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"pid {pid} never became a zombie"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_workers_trial_is_failed_retried_once_and_none_is_left_running(tmp_path, kind):
    url = _url(tmp_path, kind)
    # Created first, as the create_study step does, so the worker only joins it.
    tuning.open_study("hb", url, pruner="none", heartbeat_interval=HEARTBEAT_S,
                      grace_period=GRACE_S)
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, url], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        killed = _wait_in_trial(url, proc, log_path)
        # Another worker joining while this one trains leaves its trial alone.
        assert [t.state for t in _open(url).get_trials()] == [TrialState.RUNNING]
        assert [t.state for t in _stored(url)] == [TrialState.RUNNING]
        os.kill(proc.pid, signal.SIGKILL)
        if kind == "journal":
            # Not reaped yet (as under a parent that has not noticed): a zombie is dead too.
            _wait_zombie(proc.pid)
        else:
            proc.wait(timeout=30)
        assert _stored(url)[killed].state == TrialState.RUNNING  # nobody finished it
        if kind == "sqlite":
            time.sleep(GRACE_S + 1.5)  # heartbeats are stored to the second
        # Opening the study (as summarize_study does) already fails the dead trial and
        # re-queues it.
        opened = _open(url)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert [t.state for t in _stored(url)] == [TrialState.FAIL, TrialState.WAITING]

    agent, train = trial_configs(study_config("tiny", trial_max_updates=50), "tiny")
    tuning.run_study("hb", url, 2, agent, train, params=["tau"], pruner="none",
                     heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)

    trials = _stored(url)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    dead, retry, new = trials
    assert dead.number == killed
    # The retry is the dead trial's configuration, queued once, and run by the second worker.
    assert retry.system_attrs["failed_trial"] == killed
    assert retry.system_attrs["retry_history"] == [killed]
    assert retry.params == dead.params and "tau" in dead.params
    assert "failed_trial" not in new.system_attrs
    assert retry.user_attrs["worker_pid"] == new.user_attrs["worker_pid"] == os.getpid()
    # The dead worker's share still holds exactly its one trial; the copy is not counted in it.
    assert dead.user_attrs["batch"] == "run-1" and "batch" not in retry.user_attrs
    assert tuning.check_batch(opened, "run-1",
                              [{"worker": 0, "n_trials": 1, "trials": [killed]}]) == [killed]
    if kind == "sqlite":
        with sqlite3.connect(Path(url[len("sqlite:///"):])) as conn:
            assert conn.execute("SELECT COUNT(*) FROM trials WHERE state IN "
                                "('RUNNING', 'WAITING')").fetchone() == (0,)


TAU = {"tau": 0.01}
TAU_SPACE = {"tau": FloatDistribution(0.005, 0.05, log=True)}


def _running_trial(start: datetime, system_attrs: dict | None = None, **user_attrs):
    return optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=TrialState.RUNNING, value=None, datetime_start=start,
        datetime_complete=None, params=TAU, distributions=TAU_SPACE, user_attrs=user_attrs,
        system_attrs=system_attrs or {}, intermediate_values={})


def _here(pid: int) -> dict:
    """The tags of a trial run by ``pid`` on this machine, as ``optimize`` sets them."""
    return {"worker_pid": pid, "host": socket.gethostname(),
            "pid_namespace": tuning.pid_namespace()}


def test_journal_fails_only_this_machines_dead_workers_and_a_racing_worker_adds_no_copy(
        tmp_path):
    url = _url(tmp_path, "journal")
    study = tuning.open_study("hb", url, pruner="none")
    live = subprocess.Popen(SLEEPER)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    try:
        now = datetime.now()
        born = datetime.fromtimestamp(psutil.Process(live.pid).create_time())
        for trial in [
                _running_trial(now, **_here(live.pid)),  # 0: its worker runs
                # 1: the pid now names a process started after the trial: reused.
                _running_trial(born - timedelta(minutes=1), **_here(live.pid)),
                _running_trial(now, **_here(gone.pid)),  # 2: no such process
                _running_trial(now, **{**_here(gone.pid), "host": "another-machine"}),  # 3
                _running_trial(now, **{**_here(gone.pid),  # 4: a container on this hostname
                                       "pid_namespace": "another-boot/pid:[1]"}),
                _running_trial(now),  # 5: not yet tagged by its worker
                # 6: a retry that died again is not retried once more (MAX_TRIAL_RETRIES).
                _running_trial(now, {"failed_trial": 2, "retry_history": [2]},
                               **_here(gone.pid))]:
            study.add_trial(trial)
        # A second worker that read the trials (still RUNNING) just before this one failed them.
        racer = optuna.load_study(study_name="hb", storage=tuning.make_storage(url))
        stale = racer.get_trials()

        tuning.open_study("hb", url, pruner="none", create=False)
        assert tuning.fail_and_retry(racer, stale[2]) is False
        assert tuning.fail_dead_trials(racer) == []
        assert live.poll() is None
    finally:
        live.kill()
        live.wait(timeout=30)

    trials = _stored(url)
    R, F, W = TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING
    assert [t.state for t in trials] == [R, F, F, R, R, R, F, W, W]
    # One copy of each dead trial, with its parameters and without the dead worker's tags.
    assert [t.system_attrs["failed_trial"] for t in trials[7:]] == [1, 2]
    assert [t.system_attrs["retry_history"] for t in trials[7:]] == [[1], [2]]
    assert all(t.params == TAU and not set(t.user_attrs) & set(tuning.OWNER_ATTRS)
               for t in trials[7:])


def test_a_worker_killed_during_another_workers_trial_is_retried_by_its_next_trial(tmp_path):
    url = _url(tmp_path, "journal")
    study = tuning.open_study("hb", url, pruner="none")
    worker = subprocess.Popen(SLEEPER)
    try:
        study.add_trial(_running_trial(datetime.now(), **_here(worker.pid)))

        def kill_worker(_study, _trial) -> None:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)

        agent, train = trial_configs(study_config("tiny", trial_max_updates=50), "tiny")
        ran = tuning.optimize(study, 2, agent, train, params=["tau"], on_trial=kill_worker)
    finally:
        worker.kill()
        worker.wait(timeout=30)

    trials = _stored(url)
    # Trial 1 ran beside the live worker's trial; the check after it found that worker gone,
    # so the second trial this worker ran was the dead one's copy.
    assert ran == [1, 2]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert "failed_trial" not in trials[1].system_attrs
    assert trials[2].system_attrs["failed_trial"] == 0 and trials[2].params == TAU


def test_on_a_heartbeat_storage_only_the_heartbeat_fails_a_dead_workers_trial(tmp_path):
    url = _url(tmp_path, "sqlite")
    study = tuning.open_study("hb", url, pruner="none", heartbeat_interval=HEARTBEAT_S,
                              grace_period=GRACE_S)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    # Never beaten for, so the heartbeat never calls it stale: only a pid check would fail it.
    study.add_trial(_running_trial(datetime.now(), **_here(gone.pid)))
    assert tuning.fail_dead_trials(study) == []
    _open(url)
    assert [t.state for t in _stored(url)] == [TrialState.RUNNING]
    # The same storage opened without a heartbeat checks the pid.
    plain = optuna.load_study(study_name="hb", storage=tuning.make_storage(url, None))
    assert tuning.fail_dead_trials(plain) == [0]
    assert [t.state for t in _stored(url)] == [TrialState.FAIL, TrialState.WAITING]
