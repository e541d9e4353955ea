"""Moving production onto a broken model, on a real MLflow registry (SQLite) with real model
files: ``previous``'s ONNX actor corrupted, then the real ``rollback`` job; a challenger whose
checkpoint is corrupted, then a promotion. The target is loaded as the policy server loads it
and played before any alias moves, so each move is refused naming the version and the problem,
and the champion, its aliases, its pointer file and a newly started policy server are as they
were."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pytest

from tennis_assets.tracking.mlflow_tracking import ONNX_ARTIFACT
from tennis_assets.workflow.production import move_champion
from tennis_assets_tests.serving.support import Client, Registry, empty_mlflow_db, start_server


@pytest.fixture
def registry(tmp_path, tmp_path_factory) -> Registry:
    return Registry(tmp_path, empty_mlflow_db(tmp_path_factory.getbasetemp().parent))


def _stored(info, *parts: str) -> Path:
    """A file of a registered version where the artifact store keeps it (not a download)."""
    return Path(urlparse(info.source).path, "artifacts", *parts)


def _promote(registry: Registry, name: str, pointer: Path, seed: int) -> str:
    """Register a seeded learner as challenger and promote it; returns its version."""
    info, _ = registry.register(name, seed=seed, champion=False)
    return move_champion(registry.tracker, name, pointer, version=info.version).version


def _rollback_job(registry: Registry, name: str, root: Path):
    from tennis_assets.defs.assets import challenger_model, production_model
    from tennis_assets.defs.jobs import rollback
    from tennis_assets.defs.resources import MlflowResource
    from tennis_assets.defs.store import JsonIOManager, ModelStore

    return dg.Definitions(
        assets=[challenger_model, production_model], jobs=[rollback],
        resources={"io_manager": JsonIOManager(base_dir=str(root / "assets")),
                   "model_store": ModelStore(base_dir=str(root / "models")),
                   "mlflow": MlflowResource(tracking_uri=registry.tracker.tracking_uri,
                                            registered_model=name)},
    ).resolve_job_def("rollback")


def test_rollback_onto_a_corrupted_previous_is_refused_and_nothing_moves(registry, tmp_path):
    name = registry.new_name()
    pointer = tmp_path / "models" / "production" / "champion.json"
    assert _promote(registry, name, pointer, seed=1) == "1"
    assert _promote(registry, name, pointer, seed=2) == "2"
    before = registry.tracker.aliases(name)
    assert before == {"champion": "2", "previous": "1", "challenger": None}
    pointer_before = pointer.read_bytes()
    onnx = _stored(registry.tracker.champion(name, "previous"), ONNX_ARTIFACT)
    onnx.write_bytes(os.urandom(2048))  # what a bad disk or a partial upload leaves

    with dg.instance_for_test() as instance:
        result = _rollback_job(registry, name, tmp_path).execute_in_process(
            instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert f"model {name} v1 cannot be served" in message, message
    assert "INVALID_PROTOBUF" in message or "InvalidProtobuf" in message, message
    assert "champion stays v2, nothing moved" in message

    assert registry.tracker.aliases(name) == before
    assert pointer.read_bytes() == pointer_before
    # A policy server started now serves the champion, which is still v2.
    server = start_server(registry, name)
    try:
        status, doc = Client(server.url).json("GET", "/readyz")
        assert (status, doc["version"]) == (200, "2")
    finally:
        server.stop()


def test_a_challenger_whose_checkpoint_is_corrupted_is_never_promoted(registry, tmp_path):
    name = registry.new_name()
    pointer = tmp_path / "production" / "champion.json"
    assert _promote(registry, name, pointer, seed=1) == "1"
    challenger, _ = registry.register(name, seed=2, champion=False)
    checkpoints = list(_stored(challenger).glob("*.safetensors"))
    assert len(checkpoints) == 1
    checkpoints[0].write_bytes(checkpoints[0].read_bytes()[:100])  # cut short
    pointer_before = pointer.read_bytes()

    with pytest.raises(RuntimeError) as err:
        move_champion(registry.tracker, name, pointer, version=challenger.version)
    assert f"model {name} v2 cannot be served" in str(err.value)
    assert "champion stays v1, nothing moved" in str(err.value)
    assert registry.tracker.aliases(name) == {"champion": "1", "previous": None,
                                              "challenger": "2"}
    assert pointer.read_bytes() == pointer_before
