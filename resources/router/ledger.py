"""The router's two warehouse tables: the content-hash answer cache and the spend ledger.

Both carry the family, so families sharing a warehouse never read each other's answers or
spend. ``llm_cache`` (name from the catalog's ``cache.table``): one row per (family, task, model
id, prompt hash, input hash) with the validated answer, written once. ``llm_spend``
(``ledger_table``): one row per written chunk of a batch (:mod:`resources.router.journal`), family,
task and model with calls, tokens, cost, calls refused for their API key (``auth_failures``) and the
UTC day; the per-day budget and the spend check read it with :func:`ledger_spend` and
:func:`ledger_auth_failures`. ``chunk`` names the write (unique with endpoint and model), so a write
retried after a commit whose outcome was unknown is recognised instead of counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from resources.warehouse import Warehouse

log = logging.getLogger(__name__)


def cache_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(100), nullable=False, server_default="", index=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def ledger_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("day", sa.String(10), nullable=False, index=True),
        sa.Column("family", sa.String(100), nullable=False, server_default="", index=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("partition", sa.String(200), nullable=True, index=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        # what the responses' `model` said answered (comma-separated when several); model_id is the configured one
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("auth_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunk", sa.String(64), nullable=True),  # None: rows written otherwise (record_spend)
        sa.Index(f"ux_{name}_chunk", "chunk", "endpoint", "model_id", unique=True),
    )


_READY: set[tuple[str, str]] = set()


def ensure(warehouse: Warehouse, table: sa.Table) -> sa.Table:
    """Create the table once per process; an older table gets the columns and indexes added since.

    Rows written before families existed keep family '' and so count for no family's budget; rows
    from before ``auth_failures`` count 0.
    """
    key = (warehouse.resolved_url, table.name)
    if key in _READY:
        return table
    engine = warehouse.engine
    table.metadata.create_all(engine, checkfirst=True)
    existing = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    for column in table.columns:
        if column.name in existing or not (column.nullable or column.server_default is not None):
            continue
        ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))
            log.info("added column %s to %s", column.name, table.name)
        except sa.exc.DBAPIError:  # another process added it meanwhile
            if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                raise
    with engine.begin() as conn:
        for index in table.indexes:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    _READY.add(key)
    return table


def utc_today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


# ---- spend ----------------------------------------------------------------------------------


@dataclass
class SpendSummary:
    """Totals over ledger rows."""

    cost_usd: float = 0.0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    rows: int = 0


def ledger_spend(
    warehouse: Warehouse,
    *,
    family: str | None = None,
    run_id: str | None = None,
    partition: str | None = None,
    day: str | None = None,
    table: str = "llm_spend",
) -> SpendSummary:
    """Spend recorded in the ledger, filtered by any of family, run id, partition and UTC day."""
    if not warehouse.has_table(table):
        return SpendSummary()
    t = ensure(warehouse, ledger_table(table))
    stmt = sa.select(
        sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0),
        sa.func.coalesce(sa.func.sum(t.c.calls), 0),
        sa.func.coalesce(sa.func.sum(t.c.tokens_in), 0),
        sa.func.coalesce(sa.func.sum(t.c.tokens_out), 0),
        sa.func.count(),
    )
    for column, value in (("family", family), ("run_id", run_id), ("partition", partition), ("day", day)):
        if value is not None:
            stmt = stmt.where(t.c[column] == value)
    with warehouse.engine.connect() as conn:
        cost, calls, tin, tout, n = conn.execute(stmt).one()
    return SpendSummary(float(cost), int(calls), int(tin), int(tout), int(n))


@dataclass(frozen=True)
class Spend:
    """One model's calls for one item (summed per batch before they reach the ledger)."""

    endpoint: str
    model_id: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    auth_failures: int = 0
    served_model: str | None = None


def ledger_auth_failures(warehouse: Warehouse, *, family: str, run_id: str, partition: str | None = None,
                         table: str = "llm_spend") -> list[tuple[str, str, int]]:
    """(endpoint, model id, calls refused for their API key) of a run, for the endpoints that refused any."""
    if not warehouse.has_table(table):
        return []
    t = ensure(warehouse, ledger_table(table))
    total = sa.func.sum(t.c.auth_failures)
    stmt = (sa.select(t.c.endpoint, t.c.model_id, total).where(t.c.family == family, t.c.run_id == run_id)
            .group_by(t.c.endpoint, t.c.model_id).having(total > 0).order_by(t.c.endpoint, t.c.model_id))
    if partition is not None:
        stmt = stmt.where(t.c.partition == partition)
    with warehouse.engine.connect() as conn:
        return [(endpoint, model_id, int(n)) for endpoint, model_id, n in conn.execute(stmt)]


