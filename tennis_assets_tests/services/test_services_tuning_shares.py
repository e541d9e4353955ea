"""The worker shares of a distributed study on a real journal storage: exact sizes, a re-run
worker that completes its share without exceeding it, and joining only existing studies."""

import optuna
import pytest

from tennis_assets import tuning
from tennis_assets.tuning import study_config, trial_configs


def test_shares_are_exact_and_never_empty():
    assert tuning.split_trials(7, 3) == [3, 2, 2]
    assert tuning.split_trials(2, 5) == [1, 1]
    assert sum(tuning.split_trials(20, 6)) == 20
    with pytest.raises(ValueError, match="n_workers"):
        study_config("tiny", n_trials=2, n_workers=3)


def test_a_rerun_worker_completes_its_share_and_no_more(tmp_path):
    agent, train = trial_configs(study_config("tiny", trial_max_updates=50), "tiny")
    url = f"journal:{tmp_path / 'shares.log'}"
    study = tuning.open_study("s", url, pruner="none")
    # A worker that died mid-trial: one finished trial and one left RUNNING in its batch.
    done = study.ask()
    done.set_user_attr("batch", "run-1")
    done.set_user_attr("worker", 0)
    study.tell(done, 0.1)
    crashed = study.ask()
    crashed.set_user_attr("batch", "run-1")
    crashed.set_user_attr("worker", 0)
    numbers = tuning.optimize(study, 3, agent, train, params=["tau"], batch="run-1", worker=0)
    mine = tuning.batch_trials(study, "run-1", worker=0)
    assert sorted(numbers) == sorted(t.number for t in mine) and len(mine) == 3
    states = {t.number: t.state for t in mine}
    assert states[crashed.number] == optuna.trial.TrialState.FAIL
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in states.values()) == 2
    # Run again: its share is complete, nothing more runs.
    assert sorted(tuning.optimize(study, 3, agent, train, params=["tau"], batch="run-1",
                                  worker=0)) == sorted(numbers)
    assert len(study.get_trials()) == 3


def test_a_worker_joins_only_an_existing_study(tmp_path):
    with pytest.raises(ValueError, match="no study 'absent'"):
        tuning.open_study("absent", f"journal:{tmp_path / 'j.log'}", create=False)
