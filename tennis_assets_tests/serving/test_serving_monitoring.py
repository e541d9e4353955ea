"""The drift-monitoring result file as gauges: absent file -> no gauges, a good file -> every
gauge, a change -> re-read, a malformed file -> counted and logged, last good result kept."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

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
        2026, 11, 27, 6, tzinfo=timezone.utc).timestamp()
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
