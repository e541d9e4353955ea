"""A full disk on a real size-limited file system (tmpfs): while saving a checkpoint, while
training saves its resume state, and in the `tennis-assets train` command. Nothing written
before is damaged, no temporary file is left, and the error says what is intact."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.files import DiskFullError
from tennis_assets.training import TrainConfig, load_checkpoint, save_checkpoint

AGENT = AgentConfig(algorithm="ddpg", actor_hidden=16, critic_hidden=16, buffer_size=20_000,
                    batch_size=32, device="cpu")


def test_a_full_disk_keeps_the_earlier_checkpoint_whole(small_disk):
    path = small_disk.path / "run" / "resume.safetensors"
    first = make_learner(AGENT)
    save_checkpoint(path, first)
    saved = path.read_bytes()
    small_disk.fill()

    second = make_learner(AGENT, 1)
    with pytest.raises(DiskFullError) as caught:
        save_checkpoint(path, second)
    message = str(caught.value)
    assert str(path) in message and "intact" in message and "MiB free" in message
    assert path.read_bytes() == saved  # the old state, byte for byte
    loaded, _ = load_checkpoint(path)
    torch.testing.assert_close(loaded.params, first.params)
    assert small_disk.leftovers() == []


def _train(out, updates: int = 200):
    from tennis_assets.workflow.candidate import train_candidate

    train = TrainConfig(num_courts=2, max_seconds=None, max_updates=updates, warmup_steps=64,
                        eval_every_updates=100, selection_episodes=2, checkpoint_every_updates=50,
                        checkpoint_path=str(out / "resume.safetensors"))
    return train_candidate(AGENT, train, out, title="full disk {best:.2f}")


def test_training_goes_on_when_its_resume_state_no_longer_fits(small_disk, tmp_path):
    # The same run on a roomy disk first, to know each file's size on this build: the resume
    # state holds the replay buffer, the policy checkpoint only the weights.
    _train(tmp_path / "probe")
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "probe").iterdir()}
    others = sum(v for k, v in sizes.items() if not k.startswith("resume."))
    leave = others + 64_000
    assert sizes["resume.safetensors"] > leave, sizes

    out = small_disk.path / "candidate"
    out.mkdir()
    small_disk.fill(leave_bytes=leave)  # room for everything but the resume state
    result = _train(out).result

    assert result.updates >= 200  # trained to the end although no resume save fitted
    assert result.checkpoint_failures and result.last_saved is None
    assert "resume.safetensors" in result.checkpoint_failures[0]
    assert not (out / "resume.safetensors").exists()
    loaded, doc = load_checkpoint(out / "checkpoint.safetensors")
    torch.testing.assert_close(loaded.params, result.learner.params)
    assert doc["progress"]["checkpoint_failures"] == result.checkpoint_failures
    assert (out / "history.csv").stat().st_size > 0
    assert small_disk.leftovers() == []


def test_the_cli_says_the_disk_is_full_and_what_is_kept(small_disk):
    out = small_disk.path / "run"
    small_disk.fill(leave_bytes=64_000)
    done = subprocess.run(
        [sys.executable, "-m", "tennis_assets.cli", "train", "--seconds", "3", "--out", str(out),
         "--eval-episodes", "2", "--no-gif", "--no-progress", "--courts", "2"],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left to write ") and str(out) in last
    assert small_disk.leftovers() == []
