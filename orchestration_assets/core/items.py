"""What a task's provider sees of each record: :class:`Item` objects built from tables. No Dagster.

An item carries the task's text (its text fields joined by newlines), the record's fields, the
columns of the lookups joined to the record (``<lookup>.<column>``), the answers of the tasks it
uses (``<task>``, ``<task>_confidence``, ``<extract task>.<field>`` ...) and, for draft tasks with
retrieval, the documents retrieved for it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from resources.providers.base import Document, Item
from resources.providers.definition import TaskDefinition


def _native(value: Any) -> Any:
    """A numpy scalar held in an object column as the Python or pandas value to_dict() gave."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value)
    return value


def _values(column: pd.Series) -> list[Any]:
    """A column's values as plain Python objects, None where missing (NaN, NaT, NA)."""
    values = column.tolist()  # numpy numbers become Python ones, datetimes Timestamps
    # objects are kept as they are, numpy scalars among them: unbox those (one look at the types first)
    if column.dtype == object and any(issubclass(t, np.generic) for t in set(map(type, values))):
        values = [_native(v) for v in values]
    missing = column.isna().to_numpy()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            values[i] = None
    return values


def texts(records: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """The text a task reads per record: its text fields joined by newlines (missing ones skipped)."""
    parts = [records[f].fillna("").astype(str) if f in records.columns else pd.Series("", index=records.index)
             for f in fields]
    if not parts:
        return [""] * len(records)
    joined = parts[0]
    for p in parts[1:]:
        joined = joined + "\n" + p
    return joined.str.strip().tolist()


def build_items(
    task: TaskDefinition,
    records: pd.DataFrame,
    record_fields: Sequence[str],
    lookup_columns: Mapping[str, str] | None = None,
    used: Mapping[str, tuple[TaskDefinition, pd.DataFrame]] | None = None,
    documents: Sequence[Sequence[Document]] | None = None,
) -> list[Item]:
    """One :class:`Item` per record row, in order.

    ``records``: the records (with ``record_id`` and ``input_hash``) plus joined lookup columns;
    ``lookup_columns``: table column (``<lookup>__<column>``) -> item name (``<lookup>.<column>``);
    ``used``: task name -> (its definition, its answers table with ``record_id``).
    """
    lookup_columns = dict(lookup_columns or {})
    # column by column, then one dict per record at the end: a record's row of many small dicts
    # (to_dict(orient="records") and merges) was most of a task step's time outside the model
    names: list[str] = []
    columns: list[list[Any]] = []
    for c in [c for c in record_fields if c in records.columns] + [c for c in lookup_columns if c in records.columns]:
        names.append(lookup_columns.get(c, c))
        columns.append(_values(records[c]))
    ids_in_order = records["record_id"].tolist()
    for definition, frame in (used or {}).values():
        by_id = frame.drop_duplicates("record_id", keep="last").set_index("record_id")
        wanted = [c for c in definition.answer_columns() if c in by_id.columns]
        aligned = by_id.reindex(ids_in_order)[wanted]
        answers = definition.item_columns({c: _values(aligned[c]) for c in wanted}, len(records))
        names.extend(answers)
        columns.extend(answers.values())
    text = texts(records, task.text_fields)
    ids = records["record_id"].astype(str).tolist()
    hashes = records["input_hash"].astype(str).tolist() if "input_hash" in records.columns else [""] * len(ids)
    # a repeated name (an answer named as a record field) keeps the first's place and the last's value, as updates did
    fields = [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in ids]
    docs = documents if documents is not None else [()] * len(ids)
    return [Item(i, t, f, tuple(d), h) for i, t, f, d, h in zip(ids, text, fields, docs, hashes)]
