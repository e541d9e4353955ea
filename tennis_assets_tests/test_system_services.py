"""A missing system service skips on a developer's machine and fails in CI."""

import pytest

from tennis_assets_tests.system_services import REQUIRE_ENV, missing


def test_missing_service_skips_by_default(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        missing("promtool", "prometheus")


def test_missing_service_fails_where_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="required here"):
        missing("promtool", "prometheus")
