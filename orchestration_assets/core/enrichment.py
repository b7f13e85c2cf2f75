"""Plain logic of enrichment: task results -> task tables, and the join into enriched records. No Dagster.

Each task's table has one row per record: ``record_id``, ``input_hash``, the task's answer
columns and its provenance columns (``<task>_model_version``, ``<task>_path``, ``<task>_error`` ...).
:func:`assemble_enriched` joins them onto the records: one row per record, nothing dropped; a
record some task could not answer (a missing row, an error, or an answer for an older version
of the record) is ``failed`` with a ``failure_reason`` naming the task(s).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import pandas as pd

from resources.providers.base import TaskResult, content_hash
from resources.providers.definition import TaskDefinition

SUMMED = ("tokens_in", "tokens_out", "cost_usd", "latency_ms", "attempts", "redactions")
INTEGERS = ("tokens_in", "tokens_out", "attempts", "redactions")


def task_frame(task: TaskDefinition, results: Iterable[TaskResult]) -> pd.DataFrame:
    """A task's table: record_id, input_hash, answer columns, provenance columns."""
    rows = [{"record_id": r.record_id, "input_hash": r.input_hash, **task.to_columns(r)} for r in results]
    columns = ["record_id", "input_hash", *task.columns()]
    df = pd.DataFrame(rows, columns=columns)
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
    """Join every task's table onto the records (with their joined lookup columns)."""
    df = records.reset_index(drop=True).copy()
    problems: dict[str, list[str]] = {rid: [] for rid in df["record_id"]}
    current = df.set_index("record_id")["input_hash"]
    for name, task in tasks.items():
        part = frames[name].drop_duplicates("record_id", keep="last")
        present = set(part["record_id"])
        stale = set(part.loc[part["input_hash"].values != current.reindex(part["record_id"]).values, "record_id"])
        df = df.merge(part.drop(columns=["input_hash"]), on="record_id", how="left")
        errors = dict(zip(df["record_id"], df[f"{name}_error"]))
        for rid in df["record_id"]:
            if rid not in present:
                problems[rid].append(f"{name}: no result")
            elif rid in stale:
                problems[rid].append(f"{name}: the answer is for an older version of the record")
            elif isinstance(errors.get(rid), str) and errors[rid]:
                problems[rid].append(f"{name}: {errors[rid]}")
    reasons = ["; ".join(problems[r]) or None for r in df["record_id"]]
    df["failure_reason"] = reasons
    # from the list, not the column: pandas' str dtype holds a missing reason as NaN, which is truthy
    df["status"] = ["failed" if r else "enriched" for r in reasons]
    df["guardrail_violations"] = _violations(df, tasks)

    df["model_version"] = df[f"{model_task}_model_version"]
    version_cols = {name: f"{name}_model_version" for name in tasks}
    df["model_versions"] = [
        {name: v for name, v in zip(version_cols, vals)}
        for vals in df[list(version_cols.values())].itertuples(index=False, name=None)
    ] if len(df) else []
    prompt_cols = [f"{name}_prompt_hash" for name in tasks]
    df["prompt_version"] = [content_hash(*vals) for vals in df[prompt_cols].itertuples(index=False, name=None)] \
        if len(df) else []
    for agg in SUMMED:
        cols = [f"{name}_{agg}" for name in tasks]
        df[agg] = df[cols].apply(pd.to_numeric, errors="coerce").fillna(0).sum(axis=1)
        if agg in INTEGERS:
            df[agg] = df[agg].astype("int64")
    path_cols = [f"{name}_path" for name in tasks]
    fallback = pd.Series(False, index=df.index)
    for col in path_cols:  # column by column: a per-row apply costs a Series per record
        fallback |= df[col].astype("string").str.startswith("fallback", na=False).astype(bool)
    df["fallback_used"] = fallback
    df["partition"] = partition
    df["run_id"] = run_id
    df["enriched_at"] = pd.Timestamp.now(tz="UTC")
    return df.reset_index(drop=True)


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
