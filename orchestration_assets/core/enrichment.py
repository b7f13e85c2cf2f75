"""Plain logic of enrichment: task results -> task tables, and the join into enriched records. No Dagster.

Each task's table has one row per record: ``record_id``, ``input_hash``, the task's answer
columns and its provenance columns (``<task>_model_version``, ``<task>_path``, ``<task>_error`` ...).
:func:`assemble_enriched` joins them onto the records: one row per record, nothing dropped; a
record some task could not answer (a missing row, an error, or an answer for an older version
of the record) is ``failed`` with a ``failure_reason`` naming the task(s).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from resources.providers.base import TaskResult, content_hash
from resources.providers.definition import TaskDefinition

SUMMED = ("tokens_in", "tokens_out", "cost_usd", "latency_ms", "attempts", "redactions")
INTEGERS = ("tokens_in", "tokens_out", "attempts", "redactions")


def task_frame(task: TaskDefinition, results: Iterable[TaskResult]) -> pd.DataFrame:
    """A task's table: record_id, input_hash, answer columns, provenance columns."""
    results = list(results)
    # column by column: a dict per result, then pandas reading them back, cost more than the answers
    data = {"record_id": [r.record_id for r in results], "input_hash": [r.input_hash for r in results],
            **task.table_columns(results)}
    columns = ["record_id", "input_hash", *task.columns()]
    # no results: object columns, as a frame of no rows has always had (empty lists would give float64)
    df = pd.DataFrame(data, columns=columns) if results else pd.DataFrame(columns=columns)
    return with_column_types(task, df)


def with_column_types(task: TaskDefinition, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the task's float and int columns typed (a missing int counts 0)."""
    for col, kind in task.columns().items():
        if kind == "float":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif kind == "int":
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    return df


def assemble_enriched(
    records: pd.DataFrame,
    tasks: Mapping[str, TaskDefinition],
    frames: Mapping[str, pd.DataFrame],
    *,
    model_task: str,
    run_id: str,
    partition: str,
) -> pd.DataFrame:
    """Join every task's table onto the records (with their joined lookup columns).

    A task's table has (at most) one row per record: each is aligned to the records' order by its
    record ids once and the columns put side by side, rather than merged one after another (each
    merge copied the growing wide frame). A record's problems are found a task at a time, as columns.
    """
    df = records.reset_index(drop=True)
    ids = df["record_id"]
    current = df.set_index("record_id")["input_hash"]
    parts = [df]
    seen = set(df.columns)
    messages: list[list[str | None]] = []
    for name, task in tasks.items():
        part = frames[name].drop_duplicates("record_id", keep="last")
        stale_rows = part["input_hash"].values != current.reindex(part["record_id"]).values
        at = pd.Index(part["record_id"]).get_indexer(ids)  # the task's row of each record; -1: none
        found = at >= 0
        stale = np.zeros(len(df), dtype=bool)
        stale[found] = np.asarray(stale_rows, dtype=bool)[at[found]]
        answers = part.drop(columns=["input_hash", "record_id"]).reset_index(drop=True)
        if any(c in seen for c in answers.columns):  # a name twice: merge, whose suffixes tell them apart
            parts = [pd.concat(parts, axis=1).merge(part.drop(columns=["input_hash"]), on="record_id", how="left")]
        else:  # by position: -1 is no label, so a record with no row gets a missing one, as a left merge does
            parts.append(answers.reindex(at).set_axis(df.index))
        seen.update(parts[-1].columns)
        message = np.full(len(df), None, dtype=object)
        if f"{name}_error" in answers and len(answers):
            errors = answers[f"{name}_error"].to_numpy(dtype=object)[at]
            erred = found & np.fromiter((isinstance(e, str) and e != "" for e in errors), dtype=bool, count=len(df))
            message[erred] = [f"{name}: {e}" for e in errors[erred]]
        message[found & stale] = f"{name}: the answer is for an older version of the record"
        message[~found] = f"{name}: no result"
        messages.append(message)
    # one copy joins the parts' blocks: the columns added below would each re-scan a fragmented frame
    df = (pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]).copy()
    reasons: list[str | None] = [None] * len(df)
    if messages:  # joined only for the records that have a problem
        table = np.stack(messages, axis=1)
        for i in np.flatnonzero((table != None).any(axis=1)).tolist():  # noqa: E711 - elementwise
            reasons[i] = "; ".join(m for m in table[i] if m)
    df["failure_reason"] = reasons
    # from the list, not the column: pandas' str dtype holds a missing reason as NaN, which is truthy
    df["status"] = ["failed" if r else "enriched" for r in reasons]
    df["guardrail_violations"] = _violations(df, tasks)

    df["model_version"] = df[f"{model_task}_model_version"]
    version_cols = {name: f"{name}_model_version" for name in tasks}
    df["model_versions"] = [
        dict(zip(version_cols, vals)) for vals in zip(*(df[c].tolist() for c in version_cols.values()))
    ] if len(df) else []
    prompt_cols = [f"{name}_prompt_hash" for name in tasks]
    hashes: dict[tuple, str] = {}  # a batch's records share their prompts: hash each combination once
    df["prompt_version"] = [
        hashes[vals] if vals in hashes else hashes.setdefault(vals, content_hash(*vals))
        for vals in zip(*(df[c].tolist() for c in prompt_cols))
    ] if len(df) else []
    for agg in SUMMED:
        cols = [f"{name}_{agg}" for name in tasks]
        df[agg] = df[cols].apply(pd.to_numeric, errors="coerce").fillna(0).sum(axis=1)
        if agg in INTEGERS:
            df[agg] = df[agg].astype("int64")
    path_cols = [f"{name}_path" for name in tasks]
    fallback = np.zeros(len(df), dtype=bool)
    for col in path_cols:  # per distinct path (a batch has a few), not per record
        codes, paths = pd.factorize(df[col])
        fell = np.array([_fallback(p) for p in paths] + [False], dtype=bool)  # the last one: code -1, no path
        fallback |= fell[codes]
    df["fallback_used"] = fallback
    df["partition"] = partition
    df["run_id"] = run_id
    df["enriched_at"] = pd.Timestamp.now(tz="UTC")
    return df.reset_index(drop=True)


def _fallback(path: object) -> bool:
    """Whether a task's path (never a missing one: factorize leaves those out) says a fallback answered."""
    return path.startswith("fallback") if isinstance(path, str) else str(path).startswith("fallback")


def _violations(df: pd.DataFrame, tasks: Mapping[str, TaskDefinition]) -> list[list[str]]:
    cols = [(name, f"{name}_violations") for name in tasks if f"{name}_violations" in df.columns]
    out: list[list[str]] = [[] for _ in range(len(df))]
    for name, col in cols:
        for i, vs in enumerate(df[col].tolist()):
            if isinstance(vs, (list, tuple)):
                out[i].extend(f"{name}:{v}" for v in vs)
    return out


def label_agreement(df: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Share of enriched records whose answer equals the known answer, per (task, truth field)."""
    out: dict[str, float] = {}
    ok = df[df["status"] == "enriched"] if "status" in df else df
    for task, truth in pairs:
        if task in ok and truth in ok:
            known = ok[ok[truth].notna()]
            if len(known):
                out[f"label_agreement.{task}"] = float((known[task] == known[truth]).mean())
    return out
