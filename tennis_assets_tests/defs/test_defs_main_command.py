"""The README's main command (`python -m tennis_assets.pipeline`): the training pool it sizes and
what Ctrl-C does to it. Its whole run, and what the UI shows of it afterwards, is the first step
of the user's walk (test_defs_user_walk.py)."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tennis_assets import settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_a_training_pool_limit_someone_set_is_kept(tmp_path):
    from tennis_assets.pipeline import size_training_pool

    with dg.DagsterInstance.local_temp(str(tmp_path)) as inst:
        assert size_training_pool(inst) == settings.training_slots()
        inst.event_log_storage.set_concurrency_slots("training", 7)  # as the UI or CLI does
        assert size_training_pool(inst) == 7
        assert {p.name: p.limit for p in inst.event_log_storage.get_pool_limits()}[
            "training"] == 7


def test_ctrl_c_names_the_runs_in_flight_and_exits_130(tmp_path):
    """Ctrl-C in the terminal reaches the command, which passes it on to its dagster dev and the
    run workers (their own process group) and cancels the runs still queued: it says what each
    run was doing and exits 130, and no run is left running or queued afterwards."""
    import signal
    import time

    env = {**os.environ, "TENNIS_ASSETS_HOME": str(tmp_path)}
    for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
                 "TENNIS_ASSETS_ALERT_WEBHOOK"):
        env.pop(name, None)
    # A terminal's foreground job gets SIGINT's default action; a test runner's child may not.
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            "sys.argv = ['pipeline', '--profile', 'tiny'];"
            "runpy.run_module('tennis_assets.pipeline', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[pipeline] retrain[baseline] ... (run "):
                break
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 130, "".join(lines)
    assert "[pipeline] interrupted\n" in lines, "".join(lines)
    # Each run it had submitted is named: in flight (its worker got the Ctrl-C), or still
    # queued and cancelled (a daemon started later must not launch it).
    named = [line for line in lines if line.startswith("[pipeline] interrupted")
             and " (run " in line]
    assert any("retrain[baseline] (run " in line for line in named), "".join(lines)
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as inst:
        deadline = time.monotonic() + 60
        while any(not r.is_finished for r in inst.get_runs()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert all(r.is_finished for r in inst.get_runs()), \
            [(r.job_name, r.status) for r in inst.get_runs()]


def test_dagster_dev_and_its_runs_share_the_commands_data_directory(tmp_path, monkeypatch):
    """Without $TENNIS_ASSETS_HOME the data directory is `.tennis_assets` of the command's
    working folder; dagster dev runs from the instance's folder, so it must be told (a fresh
    clone's main command once wrote its champion pointer under the instance's folder and then
    reported none promoted)."""
    from tennis_assets.defs.runs import dev_environment

    monkeypatch.delenv("TENNIS_ASSETS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    env = dev_environment(tmp_path / ".tennis_assets" / "dagster")
    assert env["TENNIS_ASSETS_HOME"] == str(tmp_path / ".tennis_assets")
    assert env["DAGSTER_HOME"] == str(tmp_path / ".tennis_assets" / "dagster")
