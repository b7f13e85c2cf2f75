"""A classify task's labelled data as its trainer reads it: the family's file plus reviewed feedback. No Dagster.

The family's training file is read with the record's column mapping (so a raw export with its own
column names works), and turned into the trainer's frame: ``record_id``, ``text`` (the task's
text fields joined), ``label`` (the task's label column) and one column per declared feature: a
record field, the label column of a task it uses (the known answer stands in for the prediction at
training time), or a lookup column joined on the record's field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from resources.providers.definition import TaskDefinition

from ..family import Family
from .items import texts
from .lookups import join, read_lookup

FEEDBACK_COLUMNS = ["family", "task", "record_id", "text", "label", "source", "recorded_at"]


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV (optionally gzipped) or JSONL file, every value as text (empty cells as null)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        df = pd.read_json(path, lines=True, dtype=False)
        return df.astype(object).where(df.notna(), None)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.map(lambda v: v if v != "" else None)


def mapped(df: pd.DataFrame, mapping: Mapping[str, str]) -> pd.DataFrame:
    """Columns renamed by the record's mapping (source -> field), matched ignoring case and spaces."""
    by_name = {k.strip().lower(): v for k, v in mapping.items()}
    renames = {c: by_name[str(c).strip().lower()] for c in df.columns if str(c).strip().lower() in by_name}
    return df.rename(columns=renames)


def labelled_frame(family: Family, task: TaskDefinition,
                   lookup_tables: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The task's labelled rows: record_id, text, label, features (raw: the trainer cleans them)."""
    spec = task.spec
    raw = mapped(read_table_file(family.path(spec.training_data)), family.record.columns)
    out = pd.DataFrame(index=raw.index)
    out["record_id"] = raw[family.id_field] if family.id_field in raw.columns else None
    out["text"] = texts(raw, task.text_fields)
    out["label"] = raw[spec.label_column] if spec.label_column in raw.columns else None
    tables = dict(lookup_tables or {})
    for feature in spec.features:
        root, _, column = feature.partition(".")
        if column:
            name, lk = next((n, lk) for n, lk in family.spec.context.items() if lk.alias(n) == root)
            table = tables.get(name)
            if table is None:
                table = tables[name] = read_lookup(name, lk, family.root)
            on = raw[lk.join_on] if lk.join_on in raw.columns else pd.Series([None] * len(raw), index=raw.index)
            out[feature] = join(raw, on, root, lk, table)[f"{root}__{column}"].map(_as_text)
        elif feature in family.tasks:
            label_col = family.tasks[feature].spec.label_column
            out[feature] = raw[label_col].map(_as_text) if label_col in raw.columns else ""
        else:
            out[feature] = raw[feature].map(_as_text) if feature in raw.columns else ""
    return out.reset_index(drop=True)


def feedback_frame(reviewed: pd.DataFrame, family: str, task: str) -> pd.DataFrame:
    """The task's rows of the shared review-feedback table (empty when there are none)."""
    if reviewed is None or reviewed.empty:
        return pd.DataFrame(columns=FEEDBACK_COLUMNS)
    rows = reviewed[(reviewed["family"] == family) & (reviewed["task"] == task)]
    return rows[[c for c in FEEDBACK_COLUMNS if c in rows.columns]].reset_index(drop=True)


def _as_text(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    return str(v)
