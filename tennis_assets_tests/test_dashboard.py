"""`tennis-assets dashboard`: optuna-dashboard (extra ``dashboard``) on the project's own study
storage, as a user runs it on a laptop: a real process on a free loopback port, answering the
studies and trials that the tuning code wrote into the data directory's journal; stopped by its
process id. A missing journal is an error naming it, before anything starts."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tennis_assets import tuning
from tennis_assets_tests.services.processes import as_started_from_a_shell


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the dashboard sets no handler: the kernel ends it). Past a minute, the state it
    is in is the failure, after SIGKILL (nothing is left running)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        wchan = Path(f"/proc/{proc.pid}/wchan").read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        masks = [line for line in status.splitlines() if line.startswith(("State", "Sig"))]
        pytest.fail(f"dashboard still there 60 s after SIGTERM (in {wchan}): {masks}")


def test_dashboard_serves_the_data_directorys_study(tmp_path):
    pytest.importorskip("optuna_dashboard")
    home = tmp_path / "home"
    study = tuning.open_study("laptop", f"journal:{home / 'optuna' / 'journal.log'}")
    for value in (0.2, 0.7):
        trial = study.ask()
        trial.suggest_float("tau", 0.005, 0.05)
        study.tell(trial, value)
    port = _free_port()
    env = dict(os.environ, TENNIS_ASSETS_HOME=str(home))
    env.pop("TENNIS_ASSETS_OPTUNA_STORAGE", None)
    with open(tmp_path / "dashboard.log", "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen([sys.executable, "-m", "tennis_assets.cli", "dashboard",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True,
                                preexec_fn=as_started_from_a_shell)  # noqa: PLW1509
    try:
        deadline, status, doc = time.monotonic() + 60, 0, None
        while status != 200 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            status, doc = _get(f"http://127.0.0.1:{port}/api/studies")
        assert status == 200, (tmp_path / "dashboard.log").read_text()[-2000:]
        (summary,) = doc["study_summaries"]
        assert summary["study_name"] == "laptop"
        status, detail = _get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")
        assert status == 200 and sorted(t["values"][0] for t in detail["trials"]) == [0.2, 0.7]
    finally:
        _stop(proc)
    assert proc.returncode is not None
    out = (tmp_path / "dashboard.log").read_text()
    assert f"http://127.0.0.1:{port}/" in out and str(home / "optuna" / "journal.log") in out


def test_missing_journal_is_named(tmp_path):
    env = dict(os.environ, TENNIS_ASSETS_HOME=str(tmp_path / "empty"))
    env.pop("TENNIS_ASSETS_OPTUNA_STORAGE", None)
    out = subprocess.run([sys.executable, "-m", "tennis_assets.cli", "dashboard"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 2
    assert f"no study journal at {tmp_path / 'empty' / 'optuna' / 'journal.log'}" in out.stderr
    assert not (tmp_path / "empty").exists()  # nothing created
