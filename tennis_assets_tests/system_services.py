"""What a test does when a system service it needs (PostgreSQL, Prometheus, Chromium) is not
installed: skip with the package to install on a developer's machine, fail in CI.

`.ci/run` installs Debian's packages and sets TENNIS_ASSETS_TESTS_REQUIRE_SERVICES=1, so a
package that went missing there fails loudly instead of quietly skipping the tests that matter.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ENV = "TENNIS_ASSETS_TESTS_REQUIRE_SERVICES"


def missing(what: str, install: str) -> None:
    message = f"{what} not found: apt-get install {install}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: required here)", pytrace=False)
    pytest.skip(message)
