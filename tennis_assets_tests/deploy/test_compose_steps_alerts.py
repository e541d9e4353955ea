"""What the compose stack adds for steps in containers and for alerts, checked as data (the
stack test runs both for real): the container context that gives run containers the engine's
socket, what docker_executor's step containers get from it, and Alertmanager wired between
Prometheus and the alert webhook."""

import json
import re
from pathlib import Path

import yaml
from dagster_docker.container_context import DockerContainerContext
from docker.types import HostConfig

from .test_compose import _env_example, _environment, _resolve

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def _compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def _contexts(env: dict[str, str]) -> tuple[DockerContainerContext, DockerContainerContext]:
    """(a run container's context, a tune_in_containers step container's context), merged in
    the order DockerRunLauncher and docker_executor's step handler merge them."""
    from tennis_assets.defs.step_jobs import STEP_CONTAINER_KWARGS

    launcher = yaml.safe_load((DOCKER / "dagster.yaml").read_text())["run_launcher"]["config"]
    raw = _resolve(_environment(_compose()["services"]["user_code"])
                   ["DAGSTER_CONTAINER_CONTEXT"], env)
    run = DockerContainerContext(env_vars=launcher["env_vars"], networks=[launcher["network"]],
                                 container_kwargs=launcher["container_kwargs"]).merge(
        DockerContainerContext.create_from_config(json.loads(raw)))
    step = run.merge(DockerContainerContext(container_kwargs=STEP_CONTAINER_KWARGS))
    return run, step


def test_run_containers_get_the_engine_socket_and_steps_do_not():
    run, step = _contexts(_env_example())
    data = ["tennis_assets_data:/data", "tennis_assets_checkpoints:/data/models",
            "tennis_assets_artifacts:/data/assets"]
    socket = {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}
    assert run.container_kwargs["volumes"] == data and run.container_kwargs["mounts"] == [socket]
    assert run.container_kwargs["group_add"] == ["0"]
    assert run.container_kwargs["labels"]["com.tennis-assets.role"] == "dagster-run"
    # Each step: the same volumes, network and variables (the study's hand-off lives in
    # /data/dagster/storage), its own label, no socket.
    assert step.container_kwargs["volumes"] == data and step.container_kwargs["mounts"] == []
    assert step.container_kwargs["labels"] == {"com.tennis-assets.role": "dagster-step"}
    assert step.networks == ["tennis_assets"] and step.env_vars == run.env_vars
    # docker-py builds both containers' HostConfig from these.
    for context in (run, step):
        kwargs = context.container_kwargs
        HostConfig(version="1.44", binds=kwargs["volumes"], mounts=kwargs["mounts"],
                   group_add=kwargs.get("group_add"), network_mode="tennis_assets")

    # A Docker host: its socket and its docker group from .env.
    run, _ = _contexts({**_env_example(), "DOCKER_SOCKET": "/run/user/docker.sock",
                        "DOCKER_GID": "998"})
    assert run.container_kwargs["mounts"][0]["Source"] == "/run/user/docker.sock"
    assert run.container_kwargs["group_add"] == ["998"]


def test_the_gpu_override_keeps_the_socket():
    base = json.loads(_resolve(_environment(_compose()["services"]["user_code"])
                               ["DAGSTER_CONTAINER_CONTEXT"], _env_example()))
    gpu = json.loads(_resolve(_environment(_compose("docker-compose.gpu.yml")["services"]
                                           ["user_code"])["DAGSTER_CONTAINER_CONTEXT"],
                              _env_example()))
    # The override's value replaces the base one: it must carry the base's kwargs too.
    assert base["docker"]["container_kwargs"].items() <= gpu["docker"]["container_kwargs"].items()
    assert "device_requests" in gpu["docker"]["container_kwargs"]


def test_the_tune_in_containers_job_runs_steps_with_docker_executor():
    from tennis_assets.definitions import defs

    job = defs.resolve_job_def("tune_in_containers")
    assert job.executor_def.name == "docker_steps"
    tune = defs.resolve_job_def("tune")
    assert {n.name for n in job.graph.node_defs} == {n.name for n in tune.graph.node_defs}


def test_prometheus_alertmanager_and_the_webhook_are_wired():
    compose = _compose()
    services = compose["services"]
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    (manager,) = prometheus["alerting"]["alertmanagers"]
    (target,) = manager["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services and f"--web.listen-address=:{port}" in services[host]["command"]
    assert services["prometheus"]["depends_on"][host]["condition"] == "service_healthy"
    # The webhook Dagster's alerts go to, and no other.
    assert _environment(services[host])["TENNIS_ASSETS_ALERT_WEBHOOK"] == \
        compose["x-dagster-env"]["TENNIS_ASSETS_ALERT_WEBHOOK"]
    # start.sh writes the URL where the config reads it, and starts the mounted config.
    start = (DOCKER / "alertmanager" / "start.sh").read_text()
    config = yaml.safe_load((DOCKER / "alertmanager" / "alertmanager.yml").read_text())
    run_dir = re.search(r"^run=(\S+)$", start, re.MULTILINE).group(1)
    (receiver,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    assert receiver["slack_configs"][0]["api_url_file"] == f"{run_dir}/webhook-url"
    config_path = re.search(r"^config=(\S+)$", start, re.MULTILINE).group(1)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services[host]["volumes"]}
    assert mounts[config_path] == "./alertmanager/alertmanager.yml"
    assert services[host]["entrypoint"][-1] in mounts
    assert mounts[services[host]["entrypoint"][-1]] == "./alertmanager/start.sh"
    # Without a webhook it routes to the receiver that sends nothing.
    assert "receiver: nowhere" in start and \
        "nowhere" in {r["name"] for r in config["receivers"]}


def test_the_stack_tests_webhook_override_follows_the_compose_specification():
    from .test_compose import _validator

    path = DOCKER / "podman" / "docker-compose.alert-receiver.yml"
    override = yaml.safe_load(path.read_text())
    errors = list(_validator().iter_errors(override))
    assert not errors, [e.message for e in errors]
    (service,) = override["services"].values()
    source = service["volumes"][0].split(":")[0]
    assert (DOCKER / source).resolve() == DOCKER / "podman" / "alert_receiver.py"
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
