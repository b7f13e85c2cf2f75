"""What a task's provider sees of each record: :class:`Item` objects built from tables. No Dagster.

An item carries the task's text (its text fields joined by newlines), the record's fields, the
columns of the lookups joined to the record (``<lookup>.<column>``), the answers of the tasks it
uses (``<task>``, ``<task>_confidence``, ``<extract task>.<field>`` ...) and, for draft tasks with
retrieval, the documents retrieved for it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from resources.providers.base import Document, Item
from resources.providers.definition import TaskDefinition


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if value is pd.NaT:
        return None
    return value


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
    columns = [c for c in record_fields if c in records.columns]
    base = records[columns + [c for c in lookup_columns if c in records.columns]].rename(columns=lookup_columns)
    rows = base.astype(object).where(base.notna(), None).to_dict(orient="records")
    answers: list[dict[str, Any]] = [{} for _ in rows]
    for name, (definition, frame) in (used or {}).items():
        by_id = frame.drop_duplicates("record_id", keep="last").set_index("record_id")
        wanted = [c for c in definition.answer_columns() if c in by_id.columns]
        aligned = by_id.reindex(records["record_id"].tolist())[wanted]
        for i, row in enumerate(aligned.to_dict(orient="records")):
            answers[i].update(definition.item_values({k: _clean(v) for k, v in row.items()}))
    text = texts(records, task.text_fields)
    ids = records["record_id"].astype(str).tolist()
    hashes = records["input_hash"].astype(str).tolist() if "input_hash" in records.columns else [""] * len(ids)
    docs = documents if documents is not None else [()] * len(ids)
    return [
        Item(id=ids[i], text=text[i], fields={**rows[i], **answers[i]}, documents=tuple(docs[i]), input_hash=hashes[i])
        for i in range(len(ids))
    ]
