"""Optuna's journal on a real Redis server (Debian's redis-server on loopback): three worker
processes share one study and every trial is accounted for exactly once; the storage is
checked before work and shown without its password."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tennis_assets import tuning
from tennis_assets.redaction import MASK
from tennis_assets.tracking.preflight import ResourceError, check_optuna_storage

from .test_services_postgres import _max_overlap

REPO = Path(__file__).resolve().parents[2]
# One worker: the share a `tune_trials` step runs, as its own process (without Dagster's import).
WORKER = """
import json, sys
from tennis_assets import tuning
from tennis_assets.agents import AgentConfig
from tennis_assets.training import TrainConfig
url, worker, n, configs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
agent, train = AgentConfig.from_dict(configs[0]), TrainConfig.from_dict(configs[1])
study = tuning.open_study("redis-workers", url, pruner="none", seed=worker, create=False)
numbers = tuning.optimize(study, n, agent, train, params=["actor_lr", "tau"], batch="run-1",
                          worker=worker)
print(json.dumps({"worker": worker, "n_trials": n, "trials": numbers}))
"""


def test_three_worker_processes_share_a_study_on_redis(redis_server):
    from tennis_assets.tuning import study_config, trial_configs

    url = redis_server.url()
    # Wall-clock bound trials, so that the workers' trials overlap.
    agent, train = trial_configs(study_config("tiny", trial_max_seconds=2.0,
                                trial_max_updates=1_000_000), "tiny")
    configs = json.dumps([agent.to_dict(), train.to_dict()])
    tuning.open_study("redis-workers", url, pruner="none")  # created once, as create_study does
    shares = tuning.split_trials(6, 3)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(w), str(n), configs],
                              cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w, n in enumerate(shares)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    workers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    # A fresh client reads the study back from the server.
    study = optuna.load_study(study_name="redis-workers", storage=tuning.make_storage(url))
    assert tuning.check_batch(study, "run-1", workers) == list(range(6))
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 6
    assert sorted(len(w["trials"]) for w in workers) == [2, 2, 2]
    pids = {t.user_attrs["worker_pid"] for t in trials}
    assert len(pids) == 3 and pids == {p.pid for p in procs}
    overlap, _ = _max_overlap([(t.datetime_start, t.datetime_complete,
                                t.user_attrs["worker_pid"]) for t in trials])
    assert overlap >= 2, "the workers never ran a trial at the same time"
    assert tuning.summarize(study, "run-1")["run_trials"] == list(range(6))


def test_redis_storage_is_checked_first_and_shown_without_its_password(redis_server):
    url = redis_server.url()
    check_optuna_storage(url)
    shown = tuning.storage_for_cli(url)
    assert redis_server.password not in shown and MASK in shown
    wrong = url.replace(redis_server.password, "not-the-password")
    with pytest.raises(ResourceError, match="Redis server refused") as info:
        check_optuna_storage(wrong, "OptunaResource.storage_url")
    assert "not-the-password" not in str(info.value)
    with pytest.raises(ResourceError, match="did not answer"):
        check_optuna_storage(f"redis://127.0.0.1:{redis_server.port + 1}/0", timeout_s=1)
