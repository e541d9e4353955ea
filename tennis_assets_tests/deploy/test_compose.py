"""docker/docker-compose.yml (and the GPU override) against the Compose Specification schema, and
what the stack must hold: its services, a health check on each, depends_on waiting for health,
no secret in the repository, ports on loopback only, and the named volumes that the user-code
server and every run container share.

There is no Docker engine (nor a Compose binary) on the machines that run these tests, so the
file is checked as data: the official schema (a copy in docker/schema/, see its README) plus
these rules."""

import copy
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
GPU_OVERRIDE = DOCKER / "docker-compose.gpu.yml"
PODMAN_OVERRIDE = DOCKER / "docker-compose.podman.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
SCHEMA = DOCKER / "schema" / "compose-spec.json"
SHARED_SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"

SERVICES = {"postgres", "user_code", "webserver", "daemon", "mlflow", "optuna-dashboard",
            "policy-server", "prometheus", "alertmanager", "grafana", "jupyter"}
PLACEHOLDERS = {"", "change-me"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL",
                         re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def instance_yaml() -> dict:
    return _load(DOCKER / "dagster.yaml")


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _resolve(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation, with `env` standing for docker/.env."""
    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("-"):
            return arg
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return ""
    return INTERPOLATION.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]  # what the schema declares
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("path", [COMPOSE, GPU_OVERRIDE, PODMAN_OVERRIDE], ids=lambda p: p.name)
def test_compose_file_follows_the_compose_specification(path):
    errors = sorted(_validator().iter_errors(_load(path)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_mistakes(compose):
    validator = _validator()
    broken = copy.deepcopy(compose)
    broken["services"]["webserver"]["healthcheck"]["intervall"] = "10s"  # a misspelt key
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["user_code"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert not validator.is_valid(broken)


def test_schema_copy_matches_the_shared_one():
    if not SHARED_SCHEMA.exists():
        pytest.skip("../shared/schemas is not beside this checkout")
    assert SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()


def test_services(compose):
    assert set(compose["services"]) == SERVICES


def test_every_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck.{key}"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    assert services["postgres"].get("depends_on") is None
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and spec.get("condition") == "service_healthy", \
                f"{name} -> {dep}"
            assert "healthcheck" in services[dep]
    needs = {"user_code": {"postgres"}, "webserver": {"postgres", "user_code"},
             "daemon": {"postgres", "user_code"}, "mlflow": {"postgres"},
             "optuna-dashboard": {"postgres"}, "policy-server": {"mlflow"}}
    for name, deps in needs.items():
        assert deps <= set(services[name]["depends_on"]), name


def _published(service: dict) -> list[tuple[str, str, str]]:
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), str(port.get("published", "")),
                        str(port["target"])))
        else:
            parts = str(port).split(":")
            assert len(parts) == 3, f"{port}: publish as HOST_IP:HOST_PORT:CONTAINER_PORT"
            out.append(tuple(parts))
    return out


def test_published_ports_are_bound_to_loopback(compose):
    published = {}
    for name, service in compose["services"].items():
        for host_ip, host_port, target in _published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {host_port} on {host_ip or 'all'}"
            assert host_port not in published, f"{host_port} published twice"
            published[host_port] = name
    assert published == {"3000": "webserver", "5000": "mlflow", "8080": "optuna-dashboard",
                         "8000": "policy-server", "9090": "prometheus", "9093": "alertmanager",
                         "3001": "grafana", "8888": "jupyter"}
    # Databases and the gRPC server stay on the compose network.
    for name in ("postgres", "user_code", "daemon"):
        assert not compose["services"][name].get("ports"), name


def test_no_secret_in_the_compose_file(compose):
    env_example = _env_example()
    for path in (COMPOSE, GPU_OVERRIDE, PODMAN_OVERRIDE):
        text = path.read_text()
        # Credentials inside URLs only through interpolation.
        for m in re.finditer(r"://([^/@\s\"']+)@", text):
            assert INTERPOLATION.sub("", m.group(1)) in ("", ":"), m.group(0)
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                m = INTERPOLATION.fullmatch(value)
                assert m and m.group(2) == ":?", \
                    f"{name}.{key} must be ${{VAR:?...}} from docker/.env, not {value!r}"
                assert env_example.get(m.group(1)) in PLACEHOLDERS, m.group(1)
    # Every required variable is in the example file, with a placeholder where it is a secret.
    required = {m.group(1) for value in _strings(compose)
                for m in INTERPOLATION.finditer(value) if m.group(2) == ":?"}
    assert required == {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "JUPYTER_TOKEN"}
    assert required <= set(env_example)


def test_env_example_holds_placeholders_only():
    values = _env_example()
    for key, value in values.items():
        if SECRET_NAME.search(key):
            assert value in PLACEHOLDERS, f"{key}={value!r} in .env.example"
        assert not re.search(r"://[^/\s]*:[^/\s]*@", value), f"{key}: credentials in a URL"
    # The real .env is never committed.
    assert ".env" in (DOCKER / ".gitignore").read_text().split()
    tracked = subprocess.run(["git", "ls-files", "docker"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "docker/.env" not in tracked


def test_resolved_environment_of_the_user_code(compose):
    env = {k: _resolve(v, _env_example()) for k, v in
           _environment(compose["services"]["user_code"]).items()}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["TENNIS_ASSETS_OPTUNA_STORAGE"] == \
        "postgresql+psycopg2://tennis:change-me@postgres:5432/optuna"
    assert env["TENNIS_ASSETS_HOME"] == "/data"
    assert env["DAGSTER_CURRENT_IMAGE"] == compose["services"]["user_code"]["image"]
    assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert env["DAGSTER_POSTGRES_DB"] == "dagster"
    # The databases the services use are the ones the postgres init script creates.
    init = (DOCKER / "postgres" / "init-databases.sh").read_text()
    assert re.search(r"for db in dagster mlflow optuna", init)
    mlflow_env = _resolve(_environment(compose["services"]["mlflow"])["MLFLOW_BACKEND_STORE_URI"],
                          _env_example())
    assert mlflow_env == "postgresql+psycopg2://tennis:change-me@postgres:5432/mlflow"
    dashboard = _resolve(_environment(compose["services"]["optuna-dashboard"])["OPTUNA_STORAGE"],
                         _env_example())
    assert dashboard == env["TENNIS_ASSETS_OPTUNA_STORAGE"]


def test_mlflow_accepts_the_host_name_clients_use(compose):
    command = compose["services"]["mlflow"]["command"]
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert "mlflow:5000" in allowed and "localhost:5000" in allowed
    # MLflow's own Host-header check: its defaults (localhost, private IPs) refuse the service
    # name that run containers use in MLFLOW_TRACKING_URI; the list passed here accepts it.
    from mlflow.server.security_utils import get_default_allowed_hosts, is_allowed_host_header

    assert not is_allowed_host_header(get_default_allowed_hosts(), "mlflow:5000")
    for host in ("mlflow:5000", "127.0.0.1:5000", "localhost:5000"):
        assert is_allowed_host_header(allowed, host), host
    assert "--serve-artifacts" in command
    assert "/mlartifacts" in " ".join(compose["services"]["mlflow"]["volumes"])


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of each volume mount (short syntax)."""
    out = {}
    for entry in service.get("volumes") or []:
        parts = entry.split(":")
        out[parts[1]] = parts[0]
    return out


def test_named_volumes_shared_by_user_code_and_run_containers(compose, instance_yaml):
    volumes = compose["volumes"]
    # Fixed names, so that the run launcher (outside compose) finds the same volumes.
    for key, spec in volumes.items():
        assert spec["name"] == key
    user_code = _mounts(compose["services"]["user_code"])
    assert user_code["/data/models"] == "tennis_assets_checkpoints"  # checkpoint store
    assert user_code["/data/assets"] == "tennis_assets_artifacts"  # asset values
    assert user_code["/data"] == "tennis_assets_data"

    launcher = instance_yaml["run_launcher"]["config"]
    run_mounts = {v.split(":")[1]: v.split(":")[0] for v in launcher["container_kwargs"]["volumes"]}
    assert run_mounts == user_code
    for source in run_mounts.values():
        assert source in volumes
    assert launcher["network"] == compose["networks"]["tennis_assets"]["name"]
    for name, service in compose["services"].items():
        assert service["networks"] == ["tennis_assets"], name
    # The policy server reads checkpoints, never writes them.
    assert "tennis_assets_checkpoints:/data/models:ro" in \
        compose["services"]["policy-server"]["volumes"]


def test_run_containers_get_every_variable_they_need(compose, instance_yaml):
    """DockerRunLauncher copies each name in env_vars from the daemon's environment and fails the
    launch when one is unset."""
    names = instance_yaml["run_launcher"]["config"]["env_vars"]
    daemon_env = _environment(compose["services"]["daemon"])
    assert set(names) <= set(daemon_env)
    assert {"MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE", "TENNIS_ASSETS_HOME",
            "DAGSTER_POSTGRES_PASSWORD"} <= set(names)
    # The instance's storage reads these names too.
    storage = instance_yaml["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "username", "password", "db_name"):
        assert storage[field]["env"] in daemon_env
        assert storage[field]["env"] in _environment(compose["services"]["webserver"])


def test_dagster_services_reach_the_code_server(compose):
    workspace = _load(DOCKER / "workspace.yaml")
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] in compose["services"]
    command = compose["services"][server["host"]]["command"]
    assert command[command.index("-p") + 1] == str(server["port"])
    assert command[command.index("--location-name") + 1] == server["location_name"]
    assert "tennis_assets.definitions" in command
    top_level = _load(REPO / "workspace.yaml")["load_from"][0]["python_module"]
    assert top_level["location_name"] == server["location_name"]
    for name in ("webserver", "daemon"):
        assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"][name]["volumes"]
        assert "/opt/dagster/dagster_home/workspace.yaml" in compose["services"][name]["command"]
    # The UI reads the run containers' step logs from the data volume.
    instance = _load(DOCKER / "dagster.yaml")
    logs = instance["compute_logs"]["config"]["base_dir"]
    assert logs.startswith("/data/")
    assert instance["local_artifact_storage"]["config"]["base_dir"].startswith("/data/")
    # Created in the image, so the fresh data volume starts with them owned by the run user.
    dockerfile = (DOCKER / "Dockerfile.user_code").read_text()
    assert logs in dockerfile and "/data/dagster/storage" in dockerfile
    assert "tennis_assets_data:/data:ro" in compose["services"]["webserver"]["volumes"]


def test_builds_point_at_files_and_stages_that_exist(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), name
            assert not service["image"].endswith(":latest"), name
            continue
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO
        dockerfile = context / build["dockerfile"]
        assert dockerfile.exists(), dockerfile
        if "target" in build:
            assert re.search(rf"^FROM .+ AS {re.escape(build['target'])}$",
                             dockerfile.read_text(), re.MULTILINE), (name, build["target"])


def test_bind_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        for source in _mounts(service).values():
            if source.startswith((".", "/")) and not source.startswith("/var/run/"):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"


def test_gpu_override(compose):
    from dagster_docker.container_context import DockerContainerContext
    from docker.types import DeviceRequest

    override = _load(GPU_OVERRIDE)
    assert set(override["services"]) <= set(compose["services"])
    user_code = override["services"]["user_code"]
    devices = user_code["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    context = json.loads(user_code["environment"]["DAGSTER_CONTAINER_CONTEXT"])
    parsed = DockerContainerContext.create_from_config(context)
    for request in parsed.container_kwargs["device_requests"]:
        DeviceRequest(**request)  # docker-py builds the same object when it creates a container
    # The CUDA build of torch comes from the build argument, CPU by default.
    assert compose["services"]["user_code"]["build"]["args"]["TORCH_INDEX_URL"] == \
        "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"


def test_podman_override_only_moves_the_engine_socket(compose):
    """scripts/stack-test.sh's override changes nothing but where the Docker API socket comes
    from; compose replaces the shipped mount because the container path is the same."""
    override = _load(PODMAN_OVERRIDE)
    assert set(override["services"]) == {"webserver", "daemon"}
    for name, service in override["services"].items():
        assert set(service) == {"volumes"}, name
        (mount,) = service["volumes"]
        assert mount.endswith(":/var/run/docker.sock")
        assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"][name]["volumes"]


def test_policy_server_command_and_health_path_exist(compose):
    """The command is the package's own CLI and the health check asks an endpoint it has (the
    server module is read as text: the check is about the route table, not the server)."""
    from tennis_assets.cli import build_parser

    service = compose["services"]["policy-server"]
    command = service["command"]
    assert command[0] == "tennis-assets"
    args = build_parser().parse_args(command[1:])
    assert (args.host, args.port) == ("0.0.0.0", 8000)
    assert _published(service) == [("127.0.0.1", "8000", str(args.port))]
    probe = " ".join(service["healthcheck"]["test"])
    path = re.search(r"localhost:8000(/\w+)", probe).group(1)
    routes = (REPO / "tennis_assets" / "serving" / "app.py").read_text()
    assert f'"{path}": ("' in routes, path
    # Prometheus scrapes it by service name and port.
    scrape = (DOCKER / "prometheus" / "prometheus.yml").read_text()
    assert "policy-server:8000" in scrape


def test_postgres_init_script_creates_the_missing_databases(tmp_path):
    """The script's logic, with a stand-in psql that logs its calls: the image has already made
    POSTGRES_DB (dagster); the script adds mlflow and optuna, and is safe to run again."""
    script = DOCKER / "postgres" / "init-databases.sh"
    assert script.stat().st_mode & 0o111, "the image runs executable init scripts directly"
    log = tmp_path / "psql.log"
    stub = tmp_path / "bin" / "psql"
    stub.parent.mkdir()
    stub.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'case "$*" in *"datname = \'dagster\'"*) echo 1 ;; esac\n')
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin", "POSTGRES_USER": "tennis"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    creates = [line for line in log.read_text().splitlines() if "CREATE DATABASE" in line]
    assert creates == [('-v ON_ERROR_STOP=1 --username tennis --dbname postgres '
                        '-c CREATE DATABASE "mlflow" OWNER "tennis"'),
                       ('-v ON_ERROR_STOP=1 --username tennis --dbname postgres '
                        '-c CREATE DATABASE "optuna" OWNER "tennis"')]
