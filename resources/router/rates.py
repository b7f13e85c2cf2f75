"""Rate limits shared by every process of a deployment: an endpoint's ``rpm`` / ``tpm`` hold for all.

A limit of N per minute is enforced as a moving window of N/g per 60/g seconds (g = gcd(N, 60)):
``rpm: 600`` is "at most 10 requests in any second", so any minute holds at most 600 and no
burst is larger than the window's share. Where the window lives is the catalog's
``rate_limits.shared``:

``redis``
    Redis, through the ``limits`` library (its moving-window strategy, one Lua call per acquire).
    The URL comes from the environment variable ``rate_limits.redis_url_env`` (default
    ``RATE_LIMIT_REDIS_URL``), as it may hold a password; it is never logged.
``warehouse``
    A small grants table ``<ledger_table>_rates`` in the warehouse: a process takes a *chunk* of
    the window (a quarter of it at most) in one serialised transaction and hands it out locally,
    so most calls cost no transaction. A chunk may only be used for ``lease`` seconds after it was
    granted, and counts against the window until ``lease`` + the window have passed, so the limit
    is exact however the chunk is used.
``process``
    Each router session's own token bucket only (:class:`~resources.router.limits.RateLimiter`).
``auto`` (default)
    ``redis`` when the variable is set, else ``warehouse`` when the session has one, else ``process``.

The session's token bucket stays in front of the shared window (it smooths each process's bursts).
Windows are keyed by endpoint name and base URL. Time is wall-clock (``time.time()``), shared by the
processes of one machine; processes on several machines need synced clocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from resources.configuration import ENVIRONMENT, ConfigError
from resources.router.catalog import EndpointConfig, ModelCatalog
from resources.router.holds import lock_row, locks_table
from resources.router.ledger import ensure
from resources.warehouse import Warehouse

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+unix://")


@dataclass(frozen=True)
class Window:
    """At most ``amount`` units in any ``seconds``-long interval."""

    amount: int
    seconds: int

    @classmethod
    def per_minute(cls, limit: int) -> "Window":
        g = math.gcd(limit, 60)
        return cls(limit // g, 60 // g)


class SharedWindow(Protocol):
    async def acquire(self, amount: float) -> float:
        """Wait until ``amount`` units fit; returns the seconds waited."""


def window_key(endpoint: str, cfg: EndpointConfig, kind: str) -> str:
    url = hashlib.sha256((cfg.base_url or "default").encode()).hexdigest()[:12]
    return f"router/{endpoint}/{url}/{kind}"


class RedisWindow:
    """A moving window in Redis (``limits.strategies.MovingWindowRateLimiter``)."""

    def __init__(self, storage: Any, key: str, window: Window) -> None:
        from limits import RateLimitItemPerSecond
        from limits.strategies import MovingWindowRateLimiter

        self.key, self.window = key, window
        self.item = RateLimitItemPerSecond(window.amount, window.seconds)
        self.limiter = MovingWindowRateLimiter(storage)

    async def acquire(self, amount: float) -> float:
        return await acquire_in_windows(self._acquire, amount, self.window)

    async def _acquire(self, cost: int) -> float:
        waited = 0.0
        while not self.limiter.hit(self.item, self.key, cost=cost):
            reset = self.limiter.get_window_stats(self.item, self.key).reset_time
            delay = min(max(0.005, reset - time.time()), float(self.window.seconds))
            await asyncio.sleep(delay)
            waited += delay
        return waited


async def acquire_in_windows(take: Any, amount: float, window: Window) -> float:
    """``amount`` units, a window's worth at a time: a request bigger than the window is paid in full
    over several windows (capping it at one window would let large calls run over the limit)."""
    left, waited = max(1, math.ceil(amount)), 0.0
    while left > 0:
        cost = min(left, window.amount)
        waited += await take(cost)
        left -= cost
    return waited


def rates_table(ledger: str) -> sa.Table:
    return sa.Table(
        f"{ledger}_rates",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("until", sa.Float, nullable=False),  # epoch seconds: the grant may be used until then
        sa.Column("n", sa.Integer, nullable=False),
        sa.Index(f"ix_{ledger}_rates_key_until", "key", "until"),
    )


class WarehouseWindow:
    """A moving window of grants in the warehouse, taken a chunk at a time."""

    def __init__(self, warehouse: Warehouse, ledger: str, key: str, window: Window) -> None:
        self.warehouse, self.window = warehouse, window
        self.key = hashlib.sha256(key.encode()).hexdigest()[:32]
        self._ledger = ledger
        self.lease = min(1.0, window.seconds / 10)
        self.chunk = max(1, window.amount // 4)
        self.left, self.until = 0, 0.0
        self.transactions = 0
        self._ready = False
        self._loop: Any = None
        self._lock: asyncio.Lock | None = None

    def _local_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()  # a session runs batches from several loops in turn
        if self._loop is not loop or self._lock is None:
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    async def acquire(self, amount: float) -> float:
        return await acquire_in_windows(self._acquire, amount, self.window)

    async def _acquire(self, cost: int) -> float:
        waited = 0.0
        async with self._local_lock():
            while True:
                now = time.time()
                if self.left >= cost and now < self.until:
                    self.left -= cost
                    return waited
                delay = self._grant(cost, now)
                if delay <= 0:
                    self.left -= cost
                    return waited
                await asyncio.sleep(delay)
                waited += delay

    def _grant(self, cost: int, now: float) -> float:
        """Take a chunk of the window (>= ``cost``); 0, or the seconds until ``cost`` may fit."""
        if not self._ready:
            self.table = ensure(self.warehouse, rates_table(self._ledger))
            self.locks = ensure(self.warehouse, locks_table(self._ledger))
            self._ready = True
        t, w = self.table, self.window
        self.transactions += 1
        with self.warehouse.engine.begin() as conn:
            lock_row(conn, self.locks, f"rate:{self.key}")
            conn.execute(sa.delete(t).where(t.c.key == self.key, t.c.until <= now - w.seconds))
            live = conn.execute(sa.select(t.c.until, t.c.n).where(t.c.key == self.key).order_by(t.c.until)).all()
            free = w.amount - sum(n for _, n in live)
            if free >= cost:
                n = min(free, max(cost, self.chunk))
                now = time.time()  # the lock may have been waited for
                conn.execute(sa.insert(t).values(key=self.key, until=now + self.lease, n=n))
                self.left, self.until = n, now + self.lease
                return 0.0
        for until, n in live:  # the oldest grants leave the window first
            free += n
            if free >= cost:
                return max(0.005, until + w.seconds - now)
        return float(w.seconds)  # pragma: no cover - cost <= amount always fits an empty window


# ---- which backend -----------------------------------------------------------------------------

_REDIS: dict[str, Any] = {}
_REDIS_LOCK = threading.Lock()


def redis_storage(url: str) -> Any:
    """One ``limits`` Redis storage (a connection pool) per URL per process."""
    from limits.storage import RedisStorage

    with _REDIS_LOCK:
        if url not in _REDIS:
            _REDIS[url] = RedisStorage(url, socket_timeout=5, socket_connect_timeout=5)
        return _REDIS[url]


def shared_backend(catalog: ModelCatalog, warehouse: Warehouse | None) -> tuple[str, Any]:
    """("redis", storage) / ("warehouse", warehouse) / ("process", None), from the catalog and environment.

    Raises :class:`ConfigError` naming the variable when Redis is asked for and not usable.
    """
    cfg = catalog.rate_limits
    url = os.environ.get(cfg.redis_url_env, "").strip()
    mode = cfg.shared
    if mode == "auto":
        mode = "redis" if url else ("warehouse" if warehouse is not None else "process")
    if mode == "redis":
        if not url:
            raise ConfigError(ENVIRONMENT, [(cfg.redis_url_env, "not set, and the model catalog's "
                                                                "rate_limits.shared is 'redis'")])
        if not url.startswith(REDIS_SCHEMES):  # the URL is not repeated: it may hold a password
            raise ConfigError(ENVIRONMENT, [(cfg.redis_url_env, "not a Redis URL (expected redis://host:port/db)")])
        return "redis", redis_storage(url)
    if mode == "warehouse" and warehouse is not None:
        return "warehouse", warehouse
    return "process", None


def shared_window(backend: tuple[str, Any], ledger: str, endpoint: str, cfg: EndpointConfig, kind: str,
                  limit: int) -> SharedWindow | None:
    name, target = backend
    key = window_key(endpoint, cfg, kind)
    if name == "redis":
        return RedisWindow(target, key, Window.per_minute(limit))
    if name == "warehouse":
        return WarehouseWindow(target, ledger, key, Window.per_minute(limit))
    return None
