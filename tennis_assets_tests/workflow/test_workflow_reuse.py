"""Content-addressed reuse of trainings (tennis_assets.workflow.reuse): what the key covers, what
the index records and finds, and two processes with the same key."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tennis_assets.agents.config import AgentConfig
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.training.config import TrainConfig
from tennis_assets.training.summary import TrainingSummary
from tennis_assets.workflow.candidate import TrainedAgent
from tennis_assets.workflow.reuse import TrainingIndex, training_key

AGENT, TRAIN, ENV = AgentConfig(), TrainConfig(max_updates=300), EnvironmentConfig()


def _agent(folder: Path, stop: str = "max_updates", init: str | None = None) -> TrainedAgent:
    files = {name: folder / f"{name}.x" for name in ("checkpoint", "history", "eval_history")}
    for path in files.values():
        path.write_text("x")
    return TrainedAgent(
        partition="baseline", checkpoint=str(files["checkpoint"]),
        history_csv=str(files["history"]), eval_history_csv=str(files["eval_history"]),
        learning_curve=str(folder / "curve.png"), agent_config=AGENT, train_config=TRAIN,
        summary=TrainingSummary(seconds=1.0, updates=300, env_steps=10, episodes=2,
                                best_greedy_mean=0.1, best_updates=300, stop_reason=stop),
        dagster_run_id="run-1", init_checkpoint=init)


def test_the_key_covers_what_decides_the_weights_and_nothing_else():
    key = training_key(AGENT, TRAIN, ENV)
    assert key == training_key(AgentConfig(), TrainConfig(max_updates=300), EnvironmentConfig())
    # Where and how often the resume state is saved does not change the weights.
    assert key == training_key(AGENT, TRAIN.replace(checkpoint_path="/elsewhere/x.safetensors",
                                                    checkpoint_every_seconds=3.0), ENV)
    changed = {
        "seed": training_key(AGENT, TRAIN.replace(seed=1), ENV),
        "budget": training_key(AGENT, TRAIN.replace(max_updates=301), ENV),
        "learner": training_key(AGENT.replace(actor_lr=AGENT.actor_lr * 2), TRAIN, ENV),
        "conditions": training_key(AGENT, TRAIN, EnvironmentConfig(env_kwargs={"gravity": -5})),
    }
    assert len({key, *changed.values()}) == 1 + len(changed), changed


def test_only_reproducible_trainings_are_recorded_and_found(tmp_path):
    index = TrainingIndex(tmp_path / "index")
    assert index.find("k") is None
    assert not index.record("clock", _agent(tmp_path, stop="max_seconds"))
    assert not index.record("warm", _agent(tmp_path, init="/some/weights.safetensors"))
    assert not index.record("stopped", _agent(tmp_path, stop="interrupted (SIGTERM)"))
    for stop in ("max_updates", "solved", "max_episodes"):
        assert index.record(stop, _agent(tmp_path, stop=stop))
        found = index.find(stop)
        assert found is not None and found.summary.stop_reason == stop
    assert index.find("clock") is None


def test_a_record_whose_files_are_gone_or_unreadable_is_trained_again(tmp_path, caplog):
    index = TrainingIndex(tmp_path / "index")
    agent = _agent(tmp_path)
    index.record("gone", agent)
    Path(agent.checkpoint).unlink()
    assert index.find("gone") is None
    (tmp_path / "index" / "torn.json").write_text('{"partition": "base')
    assert index.find("torn") is None
    assert "unreadable" in caplog.text and "gone" in caplog.text


HOLD = """
import sys, time
from tennis_assets.workflow.reuse import TrainingIndex
with TrainingIndex(sys.argv[1]).claim("k") as waited:
    print("held", waited, flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_claim_of_the_same_key_waits_for_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "2.0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held False"
        started = time.monotonic()
        with TrainingIndex(tmp_path).claim("k") as waited:
            held_for = time.monotonic() - started
        assert waited and held_for >= 1.0, held_for
        with TrainingIndex(tmp_path).claim("other") as waited:
            assert not waited
    finally:
        holder.wait(timeout=30)


def test_a_killed_holder_does_not_block_the_next(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "60"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held False"
    holder.kill()
    holder.wait(timeout=30)
    started = time.monotonic()
    with TrainingIndex(tmp_path).claim("k"):
        pass
    assert time.monotonic() - started < 5
