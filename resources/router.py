"""The model router: which model answers each task, what happens when it fails, what it may spend.

Usage (an asset body)::

    session = router.session(local=local_store.provider(), warehouse=warehouse,
                             run_id=context.run_id, partition=context.partition_key, logger=context.log)
    batch = session.run(Task.classify, tickets)      # one result per ticket, in order; never raises
    context.add_output_metadata(session.stats().as_metadata())

Every result says which path answered it (``result.path``):

- ``local``: the routing sends the task to the local provider;
- ``llm``: a remote model answered; ``cache``: an earlier identical call's answer was reused;
- ``cascade:local`` / ``cascade:llm``: the local model was confident enough / was not and the LLM answered;
- ``fallback:<reason>``: the first choice failed and a later model in the chain (or finally the
  local provider) answered. Reasons: ``timeout``, ``rate_limited``, ``server_error``,
  ``connection``, ``malformed_response``, ``invalid_output``, ``auth``, ``client_error``,
  ``low_confidence``, ``cooldown``, ``budget``, ``no_api_key`` (and ``router_error`` for a bug
  in the router itself, logged).

Routing config (YAML; ``ModelRouter.config_path``, default ``resources/routing.default.yaml``
which keeps every task on the local provider; see ``resources/routing.example-openai.yaml``):

``concurrency``
    Remote calls in flight per run, all endpoints together (default 32).
``endpoints.<name>``
    An OpenAI-compatible server. ``base_url``; ``api_key_env`` (env var with this endpoint's key,
    default the router's ``api_key``); ``api_key_required`` (false for Ollama/vLLM);
    ``timeout_s`` per call; ``max_attempts`` (first try included; retries use exponential
    backoff ``backoff: {initial_s, max_s, jitter_s}`` and honor ``Retry-After`` up to
    ``max_retry_after_s``); ``max_concurrency``; ``rpm`` / ``tpm`` limits;
    ``cooldown: {after_failures, seconds}``: after that many consecutive failed calls the endpoint
    gets no calls for that long (requests fall back with reason ``cooldown``); ``headers``.
``models.<name>``
    ``endpoint``, ``model`` (the id sent), ``params`` (``temperature``, ``max_tokens`` ...),
    ``price: {input_per_1m, output_per_1m}`` in USD, ``json_mode``.
``tasks.<task>``
    ``provider`` (``local`` or a model name) and ``fallbacks`` (models tried in order; the local
    provider always ends the chain). ``min_confidence``: an LLM answer below it counts as a failure
    (``low_confidence``). Cascade: ``provider: local`` with ``escalate_below_confidence`` and
    ``escalate_to`` sends only tickets the local model is unsure of to those models (classify,
    prioritize). Tasks not listed use the local provider.
``budget``
    ``per_run_usd`` and ``per_day_usd`` are checked before every call with the call's worst-case
    cost (estimated input + ``max_tokens`` output); when it would not fit, the router stops
    spending and the rest fall back with reason ``budget``. ``per_partition_usd`` is the limit of
    the blocking asset check ``llm_spend_within_budget``.
``cache``
    ``enabled``, ``table``: a content-hash cache in the warehouse keyed by (task, model id,
    prompt hash, input hash); an unchanged input never costs a second call, across runs.
``ledger_table``
    The spend ledger (one row per run, partition, task and model with calls, tokens, cost and
    day), which the per-day budget and the spend check read.

Concurrency, rate limits and cooldown state live in a :class:`RouterSession`; the cache and the
ledger live in the warehouse, so they hold across sessions and processes. Put the assets that call
remote models in one Dagster ``pool`` so concurrent runs share the endpoint's limits.
"""


import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import gc
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Coroutine, Iterable, Sequence, TypeVar

