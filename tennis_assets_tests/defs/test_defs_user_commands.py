"""What a user types without editing resource config: W&B and Neptune from the environment
($TENNIS_ASSETS_WANDB_MODE, $TENNIS_ASSETS_NEPTUNE_MODE) or the main command's --wandb and
--neptune flags (a real tiny run writes its offline W&B and Neptune runs where the docs say, and
a wrong mode stops the run before its work, naming the variable), and `dagster job execute` on
a candidate job without its partition."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_resources

from tennis_assets import settings


def test_modes_from_the_environment_and_their_errors(monkeypatch):
    monkeypatch.delenv(settings.WANDB_MODE_ENV, raising=False)
    monkeypatch.delenv(settings.NEPTUNE_MODE_ENV, raising=False)
    assert (settings.wandb_mode(), settings.neptune_mode()) == ("disabled", "disabled")
    settings.use_trackers(wandb="offline", neptune="auto")
    assert (settings.wandb_mode(), settings.neptune_mode()) == ("offline", "auto")
    settings.use_trackers(neptune="disabled")  # W&B left as it was
    assert (settings.wandb_mode(), settings.neptune_mode()) == ("offline", "disabled")
    monkeypatch.setenv(settings.WANDB_MODE_ENV, "cloud")
    with pytest.raises(ValueError, match="TENNIS_ASSETS_WANDB_MODE='cloud'"):
        settings.wandb_mode()
    with pytest.raises(ValueError, match="TENNIS_ASSETS_NEPTUNE_MODE"):
        settings.use_trackers(neptune="online")  # Neptune's client has no such mode


def test_main_command_flags():
    out = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--wandb {disabled,offline,online,auto}" in out
    assert "--neptune {disabled,offline,async,auto}" in out
    bad = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--wandb", "cloud"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "invalid choice: 'cloud'" in bad.stderr


@pytest.mark.slow
def test_environment_turns_both_trackers_on_for_a_real_run(tmp_path, mlflow_uri, monkeypatch):
    import dagster as dg

    from tennis_assets.defs.assets import tuning_study

    home = tmp_path / "home"
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(home))
    for name in ("WANDB_API_KEY", "NEPTUNE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(settings.WANDB_MODE_ENV, "offline")
    monkeypatch.setenv(settings.NEPTUNE_MODE_ENV, "auto")
    resources = make_resources(tmp_path, mlflow_uri, "trackers-policy")
    config = {"profile": "tiny", "study_name": "trackers", "n_trials": 1, "pruner": "none",
              "trial_max_updates": 50}
    result = dg.materialize([tuning_study], resources=resources,
                            run_config={"ops": {"tuning_study": {"config": config}}})
    assert result.success
    runs = list((home / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and next(iter(runs[0].glob("run-*.wandb"))).stat().st_size > 0
    assert not (home / "wandb" / "wandb").exists()  # not one folder too deep
    assert len(list((home / "neptune").rglob("run_operations.sqlite3"))) == 1

    monkeypatch.setenv(settings.WANDB_MODE_ENV, "cloud")
    failed = dg.materialize([tuning_study], resources=resources, raise_on_error=False,
                            run_config={"ops": {"tuning_study": {"config": config}}})
    assert not failed.success
    errors = [str(e.event_specific_data.error) for e in failed.all_events
              if e.is_failure and getattr(e.event_specific_data, "error", None)]
    assert any("resource mlflow: TENNIS_ASSETS_WANDB_MODE='cloud'" in m for m in errors), errors
    # Nothing ran: the study still holds the first run's one trial.
    import optuna

    from tennis_assets import tuning

    study = optuna.load_study(study_name="trackers", storage=tuning.make_storage(
        f"journal:{tmp_path / 'optuna.log'}"))
    assert len(study.get_trials()) == 1


def test_a_candidate_run_without_a_partition_says_how_to_give_one(tmp_path):
    """`dagster job execute -j retrain` as a user types it first, without the partition tag:
    the run fails at its first step with the commands that work, not Dagster's
    "Cannot access partition_key for a non-partitioned run"."""
    import os

    (tmp_path / "dagster").mkdir()
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "dagster"),
               TENNIS_ASSETS_HOME=str(tmp_path / "home"))
    out = subprocess.run([str(Path(sys.executable).with_name("dagster")), "job", "execute",
                          "-m", "tennis_assets.definitions", "-j", "retrain"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "no candidate: trained_agents is partitioned by candidate (baseline, tuned)" in text
    assert """--tags '{"dagster/partition": "baseline"}'""" in text
    assert not (tmp_path / "home" / "models").exists()  # no training started
