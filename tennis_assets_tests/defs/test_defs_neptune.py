"""Neptune as the third tracker, for real: a tiny trained_agents run with neptune_mode offline
writes its Neptune run file, read back through neptune-scale's own repository, holding what the
MLflow run holds (parameters, metrics, artifacts, the Dagster run id)."""

import pytest
from conftest import make_resources, materialize

from tennis_assets.tracking.neptune_tracking import read_offline_run, resolve_mode


def test_mode_is_offline_without_a_token(monkeypatch):
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "x" * 40)
    assert resolve_mode("auto") == "async"
    with pytest.raises(ValueError, match="mode"):
        resolve_mode("cloud")


@pytest.mark.slow
def test_tiny_training_is_tracked_offline_in_neptune_as_in_mlflow(tmp_path, mlflow_uri,
                                                                  monkeypatch):
    import dagster as dg

    from tennis_assets.defs.resources import MlflowResource
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "home"))
    resources = make_resources(tmp_path, mlflow_uri, "neptune-policy")
    resources["mlflow"] = MlflowResource(tracking_uri=mlflow_uri, registered_model="neptune-policy",
                                         neptune_mode="auto")
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(instance, resources, "baseline", ["trained_agents"],
                             config={"trained_agents": {"train": {"max_updates": 100}}})
    assert result.success
    files = list((tmp_path / "home" / "neptune").rglob("run_operations.sqlite3"))
    assert len(files) == 1
    written = read_offline_run(files[0])
    mlflow_run = MlflowTracker(mlflow_uri).get_run(
        result.output_for_node("trained_agents").mlflow_run_id)

    configs, metrics = written["configs"], written["metrics"]
    assert configs["tags/dagster.run_id"] == result.run_id == \
        mlflow_run.data.tags["dagster.run_id"]
    assert configs["run/name"] == "train-baseline"
    for key, value in mlflow_run.data.params.items():
        assert str(configs[f"params/{key}"]) == value or \
            float(configs[f"params/{key}"]) == float(value), key
    for key, value in mlflow_run.data.metrics.items():
        assert metrics[f"metrics/{key}"][-1][1] == pytest.approx(value), key
    uploaded = {path.rsplit("/", 1)[-1] for path in written["files"]}
    assert {"checkpoint.safetensors", "learning_curve.png", "history.csv"} <= uploaded
    # Copied beside the run's file, so `neptune sync` still finds them later.
    assert all(str(files[0].parent) in source for source in written["files"].values())
