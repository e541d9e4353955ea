"""The repository is a `dg` project (Dagster 1.13's CLI): `dg check defs` validates the
Definitions and `dg list defs` shows the graph a user expects, in two groups."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _dg(*args: str) -> subprocess.CompletedProcess:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "VIRTUAL_ENV": str(venv),
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "TENNIS_ASSETS_HOME": os.environ.get("TENNIS_ASSETS_HOME", str(REPO / ".tennis_assets"))}
    return subprocess.run([str(venv / "bin" / "dg"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_dg_check_defs_passes():
    out = _dg("check", "defs")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_dg_list_defs_shows_the_graph_in_two_groups():
    out = _dg("list", "defs", "--json")
    assert out.returncode == 0, out.stderr
    defs = json.loads(out.stdout)
    groups = {a["asset_key"]: a["group_name"] for a in defs["assets"]}
    assert groups == {"tuning_study": "candidates", "trained_agents": "candidates",
                      "evaluation_report": "candidates", "challenger_model": "production",
                      "production_model": "production", "production_monitoring": "production"}
    assert {j["name"] for j in defs["jobs"]} >= {"tune", "retrain", "promote", "rollback",
                                                 "monitor", "run_pipeline"}
    assert {s["name"] for s in defs["sensors"]} == {
        "promote_better_model", "monitor_new_champion", "retrain_on_drift",
        "alert_on_failed_runs", "announce_champion_changes", "alert_on_failed_checks"}
    checks = {c["key"] for c in defs["asset_checks"]}
    assert "challenger_model:challenger_loads_and_plays" in checks
