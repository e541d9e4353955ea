"""W&B behind the same interface, offline unless configured: nothing leaves the machine."""

import pytest

from tennis_assets.tracking.tracker import fan_out
from tennis_assets.tracking.wandb_tracking import WandbTracker, resolve_mode


def test_mode_is_offline_without_an_api_key(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    with pytest.raises(ValueError, match="mode"):
        resolve_mode("cloud")


@pytest.mark.slow
def test_offline_run_records_locally_beside_mlflow(tmp_path, monkeypatch):
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    mlflow_tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}",
                                   artifact_root=(tmp_path / "artifacts").as_uri())
    wandb_tracker = WandbTracker(mode="auto", root=tmp_path)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with fan_out(mlflow_tracker, [wandb_tracker], "both", {"dagster.run_id": "r"}) as run:
        run.log_params({"agent": {"tau": 0.02}})
        run.log_metrics({"mean": 0.8}, step=1)
        run.log_series("episode_score", [0.1, 0.2, 0.3])
        run.log_artifact(note)
    # In <root>/wandb/, not <root>/wandb/wandb/.
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert offline and not (tmp_path / "wandb" / "wandb").exists()
    assert len(offline) == 1
    assert (offline[0] / "files" / "note.txt").read_text() == "hello"
    assert next(iter(offline[0].glob("run-*.wandb"))).stat().st_size > 0
    assert mlflow_tracker.get_run(run.run_id).data.metrics["mean"] == 0.8
