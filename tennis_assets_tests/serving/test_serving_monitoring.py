"""The drift-monitoring result file as gauges: absent file -> no gauges, a good file -> every
gauge, a change -> re-read, a malformed file -> counted and logged, last good result kept."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tennis_assets.serving.monitoring import MonitoringCollector, default_monitoring_file

RESULT = {"time": "2026-11-27T06:00:00+00:00", "model_version": "3",
          "court": {"ball_scale": 1.0, "racket_angle_deg": 55.0, "gravity": -19.62,
                    "real_ball_velocity": False, "max_decisions": 1000},
          "episodes": 100, "mean": 0.41, "baseline_mean": 1.2, "statistic": 812.5,
          "p_value": 0.0003, "test": "mann-whitney-u", "drifted": True, "severity": "critical"}


def samples(collector) -> dict:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels):
    return found.get((name, tuple(sorted(labels.items()))))


def write(path, doc, mtime_step: int = 0) -> None:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    # Two writes within the filesystem's timestamp granularity must still look different.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + mtime_step * 1_000_000))


def test_default_path_is_in_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path))
    assert default_monitoring_file() == tmp_path / "monitoring" / "latest.json"


def test_missing_file_exports_no_monitoring_gauges(tmp_path):
    found = samples(MonitoringCollector(tmp_path / "monitoring" / "latest.json"))
    assert list(found) == [("tennis_monitoring_read_errors_total", ())]


def test_result_becomes_gauges_and_changes_are_reread(tmp_path):
    path = tmp_path / "latest.json"
    write(path, RESULT)
    collector = MonitoringCollector(path)
    found = samples(collector)
    assert value(found, "tennis_monitoring_score_mean") == 0.41
    assert value(found, "tennis_monitoring_baseline_score_mean") == 1.2
    assert value(found, "tennis_monitoring_drift_p_value") == 0.0003
    assert value(found, "tennis_monitoring_drift_statistic") == 812.5
    assert value(found, "tennis_monitoring_drifted") == 1
    assert value(found, "tennis_monitoring_drift_severity") == 2
    assert value(found, "tennis_monitoring_episodes") == 100
    assert value(found, "tennis_monitoring_last_run_timestamp_seconds") == datetime(
        2026, 11, 27, 6, tzinfo=UTC).timestamp()
    assert value(found, "tennis_monitoring_run_info", model_version="3",
                 test="mann-whitney-u") == 1
    assert value(found, "tennis_monitoring_court_parameter", parameter="gravity") == -19.62

    write(path, {**RESULT, "mean": 1.15, "drifted": False, "severity": "none",
                 "p_value": 0.62}, mtime_step=5)
    found = samples(collector)
    assert value(found, "tennis_monitoring_score_mean") == 1.15
    assert value(found, "tennis_monitoring_drifted") == 0
    assert value(found, "tennis_monitoring_drift_severity") == 0

    path.unlink()  # removed: no result any more, not a stale one
    assert "tennis_monitoring_score_mean" not in {k[0] for k in samples(collector)}


@pytest.mark.parametrize("bad", [
    "{not json", "[1, 2]", json.dumps({**RESULT, "time": "yesterday"}),
    json.dumps({**RESULT, "mean": "high"}), json.dumps({**RESULT, "drifted": "yes"}),
    json.dumps({**RESULT, "p_value": 1.5}), json.dumps({**RESULT, "severity": "panic"}),
    json.dumps({k: v for k, v in RESULT.items() if k != "baseline_mean"}),
])
def test_malformed_file_is_counted_logged_and_keeps_the_last_good_result(tmp_path, caplog, bad):
    path = tmp_path / "latest.json"
    write(path, RESULT)
    collector = MonitoringCollector(path)
    assert value(samples(collector), "tennis_monitoring_score_mean") == 0.41
    write(path, bad, mtime_step=5)
    with caplog.at_level(logging.WARNING, logger="tennis_assets.serving.monitoring"):
        found = samples(collector)
        found_again = samples(collector)  # unchanged file: not re-parsed, not re-counted
    assert value(found, "tennis_monitoring_read_errors_total") == 1
    assert value(found_again, "tennis_monitoring_read_errors_total") == 1
    assert value(found, "tennis_monitoring_score_mean") == 0.41
    assert "unreadable" in caplog.text and str(path) in caplog.text


MPE_RESULT = {
    **{k: v for k, v in RESULT.items() if k != "court"},
    "environment": {"env": "pettingzoo:mpe2.simple_spread_v3:parallel_env",
                    "env_kwargs": {"continuous_actions": True, "N": 3}, "scoring": None,
                    "solve_score": None},
    # What an environment's keyword arguments may hold besides numbers.
    "court": {"continuous_actions": True, "N": 3, "local_ratio": 0.5, "render_mode": None,
              "name": "spread", "sizes": [1, 2], "nested": {"a": 1}, "huge": 1e400,
              "long": "x" * 500},
}


def test_an_environment_with_non_numeric_keyword_arguments(tmp_path):
    """Numbers (and booleans, as 0/1) are court parameters as for Tennis; the rest one info
    series each with their JSON text; the environment an info series of its own."""
    path = tmp_path / "latest.json"
    # json.dumps writes 1e400 as Infinity: a non-finite number, dropped, never an error.
    write(path, MPE_RESULT)
    found = samples(MonitoringCollector(path))
    assert value(found, "tennis_monitoring_score_mean") == 0.41
    params = {dict(k[1])["parameter"]: v for k, v in found.items()
              if k[0] == "tennis_monitoring_court_parameter"}
    assert params == {"continuous_actions": 1.0, "N": 3.0, "local_ratio": 0.5}
    settings = {dict(k[1])["parameter"]: dict(k[1])["value"] for k, v in found.items()
                if k[0] == "tennis_monitoring_court_setting_info" and v == 1}
    assert settings == {"render_mode": "null", "name": "spread", "sizes": "[1, 2]",
                        "nested": '{"a": 1}', "long": "x" * 200}
    assert value(found, "tennis_monitoring_environment_info",
                 environment="pettingzoo:mpe2.simple_spread_v3:parallel_env") == 1
    assert value(found, "tennis_monitoring_run_info", model_version="3",
                 test="mann-whitney-u") == 1


def test_a_result_without_an_environment_is_tennis_and_a_bad_one_is_counted(tmp_path):
    path = tmp_path / "latest.json"
    write(path, RESULT)  # written before environments: Tennis, its court all numbers
    collector = MonitoringCollector(path)
    found = samples(collector)
    assert value(found, "tennis_monitoring_environment_info", environment="tennis") == 1
    assert value(found, "tennis_monitoring_court_parameter", parameter="max_decisions") == 1000
    assert not any(k[0] == "tennis_monitoring_court_setting_info" for k in found)
    write(path, {**RESULT, "environment": "tennis"}, mtime_step=5)  # the spec alone
    assert value(samples(collector), "tennis_monitoring_environment_info",
                 environment="tennis") == 1
    write(path, {**RESULT, "environment": 7}, mtime_step=10)
    found = samples(collector)
    assert value(found, "tennis_monitoring_read_errors_total") == 1
    assert value(found, "tennis_monitoring_environment_info", environment="tennis") == 1


def test_the_monitoring_writers_record_of_another_environment_becomes_gauges(tmp_path):
    """The file as the monitoring workflow writes it (write_result of a MonitoringRecord, its
    environment a whole EnvironmentConfig) reads back into the gauges."""
    from tennis_assets.envs import EnvironmentConfig
    from tennis_assets.workflow.monitoring import MonitoringRecord
    from tennis_assets.workflow.monitoring_file import write_result

    env = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                            env_kwargs={"continuous_actions": True, "max_cycles": 25,
                                        "render_mode": None})
    record = MonitoringRecord(
        time="2026-12-01T06:00:00+00:00", model_name="team", model_version="4",
        environment=env, court=dict(env.env_kwargs), court_overrides={},
        court_source="the conditions the champion was judged on", seed=3, baseline_source="x",
        statistic=40.0, p_value=0.2, mean=-20.5, baseline_mean=-21.0, mean_drop=-0.5,
        episodes=20, baseline_episodes=20, drifted=False, severity="none",
        test="mann-whitney-u", rules=[], scores=[-20.5] * 20)
    latest = write_result(tmp_path, record)
    found = samples(MonitoringCollector(latest, served_version=lambda: "4"))
    assert value(found, "tennis_monitoring_score_mean") == -20.5
    assert value(found, "tennis_monitoring_environment_info", environment=env.env) == 1
    assert value(found, "tennis_monitoring_court_parameter", parameter="max_cycles") == 25
    assert value(found, "tennis_monitoring_court_parameter", parameter="continuous_actions") == 1
    assert value(found, "tennis_monitoring_court_setting_info", parameter="render_mode",
                 value="null") == 1
