"""Materialization metadata a user reads in the Dagster UI: row counts, previews, schemas."""

from __future__ import annotations

from typing import Iterable, Mapping

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10
_CELL_CHARS = 60


def preview_md(df: pd.DataFrame, columns: Iterable[str] | None = None, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A markdown table of the first rows, long cells shortened."""
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    view = df[[c for c in (columns or df.columns) if c in df.columns]].head(rows).copy()
    for col in view.columns:
        view[col] = view[col].map(_short)
    return dg.MetadataValue.md(view.to_markdown(index=False))


def _short(v: object) -> str:
    s = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
    s = s.replace("\n", " ").replace("|", "/")
    return s if len(s) <= _CELL_CHARS else s[: _CELL_CHARS - 1] + "…"


def counts_md(counts: Mapping[str, int], key: str = "value", value: str = "rows") -> dg.MetadataValue:
    if not counts:
        return dg.MetadataValue.md("_none_")
    df = pd.DataFrame({key: list(counts.keys()), value: list(counts.values())}).sort_values(value, ascending=False)
    return dg.MetadataValue.md(df.to_markdown(index=False))


def column_schema(columns: Mapping[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in columns.items()])


def numeric(values: Mapping[str, float | int | None]) -> dict[str, dg.MetadataValue]:
    """Numbers as typed metadata, so the UI plots them over time."""
    out: dict[str, dg.MetadataValue] = {}
    for k, v in values.items():
        if v is None or (isinstance(v, float) and pd.isna(v)):
            continue
        out[k] = dg.MetadataValue.int(int(v)) if isinstance(v, (int,)) and not isinstance(v, bool) else dg.MetadataValue.float(float(v))
    return out
