"""The main job in plain Python: a tiny run writes every artifact with consistent contents."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tennis_assets.experiment import ARTIFACTS, RunFolderInUse, run_experiment, score_histogram
from tennis_assets.training import MemoryLimitError, load_learner


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return run_experiment(
        algorithm="ddpg", seed=3, max_seconds=None, out=str(out), eval_episodes=20,
        max_updates=300, eval_every_updates=150, learning_starts=256, progress=False)


def test_every_artifact_is_written(tiny_run):
    for name, filename in ARTIFACTS.items():
        path = tiny_run.out_dir / filename
        assert path.is_file() and path.stat().st_size > 0, name


def test_report_matches_the_run(tiny_run):
    report = json.loads((tiny_run.out_dir / "report.json").read_text())
    assert report["algorithm"] == "ddpg" and report["seed"] == 3
    assert report["training"]["updates"] == 300
    assert report["training"]["stop_reason"] == "max_updates"
    evaluation = report["evaluation"]
    assert evaluation["episodes"] == 20 and len(evaluation["scores"]) == 20
    assert evaluation["complete"] is True
    assert evaluation["mean"] == pytest.approx(np.mean(evaluation["scores"]), abs=1e-6)
    assert sum(evaluation["score_histogram"].values()) == 20
    assert report["machine"]["packages"]["torch"].startswith("2.13.0")
    assert report["machine"]["cpu_count"] >= 1
    assert report["environment"] == {"env": "tennis", "env_kwargs": {}, "scoring": None,
                                     "solve_score": None}


def test_history_and_checkpoint_are_usable(tiny_run):
    history = pd.read_csv(tiny_run.out_dir / "history.csv")
    assert len(history) == tiny_run.report.training.episodes
    assert np.isfinite(history["score"]).all()
    learner = load_learner(tiny_run.out_dir / "checkpoint.safetensors")
    obs = np.zeros((4, 2, 24), dtype=np.float32)
    expected = tiny_run.train_result.learner.act(obs, explore=False)
    np.testing.assert_allclose(learner.act(obs, explore=False), expected, atol=1e-6)


def test_pictures_are_real_images(tiny_run):
    png = Image.open(tiny_run.out_dir / "learning_curve.png")
    assert png.size[0] >= 600 and png.size[1] >= 300
    gif = Image.open(tiny_run.out_dir / "rally.gif")
    # One frame per decision plus the serve, subsampled to at most 300 (+ the ending frame);
    # Pillow may merge identical consecutive frames, so only the bounds are exact.
    length = tiny_run.report.rally.length
    assert 2 <= gif.n_frames <= min(length + 1, 301)


def test_unknown_override_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="actor_learning_rate: unknown setting; did you mean "
                                         "actor_lr"):
        run_experiment(out=str(tmp_path), actor_learning_rate=1e-3, progress=False)


def test_bad_value_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="actor_lr"):
        run_experiment(out=str(tmp_path), actor_lr=-1.0, progress=False)


def test_missing_resume_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        run_experiment(out=str(tmp_path), resume=str(tmp_path / "nowhere.safetensors"),
                       progress=False)


def test_score_histogram_bins():
    counts = score_histogram(np.array([0.0, 0.1, 0.5, 2.6, 2.7, 3.5]))
    assert counts["0.0-0.5"] == 2 and counts["0.5-1.0"] == 1 and counts["2.5-3.0"] == 3


def test_a_run_resumes_from_its_resume_checkpoint(tiny_run, tmp_path):
    resume = tiny_run.out_dir / "resume.safetensors"
    assert resume.stat().st_mode & 0o044 == 0o044  # group- and world-readable like other files
    more = run_experiment(
        algorithm="ddpg", seed=3, max_seconds=None, out=str(tmp_path), eval_episodes=10,
        max_updates=450, eval_every_updates=150, learning_starts=256, resume=str(resume),
        progress=False, gif=False)
    first = tiny_run.report.training
    assert more.report.training.updates == 450
    # Episodes and history carry over: the resumed run continues the count, it does not restart.
    assert more.report.training.episodes > first.episodes
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == more.report.training.episodes
    assert history["episode"].is_monotonic_increasing


def test_a_folder_holding_a_run_is_refused_and_left_as_it_was(tiny_run):
    before = {p.name: p.read_bytes() for p in tiny_run.out_dir.iterdir()}
    with pytest.raises(RunFolderInUse, match="--overwrite"):
        run_experiment(out=str(tiny_run.out_dir), progress=False)
    assert {p.name: p.read_bytes() for p in tiny_run.out_dir.iterdir()} == before


def test_courts_that_cannot_fit_are_refused_before_the_folder_exists(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MemoryLimitError, match="num_courts=1,000,000,000"):
        run_experiment(out=str(out), num_courts=10**9, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("seed", [-1, 2**32, True, "abc", 1.5])
def test_a_bad_seed_names_the_parameter(tmp_path, seed):
    with pytest.raises(ValueError, match=r"TrainConfig.seed: "):
        run_experiment(seed=seed, out=str(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_may_not_change_a_hyperparameter(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="actor_lr: checkpoint 0.001, given 0.002"):
        run_experiment(resume=str(tiny_run.out_dir / "resume.safetensors"),
                       out=str(tmp_path / "run"), actor_lr=0.002, progress=False)
    assert not (tmp_path / "run").exists()
