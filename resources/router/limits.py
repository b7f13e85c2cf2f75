"""What bounds remote calls: token-bucket rate limits, endpoint cooldowns, budget reservations.

All three are per router session and loop-independent (plain monotonic-clock state, awaited with
``asyncio.sleep``), so one session can run batches from several event loops in turn. The rpm / tpm
windows shared by all processes (:mod:`resources.router.rates`) come after the session's buckets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from resources.router.catalog import EndpointConfig


class RateLimiter:
    """Token bucket on the monotonic clock; ``acquire`` waits (asyncio) until ``amount`` fits."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # at most one second's worth in a burst
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens; returns seconds waited.

        A request bigger than the bucket waits for a full one and is then paid in full (the bucket
        goes into debt): capping it at the bucket's size would let large calls run over the rate.
        """
        need = min(amount, self.capacity)
        waited = 0.0
        while True:
            self._refill()
            if self.tokens >= need:
                self.tokens -= amount
                return waited
            delay = (need - self.tokens) / self.rate
            await asyncio.sleep(delay)
            waited += delay

    def adjust(self, delta: float) -> None:
        """Give back (``delta`` > 0) what a call reserved and did not use, or take what it used beyond."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + delta)


class EndpointState:
    """Per endpoint, per session: cooldown bookkeeping and rate limiters."""

    def __init__(self, name: str, cfg: EndpointConfig, shared_rpm: Any = None, shared_tpm: Any = None) -> None:
        self.name, self.cfg = name, cfg
        self.consecutive_failures = 0
        self.cooldown_until = 0.0
        self.rpm = RateLimiter(cfg.rpm) if cfg.rpm else None
        self.tpm = RateLimiter(cfg.tpm) if cfg.tpm else None
        self.shared_rpm, self.shared_tpm = shared_rpm, shared_tpm

    def cooling(self) -> bool:
        return time.monotonic() < self.cooldown_until

    def record_success(self) -> None:
        self.consecutive_failures = 0

    def record_failure(self) -> bool:
        """Count a failed call; True when this failure opens the cooldown."""
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.cfg.cooldown.after_failures and not self.cooling():
            self.cooldown_until = time.monotonic() + self.cfg.cooldown.seconds
            # after the cooldown one more failure re-opens it (half-open)
            self.consecutive_failures = self.cfg.cooldown.after_failures - 1
            return True
        return False

    async def settle_tokens(self, reserved: int, used: int) -> None:
        """After a call: the tpm windows count what the server reported it used, not the reservation.

        The session's bucket gets the unused part back; a shared window cannot un-count a hit, so
        it keeps the (larger) reservation and is only charged more when a call used more.
        """
        if self.tpm is not None:
            self.tpm.adjust(reserved - used)
        if self.shared_tpm is not None and used > reserved:
            await self.shared_tpm.acquire(used - reserved)

    async def throttle(self, tokens: int) -> None:
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)
        if self.shared_rpm is not None:
            await self.shared_rpm.acquire(1)
        if self.shared_tpm is not None:
            await self.shared_tpm.acquire(tokens)


