"""The drift-monitoring result file: its one writer and its one reader.

The monitoring workflow writes ``<data_dir>/monitoring/latest.json`` (and appends a line per
run to ``history.jsonl``); the policy server reads it at scrape time::

    {"time": "2026-11-27T12:00:00+00:00", "model_version": "3",
     "environment": {"env": "tennis", "env_kwargs": {...}, ...}, "court": {...},
     "episodes": 100, "mean": 0.41, "baseline_mean": 1.2, "statistic": 1234.0,
     "p_value": 0.0001, "test": "mann-whitney-u", "drifted": true, "severity": "critical"}

``court`` is every keyword argument of the environment in force (Tennis: the whole court;
another environment: its env_kwargs, which may hold strings, lists or null). Numbers and
booleans are read as numbers (``court``, the gauges); the rest as their JSON text
(``settings``, an info series each). ``environment`` is the EnvironmentConfig (or its spec
alone); a result without one, written before environments, is Tennis's.

The latest file is replaced atomically, so a reader sees the old result or the new one.
No torch or Dagster here: the policy server imports it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tennis_assets.files import CorruptFileError, append_line, atomic_write_text
from tennis_assets.training.drift import SEVERITIES as DRIFT_VERDICTS

# The severity as the number the policy server exports (the drift verdicts in order).
SEVERITIES = {name: level for level, name in enumerate(DRIFT_VERDICTS)}
SEVERITY_NAMES = {level: name for name, level in SEVERITIES.items()}


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
    # The non-numeric keyword arguments, as JSON text (e.g. {"render_mode": "null"}).
    settings: dict[str, str] = field(default_factory=dict)
    environment: str = "tennis"  # the environment's spec


# A label value longer than this is cut: a keyword argument may hold a whole JSON document.
_MAX_SETTING_CHARS = 200


def _conditions(court: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(the numeric keyword arguments as floats, the others as JSON text); non-finite numbers
    are dropped (no gauge value means anything for them)."""
    numbers, settings = {}, {}
    for key, value in court.items():
        if isinstance(value, (int, float)):  # booleans too, as 0/1, as they always were
            if math.isfinite(float(value)):
                numbers[key] = float(value)
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                                  default=str)
            settings[key] = text[:_MAX_SETTING_CHARS]
    return numbers, settings


def _environment(doc: dict) -> str:
    environment = doc.get("environment", "tennis")
    if isinstance(environment, dict):
        environment = environment.get("env", "tennis")
    if not isinstance(environment, str) or not environment:
        raise ValueError(f"'environment' must be an environment spec or an object with 'env', "
                         f"got {doc.get('environment')!r}")
    return environment


def _optional_number(doc: dict, key: str) -> float | None:
    return None if doc.get(key) is None else _number(doc, key)


def _number(doc: dict, key: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # ValueError: a malformed document is bad input.
        raise ValueError(f"'{key}' must be a number, got {value!r}")  # noqa: TRY004
    return float(value)


def parse_result(text: str) -> MonitoringResult:
    """The file's JSON as a MonitoringResult; ValueError naming the first bad field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        # ValueError: a malformed document is bad input.
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")  # noqa: TRY004
    raw_time = doc.get("time")
    if not isinstance(raw_time, str):
        # ValueError: a malformed document is bad input.
        raise ValueError(f"'time' must be an ISO 8601 string, got {raw_time!r}")  # noqa: TRY004
    try:
        when = datetime.fromisoformat(raw_time)
    except ValueError:
        raise ValueError(f"'time' is not ISO 8601: {raw_time!r}") from None
    if when.tzinfo is None:  # the writer's convention is UTC
        when = when.replace(tzinfo=UTC)
    drifted = doc.get("drifted")
    if not isinstance(drifted, bool):
        # ValueError: a malformed document is bad input.
        raise ValueError(f"'drifted' must be true or false, got {drifted!r}")  # noqa: TRY004
    severity = doc.get("severity", "warning" if drifted else "none")
    if severity not in SEVERITIES:
        raise ValueError(f"'severity' must be one of {sorted(SEVERITIES)}, got {severity!r}")
    p_value = _number(doc, "p_value")
    if not 0.0 <= p_value <= 1.0:
        raise ValueError(f"'p_value' must lie in [0, 1], got {p_value!r}")
    episodes = _optional_number(doc, "episodes")
    court = doc.get("court") or {}
    if not isinstance(court, dict):
        # ValueError: a malformed document is bad input.
        raise ValueError(f"'court' must be an object, got {court!r}")  # noqa: TRY004
    numbers, settings = _conditions(court)
    return MonitoringResult(
        timestamp=when.timestamp(), mean=_number(doc, "mean"),
        baseline_mean=_number(doc, "baseline_mean"), p_value=p_value, drifted=drifted,
        severity=SEVERITIES[severity], statistic=_optional_number(doc, "statistic"),
        episodes=int(episodes) if episodes is not None else None,
        model_version=str(doc.get("model_version", "")), test=str(doc.get("test", "")),
        court=numbers, settings=settings, environment=_environment(doc))


def read_result(path: str | os.PathLike) -> MonitoringResult:
    """The result file at ``path``; a ``CorruptFileError`` naming it when it cannot be parsed."""
    path = Path(path)
    try:
        return parse_result(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(path, f"the drift-monitoring result is unreadable ({exc})",
                               "the next `monitor` run writes it again") from None


def write_result(out_dir: str | os.PathLike, record: Any) -> Path:
    """latest.json (replaced atomically) and a line in the append-only history.jsonl, of a
    MonitoringRecord (or its dict)."""
    value: dict[str, Any] = record.to_dict() if hasattr(record, "to_dict") else dict(record)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    latest = atomic_write_text(out / "latest.json", json.dumps(value, indent=2, default=str))
    append_line(out / "history.jsonl",
                json.dumps({k: v for k, v in value.items() if k != "scores"}, default=str))
    return latest
