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
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['gravty'\]"):
            cls.from_dict({"gravty": -9.81})
        with pytest.raises(ValueError, match="expects a dict"):
            cls.from_dict([("seed", 1)])


def test_database_url_names_the_installed_postgresql_driver():
    from tennis_assets.settings import database_url

    assert database_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg2://u:p@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
