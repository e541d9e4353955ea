"""Unusable resources and bad run config are refused before any work: real MLflow trackers on
real paths (a file store, a read-only mount, a folder under a file, a file that is not a
database, a closed port, an unknown scheme), real Optuna storages, and real Dagster runs of the
project's jobs that fail before trained_agents trains. Each error names the value and the fix,
comes within seconds and leaves nothing on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from tennis_assets.tracking.mlflow_tracking import MlflowTracker
from tennis_assets.tracking.preflight import (
    ResourceError,
    check_optuna_storage,
    check_output_folder,
    check_tracking_uri,
)
from tennis_assets_tests.defs.conftest import job_definitions, make_resources, run_job

FAST_S = 10.0
NOT_A_DATABASE = b"id,score\n1,0.5\n"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(make, *args, **kwargs) -> ResourceError:
    """The ResourceError ``make`` raises, after checking that it came within FAST_S."""
    start = time.monotonic()
    with pytest.raises(ResourceError) as caught:
        make(*args, **kwargs)
    elapsed = time.monotonic() - start
    assert elapsed < FAST_S, f"took {elapsed:.1f} s to refuse"
    assert isinstance(caught.value, ValueError)  # the CLI prints ValueErrors, exit 2
    return caught.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- MLflow tracking URIs ----------------------------------------------------------------
def test_a_file_store_is_refused_with_the_sqlite_form_of_the_same_path(tmp_path):
    error = refused(MlflowTracker, f"file://{tmp_path}/mlruns")
    message = str(error)
    assert f"file://{tmp_path}/mlruns" in message and "database-backed" in message
    assert f"sqlite:///{tmp_path}/mlruns/mlflow.db" in message
    # A bare path is a file store too.
    assert f"sqlite:///{tmp_path}/mlruns/mlflow.db" in str(refused(MlflowTracker,
                                                                   str(tmp_path / "mlruns")))
    assert files_under(tmp_path) == []


def test_a_read_only_folder_is_refused_before_mlflow_retries(read_only_folder):
    uri = f"sqlite:///{read_only_folder}/mlflow/mlflow.db"
    message = str(refused(MlflowTracker, uri))
    assert uri in message and "not writable" in message and "Read-only" in message
    assert "folder you can write to" in message
    assert files_under(read_only_folder) == []


def test_a_folder_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where a folder should be")
    message = str(refused(MlflowTracker, f"sqlite:///{blocker}/mlflow/mlflow.db"))
    assert f"{blocker} is a file, not a folder" in message
    assert files_under(tmp_path) == ["data"]
    assert blocker.read_text() == "a file where a folder should be"


def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path):
    path = tmp_path / "scores.db"
    path.write_bytes(NOT_A_DATABASE)
    message = str(refused(MlflowTracker, f"sqlite:///{path}"))
    assert f"{path} is not a SQLite database" in message
    assert path.read_bytes() == NOT_A_DATABASE
    assert files_under(tmp_path) == ["scores.db"]


def test_a_server_that_does_not_answer_is_named_without_its_password(tmp_path):
    port = closed_port()
    uri = f"http://alice:s3cret@127.0.0.1:{port}"
    message = str(refused(MlflowTracker, uri, artifact_root=(tmp_path / "art").as_uri()))
    assert f"http://alice:***@127.0.0.1:{port}" in message and "s3cret" not in message
    assert "/health" in message and "start the MLflow server" in message
    assert files_under(tmp_path) == []


def test_an_unknown_scheme_names_the_supported_ones(tmp_path):
    message = str(refused(MlflowTracker, "s3://bucket/mlflow",
                          artifact_root=(tmp_path / "art").as_uri()))
    assert "'s3'" in message and "sqlite:///" in message and "http(s)://" in message
    assert "postgresql://" in message
    assert files_under(tmp_path) == []


def test_a_good_sqlite_store_passes_and_then_works(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    assert check_tracking_uri(uri) == uri
    assert files_under(tmp_path) == []  # the check itself creates nothing
    tracker = MlflowTracker(uri, artifact_root=(tmp_path / "artifacts").as_uri())
    with tracker.start_run("preflight") as run:
        run.log_metrics({"x": 1.0})
    assert tracker.get_run(run.run_id).data.metrics == {"x": 1.0}
    assert (tmp_path / "new" / "mlflow.db").read_bytes()[:16] == b"SQLite format 3\x00"


# ---- artifact folders, Optuna storages, output folders ------------------------------------
def test_an_unwritable_artifact_folder_is_refused(tmp_path, read_only_folder):
    message = str(refused(MlflowTracker, f"sqlite:///{tmp_path}/mlflow.db",
                          artifact_root=(read_only_folder / "artifacts").as_uri()))
    assert "artifact_root" in message and str(read_only_folder / "artifacts") in message
    assert files_under(tmp_path) == ["read-only"]


def test_optuna_storages_are_checked_as_make_storage_opens_them(tmp_path, read_only_folder):
    journal = f"journal:{read_only_folder}/optuna/journal.log"
    message = str(refused(check_optuna_storage, journal, "storage_url"))
    assert f"storage_url={journal!r}" in message and "not writable" in message
    junk = tmp_path / "optuna.db"
    junk.write_bytes(NOT_A_DATABASE)
    assert "not a SQLite database" in str(refused(check_optuna_storage, f"sqlite:///{junk}"))
    port = closed_port()
    url = f"postgresql://bob:pw123@127.0.0.1:{port}/optuna"
    message = str(refused(check_optuna_storage, url))
    assert f"bob:***@127.0.0.1:{port}" in message and "pw123" not in message
    check_optuna_storage(f"journal:{tmp_path}/fresh/journal.log")
    check_optuna_storage("memory")
    assert files_under(tmp_path) == ["optuna.db", "read-only"]


def test_output_folders(tmp_path, read_only_folder):
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in str(refused(check_output_folder, tmp_path / "file"))
    assert "not writable" in str(refused(check_output_folder, read_only_folder / "run"))
    assert files_under(tmp_path) == ["file", "read-only"]


# ---- Dagster: refused at launch, or at the run's first step -------------------------------
def _no_step_ran(result) -> None:
    events = result.all_events
    assert not [e for e in events if e.is_step_start or e.is_successful_output
                or e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]


def _first_step_failure(tmp_path, uri: str, config: dict | None = None) -> str:
    """Run ``retrain`` and return the message of the resource set-up that failed it, after
    asserting that it failed fast and that no step ran."""
    defs = job_definitions(make_resources(tmp_path, uri, "faults"))
    with dg.instance_for_test() as instance:
        start = time.monotonic()
        result = run_job(instance, defs, "retrain", partition="baseline", config=config)
        assert time.monotonic() - start < FAST_S
    assert not result.success
    _no_step_ran(result)
    failure = next(e for e in result.all_events
                   if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE)
    return failure.event_specific_data.error.to_string()


def test_a_run_with_a_bad_tracking_uri_fails_before_training(tmp_path):
    message = _first_step_failure(tmp_path, f"file://{tmp_path}/mlruns")
    assert "MlflowResource.tracking_uri" in message and "sqlite:///" in message
    assert files_under(tmp_path) == []  # no model, asset value, database or journal


def test_a_bad_evaluation_value_fails_the_run_before_training(tmp_path):
    # Dagster builds evaluation_report's config only when its step starts, after training; the
    # run's first resource set-up checks it instead.
    message = _first_step_failure(tmp_path, f"sqlite:///{tmp_path}/mlflow.db",
                                  {"evaluation_report": {"eval_episodes": 0}})
    assert "ops.evaluation_report.config.eval_episodes" in message
    assert "greater than or equal to 1 (got 0)" in message
    assert not (tmp_path / "models").exists() and not (tmp_path / "assets").exists()


def test_courts_that_do_not_fit_in_memory_fail_the_run_before_training(tmp_path):
    message = _first_step_failure(tmp_path, f"sqlite:///{tmp_path}/mlflow.db",
                                  {"trained_agents": {"train": {"num_courts": 10**9}}})
    assert "num_courts" in message and "1000000000" in message.replace(",", "")
    assert not (tmp_path / "models").exists() and not (tmp_path / "assets").exists()


@pytest.mark.parametrize("config, field", [
    ({"n_trials": 2, "n_workers": 5}, "n_workers=5 > n_trials=2"),
    ({"params": ["actor_lr", "learning_rate"]}, "ops.tuning_study.config.params"),
    ({"trial_max_seconds": -1.0}, "ops.tuning_study.config.trial_max_seconds"),
])
def test_a_bad_tuning_config_is_a_config_error_at_launch(tmp_path, config, field):
    defs = job_definitions(make_resources(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", "faults"))
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as caught:
            run_job(instance, defs, "tune", config={"tuning_study": config})
        assert instance.get_runs() == []  # refused at launch: no run at all
    message = str(caught.value)
    assert field in message and "unexpected error" not in message
    assert files_under(tmp_path) == []


# The retrain job as the code location runs it, with Dagster's default multiprocess executor:
# each step initializes its resources in its own process.
MULTIPROCESS = textwrap.dedent('''
    import os, sys
    import dagster as dg
    from tennis_assets_tests.defs.conftest import job_definitions, make_resources
    from pathlib import Path

    def retrain():
        root = Path(os.environ["FAULT_ROOT"])
        resources = make_resources(root, f"sqlite:///{root}/mlflow.db", "faults")
        return job_definitions(resources).resolve_job_def("retrain")

    if __name__ == "__main__":
        result = dg.execute_job(
            dg.reconstructable(retrain), dg.DagsterInstance.get(),
            run_config={"ops": {"trained_agents": {"config": {"profile": "tiny"}},
                                "evaluation_report": {"config": {"eval_episodes": 0}}}},
            tags={"dagster/partition": "baseline"}, raise_on_error=False)
        for event in result.all_events:
            if event.is_step_start or event.is_step_failure or event.is_successful_output:
                print("EVENT", event.event_type_value, event.step_key, flush=True)
            if event.is_step_failure:
                print("ERROR", event.step_failure_data.error.to_string().replace("\\n", " "))
''')


def test_multiprocess_runs_fail_at_their_first_step(tmp_path):
    script = tmp_path / "retrain_job.py"
    script.write_text(MULTIPROCESS)
    (tmp_path / "home").mkdir()
    root = tmp_path / "run"
    root.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "FAULT_ROOT": str(root),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("EVENT")]
    # trained_agents fails in its resource set-up, before it starts; nothing else runs.
    assert events == [["STEP_FAILURE", "trained_agents"]]
    error = next(line for line in done.stdout.splitlines() if line.startswith("ERROR"))
    assert "ops.evaluation_report.config.eval_episodes" in error
    assert not (root / "models").exists() and not (root / "assets").exists()
