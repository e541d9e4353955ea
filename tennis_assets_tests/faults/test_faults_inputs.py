"""Bad input to `tennis-assets train`, as a hostile user types it: the real command in its own
process. Each case must end with an `error: ...` line and exit code 2 before any work starts,
leave no folder behind, and never touch an earlier run's files; run folders never collide;
`--resume PATH` alone continues the checkpoint's own run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tennis_assets.training.checkpoints import read_metadata

# A run of a few seconds: 2 courts, 40 updates, a small buffer; actor_lr is not the default, so
# a resumed run that fell back to the defaults would show.
TINY = ["--no-gif", "--no-progress", "--eval-episodes", "5", "--courts", "2",
        "--set", "buffer_size=2000", "--set", "learning_starts=64", "--set", "batch_size=32",
        "--set", "max_updates=40", "--set", "eval_every_updates=20",
        "--set", "selection_episodes=5", "--set", "actor_lr=0.002"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TENNIS_ASSETS_HOME": str(home)}


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tennis_assets.cli", *args],
                          capture_output=True, text=True, env=_env(home), timeout=300, check=False)


def assert_input_error(out: subprocess.CompletedProcess, *names: str) -> str:
    """Exit code 2, no traceback, a last stderr line `...error: ...` that names each of
    ``names``; returns that line."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    # argparse's own errors end "tennis-assets train: error: ...", the command's "error: ...".
    assert last.startswith("error: ") or ": error: " in last, last
    for name in names:
        assert name in last, (name, last)
    return last


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def first_run(home, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("first") / "run"
    done = run_cli(home, "train", *TINY, "--out", str(out))
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert (out / "report.json").is_file() and (out / "resume.safetensors").is_file()
    return out


def test_a_billion_courts_is_refused_before_any_folder(tmp_path):
    parent = tmp_path / "parent"
    out = run_cli(tmp_path / "home", "train", "--courts", str(10**9), "--out",
                  str(parent / "run"))
    last = assert_input_error(out, "num_courts", "available")
    assert "MemoryError" not in out.stderr and "num_courts <=" in last
    assert not parent.exists() and not (tmp_path / "home").exists()


def test_a_huge_buffer_is_refused_before_any_folder(tmp_path):
    # No --out: the default folder under the data directory must not appear either.
    out = run_cli(tmp_path / "home", "train", "--set", f"buffer_size={10**12}")
    assert_input_error(out, "buffer_size", "available", "buffer_size <=")
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("seed", ["-1", "abc", str(2**32)])
def test_a_bad_seed_names_the_parameter(tmp_path, seed):
    out = run_cli(tmp_path / "home", "train", "--seed", seed)
    assert_input_error(out, "seed: must be a whole number in [0, 4294967295]", seed)
    assert not (tmp_path / "home").exists()


def test_a_bad_seed_through_set_names_the_parameter(tmp_path):
    out = run_cli(tmp_path / "home", "train", "--set", "seed=true")
    assert_input_error(out, "seed: must be a whole number in [0, 4294967295]", "True")
    assert not (tmp_path / "home").exists()


def test_an_unknown_setting_exits_2(tmp_path):
    out = run_cli(tmp_path / "home", "train", "--set", "learning_rate=0.1")
    assert_input_error(out, "learning_rate", "actor_lr")
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("kind", ["missing", "garbage", "json", "policy"])
def test_a_bad_resume_file_is_a_clear_error(tmp_path, kind, first_run):
    source = tmp_path / "source"
    source.mkdir()
    path = source / "resume.safetensors"
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "json":
        path = source / "resume.json"
        shutil.copy(first_run / "resume.json", path)  # the readable copy, not the checkpoint
    elif kind == "policy":
        # The run's policy checkpoint: weights and configs, but no resume state.
        path = source / "checkpoint.safetensors"
        shutil.copy(first_run / "checkpoint.safetensors", path)
    before = snapshot(source)
    out = run_cli(tmp_path / "home", "train", "--resume", str(path))
    last = assert_input_error(out, str(path))
    if kind == "policy":
        assert "not a resume state" in last and "resume.safetensors" in last
    assert snapshot(source) == before and not (tmp_path / "home").exists()


def test_reusing_out_keeps_the_first_run_then_overwrite_replaces_it(first_run, home, tmp_path):
    before = snapshot(first_run)
    out = run_cli(home, "train", *TINY, "--seed", "1", "--out", str(first_run))
    assert_input_error(out, str(first_run), "--out NEW", "--overwrite")
    assert snapshot(first_run) == before

    # --overwrite on a copy (the first run stays for the resume test): every file is the new
    # run's, none of the old one is left beside it.
    copy = tmp_path / "copy"
    shutil.copytree(first_run, copy)
    (copy / "rally.gif").write_bytes(b"an earlier run's replay")
    again = run_cli(home, "train", *TINY, "--seed", "1", "--out", str(copy), "--overwrite")
    assert again.returncode in (0, 3), again.stderr[-2000:]
    report = json.loads((copy / "report.json").read_text())
    assert report["seed"] == 1 and report["train_config"]["seed"] == 1
    assert read_metadata(copy / "resume.safetensors")["train_config"]["seed"] == 1
    assert not (copy / "rally.gif").exists()  # --no-gif: this run made none
    assert sorted(p.name for p in copy.iterdir()) == sorted(before)


def test_two_runs_started_at_once_get_their_own_folders(tmp_path):
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-m", "tennis_assets.cli", "train", *TINY],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(home))
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode in (0, 3), stderr[-2000:]
    folders = sorted((home / "runs").iterdir())
    assert len(folders) == 2
    said = sorted(line.split("results in ", 1)[1] for stdout, _ in outputs
                  for line in stdout.splitlines() if line.startswith("results in "))
    assert said == [str(f) for f in folders]
    for folder in folders:
        report = json.loads((folder / "report.json").read_text())
        assert report["training"]["updates"] == 40
        meta = read_metadata(folder / "resume.safetensors")
        # Each run's resume state is its own: it points at its own folder.
        assert meta["train_config"]["checkpoint_path"] == str(folder / "resume.safetensors")
        assert (folder / "checkpoint.safetensors").is_file()


def test_resume_alone_continues_the_checkpoints_own_run(first_run, home, tmp_path):
    first_report = (first_run / "report.json").read_bytes()
    original = json.loads(first_report)
    run = tmp_path / "run"
    shutil.copytree(first_run, run)
    resume = run / "resume.safetensors"

    # Another seed or learning rate would be another run: refused, naming both.
    out = run_cli(home, "train", "--resume", str(resume), "--seed", "5",
                  "--set", "actor_lr=0.01")
    assert_input_error(out, "seed: checkpoint 0, given 5", "actor_lr: checkpoint 0.002")

    # No flags at all: the run's own configuration, continued in its own folder (budget spent,
    # so it stops at once and re-reports).
    done = run_cli(home, "train", "--resume", str(resume))
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert f"results in {run}" in done.stdout
    report = json.loads((run / "report.json").read_text())
    assert report["resumed_from"] == str(resume)
    assert report["agent_config"] == original["agent_config"]
    moved = {"checkpoint_path": str(resume)}
    assert report["train_config"] == {**original["train_config"], **moved}
    assert report["training"]["updates"] == 40
    assert read_metadata(resume)["progress"]["resumes"] == 1

    # A larger budget is allowed and the run goes on from where it was, same hyperparameters.
    more = run_cli(home, "train", "--resume", str(resume), "--set", "max_updates=60")
    assert more.returncode in (0, 3), more.stderr[-2000:]
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["updates"] == 60
    assert report["agent_config"] == original["agent_config"]
    assert report["train_config"] == {**original["train_config"], **moved, "max_updates": 60}
    assert report["training"]["episodes"] >= original["training"]["episodes"]
    assert (first_run / "report.json").read_bytes() == first_report
