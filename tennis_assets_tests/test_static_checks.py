"""The static checks the developer guide requires, run for real: ruff (default rules, C901
max-complexity 15: [tool.ruff] in pyproject.toml) and mypy ([tool.mypy]: the package, pydantic
plugin, untyped bodies checked) report nothing. Their own output is the failure message."""

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Everything of ours that is Python: the package, its tests, the benchmarks, the scripts and
# the deployment helpers.
RUFF_PATHS = ("tennis_assets", "tennis_assets_tests", "bench", "scripts", "deploy", "docker")


def _tool(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # The tools of this interpreter's environment, the versions the test extra pins.
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _pinned(name: str) -> str:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in extras["optional-dependencies"]["test"]:
        match = re.fullmatch(rf"{name}==(\S+)", requirement)
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned (==) in the test extra")


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_the_checkers_are_the_pinned_versions(tool):
    """Another version may add or drop rules: the results below are those of the pins."""
    assert metadata.version(tool) == _pinned(tool)


def test_ruff_reports_nothing():
    out = _tool("ruff", "check", "--output-format", "concise", *RUFF_PATHS, timeout=300)
    assert out.returncode == 0, f"ruff check {' '.join(RUFF_PATHS)}:\n{out.stdout}{out.stderr}"
    assert "All checks passed!" in out.stdout


@pytest.mark.slow
def test_mypy_reports_nothing():
    # Incremental: the cache in .mypy_cache (ignored by git) makes a rerun take seconds; a
    # fresh checkout checks everything once (about a minute on two cores).
    out = _tool("mypy", timeout=600)
    assert out.returncode == 0, f"mypy:\n{out.stdout}{out.stderr}"
    assert out.stdout.startswith("Success: no issues found"), out.stdout
