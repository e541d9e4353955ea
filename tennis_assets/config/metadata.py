"""What a record shows a person, in plain Python: each record's ``metadata()`` returns these
values, and the Dagster layer (its metadata module) renders each kind one way.

Plain values render as themselves (a float rounded for reading, an int, a bool, a text; None
as "none"); the wrappers below say what else a value is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Link:
    """A URL (an MLflow run, a model version)."""

    url: str


@dataclass(frozen=True)
class FilePath:
    """A file on the machine that made it."""

    path: str


@dataclass(frozen=True)
class Picture:
    """An image file a person should see (a learning curve, a histogram, a rally)."""

    path: str | None
    alt: str


@dataclass(frozen=True)
class Table:
    """Rows of a small table."""

    rows: list[dict[str, Any]]
    columns: list[str] | None = None


@dataclass(frozen=True)
class RunLink:
    """A Dagster run, by id."""

    run_id: str | None


@dataclass(frozen=True)
class Json:
    """A nested value shown as JSON."""

    value: Any = field(default=None)


MetaValue = float | int | bool | str | None | Link | FilePath | Picture | Table | RunLink | Json
Metadata = dict[str, MetaValue]
