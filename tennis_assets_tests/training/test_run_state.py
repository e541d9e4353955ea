"""The run's state and its one resume schema (training/run_state.py).

data/resume_808e54e/ holds checkpoints written by the loop as it was before RunState existed
(commit 808e54e): ``resume.safetensors`` by ``train`` (ddpg, 8-unit networks, 2 courts, 60
updates, one evaluation with target -1.0, so a first solve and best weights are in it) and
``warm_start.safetensors`` by the old ``warm_start_checkpoint`` from that run's weights with a
start mean of 0.25. Resuming them with that commit's code and with this one gave the same
weights, targets and Adam moments to the bit (the 2026-12-06 check in the branch's report)."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.training import CheckpointError, TrainConfig, save_checkpoint, train
from tennis_assets.training.checkpoints import read_metadata
from tennis_assets.training.run_state import (
    BEST_PARAMS,
    PROGRESS_KEYS,
    RunState,
    load_resume,
    save_resume,
    warm_start_checkpoint,
)

OLD = Path(__file__).parent / "data" / "resume_808e54e"


def old_checkpoint(tmp_path, name):
    path = tmp_path / f"{name}.safetensors"
    shutil.copy(OLD / f"{name}.safetensors", path)
    doc = read_metadata(path)
    agent = AgentConfig.from_dict(doc["agent_config"])
    run = TrainConfig.from_dict(doc["train_config"]).replace(
        checkpoint_path=str(tmp_path / "again.safetensors"))
    return path, doc, agent, run


def test_a_resume_state_written_before_run_state_loads_field_by_field(tmp_path):
    path, doc, agent, _ = old_checkpoint(tmp_path, "resume")
    old = doc["progress"]
    assert sorted(old) == sorted(PROGRESS_KEYS)  # the old loop wrote exactly this schema
    learner = make_learner(agent)
    state = load_resume(path, learner, agent)
    assert state.progress(learner.updates, old["seconds"]) == old
    assert learner.updates == old["updates"] == 60 and state.solved_greedy is not None
    torch.testing.assert_close(state.best_params, load_file(str(path))[BEST_PARAMS],
                               rtol=0, atol=0)


def test_a_resume_state_written_before_run_state_continues_the_run(tmp_path):
    path, doc, agent, run = old_checkpoint(tmp_path, "resume")
    old = doc["progress"]
    result = train(agent, run.replace(max_updates=140), progress=False, resume_from=str(path))
    assert result.updates == 140 and result.resumes == 1 and result.stop_reason == "max_updates"
    # The history goes on from the old one, row for row.
    history = result.history.to_dict("records")
    assert history[:len(old["history"])] == old["history"]
    assert [r["episode"] for r in history] == list(range(1, len(history) + 1))
    assert len(history) > len(old["history"]) and result.env_steps > old["env_steps"]
    assert result.solved_greedy == old["solved_greedy"]  # the first solve stays the old one
    saved = read_metadata(run.checkpoint_path)["progress"]
    assert sorted(saved) == sorted(PROGRESS_KEYS)
    assert saved["resumes"] == 1 and saved["updates"] == 140
    assert saved["eval_history"][:old["evals"]] == old["eval_history"]


def test_a_warm_start_written_before_run_state_starts_from_its_weights(tmp_path):
    path, doc, agent, run = old_checkpoint(tmp_path, "warm_start")
    assert doc["progress"]["best_greedy_mean"] == 0.25 and doc["progress"]["history"] == []
    tensors = load_file(str(path))
    result = train(agent, run.replace(max_updates=100, eval_every_updates=20), progress=False,
                   resume_from=str(path))
    assert result.updates == 100 and result.resumes == 1
    assert result.history["episode"].iloc[0] == 1  # a new run's counters
    if result.best_greedy_mean == 0.25:  # nothing evaluated better: the starting weights stay
        assert result.best_updates == 60
        torch.testing.assert_close(result.learner.params, tensors[BEST_PARAMS], rtol=0, atol=0)
    else:
        assert result.best_greedy_mean > 0.25


def test_every_writer_writes_one_schema_and_the_reader_gives_it_back(tmp_path):
    agent = AgentConfig(actor_hidden=8, critic_hidden=8, batch_size=16, buffer_size=400,
                        learning_starts=32, device="cpu")
    run = TrainConfig(num_courts=2, max_seconds=None, max_updates=60, eval_every_updates=20,
                      selection_episodes=2, target_score=-1.0, checkpoint_every_updates=25,
                      checkpoint_path=str(tmp_path / "resume.safetensors"))
    result = train(agent, run, progress=False)  # periodic saves at 25 and 50, the final at 60
    final = read_metadata(run.checkpoint_path)["progress"]
    assert sorted(final) == sorted(PROGRESS_KEYS) and final["updates"] == result.updates

    warm = warm_start_checkpoint(tmp_path / "warm.safetensors", result.learner, run, 0.7)
    assert sorted(read_metadata(warm)["progress"]) == sorted(PROGRESS_KEYS)

    state = RunState(env_steps=5, episodes=2, evals=1, seconds=1.5,
                     solved_greedy={"seconds": 1.0, "updates": 20, "env_steps": 4, "episodes": 1},
                     best_greedy_mean=0.3, best_updates=20, best_params=result.learner.params * 2,
                     last_eval_updates=20, history=[{"episode": 1, "score": 0.1}],
                     eval_history=[{"eval": 1, "greedy_mean": 0.3}], resumes=2)
    path = save_resume(tmp_path / "state.safetensors", result.learner, run, state, seconds=9.0)
    back = load_resume(path, make_learner(agent), agent)
    torch.testing.assert_close(back.best_params, state.best_params, rtol=0, atol=0)
    assert back.progress(60, 9.0) == state.progress(60, 9.0)
    assert back.seconds == 9.0  # the training seconds at the save: the next session's start
    assert math.isinf(RunState().best_greedy_mean)
    assert RunState().progress(0, 0.0)["best_greedy_mean"] is None  # JSON, not -Infinity


def test_a_checkpoint_that_is_no_resume_state_is_refused_naming_the_file(tmp_path):
    agent = AgentConfig(actor_hidden=8, critic_hidden=8, batch_size=16, buffer_size=400,
                        learning_starts=32, device="cpu")
    learner = make_learner(agent)
    run = TrainConfig(num_courts=2, max_seconds=None, max_updates=10,
                      checkpoint_path=str(tmp_path / "new.safetensors"))
    # A policy checkpoint: its progress is a run's summary, not a resume state.
    policy = save_checkpoint(tmp_path / "checkpoint.safetensors", learner, train_config=run,
                             progress={"seconds": 3.0, "updates": 0, "episodes": 4,
                                       "stop_reason": "max_updates"}, include_buffer=False)
    before = policy.read_bytes()
    with pytest.raises(CheckpointError, match="not a resume state") as err:
        train(agent, run, progress=False, resume_from=str(policy))
    assert policy.read_bytes() == before
    assert str(policy) in str(err.value) and "'evals'" in str(err.value)
    assert "warm start" in str(err.value)
    assert not (tmp_path / "new.safetensors").exists()  # refused before any work

    good = json.loads(json.dumps(RunState().progress(0, 0.0)))
    bad = save_checkpoint(tmp_path / "bad.safetensors", learner, train_config=run,
                          progress={**good, "episodes": "many"}, include_buffer=False)
    with pytest.raises(CheckpointError, match="malformed resume state") as err:
        train(agent, run, progress=False, resume_from=str(bad))
    assert str(bad) in str(err.value)
