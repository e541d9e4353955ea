"""Tuning with ``engine: ray`` on a real Ray cluster of two nodes (``ray start --head`` and
``ray start --address``, one CPU each, on this machine), through Dagster: the ``tune`` job under
the multiprocess executor, whose worker step is the cluster's driver. Every trial records the
Ray node it ran on, and the trials ran on both nodes."""

from __future__ import annotations

import json
import os
import socket

import dagster as dg
import optuna
import pytest

from .ray_cluster import RayCluster

pytestmark = pytest.mark.slow
PARAMS = ["actor_lr", "tau"]
# One trial per node at once: with one CPU on each node, both nodes must take a trial.
N_TRIALS = 2


def tune_job():
    """The Definitions' own ``tune`` job, reconstructable in the run's step processes."""
    from tennis_assets.definitions import defs

    return defs.resolve_job_def("tune")


@pytest.fixture
def ray_cluster():
    pytest.importorskip("ray")
    cluster = RayCluster(nodes=2, cpus_per_node=1).start()
    try:
        yield cluster
    finally:
        left = cluster.stop()
        assert not left and not cluster.alive(), f"Ray processes left: {left}"


def test_trials_run_on_both_nodes_of_a_two_node_cluster(ray_cluster, tmp_path, monkeypatch):
    from tennis_assets import tuning

    node_ids = {n["id"] for n in ray_cluster.nodes}
    assert len(node_ids) == 2
    for name, value in ray_cluster.env().items():
        monkeypatch.setenv(name, value)  # the driver's token, as a user's run environment
    home = tmp_path / "home"
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
                 "TENNIS_ASSETS_RAY_ADDRESS", "TENNIS_ASSETS_RAY_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    config = {"profile": "tiny", "study_name": "ray-nodes", "n_trials": N_TRIALS,
              "engine": "ray", "ray_address": ray_cluster.address, "ray_searcher": "random",
              "ray_scheduler": "fifo", "params": PARAMS, "trial_max_updates": 100}
    (tmp_path / "dagster").mkdir()
    run_config = {"ops": {"tuning_study": {"config": config}}}
    with (dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance,
          dg.execute_job(dg.reconstructable(tune_job), instance=instance,
                         run_config=run_config) as result):
        assert result.success
        run_id = result.run_id
        driver_pids = {e.pid for e in result.all_events
                       if e.event_type == dg.DagsterEventType.STEP_START
                       and "tune_trials" in e.step_key}

    study = optuna.load_study(study_name="ray-nodes", storage=tuning.make_storage(
        f"journal:{home / 'optuna' / 'journal.log'}"))
    trials = study.get_trials()
    assert len(trials) == N_TRIALS and {t.user_attrs["batch"] for t in trials} == {run_id}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), \
        [t.state.name for t in trials]
    ran_on = [t.user_attrs["ray_node_id"] for t in trials]
    # Each trial on a node of this cluster, and both nodes did work. The hostname and the IP
    # are the same for both: only the node id tells them apart.
    assert set(ran_on) == node_ids, (ran_on, node_ids)
    assert {t.user_attrs["host"] for t in trials} == {socket.gethostname()}
    assert len({t.user_attrs["ray_node_ip"] for t in trials}) == 1
    # The trials ran in Ray's worker processes, not in the Dagster step that drove them.
    pids = {t.user_attrs["worker_pid"] for t in trials}
    assert len(pids) >= 2 and not pids & (driver_pids | {os.getpid()})
    frame = tuning.trials_frame(study)
    assert sorted(frame["ray_node"]) == sorted(ran_on)
    value = json.loads((home / "assets" / "tuning_study" / "__unpartitioned__.json")
                       .read_text())["value"]
    assert value["engine"] == "ray" and value["ray_nodes"] == sorted(node_ids)
    assert value["run_trials"] == sorted(t.number for t in trials)
    print(f"run {run_id}: trials {[t.number for t in trials]} on nodes "
          f"{[n[:8] for n in ran_on]} (pids {sorted(pids)}), cluster at {ray_cluster.address}")

