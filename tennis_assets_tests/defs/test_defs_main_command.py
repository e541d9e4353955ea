"""The README's main command (`python -m tennis_assets.pipeline`) in the tiny profile: it starts
`dagster dev` for its own life, submits every job through its webserver on the instance in the
data directory, stops it, and says where to look. Tiny agents cannot
solve the game, so the gates stop them, nothing is promoted and the exit code says so."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tennis_assets import settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_main_command_materializes_the_graph_and_prints_where_to_look(tmp_path):
    env = {**os.environ, "TENNIS_ASSETS_HOME": str(tmp_path)}
    for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
                 "TENNIS_ASSETS_ALERT_WEBHOOK"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--profile", "tiny"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    lines = out.stdout.splitlines()
    runs = [line for line in lines if " run " in line]
    assert [line.split()[0] for line in runs] == ["tune", "retrain", "retrain", "promote"]
    # The candidates are broken (tiny agents cannot play): their runs fail. Promotion finds no
    # acceptable candidate, which is not a failure: its run succeeds and promotes nothing.
    assert [line.split()[-1] for line in runs] == ["SUCCESS", "FAILURE", "FAILURE", "SUCCESS"], \
        out.stdout
    assert out.returncode == 1  # no champion: the gates stopped both candidates
    assert "champion pointer : none promoted" in out.stdout
    assert f"DAGSTER_HOME={tmp_path / 'dagster'} dagster dev" in out.stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}" \
        in out.stdout

    # Everything it made lives in the data directory, and the Dagster UI will find the runs.
    assert (tmp_path / "dagster" / "dagster.yaml").exists()
    assert (tmp_path / "optuna" / "journal.log").stat().st_size > 0
    for partition in ("baseline", "tuned"):
        report = json.loads((tmp_path / "models" / "evaluation_report" / partition /
                             "latest.json").read_text())
        assert report["gates"]["solves"] is False
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as inst:
        records = inst.get_run_records()
        # Only the plan's runs: the daemon of the command's `dagster dev` launched nothing of
        # its own (its sensors leave a plan's runs to the plan).
        assert sorted(r.dagster_run.job_name for r in records) == \
            ["promote", "retrain", "retrain", "tune"]
        assert all(r.dagster_run.tags.get("tennis_assets/plan") == "main command"
                   for r in records)
        # The job page's query (dagster-graphql's resolve_runs): job name and the code
        # location's label tag (".dagster/repository", set for runs made from the location).
        for job, count in (("tune", 1), ("retrain", 2), ("promote", 1)):
            found = inst.get_runs(dg.RunsFilter(job_name=job, tags={
                ".dagster/repository": "__repository__@tennis_assets"}))
            assert len(found) == count, job
            assert all(r.remote_job_origin is not None for r in found)

        # The plan's order: the baseline trains while the study tunes (one training slot per
        # core), the tuned candidate only after the study, promotion after both candidates.
        by = {(r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition")): r
              for r in records}
        tune, promote = by[("tune", None)], by[("promote", None)]
        baseline, tuned = by[("retrain", "baseline")], by[("retrain", "tuned")]
        assert baseline.start_time < tune.end_time
        assert tuned.start_time >= tune.end_time
        assert promote.start_time >= max(baseline.end_time, tuned.end_time)
        assert {p.name: p.limit for p in inst.event_log_storage.get_pool_limits()}[
            "training"] == settings.training_slots()
        # Chains of steps run in the run worker's process (no process per step).
        assert all(r.dagster_run.run_config["execution"] == {"config": {"in_process": {}}}
                   for r in records)


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