class BudgetGuard:
    """A family's per-run and per-day limits as one session sees them.

    Before each call the router reserves the call's worst-case cost (its prompt's token bound plus
    the full ``max_tokens`` output); a call that does not fit is never sent. After the call the
    reservation is settled with the actual cost. ``run_base`` / ``day_base`` hold what others spent
    or hold (the family's ledger rows of this run / UTC day, and other sessions' live holds). With
    ``holds`` (:class:`~resources.router.holds.BudgetHolds`, when there is a warehouse), what this
    session reserves must also fit in its hold in the warehouse, which it raises in chunks as it
    goes, so parallel steps and runs of a family never spend the same dollar twice.

    A call that does not fit while this session's own calls are in flight waits for one of them to
    settle (a settled call usually cost less than its worst case) before it is refused, so a budget
    is used up to its last affordable call, not to the last call that fitted beside 32 worst cases.
    """

    def __init__(self, per_run: float | None, per_day: float | None, holds: Any = None) -> None:
        self.per_run, self.per_day = per_run, per_day
        self.holds = holds
        self.run_base = 0.0
        self.day_base = 0.0
        self.spent = 0.0  # settled in the current batch, not yet in the ledger
        self.recorded = 0.0  # settled in the current batch and written to the ledger (part of the bases)
        self.reserved = 0.0  # in flight
        self.refused = 0
        self.overruns = 0  # calls that cost more than their reserved worst case (a wrong price or bound)
        self.overrun_usd = 0.0
        self.warned = False
        self._waiters: list[asyncio.Future] = []

    @property
    def limited(self) -> bool:
        return self.per_run is not None or self.per_day is not None

    @property
    def committed(self) -> float:
        """What this session's unwritten and in-flight calls cost or may still cost."""
        return self.spent + self.reserved

    def remaining(self) -> float | None:
        """USD that may still be reserved; None = unlimited."""
        left = []
        if self.per_run is not None:
            left.append(self.per_run - self.run_base - self.spent - self.reserved)
        if self.per_day is not None:
            left.append(self.per_day - self.day_base - self.spent - self.reserved)
        return max(0.0, min(left)) if left else None

    def try_reserve(self, amount: float, lasting: float = 0.0) -> bool:
        """Reserve ``amount`` USD now if it fits, with the hold live for ``lasting`` more seconds."""
        if not self.limited:
            self.reserved += amount
            return True
        need = self.committed + amount
        holds = self.holds
        if holds is not None and (need > holds.held + _EPS or holds.expires_in() < lasting):
            # grow the hold geometrically: a batch of N calls takes about log2(N) transactions
            want = need + max(8 * amount, holds.held) if need > holds.held + _EPS else holds.held
            held, self.run_base, self.day_base = holds.extend(want, need=need, committed=self.committed)
            if need > held + _EPS:
                return False
        left = self.remaining()
        if left is not None and amount > left + _EPS:
            return False
        self.reserved += amount
        return True

    async def reserve(self, amount: float, lasting: float = 0.0) -> bool:
        """:meth:`try_reserve`, waiting for this session's calls in flight to settle before refusing."""
        while not self.try_reserve(amount, lasting):
            if self.reserved <= _EPS:
                self.refused += 1
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return True

    def still_covered(self, lasting: float) -> bool:
        """After a wait (rate limits): whether the hold is still live for ``lasting`` seconds, renewing it."""
        holds = self.holds
        if holds is None or not self.limited or holds.expires_in() >= lasting:
            return True
        held, self.run_base, self.day_base = holds.extend(holds.held, need=self.committed, committed=self.committed)
        return held + _EPS >= self.committed and holds.expires_in() >= lasting

    def renew(self, margin: float) -> None:
        """Push the hold's expiry back when less than ``margin`` seconds are left (the journal's writer calls it)."""
        holds = self.holds
        if holds is not None and holds.held > 0 and holds.expires_in() < margin:
            _, self.run_base, self.day_base = holds.extend(holds.held, need=self.committed, committed=self.committed)

    def settle(self, reserved: float, actual: float) -> bool:
        """The call reserved ``reserved`` and cost ``actual``; False when it cost more than reserved."""
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if actual > reserved + 1e-9:
            self.overruns += 1
            self.overrun_usd += actual - reserved
            return False
        return True

    def record(self, amount: float) -> None:
        """``amount`` of the batch's spend reached the ledger (and left the hold): it is the bases' now."""
        self.spent = max(0.0, self.spent - amount)
        self.recorded += amount
        self.run_base += amount
        self.day_base += amount

    def close_batch(self) -> float:
        """Fold the batch's spend into the bases; returns what the batch spent."""
        spent = self.spent + self.recorded
        self.run_base += self.spent
        self.day_base += self.spent
        self.spent = self.recorded = 0.0
        return spent


_EPS = 1e-12
