"""Reading a family's upstream tables inside an asset: records, lookups and answers of one batch.

Assets declare their upstream as ``deps`` (lineage) and read it here, so a task asset can read
exactly the tables its spec names, whatever their number.
"""

from typing import Iterable, Sequence

import pandas as pd

from resources.providers.definition import TaskDefinition
from resources.warehouse import Warehouse

from .core.lookups import join, read_lookup
from .family import Family


def records(warehouse: Warehouse, family: Family, partition: str, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The batch's records; only those with these record ids when ``ids`` is given."""
    return _partition(warehouse, family.table("raw_records"), partition, ids)


def answers(warehouse: Warehouse, family: Family, task: str, partition: str,
            ids: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A task table's rows of the partition (``columns``: only ``record_id`` and those of these it has)."""
    table = family.table(task)
    if columns is not None:
        present = set(warehouse.columns(table))
        if "record_id" in present:
            columns = ["record_id", *(c for c in columns if c in present and c != "record_id")]
        else:  # not written yet: the empty answers frame below
            columns = None
    df = _partition(warehouse, table, partition, ids, columns)
    return df if len(df.columns) else pd.DataFrame(columns=["record_id", "input_hash"])


def whole_table(warehouse: Warehouse, family: Family, asset: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Every partition of one of the family's tables (an empty frame before its first materialization).

    ``columns``: only these (those the table has, and ``record_id``); every partition of a wide table
    whole is the largest read of a run.
    """
    table = family.table(asset)
    if not warehouse.has_table(table):
        return pd.DataFrame(columns=["record_id"])
    wanted = None
    if columns is not None:
        present = set(warehouse.columns(table))
        wanted = [c for c in dict.fromkeys(["record_id", *columns]) if c in present]
    return warehouse.read_table(table, columns=wanted).drop(columns=["_partition"], errors="ignore")


def item_names(family: Family, lookups: Iterable[str]) -> dict[str, str]:
    """Joined lookup columns (``<alias>__<column>``) -> the names tasks read (``<alias>.<column>``)."""
    out = {}
    for name in lookups:
        alias = family.spec.context[name].alias(name)
        out.update({f"{alias}__{c}": f"{alias}.{c}" for c in family.spec.context[name].columns})
    return out


def lookup_table(warehouse: Warehouse, family: Family, name: str) -> pd.DataFrame:
    """The lookup's materialized table; read from its source when it was never materialized."""
    table = family.table(name)
    if warehouse.has_table(table):
        return warehouse.read_table(table)
    return read_lookup(name, family.spec.context[name], family.root)


def record_lookups(family: Family) -> list[str]:
    """Lookups joined on a record field (available to tasks)."""
    return [n for n, lk in family.spec.context.items() if lk.join_on is not None and "." not in lk.join_on]


def answer_lookups(family: Family) -> list[str]:
    """Lookups joined on an answer of an extract task (available to the policy only)."""
    return [n for n, lk in family.spec.context.items() if lk.join_on is not None and "." in lk.join_on]


def lookups_for(family: Family, task: TaskDefinition) -> list[str]:
    """The record-joined lookups a task reads: those its features name; every one for a draft (templates)."""
    joined = record_lookups(family)
    if task.type == "draft":
        return joined
    roots = {f.partition(".")[0] for f in getattr(task.spec, "features", [])}
    return [n for n in joined if family.spec.context[n].alias(n) in roots]


def with_lookups(warehouse: Warehouse, family: Family, frame: pd.DataFrame, names: Iterable[str],
                 answers_by_task: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """``frame`` with ``<alias>__<column>`` columns of each named lookup joined on its key."""
    out = frame.reset_index(drop=True)
    for name in names:
        lk = family.spec.context[name]
        root, _, field = lk.join_on.partition(".")
        if field:  # joined on an extract task's answer column, <task>.<field> -> column <task>_<field>
            source = (answers_by_task or {}).get(root)
            col = f"{root}_{field}"
            if col in out.columns:
                on = out[col]
            elif source is not None and col in source.columns:
                on = out["record_id"].map(source.drop_duplicates("record_id").set_index("record_id")[col].to_dict())
            else:
                on = pd.Series([None] * len(out), index=out.index)
        else:
            on = out[root] if root in out.columns else pd.Series([None] * len(out), index=out.index)
        joined = join(out, on, lk.alias(name), lk, lookup_table(warehouse, family, name))
        out = pd.concat([out.drop(columns=[c for c in joined.columns if c in out.columns]), joined], axis=1)
    return out


def _partition(warehouse: Warehouse, table: str, partition: str, ids: Sequence[str] | None = None,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    df = warehouse.read_table(table, partitions=[partition], columns=columns,
                              where_in=None if ids is None else ("record_id", ids))
    return df.drop(columns=["_partition"], errors="ignore")
