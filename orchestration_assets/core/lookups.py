"""Context lookups: read a family's context tables (file or SQL), validate them, join them to records.

A lookup is reference data (customers, orders, a document collection). A row that does not
validate fails the lookup's asset with a message naming the source, the row and the column: a
bad reference table must not silently change every decision joined to it. Joined lookup columns
travel with records as ``<alias>__<column>`` (a plain SQL column name) and reach tasks and
conditions as ``<alias>.<column>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..spec_inputs import LookupColumn, LookupSpec

MAX_ERRORS_SHOWN = 20
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


class ContextLookupError(ValueError):
    """A context lookup that cannot be read or does not validate; the message names source, row, column."""


def read_lookup(name: str, spec: LookupSpec, root: Path) -> pd.DataFrame:
    """The lookup's rows, typed by its column spec; raises :class:`ContextLookupError` naming what is wrong."""
    source, raw = _read_raw(name, spec, root)
    return validate_lookup(raw, spec, source)


def _read_raw(name: str, spec: LookupSpec, root: Path) -> tuple[str, pd.DataFrame]:
    if spec.file is not None:
        path = (root / spec.file).resolve()
        if not path.is_file():
            raise ContextLookupError(f"context.{name}: file {spec.file!r} not found in {root}")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            try:
                df = pd.read_json(path, lines=True, dtype=False)
            except ValueError as exc:
                raise ContextLookupError(f"{path.name}: not valid JSON lines: {exc}") from None
            return path.name, df.astype(object).where(df.notna(), None)
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return path.name, df.map(lambda v: v if v != "" else None)
    import sqlalchemy as sa

    sql = spec.sql
    url = sql.url or os.getenv(sql.url_env or "")
    if not url:
        raise ContextLookupError(f"context.{name}.sql.url_env: environment variable {sql.url_env} is not set")
    from resources.warehouse import engine_for
    from resources.warehouse_url import mask_url

    query = sa.text(sql.query) if sql.query else sa.text(f"SELECT * FROM {sql.table}")
    try:
        with engine_for(url).connect() as conn:
            df = pd.read_sql(query, conn)
    except Exception as exc:  # noqa: BLE001 - any driver error: name the lookup and the (redacted) URL
        raise ContextLookupError(f"context.{name}: cannot read from {mask_url(url)}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]}") from None
    return f"{sql.table or 'query'} at {mask_url(url)}", df.astype(object).where(df.notna(), None)


def validate_lookup(raw: pd.DataFrame, spec: LookupSpec, source: str) -> pd.DataFrame:
    missing = [c for c, col in spec.columns.items() if col.required and c not in raw.columns]
    if missing:
        raise ContextLookupError(f"{source}: missing column(s) {missing}")
    errors: list[str] = []
    out = pd.DataFrame(index=raw.index)
    for name, col in spec.columns.items():
        values = raw[name] if name in raw.columns else pd.Series([None] * len(raw), index=raw.index, dtype=object)
        converted = []
        for i, v in enumerate(values.tolist(), start=1):
            value, problem = _convert(v, col)
            if problem:
                errors.append(f"{source}, row {i}, column {name!r}: {problem}")
            converted.append(value)
        out[name] = pd.Series(converted, index=raw.index, dtype=_dtype(col))
    keys = out[spec.key]
    dupes = keys[keys.duplicated() & keys.notna()].tolist()
    if dupes:
        errors.append(f"{source}: duplicate {spec.key} value(s) {dupes[:10]}")
    if errors:
        more = f"\n… and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise ContextLookupError(f"{len(errors)} problem(s) in {source}:\n" + "\n".join(errors[:MAX_ERRORS_SHOWN]) + more)
    return out.reset_index(drop=True)


def _dtype(col: LookupColumn) -> str:
    return {"number": "float64", "integer": "Int64", "boolean": "object", "timestamp": "object"}.get(col.type, "object")


def _convert(v: Any, col: LookupColumn) -> tuple[Any, str | None]:
    if v is None or (isinstance(v, float) and pd.isna(v)) or (isinstance(v, str) and not v.strip()):
        return None, ("required value is missing" if col.required else None)
    try:
        if col.type == "number":
            value: Any = float(str(v).replace(",", ""))
        elif col.type == "integer":
            f = float(str(v))
            if not f.is_integer():
                return None, f"{v!r} is not a whole number"
            value = int(f)
        elif col.type == "boolean":
            low = str(v).strip().lower()
            if low not in _TRUE | _FALSE:
                return None, f"{v!r} is not true or false"
            value = low in _TRUE
        elif col.type == "timestamp":
            ts = pd.to_datetime(str(v), utc=True, errors="coerce", format="ISO8601")
            if pd.isna(ts):
                return None, f"unparseable timestamp {v!r}"
            value = ts.isoformat()
        else:
            value = str(v).strip()
    except ValueError:
        return None, f"{v!r} is not a {col.type}"
    if col.values is not None and str(value) not in col.values:
        return None, f"{value!r} is not one of {', '.join(col.values)}"
    if col.min is not None and isinstance(value, (int, float)):
        if value < col.min or (col.strict_min and value <= col.min):
            return None, f"{value} is below {'or at ' if col.strict_min else ''}the minimum {col.min}"
    if col.max is not None and isinstance(value, (int, float)) and value > col.max:
        return None, f"{value} is above the maximum {col.max}"
    if col.min_length is not None and isinstance(value, str) and len(value) < col.min_length:
        return None, f"has {len(value)} characters; at least {col.min_length} required"
    return value, None


def joined_columns(alias: str, spec: LookupSpec) -> list[str]:
    return [f"{alias}__{c}" for c in spec.columns]


def join(records: pd.DataFrame, on: pd.Series, alias: str, spec: LookupSpec, table: pd.DataFrame) -> pd.DataFrame:
    """``<alias>__<column>`` columns for each record (empty where ``on`` matches no key), aligned to records."""
    keyed = table.drop_duplicates(spec.key).set_index(spec.key)
    keys = on.astype(object).where(on.notna(), None).map(lambda v: None if v is None else str(v))
    keyed.index = keyed.index.map(str)
    out = pd.DataFrame(index=records.index)
    for col, column in spec.columns.items():
        values = keys.map(keyed[col].to_dict()) if col != spec.key else keys.where(keys.isin(keyed.index))
        # keep numbers numeric, so the warehouse stores them as numbers and conditions can compare them
        if column.type == "number":
            out[f"{alias}__{col}"] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column.type == "integer":
            out[f"{alias}__{col}"] = pd.to_numeric(values, errors="coerce").astype("Int64")
        else:
            out[f"{alias}__{col}"] = values.astype(object).where(values.notna(), None)
    return out


def row_values(row: Mapping[str, Any], aliases: Mapping[str, LookupSpec]) -> dict[str, dict[str, Any]]:
    """``{alias: {column: value}}`` from a row holding ``<alias>__<column>`` columns."""
    return {alias: {c: row.get(f"{alias}__{c}") for c in spec.columns} for alias, spec in aliases.items()}
