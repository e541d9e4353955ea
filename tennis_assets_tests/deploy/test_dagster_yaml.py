"""Both instance files against Dagster's own instance config schema, the pluggable classes'
config against each class's own config_type(), the local file loaded into a working
DagsterInstance, and the Docker run launcher driven up to the Docker API call (a stand-in client:
there is no Docker engine here) to show what a run container would get."""

import json
import shutil
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "dagster.yaml"
DOCKER = REPO / "docker" / "dagster.yaml"

# What docker-compose.yml gives the Dagster services (the password is .env.example's placeholder).
DOCKER_ENV = {
    "DAGSTER_POSTGRES_HOST": "postgres", "DAGSTER_POSTGRES_USER": "tennis",
    "DAGSTER_POSTGRES_PASSWORD": "change-me", "DAGSTER_POSTGRES_DB": "dagster",
    "DAGSTER_POSTGRES_PORT": "5432", "TENNIS_ASSETS_COURT": "",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "TENNIS_ASSETS_OPTUNA_STORAGE": "postgresql+psycopg2://tennis:change-me@postgres:5432/optuna",
    "TENNIS_ASSETS_HOME": "/data", "TENNIS_ASSETS_PROFILE": "quick",
    "TENNIS_ASSETS_ALERT_WEBHOOK": "",
}


def _home(tmp_path: Path, source: Path) -> Path:
    home = tmp_path / f"home_{source.parent.name}"
    home.mkdir()
    shutil.copy(source, home / "dagster.yaml")
    return home


