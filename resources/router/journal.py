"""The journal of one batch: its spend and its answers, written to the warehouse as the batch goes.

Each HTTP attempt's spend and each answer for the cache is buffered, and written every ``every``
attempts, every ``interval_s`` seconds and when the batch ends, each time in one transaction: the
chunk's ledger rows, its answers, and the session's budget hold lowered by what the chunk cost
(deleted with the last chunk). So a step killed mid-batch, even by SIGKILL, loses only its calls in
flight and the few since the last write: its re-run finds the answers it paid for in the cache, the
per-day budget sees what it spent, and nothing is counted twice. A write that fails mid-batch is
kept and tried again with the next one; each write has its own ``chunk`` key in the ledger, so one
whose commit was in doubt (it did commit) is recognised, not written twice.

The writes run on the event loop's thread, between calls (a few ms each, a few per second at
most): the budget guard and the hold then never see a chunk half-written, and no lock is needed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import sqlalchemy as sa

from resources.router.ledger import ResultCache, Spend, ensure, ledger_table, spend_rows
from resources.router.limits import BudgetGuard
from resources.warehouse import Warehouse

log = logging.getLogger(__name__)


class BatchJournal:
    """Spend and answers of one batch not yet in the warehouse, and when to write them."""

    def __init__(self, warehouse: Warehouse | None, *, ledger: str, cache: ResultCache, guard: BudgetGuard,
                 family: str, run_id: str, partition: str | None, task: str, every: int, interval_s: float,
                 logger: Any = None, renew_margin_s: float = 0.0) -> None:
        self.warehouse, self.cache, self.guard = warehouse, cache, guard
        self.ledger = ledger_table(ledger)
        self.family, self.run_id, self.partition, self.task = family, run_id, partition, task
        self.every, self.interval_s = max(1, every), interval_s
        self.renew_margin_s = renew_margin_s
        self.log = logger or log
        self._spend: list[Spend] = []
        self._answers: list[dict[str, Any]] = []
        self._ready = False
        self._id, self._written = uuid.uuid4().hex, 0

    @property
    def pending(self) -> bool:
        return bool(self._spend or self._answers)

    def spend(self, spend: Spend) -> None:
        self._spend.append(spend)

    def answer(self, cache_row: dict[str, Any]) -> None:
        self._answers.append(cache_row)

    def item_done(self) -> None:
        """After an item's chain: write once ``every`` attempts are waiting (an item's answer goes with its spend)."""
        if len(self._spend) >= self.every:
            self._write_soft()

    async def keep_writing(self) -> None:
        """Write what waits every ``interval_s``, also while every call in flight is slow to answer;
        and keep the budget hold live (renewed once less than ``renew_margin_s`` is left)."""
        while True:
            await asyncio.sleep(self.interval_s)
            if self.pending:
                self._write_soft()
            try:
                self.guard.renew(self.renew_margin_s)
            except sa.exc.SQLAlchemyError as exc:  # calls stop once the hold cannot cover them (calls.py)
                self.log.warning(f"router: could not renew the budget hold ({type(exc).__name__}); retrying")

    def close(self) -> None:
        """The rest of the batch, and the hold goes with it; raises if the warehouse cannot take it."""
        self.flush(last=True)

    def _write_soft(self) -> None:
        try:
            self.flush()
        except sa.exc.SQLAlchemyError as exc:  # kept for the next write; the batch's last write raises
            self.log.warning(f"router: could not write spend and answers yet ({type(exc).__name__}); retrying")

    def flush(self, last: bool = False) -> None:
        holds = self.guard.holds
        if not self.pending and not (last and holds is not None):  # (the last write also drops the hold)
            return
        spends, answers = self._spend, self._answers
        if self.warehouse is None:  # nothing to account against: answers stay in the session's memory cache
            self.cache.put_many(answers)
            self._spend, self._answers = [], []
            return
        chunk = f"{self._id}:{self._written}"
        rows = spend_rows(family=self.family, run_id=self.run_id, partition=self.partition, task=self.task,
                          spends=spends, chunk=chunk)
        cost = sum(s.cost_usd for s in spends)
        hold = None if holds is None or last else max(0.0, holds.held - cost)  # None: the hold goes
        if not self._ready:  # DDL from another connection would wait on the transaction below
            ensure(self.warehouse, self.ledger)
            self.cache.ready()
            if holds is not None:
                holds.ready()
            self._ready = True
        try:
            with self.warehouse.engine.begin() as conn:
                if holds is not None:
                    holds.lock(conn)
                self.cache.put_many(answers, conn)
                if rows:
                    conn.execute(sa.insert(self.ledger), rows)
                if holds is not None:
                    holds.resize(conn, hold)
        except sa.exc.IntegrityError:
            if not rows or not self._committed(chunk):
                raise
        self._spend, self._answers = [], []
        self._written += 1
        if holds is not None:
            holds.held = hold or 0.0
        self.guard.record(cost)

    def _committed(self, chunk: str) -> bool:
        """Whether an earlier try of this write did commit (its outcome was unknown)."""
        with self.warehouse.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(self.ledger.c.chunk == chunk)).scalar_one() > 0
