"""Metadata helpers: Dagster has no image metadata type, so plots travel as markdown with a
base64 data URI (what the asset catalog renders)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Sequence

import dagster as dg

from tennis_assets.config.metadata import (FilePath, Json, Link, Metadata, MetaValue, Picture,
                                           RunLink, Table)

# Event-log rows are stored in the instance database: an oversized GIF would bloat every query.
MAX_INLINE_BYTES = 1_500_000


def image_md(path: str | Path | None, alt: str) -> dg.MetadataValue:
    if path is None or not Path(path).exists():
        return dg.MetadataValue.md(f"*{alt}: not available*")
    data = Path(path).read_bytes()
    if len(data) > MAX_INLINE_BYTES:
        return dg.MetadataValue.md(f"*{alt}*: {path} ({len(data) // 1024} KB, too large to inline)")
    mime = "image/gif" if str(path).endswith(".gif") else "image/png"
    return dg.MetadataValue.md(
        f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})")


def table_md(rows: Sequence[dict[str, Any]],
             columns: Sequence[str] | None = None) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("*empty*")
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def frame_md(frame, max_rows: int = 20) -> dg.MetadataValue:
    """A DataFrame's head as a markdown table (no tabulate dependency)."""
    return table_md(frame.head(max_rows).to_dict("records"), list(frame.columns))


def rounded(values: dict[str, float | None], digits: int = 4) -> dict[str, dg.MetadataValue]:
    """Floats as a person reads them (1.083, not 1.0833000000000002); None as NaN."""
    out = {}
    for name, value in values.items():
        v = float("nan") if value is None else float(value)
        out[name] = dg.MetadataValue.float(float(f"{v:.{digits}g}") if v == v else v)
    return out


def run_link(name: str, run_id: str | None) -> dict[str, dg.MetadataValue]:
    """A Dagster run id as a link to the run's page in the UI."""
    if not run_id:
        return {}
    return {name: dg.MetadataValue.dagster_run(run_id)}


def dagster_metadata(values: Metadata) -> dict[str, dg.MetadataValue]:
    """A record's ``metadata()`` as Dagster renders it: each kind of value one way."""
    out: dict[str, dg.MetadataValue] = {}
    for name, value in values.items():
        rendered = _render(name, value)
        if rendered is not None:
            out[name] = rendered
    return out


def _render(name: str, value: MetaValue) -> dg.MetadataValue | None:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return rounded({name: value})[name]
    if value is None:
        return dg.MetadataValue.text("none")
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return _render_wrapped(value)


def _render_wrapped(value: MetaValue) -> dg.MetadataValue | None:
    if isinstance(value, Link):
        return dg.MetadataValue.url(value.url)
    if isinstance(value, FilePath):
        return dg.MetadataValue.path(value.path)
    if isinstance(value, Picture):
        return image_md(value.path, value.alt)
    if isinstance(value, Table):
        return table_md(value.rows, value.columns)
    if isinstance(value, RunLink):
        return dg.MetadataValue.dagster_run(value.run_id) if value.run_id else None
    if isinstance(value, Json):
        return dg.MetadataValue.json(value.value)
    raise TypeError(f"no Dagster rendering for {type(value).__name__}")
