"""Budget holds: a family's budget reserved in the warehouse, so parallel steps and runs share it.

The spend ledger learns a batch's spend a few calls at a time, after the calls, so two steps of one
family running at the same time would each see budget the other has already committed to calls in
flight. Instead, a session that is about to spend first raises its *hold* (one row in
``<ledger_table>_holds``), in a transaction that counts the ledger plus every other live hold of the
family (per run id for ``per_run_usd``, per UTC day for ``per_day_usd``); a hold that does not fit
is not granted and the call is not sent. Each chunk of spend the journal
(:mod:`resources.router.journal`) writes to the ledger lowers the hold by as much in the same
transaction, and the last one deletes it, so spend is never counted twice (ledger plus hold) or not
at all. Holds grow in chunks (doubling), so a batch of a thousand calls takes about ten
transactions, not a thousand.

A hold only ever grows to cover calls whose worst case fits, so *ledger spend + live holds <=
budget* at every instant, for any number of processes. A session that cannot get the room it needs
gives its unused headroom back in the same transaction (the hold shrinks to what its unsettled calls
may still cost), so the last dollars go to whichever process can use them, not to the first that
grabbed a chunk.

A live session renews its hold's expiry from the journal's writer loop; a hold of a process that
died lapses after ``ttl_s`` (a minute by default, longer than any call may take), so a crash never
blocks the budget for long; what it had already written is in the ledger, its last unwritten chunk
(at most the journal's ``every`` calls or ``interval_s`` seconds) is not. A renewal that finds the
hold lapsed does not resurrect it: it re-checks the caps like a new hold. Before each call the
router asks :meth:`BudgetHolds.expires_in` to cover the call's longest possible duration, so a
process that lost the warehouse stops sending before its hold can lapse under a call in flight.
Expiry is wall-clock time: processes sharing a warehouse from several machines need synced clocks.

Transactions on one family are serialised with a row lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE``, which the warehouse uses, serialises writers anyway).
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa

from resources.router.ledger import ensure, ledger_table, utc_today
from resources.warehouse import Warehouse


def holds_table(ledger: str) -> sa.Table:
    return sa.Table(
        f"{ledger}_holds",
        sa.MetaData(),
        sa.Column("holder", sa.String(32), primary_key=True),
        sa.Column("family", sa.String(100), nullable=False, index=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("amount_usd", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
    )


def locks_table(ledger: str) -> sa.Table:
    return sa.Table(f"{ledger}_locks", sa.MetaData(), sa.Column("family", sa.String(100), primary_key=True))


def lock_row(conn: sa.Connection, locks: sa.Table, name: str) -> None:
    """Serialise this transaction with every other one that locks ``name`` (created on first use)."""
    c = locks.c.family
    if conn.execute(sa.select(c).where(c == name).with_for_update()).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(locks).values(family=name))
        except sa.exc.IntegrityError:  # another process inserted it first
            pass
        conn.execute(sa.select(c).where(c == name).with_for_update())


class BudgetHolds:
    """One session's hold on its family's budget."""

    def __init__(self, warehouse: Warehouse, ledger: str, *, family: str, run_id: str, per_run: float | None,
                 per_day: float | None, ttl_s: float = 60.0) -> None:
        self.warehouse, self.family, self.run_id = warehouse, family, run_id
        self.per_run, self.per_day, self.ttl_s = per_run, per_day, ttl_s
        self.holder = uuid.uuid4().hex
        self.held = 0.0
        self.expires_at = 0.0  # of the hold row as last written (epoch seconds)
        self._names = ledger
        self._ready = False

    def ready(self) -> None:
        """Create the tables on first use: a session that never calls a model never touches them."""
        if not self._ready:
            self.ledger = ensure(self.warehouse, ledger_table(self._names))
            self.holds = ensure(self.warehouse, holds_table(self._names))
            self.locks = ensure(self.warehouse, locks_table(self._names))
            self._ready = True

    def __repr__(self) -> str:
        return f"BudgetHolds(family={self.family!r}, run_id={self.run_id!r}, held={self.held:.6f})"

    # ---- reads -----------------------------------------------------------------------------
    def _others(self, conn: sa.Connection, day: str) -> tuple[float, float]:
        """(spent or held by others for this run, ... for this day): ledger rows plus live holds."""
        led, h = self.ledger.c, self.holds.c

        def total(column_ledger, column_hold, value) -> float:
            spent = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(led.cost_usd), 0.0)).where(
                led.family == self.family, column_ledger == value)).scalar_one()
            held = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(h.amount_usd), 0.0)).where(
                h.family == self.family, column_hold == value, h.holder != self.holder,
                h.expires_at > time.time())).scalar_one()
            return float(spent) + float(held)

        return total(led.run_id, h.run_id, self.run_id), total(led.day, h.day, day)

    def others(self) -> tuple[float, float]:
        self.ready()
        with self.warehouse.engine.connect() as conn:
            return self._others(conn, utc_today())

    # ---- writes ----------------------------------------------------------------------------
    def expires_in(self) -> float:
        """Seconds the hold stays live if it is not renewed (0 without a hold row)."""
        return self.expires_at - time.time()

    def lock(self, conn: sa.Connection) -> None:
        """Serialise this transaction with the family's other budget transactions."""
        lock_row(conn, self.locks, self.family)

    def extend(self, total: float, *, need: float = 0.0, committed: float = 0.0) -> tuple[float, float, float]:
        """Set the hold to ``total`` USD, or as much of it as the limits allow, and renew its expiry.

        ``committed``: what this session's unsettled calls may still cost (the hold never goes below it).
        When even ``need`` does not fit, the hold shrinks to ``committed``: headroom this session cannot
        use goes back to the others. Returns (the hold now, others' run spend + holds, others' day ...).
        """
        day = utc_today()
        self.ready()
        with self.warehouse.engine.begin() as conn:
            self.lock(conn)
            others_run, others_day = self._others(conn, day)
            caps = [total]
            if self.per_run is not None:
                caps.append(self.per_run - others_run)
            if self.per_day is not None:
                caps.append(self.per_day - others_day)
            room = min(caps)
            new = max(committed, room if room + _EPS >= need else committed)
            expires_at = self._write(conn, new, day)
        self.held, self.expires_at = new, expires_at
        return new, others_run, others_day

    def _write(self, conn: sa.Connection, amount: float, day: str) -> float:
        h = self.holds
        values = {"family": self.family, "run_id": self.run_id, "day": day, "amount_usd": amount,
                  "expires_at": time.time() + self.ttl_s}
        updated = conn.execute(sa.update(h).where(h.c.holder == self.holder).values(**values)).rowcount
        if not updated:
            conn.execute(sa.insert(h).values(holder=self.holder, **values))
        # lapsed holds of crashed processes go; nothing counts them any more
        conn.execute(sa.delete(h).where(h.c.family == self.family, h.c.expires_at < time.time() - self.ttl_s))
        return values["expires_at"]

    def resize(self, conn: sa.Connection, amount: float | None) -> None:
        """In ``conn`` (after :meth:`lock`): the hold becomes ``amount`` USD, or goes (None).

        The caller sets :attr:`held` once ``conn`` commits.
        """
        if amount is None:
            conn.execute(sa.delete(self.holds).where(self.holds.c.holder == self.holder))
            self.expires_at = 0.0
        else:
            conn.execute(sa.update(self.holds).where(self.holds.c.holder == self.holder).values(amount_usd=amount))


_EPS = 1e-12