@pytest.mark.parametrize("source", [LOCAL, DOCKER], ids=["local", "docker"])
def test_instance_file_passes_dagsters_own_validation(tmp_path, source):
    # The function DagsterInstance uses to read $DAGSTER_HOME/dagster.yaml: the instance schema
    # (dagster_instance_config_schema) plus its cross-field rules (storage vs *_storage,
    # concurrency vs run_queue / run_coordinator limits, pool limits).
    value, custom_class = dagster_instance_config(str(_home(tmp_path, source)))
    assert custom_class is None
    assert value["telemetry"] == {"enabled": False}
    assert value["concurrency"]["pools"]["default_limit"] == 1
    retries = value["run_retries"]
    assert retries == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    # A dead run's pool slots are given back (the kill -9 test is
    # tennis_assets_tests/faults/test_faults_dagster_slots.py).
    monitoring = value["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 30
    assert monitoring["poll_interval_seconds"] <= 30


def test_validation_rejects_mistakes(tmp_path):
    raw = yaml.safe_load(DOCKER.read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = [
        {**raw, "run_retries": {**raw["run_retries"], "max_retry": 1}},  # misspelt key
        # Queue limits in two places: Dagster refuses them beside `concurrency: runs:`.
        {**raw, "run_coordinator": {**raw["run_coordinator"], "config": {
            **raw["run_coordinator"]["config"], "max_concurrent_runs": 2}}},
        {**raw, "run_storage": {"module": "dagster_postgres", "class": "PostgresRunStorage",
                                "config": {}}},  # `storage:` and `run_storage:` together
    ]
    for case in cases:
        (bad / "dagster.yaml").write_text(yaml.safe_dump(case))
        with pytest.raises(dg.DagsterInvalidConfigError):
            dagster_instance_config(str(bad))


def test_docker_instance_classes_accept_their_config(tmp_path, monkeypatch):
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    ref = InstanceRef.from_dir(str(_home(tmp_path, DOCKER)))
    expected = {
        "run_storage_data": ("dagster_postgres", "PostgresRunStorage"),
        "event_storage_data": ("dagster_postgres", "PostgresEventLogStorage"),
        "schedule_storage_data": ("dagster_postgres", "PostgresScheduleStorage"),
        "storage_data": ("dagster_postgres", "DagsterPostgresStorage"),
        "run_coordinator_data": ("dagster._core.run_coordinator", "QueuedRunCoordinator"),
        "run_launcher_data": ("dagster_docker", "DockerRunLauncher"),
        "scheduler_data": ("dagster._core.scheduler", "DagsterDaemonScheduler"),
        "compute_logs_data": ("dagster._core.storage.local_compute_log_manager",
                              "LocalComputeLogManager"),
        "local_artifact_storage_data": ("dagster._core.storage.root", "LocalArtifactStorage"),
    }
    for attr, (module, cls_name) in expected.items():
        data: ConfigurableClassData = getattr(ref, attr)
        assert (data.module_name, data.class_name) == (module, cls_name), attr
        cls = _import(module, cls_name)
        result = process_config(cls.config_type(), yaml.safe_load(data.config_yaml) or {})
        assert result.success, (attr, [e.message for e in result.errors or []])

    # The storage would connect to this URL (env values resolved as in the containers).
    from dagster_postgres.utils import pg_url_from_config

    run_storage = _import("dagster_postgres", "PostgresRunStorage")
    storage_config = process_config(run_storage.config_type(),
                                    yaml.safe_load(ref.run_storage_data.config_yaml))
    assert pg_url_from_config(storage_config.value) == \
        "postgresql+psycopg2://tennis:change-me@postgres:5432/dagster"

    # Coordinator and launcher construct without a database or a Docker engine.
    coordinator = ref.run_coordinator_data.rehydrate(as_type=object)
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    # Dagster's storage directory (the tuning hand-off between worker steps) and the step logs
    # are on the data volume that every run container mounts.
    storage = ref.local_artifact_storage_data.rehydrate(as_type=object)
    assert storage.storage_dir == "/data/dagster/storage"
    launcher = ref.run_launcher_data.rehydrate(as_type=object)
    assert launcher.networks == ["tennis_assets"]
    assert launcher.image is None  # taken from DAGSTER_CURRENT_IMAGE via the code server


def _import(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def test_docker_instance_queue_and_retries(tmp_path, monkeypatch):
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    value, _ = dagster_instance_config(str(_home(tmp_path, DOCKER)))
    from dagster._core.instance.config import ConcurrencyConfig
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

    coordinator = QueuedRunCoordinator(**value["run_coordinator"]["config"])
    settings = ConcurrencyConfig.from_concurrency_settings(
        value["concurrency"], coordinator.get_run_queue_config())
    queue = settings.run_queue_config
    assert queue.max_concurrent_runs == 4
    keys = {limit["key"] for limit in queue.tag_concurrency_limits}
    assert keys == {"dagster/partition", "trigger", "dagster/backfill"}
    assert queue.max_user_code_failure_retries == 3
    assert settings.pool_config.default_pool_limit == 1


def _fake_docker():
    client = mock.MagicMock(name="docker client")
    client.containers.create.return_value = mock.MagicMock(id="c0ffee")
    return client


def _launch(tmp_path, container_context=None):
    """Launch a run through the docker/dagster.yaml launcher with a stand-in Docker client;
    returns the keyword arguments of the containers.create call."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.test_utils import create_run_for_test

    launcher_config = yaml.safe_load(DOCKER.read_text())["run_launcher"]
    image = "tennis-assets/user-code:0.1.0"
    origin = JobPythonOrigin(
        job_name="retrain",
        repository_origin=RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer("tennis_assets.definitions", "defs", None),
            container_image=image, container_context=container_context),
    )
    with dg.instance_for_test(overrides={"run_launcher": launcher_config},
                              temp_dir=str(tmp_path)) as instance:
        run = create_run_for_test(instance, job_name="retrain", job_code_origin=origin)
        client = _fake_docker()
        with mock.patch("docker.client.from_env", return_value=client):
            instance.run_launcher._launch_container_with_command(
                run, image, ["dagster", "api", "execute_run"])
        (call,) = client.containers.create.call_args_list
        client.containers.create.return_value.start.assert_called_once()
        return call.kwargs


def test_run_containers_get_volumes_network_and_environment(tmp_path, monkeypatch):
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    kwargs = _launch(tmp_path)
    assert kwargs["image"] == "tennis-assets/user-code:0.1.0"
    assert kwargs["network"] == "tennis_assets"
    assert kwargs["volumes"] == ["tennis_assets_data:/data",
                                 "tennis_assets_checkpoints:/data/models",
                                 "tennis_assets_artifacts:/data/assets"]
    env = kwargs["environment"]
    for key, value in DOCKER_ENV.items():
        assert env[key] == value
    assert kwargs["labels"]["com.tennis-assets.role"] == "dagster-run"
    assert "device_requests" not in kwargs

    # docker-py turns these into the container's HostConfig without complaint.
    from docker.types import HostConfig

    HostConfig(version="1.44", binds=kwargs["volumes"], network_mode=kwargs["network"])


def test_gpu_container_context_adds_a_device_request(tmp_path, monkeypatch):
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    override = yaml.safe_load((REPO / "docker" / "docker-compose.gpu.yml").read_text())
    context = json.loads(
        override["services"]["user_code"]["environment"]["DAGSTER_CONTAINER_CONTEXT"])
    kwargs = _launch(tmp_path, container_context=context)
    assert kwargs["device_requests"] == [
        {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    assert len(kwargs["volumes"]) == 3  # the instance's mounts are kept
    from docker.types import HostConfig

    config = HostConfig(version="1.44", binds=kwargs["volumes"],
                        device_requests=kwargs["device_requests"])
    assert config["DeviceRequests"][0]["Capabilities"] == [["gpu"]]


def test_local_instance_loads_and_runs_a_pooled_asset(tmp_path):
    home = _home(tmp_path, LOCAL)
    # Entered, as Dagster's own tools do: entering makes this instance's definitions-state
    # storage the current one, so loading the asset's definitions never resolves the storage
    # of an instance an earlier test left behind (CI saw 'undefined DagsterInstance weakref').
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config.max_concurrent_runs == 2
        assert instance.run_storage.__class__.__name__.startswith("Sqlite")

        @dg.asset(pool="training")
        def pooled() -> int:
            return 1

        result = dg.materialize([pooled], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("pooled")) is not None


def test_workspaces_load_as_dagster_reads_them():
    """Both workspace files through Dagster's own loader (schema and origins): the local one
    starts the module in a managed code server, the Docker one points at the user_code gRPC
    server; both name the location tennis_assets."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (local,) = location_origins_from_yaml_paths([str(REPO / "workspace.yaml")])
    assert local.location_name == "tennis_assets"
    assert type(local).__name__ == "ManagedGrpcPythonEnvCodeLocationOrigin"
    assert local.loadable_target_origin.module_name == "tennis_assets.definitions"
    (docker,) = location_origins_from_yaml_paths([str(REPO / "docker" / "workspace.yaml")])
    assert type(docker).__name__ == "GrpcServerCodeLocationOrigin"
    assert (docker.location_name, docker.host, docker.port) == ("tennis_assets", "user_code", 4000)
