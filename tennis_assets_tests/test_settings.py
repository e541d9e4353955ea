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
