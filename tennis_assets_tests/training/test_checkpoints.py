import json
import os

import numpy as np
import pytest
import safetensors.torch as st

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.training import (
    CheckpointError,
    TrainConfig,
    load_checkpoint,
    load_learner,
    save_checkpoint,
    train,
)
from tennis_assets.training.checkpoints import read_metadata, sidecar_path

CFG = {"actor_hidden": 32, "critic_hidden": 32, "batch_size": 32, "buffer_size": 5000,
       "learning_starts": 64}


def trained(alg="ddpg", seed=0):
    learner = make_learner(AgentConfig(algorithm=alg, **CFG), seed)
    rng = np.random.default_rng(seed)
    for _ in range(30):
        obs = rng.standard_normal((4, 2, 24)).astype(np.float32)
        learner.observe(obs, learner.act(obs, True), np.zeros((4, 2), np.float32), obs,
                        np.zeros(4, bool))
    for _ in range(5):
        learner.update()
    return learner


@pytest.mark.parametrize("alg", ["ddpg", "maddpg"])
def test_round_trip_identical_actions_and_sidecar(tmp_path, alg):
    learner = trained(alg)
    path = save_checkpoint(tmp_path / "ck.safetensors", learner, progress={"episodes": 7})
    loaded = load_learner(path)
    obs = np.random.default_rng(9).standard_normal((6, 2, 24)).astype(np.float32)
    assert np.array_equal(loaded.act(obs), learner.act(obs))
    assert np.array_equal(loaded.act(obs, True), learner.act(obs, True))  # noise state too
    assert loaded.updates == 5 and len(loaded.buffer) == len(learner.buffer)
    side = json.loads(sidecar_path(path).read_text())
    assert side["agent_config"]["algorithm"] == alg and side["progress"]["episodes"] == 7
    assert read_metadata(path)["progress"] == {"episodes": 7}


def test_missing_truncated_and_garbage_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as err:
        load_learner(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(err.value)
    path = save_checkpoint(tmp_path / "ck.safetensors", trained())
    data = path.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt") as err:
        load_learner(trunc)
    assert "trunc.safetensors" in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_learner(junk)
    plain = tmp_path / "plain.safetensors"
    st.save_file({"x": trained().params[:4].clone()}, str(plain))
    with pytest.raises(CheckpointError, match="not a tennis-assets checkpoint"):
        load_learner(plain)


def test_config_mismatch_names_the_field(tmp_path):
    path = save_checkpoint(tmp_path / "ck.safetensors", trained())
    other = make_learner(AgentConfig(**{**CFG, "actor_hidden": 16}))
    with pytest.raises(CheckpointError, match="actor_hidden") as err:
        load_checkpoint(path, other)
    assert "ck.safetensors" in str(err.value)
    with pytest.raises(CheckpointError, match="algorithm"):
        load_checkpoint(path, expected_config=AgentConfig(algorithm="maddpg", **CFG))


def test_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    first = trained(seed=0)
    save_checkpoint(path, first)
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("tennis_assets.training.checkpoints.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, trained(seed=1))
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    obs = np.ones((2, 2, 24), np.float32)
    assert np.array_equal(load_learner(path).act(obs), first.act(obs))


def test_resume_continues_the_run(tmp_path):
    ac = AgentConfig(**CFG)
    path = str(tmp_path / "run.safetensors")
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=150, eval_every_updates=100,
                     selection_episodes=5, seed=3, checkpoint_path=path,
                     checkpoint_every_updates=50)
    first = train(ac, tc, progress=False)
    assert first.updates == 150
    second = train(ac, tc.replace(max_updates=300), progress=False, resume_from=path)
    assert second.updates == 300
    assert second.episodes > first.episodes
    eps = second.history["episode"].to_numpy()
    assert eps[0] == 1 and np.all(np.diff(eps) == 1)  # history continues without restarting
    assert len(second.eval_history) > len(first.eval_history)
    assert second.env_steps > first.env_steps
