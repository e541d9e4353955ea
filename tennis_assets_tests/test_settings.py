import os
from pathlib import Path

import pytest

from tennis_assets import settings


def test_data_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "home"))
    assert settings.data_dir() == (tmp_path / "home").resolve()
    assert settings.runs_dir() == (tmp_path / "home" / "runs").resolve()


def test_data_dir_defaults_to_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.data_dir() == Path(tmp_path / ".tennis_assets").resolve()


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(target))
    with pytest.raises(NotADirectoryError, match="not-a-folder"):
        settings.data_dir()


def test_every_config_rejects_unknown_keys_by_name():
    from tennis_assets.agents import AgentConfig
    from tennis_assets.sim import CourtParams
    from tennis_assets.training import TrainConfig

    for cls in (CourtParams, AgentConfig, TrainConfig):
        assert cls.from_dict(cls().to_dict()) == cls()
        with pytest.raises(ValueError, match=r"gravty: unknown field; .*known: "):
            cls.from_dict({"gravty": -9.81})
        with pytest.raises(ValueError, match="expected a mapping"):
            cls.from_dict([("seed", 1)])


def test_database_url_names_the_installed_postgresql_driver():
    from tennis_assets.settings import database_url

    assert database_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg2://u:p@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_retrain_threshold_from_environment(monkeypatch):
    monkeypatch.delenv("TENNIS_ASSETS_RETRAIN_ON_DRIFT", raising=False)
    assert settings.retrain_on_drift() == "warning"
    monkeypatch.setenv("TENNIS_ASSETS_RETRAIN_ON_DRIFT", "Critical")
    assert settings.retrain_on_drift() == "critical"
    monkeypatch.setenv("TENNIS_ASSETS_RETRAIN_ON_DRIFT", "off")
    assert settings.retrain_on_drift() is None
    monkeypatch.setenv("TENNIS_ASSETS_RETRAIN_ON_DRIFT", "sometimes")
    with pytest.raises(ValueError, match="TENNIS_ASSETS_RETRAIN_ON_DRIFT"):
        settings.retrain_on_drift()


def test_profile_from_environment_names_a_bad_value(monkeypatch):
    monkeypatch.delenv("TENNIS_ASSETS_PROFILE", raising=False)
    assert settings.profile() == "quick"
    monkeypatch.setenv("TENNIS_ASSETS_PROFILE", "tiny")
    assert settings.profile() == "tiny"
    monkeypatch.setenv("TENNIS_ASSETS_PROFILE", "huge")
    with pytest.raises(ValueError, match="TENNIS_ASSETS_PROFILE='huge'"):
        settings.profile()


def test_optuna_storage_and_webhook_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("TENNIS_ASSETS_OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("TENNIS_ASSETS_ALERT_WEBHOOK", raising=False)
    assert settings.optuna_storage() == f"journal:{tmp_path.resolve() / 'optuna' / 'journal.log'}"
    assert settings.alert_webhook() == ""
    monkeypatch.setenv("TENNIS_ASSETS_OPTUNA_STORAGE", "sqlite:///x.db")
    monkeypatch.setenv("TENNIS_ASSETS_ALERT_WEBHOOK", "http://hooks.example/T0/secret")
    assert settings.optuna_storage() == "sqlite:///x.db"
    assert settings.alert_webhook() == "http://hooks.example/T0/secret"


def test_only_settings_reads_the_environment():
    """Every variable the package reads is read (and validated) in tennis_assets/settings.py,
    so docs/configuration.md can list them all."""
    import ast

    package = Path(settings.__file__).parent
    readers = []
    for path in sorted(package.rglob("*.py")):
        if path == Path(settings.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.append(f"{path.relative_to(package)}:{node.lineno}")
    assert readers == []


def test_training_slots_default_to_the_cores_and_name_a_bad_value(monkeypatch):
    monkeypatch.delenv("TENNIS_ASSETS_TRAINING_SLOTS", raising=False)
    assert settings.training_slots() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("TENNIS_ASSETS_TRAINING_SLOTS", "3")
    assert settings.training_slots() == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv("TENNIS_ASSETS_TRAINING_SLOTS", bad)
        with pytest.raises(ValueError, match="TENNIS_ASSETS_TRAINING_SLOTS"):
            settings.training_slots()
