"""The `tennis-assets` command, run as a user runs it: a real subprocess."""

import subprocess
import sys

import pytest

from tennis_assets.agents import AgentConfig, make_learner
from tennis_assets.training import save_checkpoint


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "tennis_assets.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "policy.safetensors"
    save_checkpoint(path, make_learner(AgentConfig(), 1), include_buffer=False)
    return path


def test_evaluate_prints_a_table(checkpoint):
    out = run_cli("evaluate", str(checkpoint), "--episodes", "10")
    assert out.returncode == 0, out.stderr
    assert "10 fresh episodes" in out.stdout and "mean" in out.stdout


def test_evaluate_on_a_changed_court(checkpoint):
    out = run_cli("evaluate", str(checkpoint), "--episodes", "5", "--env-kwargs",
                  '{"gravity": -19.62}')
    assert out.returncode == 0, out.stderr


def test_replay_writes_a_gif(tmp_path):
    gif = tmp_path / "scripted.gif"
    out = run_cli("replay", "scripted", "--out", str(gif), "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert gif.stat().st_size > 10_000
    assert "score 2." in out.stdout  # the scripted swing rallies to the decision cap


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    out = run_cli("evaluate", str(tmp_path / "missing.safetensors"))
    assert out.returncode == 2
    assert "missing.safetensors" in out.stderr and "Traceback" not in out.stderr


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, checkpoint):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(checkpoint.read_bytes()[:200])
    (tmp_path / "broken.json").write_bytes(checkpoint.with_suffix(".json").read_bytes())
    out = run_cli("evaluate", str(broken))
    assert out.returncode == 2
    assert "broken.safetensors" in out.stderr and "Traceback" not in out.stderr


def test_unknown_setting_is_a_clear_error():
    out = run_cli("train", "--set", "learning_rate=0.1")
    assert out.returncode != 0
    assert "learning_rate" in out.stderr and "Traceback" not in out.stderr


def test_bad_court_parameter_is_a_clear_error(checkpoint):
    out = run_cli("evaluate", str(checkpoint), "--env-kwargs", '{"gravity": 5}')
    assert out.returncode == 2
    assert "gravity" in out.stderr and "Traceback" not in out.stderr


def test_non_numeric_budget_is_rejected_by_the_parser():
    out = run_cli("train", "--seconds", "soon")
    assert out.returncode == 2 and "soon" in out.stderr
