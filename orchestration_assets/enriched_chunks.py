"""Building and writing ``enriched_records`` a slice of record ids at a time.

The wide table (every record with every task's answer) of a 100,000-record batch was the run's
memory peak when joined whole. Here each slice's records, answers and lookups are read, joined,
written and released before the next; the partition's rows are still replaced in one
transaction, the column types are declared by the task definitions and the records table
(not by whichever values the first slice holds), and the step's metadata is the whole batch's.
"""

from collections import Counter
from typing import Iterator, Sequence

import dagster as dg
import pandas as pd

from resources.warehouse import Warehouse

from . import inputs
from .core.enrichment import assemble_enriched
from .family import Family
from .ui_metadata import PREVIEW_ROWS, counts_md, numeric, preview_md

# record ids per slice (~100 MB of the wide join each). Each slice's reads scan the partition, so fewer slices
# are faster: at 100,000 rows 10,000 took 44 s and 5,000 76 s, with the run's peak (the reply step) the same
CHUNK_RECORDS = 10_000


class _Totals:
    """What the step reports, accumulated slice by slice."""

    def __init__(self, truths: Sequence[tuple[str, str]]):
        self.truths = list(truths)
        self.rows = self.failed = self.tokens = self.fallbacks = 0
        self.cost = 0.0
        self.versions: set[str] = set()
        self.violations: Counter = Counter()
        self.agree = {t: [0, 0] for t, _ in self.truths}  # task -> [matching, known]
        self.preview: list[pd.DataFrame] = []
        self.failures: list[pd.DataFrame] = []

    def add(self, df: pd.DataFrame, preview_columns: list[str]) -> None:
        failed = df["status"] == "failed"
        self.rows += len(df)
        self.failed += int(failed.sum())
        self.cost += float(df["cost_usd"].sum())
        self.tokens += int(df["tokens_in"].sum() + df["tokens_out"].sum())
        self.fallbacks += int(df["fallback_used"].sum())
        self.versions.update(df["model_version"].dropna().astype(str))
        self.violations.update(v for vs in df["guardrail_violations"] for v in vs)
        for task, truth in self.truths:  # masks, not a copy of the wide slice's enriched rows
            if task in df and truth in df:
                known = ~failed & df[truth].notna()
                self.agree[task][0] += int(((df[task] == df[truth]) & known).sum())
                self.agree[task][1] += int(known.sum())
        # previews show the first rows only: keep no more of them than a preview shows
        if sum(map(len, self.preview)) < PREVIEW_ROWS:
            self.preview.append(df[[c for c in preview_columns if c in df.columns]].head(PREVIEW_ROWS))
        if sum(map(len, self.failures)) < PREVIEW_ROWS and failed.any():
            self.failures.append(df.loc[failed, ["record_id", "failure_reason"]].head(PREVIEW_ROWS))

    def metadata(self, rows_in: int) -> dict:
        agreement = {f"label_agreement.{t}": m / k for t, (m, k) in self.agree.items() if k}
        failures = pd.concat(self.failures) if self.failures else pd.DataFrame()
        return {
            "dagster/row_count": self.rows,
            "rows_in": rows_in,
            "rows_enriched": self.rows - self.failed,
            "rows_failed": self.failed,
            **numeric({"cost_usd": self.cost, "tokens": self.tokens, "fallbacks": self.fallbacks, **agreement}),
            "model_versions": dg.MetadataValue.text(", ".join(sorted(self.versions)) or "none"),
            "guardrail_violations": counts_md(dict(self.violations.most_common()), "violation"),
            "failures": preview_md(failures, ["record_id", "failure_reason"]),
            "preview": preview_md(pd.concat(self.preview) if self.preview else pd.DataFrame()),
        }


def declared_kinds(warehouse: Warehouse, family: Family) -> dict[str, str]:
    """Logical types of the enriched table's columns that come from the records and the task tables."""
    kinds = {c: k for c, k in warehouse.column_kinds(family.table("raw_records")).items() if not c.startswith("_")}
    for task in family.tasks.values():
        kinds.update(task.columns())
    return kinds


def write_enriched(warehouse: Warehouse, family: Family, key: str, run_id: str,
                   truths: Sequence[tuple[str, str]], chunk_records: int = CHUNK_RECORDS) -> dict:
    """Join and write partition ``key``'s enriched records slice by slice; the step's metadata."""
    ids = warehouse.read_table(family.table("raw_records"), partitions=[key], columns=["record_id"])["record_id"]
    ids = list(dict.fromkeys(ids.tolist()))  # a duplicated id stays in one slice with all its rows
    slices = [ids[i:i + chunk_records] for i in range(0, len(ids), chunk_records)] or [[]]
    totals = _Totals(truths)
    counted = {"rows_in": 0}
    enriched_at = pd.Timestamp.now(tz="UTC")  # one time for the whole batch, as when it was joined whole

    def chunks() -> Iterator[pd.DataFrame]:
        for part in slices:
            df, n = _joined(warehouse, family, key, part, run_id)
            rows_in = counted["rows_in"] = counted["rows_in"] + n
            if totals.rows + len(df) != rows_in:  # the guarantee: every valid record stays, enriched or failed
                raise dg.Failure(f"enriched_records has {totals.rows + len(df)} rows for {rows_in} records")
            df["enriched_at"] = enriched_at
            totals.add(df, ["record_id", "status", *list(family.tasks)[:5]])
            yield df

    table = family.table("enriched_records")
    written = warehouse.replace_partition_chunks(table, chunks(), key, declared_kinds(warehouse, family))
    return {
        "warehouse_table": dg.MetadataValue.text(table),
        "warehouse": dg.MetadataValue.text(warehouse.display_url),
        "rows_written": dg.MetadataValue.int(written),
        **totals.metadata(counted["rows_in"]),
    }


def _joined(warehouse: Warehouse, family: Family, key: str, ids: list[str], run_id: str) -> tuple[pd.DataFrame, int]:
    """One slice's enriched rows, and how many records it had."""
    records = inputs.records(warehouse, family, key, ids)
    frames = {name: inputs.answers(warehouse, family, name, key, ids) for name in family.tasks}
    base = inputs.with_lookups(warehouse, family, records, inputs.record_lookups(family))
    base = inputs.with_lookups(warehouse, family, base, inputs.answer_lookups(family), answers_by_task=frames)
    df = assemble_enriched(base, family.tasks, frames, model_task=family.model_task.name, run_id=run_id,
                           partition=key)
    return df, len(records)