def spend_rows(*, family: str, run_id: str, partition: str | None, task: str, spends: Iterable[Spend],
               chunk: str | None = None) -> list[dict]:
    """The ledger rows of (a chunk of) a batch: its spend summed per endpoint and model."""
    agg: dict[tuple[str, str], list[float]] = {}
    served: dict[tuple[str, str], set[str]] = {}
    for s in spends:
        a = agg.setdefault((s.endpoint, s.model_id), [0, 0, 0, 0.0, 0])
        a[0] += s.calls
        a[1] += s.tokens_in
        a[2] += s.tokens_out
        a[3] += s.cost_usd
        a[4] += s.auth_failures
        if s.served_model:
            served.setdefault((s.endpoint, s.model_id), set()).add(s.served_model)
    now = dt.datetime.now(dt.timezone.utc)
    return [
        {"recorded_at": now.isoformat(), "day": now.date().isoformat(), "family": family, "run_id": run_id,
         "partition": partition, "task": task, "endpoint": endpoint, "model_id": model_id,
         "served_model": ",".join(sorted(served.get((endpoint, model_id), ())))[:200] or None, "calls": int(a[0]),
         "tokens_in": int(a[1]), "tokens_out": int(a[2]), "cost_usd": float(a[3]),
         "auth_failures": int(a[4]), "chunk": chunk}
        for (endpoint, model_id), a in agg.items()
    ]


def record_spend(warehouse: Warehouse, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Append ledger rows (from :func:`spend_rows`); returns the rows written."""
    if not rows:
        return 0
    t = ensure(warehouse, ledger_table(table))
    with warehouse.engine.begin() as conn:
        conn.execute(sa.insert(t), list(rows))
    return len(rows)


# ---- cache ----------------------------------------------------------------------------------


class ResultCache:
    """Content-hash cache of remote answers: warehouse-backed, or in memory without a warehouse."""

    def __init__(self, warehouse: Warehouse | None, table: str, enabled: bool) -> None:
        self.warehouse, self.enabled = warehouse, enabled
        self.table = cache_table(table)
        self._memory: dict[str, str] = {}

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """cache key -> stored result JSON, for the keys found."""
        keys = list(dict.fromkeys(k for k in keys if k))
        if not self.enabled or not keys:
            return {}
        if self.warehouse is None:
            return {k: self._memory[k] for k in keys if k in self._memory}
        t = ensure(self.warehouse, self.table)
        found: dict[str, str] = {}
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
                chunk = keys[start : start + 500]
                rows = conn.execute(sa.select(t.c.cache_key, t.c.result_json).where(t.c.cache_key.in_(chunk)))
                found.update({k: v for k, v in rows})
        return found

    def ready(self) -> None:
        """Create the table (before a transaction that writes to it: DDL from another connection would wait on it)."""
        if self.enabled and self.warehouse is not None:
            ensure(self.warehouse, self.table)

    def put_many(self, rows: Sequence[dict[str, Any]], conn: sa.Connection | None = None) -> None:
        """Insert rows whose key is new (first answer wins; concurrent writers are tolerated).

        With ``conn``, inside its transaction (after :meth:`ready`), so answers go in with the spend they cost.
        """
        if not self.enabled or not rows:
            return
        if self.warehouse is None:
            for r in rows:
                self._memory.setdefault(r["cache_key"], r["result_json"])
            return
        if conn is None:
            self.ready()
            with self.warehouse.engine.begin() as conn:
                self._insert_new(conn, rows)
        else:
            self._insert_new(conn, rows)

    def _insert_new(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        t = self.table
        unique = {r["cache_key"]: r for r in rows}
        if conn.dialect.name in _UPSERT_DIALECTS:  # one statement; a key another process wrote first is skipped
            insert = _UPSERT_DIALECTS[conn.dialect.name]
            conn.execute(insert(t).on_conflict_do_nothing(index_elements=[t.c.cache_key]), list(unique.values()))
            return
        keys = list(unique)
        existing: set[str] = set()
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            existing.update(conn.execute(sa.select(t.c.cache_key).where(t.c.cache_key.in_(keys[start : start + 500])))
                            .scalars())
        for key in keys:
            if key not in existing:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(t), [unique[key]])
                except sa.exc.IntegrityError:  # another process wrote it meanwhile
                    pass


_UPSERT_DIALECTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
