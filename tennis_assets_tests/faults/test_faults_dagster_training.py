"""A Dagster run killed (kill -9) or terminated (SIGTERM) while trained_agents trains, then
re-executed from failure as the UI's "Re-execute from failure" or the daemon's run retry does:
the re-execution continues from the resume state the killed run saved, not from zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

from tennis_assets.training.checkpoints import read_metadata

# The job as a code location defines it (a module the re-execution can reload), on the test's
# own MLflow and model store.
JOB = textwrap.dedent('''
    import os, sys
    import dagster as dg
    from tennis_assets.defs.assets import trained_agents, tuning_study
    from tennis_assets.defs.partitions import agent_partitions
    from tennis_assets.defs.resources import MlflowResource, OptunaResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    ROOT = os.environ["FAULT_ROOT"]

    def train_job():
        return dg.Definitions(
            assets=[tuning_study, trained_agents],
            jobs=[dg.define_asset_job("train", selection=["trained_agents"],
                                      partitions_def=agent_partitions,
                                      executor_def=dg.in_process_executor)],
            resources={"io_manager": JsonIOManager(base_dir=f"{ROOT}/assets"),
                       "model_store": ModelStore(base_dir=f"{ROOT}/models"),
                       "mlflow": MlflowResource(tracking_uri=f"sqlite:///{ROOT}/mlflow.db",
                                                registered_model="faults"),
                       "optuna_storage": OptunaResource(storage_url=f"journal:{ROOT}/optuna.log")},
        ).get_job_def("train")

    RUN_CONFIG = {"ops": {"trained_agents": {"config": {
        "profile": "tiny", "train": {"max_seconds": 120,
                                     "max_updates": int(os.environ["FAULT_UPDATES"]),
                                     "checkpoint_every_seconds": 1.0}}}}}

    if __name__ == "__main__":
        instance = dg.DagsterInstance.get()
        options = None
        if len(sys.argv) > 1:
            options = dg.ReexecutionOptions.from_failure(sys.argv[1], instance)
        result = dg.execute_job(dg.reconstructable(train_job), instance,
                                run_config=None if options else RUN_CONFIG,
                                tags={"dagster/partition": "baseline"},
                                reexecution_options=options, raise_on_error=False)
        print("RUN", result.run_id, result.success, flush=True)
''')


# Long enough that the signal lands while it trains (a quiet core does about 1,000 updates a
# second; the first resume state is written after 1 s), short enough to finish on re-execution.
UPDATES = 5000


def _env(root):
    return {**os.environ, "FAULT_ROOT": str(root), "DAGSTER_HOME": str(root / "home"),
            "FAULT_UPDATES": str(UPDATES)}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_training_run_is_re_executed_from_its_resume_state(tmp_path, sig):
    root = tmp_path
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    script = root / "train_job.py"
    script.write_text(JOB)
    first = subprocess.Popen([sys.executable, str(script)], env=_env(root), cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    resume_dir = root / "models" / "trained_agents" / "baseline" / "resume"
    deadline = time.monotonic() + 120
    saved = {}
    while time.monotonic() < deadline:
        states = list(resume_dir.glob("*.safetensors"))
        if states:
            try:
                saved = read_metadata(states[0])["progress"]
            except ValueError:
                saved = {}  # read while being renamed into place
            if saved.get("updates", 0) >= 100:
                break
        assert first.poll() is None, first.communicate()
        time.sleep(0.2)
    assert saved.get("updates", 0) >= 100, "no resume state with 100 updates within 120 s"
    os.killpg(first.pid, sig)
    _out, err = first.communicate(timeout=60)

    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        run = instance.get_runs(limit=1)[0]
        if sig == signal.SIGKILL:
            # Nothing could record the failure of a killed process: run monitoring (or a
            # person) marks it failed, as here, and re-execution takes it from there.
            assert run.status == dg.DagsterRunStatus.STARTED
            instance.report_run_failed(run)
        else:
            assert first.returncode == 0, err  # the run failed; its process ended normally
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = [e for e in instance.all_logs(run.run_id)
                       if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"]
            assert "re-execute this run" in failure[0].dagster_event.step_failure_data \
                .error.message
        state = resume_dir / f"{run.run_id}.safetensors"
        before = read_metadata(state)["progress"]
        assert before["updates"] >= saved["updates"]

    again = subprocess.run([sys.executable, str(script), run.run_id], env=_env(root), cwd=root,
                           capture_output=True, text=True, timeout=300, check=False)
    assert "True" in again.stdout, again.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        second = instance.get_runs(limit=1)[0]
        assert second.root_run_id == run.run_id and second.status == dg.DagsterRunStatus.SUCCESS
        logs = [e.user_message for e in instance.all_logs(second.run_id)]
        assert any(f"resuming from {state}" in m for m in logs), logs
        outputs = [e.dagster_event.event_specific_data.materialization.metadata
                   for e in instance.all_logs(second.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value ==
                   "ASSET_MATERIALIZATION"]
        assert outputs[0]["updates"].value >= UPDATES
    summary = read_metadata(next((root / "models" / "trained_agents" / "baseline" /
                                  second.run_id).glob("checkpoint.safetensors")))["progress"]
    assert summary["updates"] >= UPDATES
    assert summary["resumes"] == 1  # continued from the killed run's state, not restarted
    assert summary["seconds"] > before["seconds"]  # its budget counted the time before
    assert not state.exists()  # done: the state (with its replay buffer) is removed