import dagster as dg
import sqlalchemy as sa
from pydantic import BaseModel, Field, PrivateAttr, SerializeAsAny
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from resources.providers.base import RESULT_TYPES, ModelProvider, Task, TaskResult, TicketInput, content_hash
from resources.providers.openai import CallOutcome, OpenAIProvider, PreparedCall, ProviderCallError, scrub
from resources.routing_config import EndpointConfig, RoutingConfig, load_config
from resources.warehouse import Warehouse

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, whether or not this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def _long_lived_heap_frozen():
    """Keep the cyclic GC off the process's long-lived heap during the async section.

    A Dagster run process holds hundreds of thousands of long-lived objects (definitions, pandas,
    pydantic schemas); a full collection over them pauses the event loop for tens of ms while 32
    calls are in flight. ``gc.freeze`` moves them out of the collector's view until ``unfreeze``;
    objects the batch creates are still collected as usual.
    """
    already = gc.get_freeze_count() > 0
    if not already:
        gc.collect(1)
        gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()


# ---- stats -----------------------------------------------------------------------------------


class RouterStats(BaseModel):
    """Counters of a batch or (cumulative) of a session."""

    tickets: int = 0
    calls: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    redactions: int = 0
    errors: int = 0  # results no provider could answer
    cooldowns: int = 0  # times an endpoint's cooldown opened
    fallbacks_by_reason: dict[str, int] = Field(default_factory=dict)
    paths: dict[str, int] = Field(default_factory=dict)
    budget_remaining_usd: float | None = None

    def merge(self, other: "RouterStats") -> None:
        for name in ("tickets", "calls", "retries", "tokens_in", "tokens_out", "cache_hits", "redactions",
                     "errors", "cooldowns"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd = round(self.cost_usd + other.cost_usd, 10)
        for attr in ("fallbacks_by_reason", "paths"):
            mine = Counter(getattr(self, attr))
            mine.update(getattr(other, attr))
            setattr(self, attr, dict(mine))
        self.budget_remaining_usd = other.budget_remaining_usd

    @property
    def fallbacks(self) -> int:
        return sum(self.fallbacks_by_reason.values())

    def as_metadata(self) -> dict[str, float | int | str]:
        """Flat plain values (``llm.calls``, ``llm.cost_usd``, ``llm.fallbacks.timeout`` ...)."""
        md: dict[str, float | int | str] = {
            "llm.tickets": self.tickets,
            "llm.calls": self.calls,
            "llm.retries": self.retries,
            "llm.tokens_in": self.tokens_in,
            "llm.tokens_out": self.tokens_out,
            "llm.cost_usd": round(self.cost_usd, 6),
            "llm.cache_hits": self.cache_hits,
            "llm.redactions": self.redactions,
            "llm.errors": self.errors,
            "llm.cooldowns": self.cooldowns,
            "llm.fallbacks": self.fallbacks,
        }
        for reason, n in sorted(self.fallbacks_by_reason.items()):
            md[f"llm.fallbacks.{reason}"] = n
        for path, n in sorted(self.paths.items()):
            md[f"llm.paths.{path.replace(':', '.')}"] = n
        md["llm.budget_remaining_usd"] = (
            round(self.budget_remaining_usd, 6) if self.budget_remaining_usd is not None else "unlimited"
        )
        return md


class TaskBatch(BaseModel):
    task: Task
    results: list[SerializeAsAny[TaskResult]]
    stats: RouterStats


# ---- warehouse tables: cache and ledger ------------------------------------------------------


def _cache_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def _ledger_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("day", sa.String(10), nullable=False, index=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("partition", sa.String(200), nullable=True, index=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
    )


_CREATED: set[tuple[str, str]] = set()


def _ensure(warehouse: Warehouse, table: sa.Table) -> sa.Table:
    key = (warehouse.resolved_url, table.name)
    if key not in _CREATED:
        table.metadata.create_all(warehouse.engine, checkfirst=True)
        _CREATED.add(key)
    return table


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


@dataclass
class SpendSummary:
    cost_usd: float = 0.0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    rows: int = 0


def ledger_spend(
    warehouse: Warehouse,
    *,
    table: str = "llm_spend",
    run_id: str | None = None,
    partition: str | None = None,
    day: str | None = None,
) -> SpendSummary:
    """Spend recorded in the ledger, filtered by any of run id, partition and UTC day."""
    if not warehouse.has_table(table):
        return SpendSummary()
    t = _ledger_table(table)
    stmt = sa.select(
        sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0),
        sa.func.coalesce(sa.func.sum(t.c.calls), 0),
        sa.func.coalesce(sa.func.sum(t.c.tokens_in), 0),
        sa.func.coalesce(sa.func.sum(t.c.tokens_out), 0),
        sa.func.count(),
    )
    if run_id is not None:
        stmt = stmt.where(t.c.run_id == run_id)
    if partition is not None:
        stmt = stmt.where(t.c.partition == partition)
    if day is not None:
        stmt = stmt.where(t.c.day == day)
    with warehouse.engine.connect() as conn:
        cost, calls, tin, tout, n = conn.execute(stmt).one()
    return SpendSummary(float(cost), int(calls), int(tin), int(tout), int(n))


class _Cache:
    """Content-hash cache of remote answers: warehouse-backed, or in memory without a warehouse."""

    def __init__(self, warehouse: Warehouse | None, table: str, enabled: bool) -> None:
        self.warehouse, self.enabled = warehouse, enabled
        self.table = _cache_table(table)
        self._memory: dict[str, str] = {}

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        if not self.enabled or not keys:
            return {}
        if self.warehouse is None:
            return {k: self._memory[k] for k in keys if k in self._memory}
        t = _ensure(self.warehouse, self.table)
        found: dict[str, str] = {}
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = conn.execute(sa.select(t.c.cache_key, t.c.result_json).where(t.c.cache_key.in_(chunk)))
                found.update({k: v for k, v in rows})
        return found

    def put_many(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled or not rows:
            return
        if self.warehouse is None:
            for r in rows:
                self._memory.setdefault(r["cache_key"], r["result_json"])
            return
        t = _ensure(self.warehouse, self.table)
        rows = list({r["cache_key"]: r for r in rows}.values())
        existing = set(self.get_many(r["cache_key"] for r in rows))
        new = [r for r in rows if r["cache_key"] not in existing]
        if not new:
            return
        try:
            with self.warehouse.engine.begin() as conn:
                conn.execute(sa.insert(t), new)
        except sa.exc.IntegrityError:  # another process wrote some of them meanwhile: insert one by one
            for r in new:
                try:
                    with self.warehouse.engine.begin() as conn:
                        conn.execute(sa.insert(t), [r])
                except sa.exc.IntegrityError:
                    pass


# ---- endpoint state: rate limits and cooldown ------------------------------------------------


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
        """Take ``amount`` tokens (a request bigger than the bucket waits for a full one); returns seconds waited."""
        amount = min(amount, self.capacity)
        waited = 0.0
        while True:
            self._refill()
            if self.tokens >= amount:
                self.tokens -= amount
                return waited
            delay = (amount - self.tokens) / self.rate
            await asyncio.sleep(delay)
            waited += delay


class EndpointState:
    """Per endpoint, per session: cooldown bookkeeping and rate limiters (loop-independent)."""

    def __init__(self, name: str, cfg: EndpointConfig) -> None:
        self.name, self.cfg = name, cfg
        self.consecutive_failures = 0
        self.cooldown_until = 0.0
        self.rpm = RateLimiter(cfg.rpm) if cfg.rpm else None
        self.tpm = RateLimiter(cfg.tpm) if cfg.tpm else None

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

    async def throttle(self, tokens: int) -> None:
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)


class _Budget:
    """Per-run and per-day limits; calls reserve their worst-case cost and settle the actual one."""

    def __init__(self, per_run: float | None, per_day: float | None) -> None:
        self.per_run, self.per_day = per_run, per_day
        self.run_base = 0.0  # spent by earlier batches of this run (ledger + session)
        self.day_base = 0.0
        self.spent = 0.0  # spent in the current batch
        self.reserved = 0.0
        self.refused = 0

    def remaining(self) -> float | None:
        left = []
        if self.per_run is not None:
            left.append(self.per_run - self.run_base - self.spent - self.reserved)
        if self.per_day is not None:
            left.append(self.per_day - self.day_base - self.spent - self.reserved)
        return max(0.0, min(left)) if left else None

    def try_reserve(self, amount: float) -> bool:
        left = self.remaining()
        if left is not None and amount > left + 1e-12:
            self.refused += 1
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Remote:
    """What happened to one ticket on the remote chain."""

    result: TaskResult | None = None
    reason: str | None = None  # first failure reason
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    redactions: int = 0
    started: float = field(default_factory=time.perf_counter)
    cache_hit: bool = False
    spend: list[tuple[str, str, int, int, int, float]] = field(default_factory=list)  # endpoint, model, calls...
    cache_row: dict[str, Any] | None = None


# ---- the session -----------------------------------------------------------------------------


class RouterSession:
    """Routes task batches for one asset execution; cumulative stats over its ``run`` calls."""

    def __init__(
        self,
        config: RoutingConfig,
        *,
        local: ModelProvider,
        remote: dict[str, OpenAIProvider],
        warehouse: Warehouse | None = None,
        run_id: str = "",
        partition: str | None = None,
        logger: Any = None,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self.config = config
        self.local = local
        self.remote = remote
        self.warehouse = warehouse
        self.run_id = run_id or "adhoc"
        self.partition = partition
        self.log = logger or log
        self._secrets = [s for s in secrets if s]
        self._stats = RouterStats()
        self._endpoints = {name: EndpointState(name, cfg) for name, cfg in config.endpoints.items()}
        self._cache = _Cache(warehouse, config.cache.table, config.cache.enabled)
        self._budget = _Budget(config.budget.per_run_usd, config.budget.per_day_usd)
        self._session_spent = 0.0
        self._ledger = _ledger_table(config.ledger_table)
        self._budget_warned = False

    def __repr__(self) -> str:
        return f"RouterSession(run_id={self.run_id!r}, partition={self.partition!r}, models={sorted(self.remote)})"

    def stats(self) -> RouterStats:
        out = self._stats.model_copy(deep=True)
        out.budget_remaining_usd = self._budget_remaining()
        return out

    def _budget_remaining(self) -> float | None:
        return self._budget.remaining()

    # ---- the public entry point ----------------------------------------------------------
    def run(self, task: Task | str, tickets: Sequence[TicketInput]) -> TaskBatch:
        """One result per ticket, in input order. Remote failures fall back; this never raises for them."""
        task = Task(task)
        tickets = list(tickets)
        route = self.config.route(task)
        chain = [name for name in self.config.remote_chain(task) if name in self.remote]
        cascade = self.config.is_cascade(task)
        results: list[TaskResult | None] = [None] * len(tickets)
        local_results: list[TaskResult] | None = None
        pending = list(range(len(tickets)))
        batch_stats = RouterStats(tickets=len(tickets))
        remotes: list[_Remote] = []

        if not chain or not tickets:
            local_results = self._run_local(task, tickets)
            for i, r in enumerate(local_results):
                r.path = "local"
                results[i] = r
            pending = []
        elif cascade:
            local_results = self._run_local(task, tickets)
            threshold = float(route.escalate_below_confidence or 0.0)
            pending = []
            for i, r in enumerate(local_results):
                conf = getattr(r, "confidence", None)
                if r.ok and conf is not None and conf >= threshold:
                    r.path = "cascade:local"
                    results[i] = r
                else:
                    pending.append(i)

        if pending:
            self._refresh_budget()
            with _long_lived_heap_frozen():
                remotes = run_coroutine(
                    self._run_remote(task, [tickets[i] for i in pending], chain, route.min_confidence, batch_stats)
                )
            need_local: list[tuple[int, _Remote]] = []
            for i, rem in zip(pending, remotes):
                if rem.result is not None:
                    r = rem.result
                    if rem.cache_hit:
                        r.path = "cache"
                    elif rem.reason:
                        r.path = f"fallback:{rem.reason}"
                    else:
                        r.path = "cascade:llm" if cascade else "llm"
                    results[i] = r
                else:
                    need_local.append((i, rem))
            if need_local:
                if local_results is None:
                    fallback_results = self._run_local(task, [tickets[i] for i, _ in need_local])
                else:
                    fallback_results = [local_results[i] for i, _ in need_local]
                for (i, rem), r in zip(need_local, fallback_results):
                    r = r.model_copy()
                    r.path = f"fallback:{rem.reason or 'unavailable'}"
                    r.attempts = rem.attempts + max(1, r.attempts)
                    r.tokens_in += rem.tokens_in
                    r.tokens_out += rem.tokens_out
                    r.cost_usd = round(r.cost_usd + rem.cost_usd, 10)
                    r.redactions += rem.redactions
                    results[i] = r
            self._persist(task, remotes)

        final = [r for r in results if r is not None]
        if len(final) != len(tickets):  # pragma: no cover - the invariant every caller relies on
            raise RuntimeError(f"router returned {len(final)} results for {len(tickets)} tickets")
        self._tally(final, batch_stats)
        self._session_spent += self._budget.spent
        self._budget.run_base += self._budget.spent
        self._budget.day_base += self._budget.spent
        self._budget.spent = 0.0
        batch_stats.budget_remaining_usd = self._budget.remaining()
        self._stats.merge(batch_stats)
        self._log_summary(task, batch_stats)
        return TaskBatch(task=task, results=final, stats=batch_stats)

    # ---- local ---------------------------------------------------------------------------
    def _run_local(self, task: Task, tickets: list[TicketInput]) -> list[TaskResult]:
        if not tickets:
            return []
        try:
            if not self.local.supports(task):
                raise ValueError(f"the local provider does not support {task.value}")
            out = list(self.local.run(task, tickets))
            if len(out) != len(tickets):
                raise ValueError(f"local provider returned {len(out)} results for {len(tickets)} tickets")
            return out
        except Exception as exc:  # noqa: BLE001 - the end of the chain: record, never raise
            message = scrub(f"local provider failed: {type(exc).__name__}: {exc}", self._secrets)
            self.log.error(f"{task.value}: {message}")
            return [
                RESULT_TYPES[task](
                    ticket_id=t.ticket_id,
                    provider=getattr(self.local, "name", "local"),
                    model_id="",
                    model_version="",
                    prompt_hash="",
                    input_hash=t.input_hash(),
                    error=message,
                )
                for t in tickets
            ]

    # ---- remote --------------------------------------------------------------------------
    def _cache_key(self, task: Task, provider: OpenAIProvider, ticket: TicketInput) -> tuple[str, str]:
        input_hash = provider.cache_input_hash(task, ticket)
        return content_hash(task.value, provider.model.model, provider.prompt_hash(task), input_hash), input_hash

    async def _run_remote(
        self,
        task: Task,
        tickets: list[TicketInput],
        chain: list[str],
        min_confidence: float | None,
        stats: RouterStats,
    ) -> list[_Remote]:
        use_cache = self.config.cache.enabled
        keys = (
            {(name, i): self._cache_key(task, self.remote[name], t) for name in chain for i, t in enumerate(tickets)}
            if use_cache
            else {}
        )
        cached = self._cache.get_many(k for k, _ in keys.values())
        clients: dict[str, Any] = {}  # one async SDK client per endpoint, created in this loop
        for name in chain:
            provider = self.remote[name]
            if provider.name not in clients and provider.has_key:
                clients[provider.name] = provider.make_client()
        global_sem = asyncio.Semaphore(self.config.concurrency)
        endpoint_sems = {name: asyncio.Semaphore(ep.cfg.max_concurrency) for name, ep in self._endpoints.items()}
        # tickets are prepared (redacted, serialised) just in time, not all up front
        admission = asyncio.Semaphore(2 * self.config.concurrency)

        async def one(i: int, ticket: TicketInput) -> _Remote:
            async with admission:
                try:
                    return await chain_for(i, ticket)
                except Exception as exc:  # noqa: BLE001 - a bug here must not sink the batch: local answers
                    self.log.error(
                        scrub(f"{task.value} {ticket.ticket_id}: router error {type(exc).__name__}: {exc}", self._secrets)
                    )
                    return _Remote(reason="router_error")

        async def chain_for(i: int, ticket: TicketInput) -> _Remote:
            rem = _Remote()
            for name in chain:
                provider = self.remote[name]
                key, input_hash = keys.get((name, i), ("", ""))
                reason: str | None = None
                hit = cached.get(key) if use_cache else None
                if hit is not None:
                    result = RESULT_TYPES[task].model_validate_json(hit)
                    result.tokens_in = result.tokens_out = 0
                    result.cost_usd = result.latency_ms = 0.0
                    result.attempts, result.redactions = 0, 0
                    if _confident(result, min_confidence):
                        rem.result, rem.cache_hit = result, True
                        stats.cache_hits += 1
                        return rem
                    reason = "low_confidence"
                elif not provider.has_key:
                    reason = "no_api_key"
                else:
                    call = provider.prepare(task, ticket)
                    rem.redactions += call.redactions
                    outcome, reason = await self._attempts(
                        provider, clients[provider.name], call, rem, stats, global_sem, endpoint_sems[provider.name]
                    )
                    if outcome is not None:
                        result = outcome.result
                        rem.cache_row = None if not use_cache else {
                            "cache_key": key,
                            "task": task.value,
                            "model_id": provider.model.model,
                            "prompt_hash": provider.prompt_hash(task),
                            "input_hash": input_hash,
                            "result_json": result.model_dump_json(),
                            "tokens_in": result.tokens_in,
                            "tokens_out": result.tokens_out,
                            "cost_usd": result.cost_usd,
                            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                        }
                        if _confident(result, min_confidence):
                            result.tokens_in, result.tokens_out = rem.tokens_in, rem.tokens_out
                            result.cost_usd = round(rem.cost_usd, 10)
                            result.attempts = rem.attempts
                            result.redactions = rem.redactions
                            result.latency_ms = (time.perf_counter() - rem.started) * 1000
                            rem.result = result
                            return rem
                        reason = "low_confidence"
                rem.reason = rem.reason or reason
                self.log.debug(f"{task.value} {ticket.ticket_id}: {name} failed ({reason}); next in chain")
            return rem

        try:
            return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tickets))))
        finally:
            for client in clients.values():
                await client.close()

    async def _attempts(
        self,
        provider: OpenAIProvider,
        client: Any,
        call: PreparedCall,
        rem: _Remote,
        stats: RouterStats,
        global_sem: asyncio.Semaphore,
        endpoint_sem: asyncio.Semaphore,
    ) -> tuple[CallOutcome | None, str | None]:
        ep = self._endpoints[provider.name]
        est_cost = provider.estimate_cost(call)
        est_tokens = call.est_tokens_in + provider.model.max_tokens
        last_error: list[ProviderCallError] = []
        calls = [0]

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, ProviderCallError) or not exc.retryable:
                return False
            return exc.retry_after is None or exc.retry_after <= ep.cfg.max_retry_after_s

        retrying = AsyncRetrying(
            stop=stop_after_attempt(ep.cfg.max_attempts),
            wait=_wait_policy(ep.cfg),
            retry=retry_if_exception(should_retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with global_sem, endpoint_sem:
                        if ep.cooling():
                            raise _Refused("cooldown")
                        if not self._budget.try_reserve(est_cost):
                            if not self._budget_warned:
                                self._budget_warned = True
                                self.log.warning(
                                    f"LLM budget reached (remaining ${self._budget.remaining() or 0:.6f}): "
                                    "the rest of this run falls back to the local provider"
                                )
                            raise _Refused("budget")
                        await ep.throttle(est_tokens)
                        rem.attempts += 1
                        calls[0] += 1
                        stats.calls += 1
                        if calls[0] > 1:
                            stats.retries += 1
                        try:
                            outcome = await provider.acall(client, call)
                        except ProviderCallError as err:
                            actual = provider.model.price.cost(err.tokens_in, err.tokens_out)
                            self._budget.settle(est_cost, actual)
                            self._account(rem, provider, 1, err.tokens_in, err.tokens_out, actual)
                            last_error[:] = [err]
                            if err.endpoint_failure and ep.record_failure():
                                stats.cooldowns += 1
                                self.log.warning(
                                    f"endpoint {ep.name!r}: {ep.cfg.cooldown.after_failures} failures in a row "
                                    f"(last: {err.kind}); no calls for {ep.cfg.cooldown.seconds:g}s"
                                )
                            raise
                        self._budget.settle(est_cost, outcome.result.cost_usd)
                        self._account(rem, provider, 1, outcome.tokens_in, outcome.tokens_out, outcome.result.cost_usd)
                        ep.record_success()
                        return outcome, None
        except _Refused as refused:
            return None, (last_error[0].kind if last_error else refused.reason)
        except ProviderCallError as err:
            return None, err.kind
        return None, last_error[0].kind if last_error else "unavailable"  # pragma: no cover

    @staticmethod
    def _account(rem: _Remote, provider: OpenAIProvider, calls: int, tin: int, tout: int, cost: float) -> None:
        rem.tokens_in += tin
        rem.tokens_out += tout
        rem.cost_usd += cost
        rem.spend.append((provider.name, provider.model.model, calls, tin, tout, cost))

    # ---- bookkeeping ---------------------------------------------------------------------
    def _refresh_budget(self) -> None:
        b = self._budget
        b.spent = b.reserved = 0.0
        if self.warehouse is not None and (b.per_run is not None or b.per_day is not None):
            b.run_base = ledger_spend(self.warehouse, table=self._ledger.name, run_id=self.run_id).cost_usd
            b.day_base = ledger_spend(self.warehouse, table=self._ledger.name, day=_today()).cost_usd
        else:
            b.run_base = b.day_base = self._session_spent

    def _persist(self, task: Task, remotes: list[_Remote]) -> None:
        self._cache.put_many([r.cache_row for r in remotes if r.cache_row is not None])
        if self.warehouse is None:
            return
        agg: dict[tuple[str, str], list[float]] = {}
        for rem in remotes:
            for endpoint, model_id, calls, tin, tout, cost in rem.spend:
                a = agg.setdefault((endpoint, model_id), [0, 0, 0, 0.0])
                a[0] += calls
                a[1] += tin
                a[2] += tout
                a[3] += cost
        if not agg:
            return
        now = dt.datetime.now(dt.timezone.utc)
        rows = [
            {
                "recorded_at": now.isoformat(),
                "day": now.date().isoformat(),
                "run_id": self.run_id,
                "partition": self.partition,
                "task": task.value,
                "endpoint": endpoint,
                "model_id": model_id,
                "calls": int(a[0]),
                "tokens_in": int(a[1]),
                "tokens_out": int(a[2]),
                "cost_usd": float(a[3]),
            }
            for (endpoint, model_id), a in agg.items()
        ]
        t = _ensure(self.warehouse, self._ledger)
        with self.warehouse.engine.begin() as conn:
            conn.execute(sa.insert(t), rows)

    def _tally(self, results: list[TaskResult], stats: RouterStats) -> None:
        paths: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for r in results:
            paths[r.path] += 1
            if r.path.startswith("fallback:"):
                reasons[r.path.split(":", 1)[1]] += 1
            stats.tokens_in += r.tokens_in
            stats.tokens_out += r.tokens_out
            stats.cost_usd += r.cost_usd
            stats.redactions += r.redactions
            if r.error is not None:
                stats.errors += 1
        stats.cost_usd = round(stats.cost_usd, 10)
        stats.paths = dict(paths)
        stats.fallbacks_by_reason = dict(reasons)

    def _log_summary(self, task: Task, s: RouterStats) -> None:
        if s.calls == 0 and s.fallbacks == 0 and s.cache_hits == 0:
            return
        msg = (
            f"router {task.value}: {s.tickets} tickets, paths {dict(sorted(s.paths.items()))}, "
            f"{s.calls} calls ({s.retries} retries), {s.cache_hits} cache hits, "
            f"{s.tokens_in}+{s.tokens_out} tokens, ${s.cost_usd:.6f}"
        )
        msg = scrub(msg, self._secrets)
        (self.log.warning if s.fallbacks else self.log.info)(msg)


def _confident(result: TaskResult, min_confidence: float | None) -> bool:
    if min_confidence is None:
        return True
    conf = getattr(result, "confidence", None)
    return conf is not None and conf >= min_confidence


def _wait_policy(cfg: EndpointConfig):
    expo = wait_exponential_jitter(initial=cfg.backoff.initial_s, max=cfg.backoff.max_s, jitter=cfg.backoff.jitter_s)

    def wait(retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ProviderCallError) and exc.retry_after is not None:
            return min(exc.retry_after, cfg.max_retry_after_s)
        return expo(retry_state)

    return wait


# ---- the Dagster resource --------------------------------------------------------------------


class ModelRouter(dg.ConfigurableResource):
    """Routes model tasks between the local provider and OpenAI-compatible endpoints.

    ``config_path``: the YAML routing config ("" = every task on the local provider).
    ``api_key``: the default endpoint key, e.g. ``dg.EnvVar("OPENAI_API_KEY")``; never logged.
    """

    config_path: str = Field(default="", description="routing YAML; empty = resources/routing.default.yaml")
    api_key: str | None = Field(default=None, repr=False, description="OpenAI-compatible API key (use EnvVar)")

    _config: RoutingConfig | None = PrivateAttr(default=None)

    def load_config(self) -> RoutingConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.load_config()  # a bad routing file fails at run start, naming file, key and reason

    @property
    def budget_per_partition_usd(self) -> float | None:
        budget = self.load_config().budget
        return budget.per_partition_usd if budget.per_partition_usd is not None else budget.per_run_usd

    def _key_for(self, cfg: EndpointConfig) -> str | None:
        if cfg.api_key_env:
            return os.environ.get(cfg.api_key_env) or None
        return self.api_key or None

    def remote_providers(self) -> dict[str, OpenAIProvider]:
        config = self.load_config()
        out: dict[str, OpenAIProvider] = {}
        for name, model in config.models.items():
            ep_cfg = config.endpoints[model.endpoint]
            out[name] = OpenAIProvider(
                model, ep_cfg, api_key=self._key_for(ep_cfg), endpoint_name=model.endpoint, model_name=name
            )
        return out

    def session(
        self,
        *,
        local: ModelProvider,
        warehouse: Warehouse | None = None,
        run_id: str = "",
        partition: str | None = None,
        logger: Any = None,
    ) -> RouterSession:
        config = self.load_config()
        secrets = [self.api_key] + [os.environ.get(e.api_key_env) for e in config.endpoints.values() if e.api_key_env]
        return RouterSession(
            config,
            local=local,
            remote=self.remote_providers(),
            warehouse=warehouse,
            run_id=run_id,
            partition=partition,
            logger=logger,
            secrets=secrets,
        )
