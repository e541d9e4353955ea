"""docker/docker-compose.redis.yml: the Redis service and the tuning studies on it, checked as
data like the main compose file (no Docker engine here): the Compose schema, a health check, the
password only from docker/.env, and every service that opens a study pointed at Redis."""

import yaml

from .test_compose import (
    COMPOSE,
    DOCKER,
    INTERPOLATION,
    PLACEHOLDERS,
    _env_example,
    _environment,
    _resolve,
    _validator,
)

OVERRIDE = DOCKER / "docker-compose.redis.yml"


def test_redis_override_holds_the_service_and_points_the_studies_at_it():
    override = yaml.safe_load(OVERRIDE.read_text())
    base = yaml.safe_load(COMPOSE.read_text())
    assert not list(_validator().iter_errors(override))
    redis = override["services"]["redis"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis  # reached on the compose network only
    assert "tennis_assets_redis:/data" in redis["volumes"] and "--appendonly yes" in \
        redis["command"][-1]
    env = _env_example()
    password = INTERPOLATION.fullmatch(_environment(redis)["REDIS_PASSWORD"])
    assert password.group(2) == ":?" and env[password.group(1)] in PLACEHOLDERS
    url = "redis://:change-me@redis:6379/0"
    for name in ("user_code", "webserver", "daemon"):
        assert name in base["services"]
        assert _resolve(_environment(override["services"][name])
                        ["TENNIS_ASSETS_OPTUNA_STORAGE"], env) == url
    assert _resolve(_environment(override["services"]["optuna-dashboard"])["OPTUNA_STORAGE"],
                    env) == url
    for name in ("user_code", "daemon", "optuna-dashboard"):
        assert override["services"][name]["depends_on"]["redis"]["condition"] == \
            "service_healthy"
    # The daemon hands the storage variable on to every run container.
    launcher = yaml.safe_load((DOCKER / "dagster.yaml").read_text())["run_launcher"]["config"]
    assert "TENNIS_ASSETS_OPTUNA_STORAGE" in launcher["env_vars"]
    assert "redis==" in (DOCKER / "Dockerfile.optuna_dashboard").read_text()
