"""The latest drift-monitoring result as Prometheus gauges.

The monitoring job writes its result as JSON to ``<data_dir>/monitoring/latest.json``::

    {"time": "2026-11-27T12:00:00+00:00", "model_version": "3",
     "environment": {"env": "tennis", ...}, "court": {...keyword arguments in force...},
     "episodes": 100, "mean": 0.41, "baseline_mean": 1.2, "statistic": 1234.0,
     "p_value": 0.0001, "test": "mann-whitney-u", "drifted": true, "severity": "critical"}

The file is read at scrape time, and parsed again only when its modification time or size
changes. A missing file exports no monitoring gauges (no run yet is not a zero score). A
malformed file is logged and counted in ``tennis_monitoring_read_errors_total``; the gauges keep
the last good result, whose ``tennis_monitoring_last_run_timestamp_seconds`` shows its age, so a
writer caught mid-write never blanks the dashboard.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tennis_assets.workflow.monitoring_file import (
    SEVERITIES,
    MonitoringResult,
    default_monitoring_file,
    parse_result,
)

__all__ = ["SEVERITIES", "MonitoringCollector", "MonitoringResult", "default_monitoring_file",
           "parse_result"]

log = logging.getLogger(__name__)


class MonitoringCollector:
    """A prometheus_client collector over the monitoring result file."""

    def __init__(self, path: str | os.PathLike,
                 served_version: Callable[[], str | None] | None = None,
                 errors: Any = None) -> None:
        """errors: a prometheus_client Counter to count unreadable files in, instead of this
        collector's own count (several workers: a counter summed over them)."""
        self.path = Path(path)
        self._errors_counter = errors
        # None: export whatever the file says (no server attached, e.g. a sidecar exporter).
        self.served_version = served_version
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
        if self._errors_counter is not None:
            self._errors_counter.inc()
        log.warning("monitoring result %s unreadable: %s (keeping the last good result)",
                    self.path, why)

    def collect(self) -> Iterable[Metric]:
        result = self.current()
        errors: CounterMetricFamily | None = CounterMetricFamily(
            "tennis_monitoring_read_errors", "Monitoring result files that could not be parsed",
            value=self._errors)
        if self._errors_counter is not None:
            errors = None
        if result is None:
            return [errors] if errors else []
        served = self.served_version() if self.served_version is not None else None
        if self.served_version is not None and result.model_version != served:
            # The result is about another version (the one before a promotion, or a rollback):
            # until the served version is monitored there is no drift state to show for it.
            stale = GaugeMetricFamily(
                "tennis_monitoring_result_for_other_version",
                "1 while the latest monitoring result is about a version this server does not "
                "serve (its drift gauges are withheld)", labels=["result_version",
                                                                 "served_version"])
            stale.add_metric([result.model_version, served or ""], 1.0)
            return [errors, stale] if errors else [stale]

        out = _result_metrics(result)
        return [errors, *out] if errors else out


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _result_metrics(result: MonitoringResult) -> list[Metric]:
    """The gauges of one monitoring result about the served version."""
    out: list[Metric] = [
        _gauge("tennis_monitoring_score_mean",
               "Mean episode score of the champion in the latest monitoring run", result.mean),
        _gauge("tennis_monitoring_baseline_score_mean",
               "Mean episode score of the champion's evaluation baseline", result.baseline_mean),
        _gauge("tennis_monitoring_drift_p_value",
               "p-value of the drift test (monitoring scores vs baseline)", result.p_value),
        _gauge("tennis_monitoring_drifted", "1 when the latest monitoring run found drift",
               1.0 if result.drifted else 0.0),
        _gauge("tennis_monitoring_drift_severity",
               "Severity of the latest drift finding: 0 none, 1 warning, 2 critical",
               result.severity),
        _gauge("tennis_monitoring_last_run_timestamp_seconds",
               "Unix time of the latest monitoring run", result.timestamp),
    ]
    if result.statistic is not None:
        out.append(_gauge("tennis_monitoring_drift_statistic",
                          "Test statistic of the drift test", result.statistic))
    if result.episodes is not None:
        out.append(_gauge("tennis_monitoring_episodes",
                          "Episodes played in the latest monitoring run", result.episodes))
    info = GaugeMetricFamily("tennis_monitoring_run_info",
                             "The latest monitoring run (labels); value always 1",
                             labels=["model_version", "test"])
    info.add_metric([result.model_version, result.test], 1.0)
    environment = GaugeMetricFamily("tennis_monitoring_environment_info",
                                    "The environment the latest monitoring run played "
                                    "(label); value always 1", labels=["environment"])
    environment.add_metric([result.environment], 1.0)
    out += [info, environment]
    if result.court:
        court = GaugeMetricFamily("tennis_monitoring_court_parameter",
                                  "Numeric keyword arguments of the environment in the latest "
                                  "monitoring run (Tennis: the court; booleans as 0/1)",
                                  labels=["parameter"])
        for key, value in sorted(result.court.items()):
            court.add_metric([key], value)
        out.append(court)
    if result.settings:
        settings = GaugeMetricFamily("tennis_monitoring_court_setting_info",
                                     "Non-numeric keyword arguments of the environment in the "
                                     "latest monitoring run, their JSON text as the value "
                                     "label; value always 1", labels=["parameter", "value"])
        for key, text in sorted(result.settings.items()):
            settings.add_metric([key, text], 1.0)
        out.append(settings)
    return out
