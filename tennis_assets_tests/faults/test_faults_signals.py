"""Training under real signals, as a user's terminal or a container runtime sends them: the
`tennis-assets train` command in its own process, interrupted with SIGINT, SIGTERM and kill -9.
Asserts on what is on disk afterwards: a resume checkpoint that loads and continues."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tennis_assets.training.checkpoints import read_metadata


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tennis_assets.cli", "train", "--seconds", "120", "--out",
         str(out), "--eval-episodes", "5", "--no-gif", "--no-progress", "--courts", "4", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> float:
    """The moment ``path`` was (re)written after it first appears."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.1)
    return path.stat().st_mtime


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_saves_the_state_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _start(out)
    resume = out / "resume.safetensors"
    _wait_for(resume, proc)  # the first periodic save: training is under way
    time.sleep(1.0)
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert f"--resume {resume}" in stderr and signal.Signals(sig).name in stderr
    progress = read_metadata(resume)["progress"]
    # Saved at the signal, not only at the last periodic save.
    assert progress["seconds"] > 10.0 and progress["updates"] > 0

    # The command it printed continues from there (the budget counts the seconds before too).
    again = subprocess.run(
        [sys.executable, "-m", "tennis_assets.cli", "train", "--seconds",
         str(progress["seconds"] + 4), "--out",
         str(tmp_path / "again"), "--eval-episodes", "5", "--no-gif", "--no-progress",
         "--courts", "4", "--resume", str(resume)],
        capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode in (0, 3), again.stderr
    resumed = read_metadata(tmp_path / "again" / "resume.safetensors")["progress"]
    assert resumed["updates"] > progress["updates"] and resumed["resumes"] == 1


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, "--set", "checkpoint_every_seconds=2")
    resume = out / "resume.safetensors"
    first = _wait_for(resume, proc)
    # Wait for a later periodic save, then kill in the middle of the next interval.
    while resume.stat().st_mtime == first:
        assert proc.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    proc.communicate(timeout=30)
    # What survives: the last complete save, no more than one interval (plus a save's time)
    # before the kill, and it loads.
    assert killed_at - resume.stat().st_mtime < 2.0 + 2.0
    doc = read_metadata(resume)
    assert doc["progress"]["updates"] > 0
