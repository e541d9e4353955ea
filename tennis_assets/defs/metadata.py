"""Metadata helpers. Dagster has no image metadata type; its UI renders a markdown value in
place on the asset's page only when it is shorter than 1,000 characters (longer ones hide behind
"Show Markdown"). So a picture that MLflow serves is an image link to MLflow's ``get-artifact``
route (seen in place, with a link to open it); one that no server holds travels as a base64
data URI (behind "Show Markdown")."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from tennis_assets.config.metadata import (
    FilePath,
    Json,
    Link,
    Metadata,
    MetaValue,
    Picture,
    RunLink,
    Table,
)

# Event-log rows are stored in the instance database: an oversized GIF would bloat every query.
MAX_INLINE_BYTES = 1_500_000


# Dagster's UI renders markdown metadata in place below this length (dagster-webserver 1.13).
INLINE_MARKDOWN_CHARS = 1_000


def image_md(path: str | Path | None, alt: str, url: str | None = None) -> dg.MetadataValue:
    """The picture at ``path``: shown from ``url`` (where a server holds a copy), else inlined
    as a data URI."""
    if url:
        shown = f"![{alt}]({url})\n\n[open the {alt}]({url})"
        if len(shown) < INLINE_MARKDOWN_CHARS:
            return dg.MetadataValue.md(shown)
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
    out: dict[str, dg.MetadataValue] = {}
    for name, value in values.items():
        v = float("nan") if value is None else float(value)
        out[name] = dg.MetadataValue.float(float(f"{v:.{digits}g}") if not math.isnan(v) else v)
    return out


def run_link(name: str, run_id: str | None) -> dict[str, dg.MetadataValue]:
    """A Dagster run id as a link to the run's page in the UI."""
    if not run_id:
        return {}
    return {name: dg.MetadataValue.dagster_run(run_id)}


def dagster_metadata(values: Metadata, picture_urls: Mapping[str, str] | None = None
                     ) -> dict[str, dg.MetadataValue]:
    """A record's ``metadata()`` as Dagster renders it: each kind of value one way.
    ``picture_urls``: where a server holds a copy of a picture, by the picture's local path."""
    out: dict[str, dg.MetadataValue] = {}
    for name, value in values.items():
        if isinstance(value, Picture):
            out[name] = image_md(value.path, value.alt,
                                 (picture_urls or {}).get(str(value.path)))
            continue
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
