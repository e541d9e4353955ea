"""The latest drift-monitoring result as Prometheus gauges.

The monitoring job writes its result as JSON to ``<data_dir>/monitoring/latest.json``::

    {"time": "2026-11-27T12:00:00+00:00", "model_version": "3", "court": {...CourtParams...},
     "episodes": 100, "mean": 0.41, "baseline_mean": 1.2, "statistic": 1234.0,
     "p_value": 0.0001, "test": "mann-whitney-u", "drifted": true, "severity": "critical"}

The file is read at scrape time, and parsed again only when its modification time or size
changes. A missing file exports no monitoring gauges (no run yet is not a zero score). A
malformed file is logged and counted in ``tennis_monitoring_read_errors_total``; the gauges keep
the last good result, whose ``tennis_monitoring_last_run_timestamp_seconds`` shows its age, so a
writer caught mid-write never blanks the dashboard.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

SEVERITIES = {"none": 0, "warning": 1, "critical": 2}


def default_monitoring_file() -> Path:
    from tennis_assets.settings import data_dir

    return data_dir() / "monitoring" / "latest.json"


@dataclass(frozen=True)
class MonitoringResult:
    timestamp: float
    mean: float
    baseline_mean: float
    p_value: float
    drifted: bool
    severity: int
    statistic: float | None
    episodes: int | None
    model_version: str
    test: str
    court: dict[str, float]


def _number(doc: dict, key: str, required: bool = True) -> float | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{key}' must be a number, got {value!r}")
    return float(value)


def parse_result(text: str) -> MonitoringResult:
    """The file's JSON as a MonitoringResult; ValueError naming the first bad field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    raw_time = doc.get("time")
    if not isinstance(raw_time, str):
        raise ValueError(f"'time' must be an ISO 8601 string, got {raw_time!r}")
    try:
        when = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'time' is not ISO 8601: {raw_time!r}") from None
    if when.tzinfo is None:  # the writer's convention is UTC
        when = when.replace(tzinfo=timezone.utc)
    drifted = doc.get("drifted")
    if not isinstance(drifted, bool):
        raise ValueError(f"'drifted' must be true or false, got {drifted!r}")
    severity = doc.get("severity", "warning" if drifted else "none")
    if severity not in SEVERITIES:
        raise ValueError(f"'severity' must be one of {sorted(SEVERITIES)}, got {severity!r}")
    p_value = _number(doc, "p_value")
    if not 0.0 <= p_value <= 1.0:
        raise ValueError(f"'p_value' must lie in [0, 1], got {p_value!r}")
    episodes = _number(doc, "episodes", required=False)
    court = doc.get("court") or {}
    if not isinstance(court, dict):
        raise ValueError(f"'court' must be an object, got {court!r}")
    return MonitoringResult(
        timestamp=when.timestamp(), mean=_number(doc, "mean"),
        baseline_mean=_number(doc, "baseline_mean"), p_value=p_value, drifted=drifted,
        severity=SEVERITIES[severity], statistic=_number(doc, "statistic", required=False),
        episodes=int(episodes) if episodes is not None else None,
        model_version=str(doc.get("model_version", "")), test=str(doc.get("test", "")),
        court={k: float(v) for k, v in court.items()
               if isinstance(v, (int, float)) and math.isfinite(float(v))})


class MonitoringCollector:
    """A prometheus_client collector over the monitoring result file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the last parse
        self._result: MonitoringResult | None = None
        self._errors = 0

    def describe(self) -> Iterable[Metric]:
        return []

    def current(self) -> MonitoringResult | None:
        """The latest good result, re-reading the file when it changed."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._result = None, None
                return None
            except OSError as exc:
                self._count_error(f"cannot stat ({exc})")
                return self._result
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._result = parse_result(self.path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    self._stamp, self._result = None, None
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    self._count_error(str(exc))
            return self._result

    def _count_error(self, why: str) -> None:
        self._errors += 1
        log.warning("monitoring result %s unreadable: %s (keeping the last good result)",
                    self.path, why)

    def collect(self) -> Iterable[Metric]:
        result = self.current()
        errors = CounterMetricFamily("tennis_monitoring_read_errors",
                                     "Monitoring result files that could not be parsed",
                                     value=self._errors)
        if result is None:
            return [errors]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        out = [
            errors,
            gauge("tennis_monitoring_score_mean",
                  "Mean episode score of the champion in the latest monitoring run", result.mean),
            gauge("tennis_monitoring_baseline_score_mean",
                  "Mean episode score of the champion's evaluation baseline",
                  result.baseline_mean),
            gauge("tennis_monitoring_drift_p_value",
                  "p-value of the drift test (monitoring scores vs baseline)", result.p_value),
            gauge("tennis_monitoring_drifted", "1 when the latest monitoring run found drift",
                  1.0 if result.drifted else 0.0),
            gauge("tennis_monitoring_drift_severity",
                  "Severity of the latest drift finding: 0 none, 1 warning, 2 critical",
                  result.severity),
            gauge("tennis_monitoring_last_run_timestamp_seconds",
                  "Unix time of the latest monitoring run", result.timestamp),
        ]
        if result.statistic is not None:
            out.append(gauge("tennis_monitoring_drift_statistic",
                             "Test statistic of the drift test", result.statistic))
        if result.episodes is not None:
            out.append(gauge("tennis_monitoring_episodes",
                             "Episodes played in the latest monitoring run", result.episodes))
        info = GaugeMetricFamily("tennis_monitoring_run_info",
                                 "The latest monitoring run (labels); value always 1",
                                 labels=["model_version", "test"])
        info.add_metric([result.model_version, result.test], 1.0)
        out.append(info)
        if result.court:
            court = GaugeMetricFamily("tennis_monitoring_court_parameter",
                                      "Court parameters of the latest monitoring run",
                                      labels=["parameter"])
            for key, value in sorted(result.court.items()):
                court.add_metric([key], value)
            out.append(court)
        return out
