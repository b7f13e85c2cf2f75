"""A router session: routes one family's task batches for one asset execution.

:meth:`RouterSession.run` returns one result per item, in order, and never raises for a remote
failure. Every result says which path answered it (``result.path``):

- ``local``: the family does not route the task to a model;
- ``llm``: a remote model answered; ``cache``: an earlier identical call's answer was reused;
- ``cascade:local`` / ``cascade:llm``: the local answer was confident enough / was not and a model
  answered (tasks with a confidence: classify, extract);
- ``fallback:<reason>``: the first choice failed and a later model of the chain, or finally the
  local provider, answered. Reasons: ``timeout``, ``rate_limited``, ``server_error``,
  ``connection``, ``malformed_response``, ``invalid_output``, ``truncated``, ``content_filter``,
  ``auth``, ``client_error``, ``request_error`` (a 5xx saying the request is bad), ``low_confidence``,
  ``less_confident`` (a cascade's LLM answer was less sure than the local one, which is kept, unless
  the route sets ``replace_less_confident``), ``cooldown``, ``budget``, ``no_api_key``,
  ``router_error`` (a bug in the router itself, logged).

A deterministic model's failure that the same request would meet again (``invalid_output`` after
its correction, ``truncated``, ``content_filter``) is cached like an answer, under the same key: a
re-run counts it as a cache hit (``llm.cached_failures``) with its reason and does not pay again; a
changed prompt, model or params is a new key.

Concurrency, rate limits and cooldowns live in the session. The cache, the spend ledger and the
budget holds (:mod:`resources.router.holds`) live in the warehouse, so they hold across sessions,
parallel steps and runs: the family's ``per_run_usd`` / ``per_day_usd`` are reserved call by call
with the worst-case cost before anything is sent, and what the calls cost and answered is written
every ``flush_every`` attempts or ``flush_interval_s`` seconds (:mod:`resources.router.journal`), so
a step that dies mid-batch keeps them. An endpoint that rejects the API key (401/403) is logged as
an error naming the endpoint, the model and where the key comes from (never the key), and recorded
in the ledger, where the run's spend check finds it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, Mapping, Sequence

from resources.collector import long_lived_heap_frozen
from resources.concurrency import run_coroutine
from resources.providers.base import Item, ModelProvider, TaskResult, content_hash, error_result
from resources.providers.definition import TaskDefinition
from resources.providers.openai import OpenAIProvider, scrub
from resources.router.acceptance import Acceptance, cached_failure, confidence_floor, from_cache
from resources.router.calls import CallContext, ItemTrace, call_lifetime, call_with_retries
from resources.router.catalog import ModelCatalog
from resources.router.holds import BudgetHolds
from resources.router.journal import BatchJournal
from resources.router.ledger import ResultCache, ledger_spend, utc_today
from resources.router.limits import BudgetGuard, EndpointState
from resources.router.rates import shared_backend, shared_window
from resources.router.routes import Budget, TaskRoute
from resources.router.stats import RouterStats, TaskBatch
from resources import telemetry
from resources.warehouse import Warehouse

log = logging.getLogger(__name__)


class RouterSession:
    """Routes task batches of one family; cumulative stats over its ``run`` calls."""

    # a crash loses at most the calls in flight plus this many attempts or seconds of them
    flush_every: int = 32
    flush_interval_s: float = 0.5
    # False: the budget is read from the ledger at each batch's start and kept in this session only
    # (the old behaviour, which lets parallel runs overspend); bench/budget_race.py's naive baseline
    reserve_budget_in_warehouse: bool = True

    def __init__(
        self, catalog: ModelCatalog, *, family: str, routes: Mapping[str, TaskRoute], budget: Budget,
        local: ModelProvider, remote: Mapping[str, OpenAIProvider], warehouse: Warehouse | None = None,
        run_id: str = "", partition: str | None = None, logger: Any = None, secrets: Sequence[str | None] = (),
        key_sources: Mapping[str, str] | None = None,
    ) -> None:
        unknown = [f"routing.{t}.{loc}: {m!r}" for t, r in routes.items() for loc, m in r.model_names() if m not in remote]
        if unknown:
            raise ValueError(f"family {family!r} routes to models the model catalog does not have: "
                             f"{'; '.join(unknown)} (catalog models: {', '.join(sorted(remote)) or '(none)'})")
        self.catalog = catalog
        self.family = family
        self.routes = dict(routes)
        self.budget = budget
        self.local = local
        self.remote = dict(remote)
        self.warehouse = warehouse
        self.run_id = run_id or "adhoc"
        self.partition = partition
        self.log = logger or log
        self._secrets = [s for s in secrets if s]
        self._key_sources = dict(key_sources or {})  # endpoint -> where its key comes from, e.g. "env var X"
        self._stats = RouterStats()
        self._endpoints = self._endpoint_states(catalog, warehouse)
        self._cache = ResultCache(warehouse, catalog.cache.table, catalog.cache.enabled)
        self._budget = BudgetGuard(budget.per_run_usd, budget.per_day_usd)
        # a hold outlives any one call by a margin, so a renewal missed mid-call cannot lapse it
        longest = max((call_lifetime(cfg) for cfg in catalog.endpoints.values()), default=0.0)
        self._hold_ttl_s = max(60.0, 2 * longest + 10.0)
        if warehouse is not None and self._budget.limited and self.reserve_budget_in_warehouse:
            self._budget.holds = BudgetHolds(warehouse, catalog.ledger_table, family=family, run_id=self.run_id,
                                             per_run=budget.per_run_usd, per_day=budget.per_day_usd,
                                             ttl_s=self._hold_ttl_s)
        self._session_spent = 0.0

    def __repr__(self) -> str:
        return (f"RouterSession(family={self.family!r}, run_id={self.run_id!r}, partition={self.partition!r}, "
                f"models={sorted(self.remote)})")

    @staticmethod
    def _endpoint_states(catalog: ModelCatalog, warehouse: Warehouse | None) -> dict[str, EndpointState]:
        """Each endpoint's cooldown and limits; its rpm / tpm windows shared by every process (rates.py)."""
        limited = any(cfg.rpm or cfg.tpm for cfg in catalog.endpoints.values())
        backend = shared_backend(catalog, warehouse) if limited else ("process", None)

        def window(name: str, cfg, kind: str, limit: int | None):
            return shared_window(backend, catalog.ledger_table, name, cfg, kind, limit) if limit else None

        return {name: EndpointState(name, cfg, window(name, cfg, "rpm", cfg.rpm), window(name, cfg, "tpm", cfg.tpm))
                for name, cfg in catalog.endpoints.items()}

    def route(self, task: str) -> TaskRoute:
        return self.routes.get(task, TaskRoute())

    def stats(self) -> RouterStats:
        out = self._stats.model_copy(deep=True)
        out.budget_remaining_usd = self._budget.remaining()
        return out

    # ---- the public entry point ----------------------------------------------------------
    def run(self, task: TaskDefinition, items: Sequence[Item]) -> TaskBatch:
        """One result per item, in input order. Remote failures fall back; this never raises for them."""
        items = list(items)
        route = self.route(task.name)
        chain = route.remote_chain()
        cascade = route.is_cascade
        results: list[TaskResult | None] = [None] * len(items)
        local_results: list[TaskResult] | None = None
        pending = list(range(len(items)))
        stats = RouterStats(items=len(items), price_sources={m: self.remote[m].model.price_source for m in chain})

        if not chain or not items:
            local_results = self._run_local(task, items)
            for r in local_results:
                if r.path != "local":  # the embedded provider's results already say so: no setattr per item
                    r.path = "local"
            results = list(local_results)
            pending = []
        elif cascade:
            local_results = self._run_local(task, items)
            threshold = float(route.escalate_below_confidence or 0.0)
            pending = []
            for i, r in enumerate(local_results):
                if r.ok and r.confidence is not None and r.confidence >= threshold:
                    r.path = "cascade:local"
                    results[i] = r
                else:
                    pending.append(i)

        if pending:
            self._refresh_budget()
            journal = BatchJournal(self.warehouse, ledger=self.catalog.ledger_table, cache=self._cache,
                                   guard=self._budget, family=self.family, run_id=self.run_id,
                                   partition=self.partition, task=task.name, every=self.flush_every,
                                   interval_s=self.flush_interval_s, logger=self.log,
                                   renew_margin_s=self._hold_ttl_s - 10.0)
            try:
                with long_lived_heap_frozen():
                    floors = [confidence_floor(local_results[i], route) if cascade and local_results else None
                              for i in pending]
                    traces = run_coroutine(self._run_remote(
                        task, [items[i] for i in pending], chain, Acceptance(route.min_confidence, floors), stats,
                        journal))
            finally:  # also when the batch is interrupted: what was paid for is kept
                journal.close()
            self._resolve(task, items, pending, traces, results, local_results, cascade)

        final = [r for r in results if r is not None]
        if len(final) != len(items):  # pragma: no cover - the invariant every caller relies on
            raise RuntimeError(f"router returned {len(final)} results for {len(items)} items")
        stats.tally(final)
        self._session_spent += self._budget.close_batch()
        stats.budget_remaining_usd = self._budget.remaining()
        self._stats.merge(stats)
        self._log_summary(task, stats)
        return TaskBatch(task=task.name, results=final, stats=stats)

    def _resolve(self, task: TaskDefinition, items: list[Item], pending: list[int], traces: list[ItemTrace],
                 results: list[TaskResult | None], local_results: list[TaskResult] | None, cascade: bool) -> None:
        """Place remote answers; items the chain could not answer get the local answer, costs added."""
        need_local: list[tuple[int, ItemTrace]] = []
        for i, trace in zip(pending, traces):
            r = trace.result
            if r is None:
                need_local.append((i, trace))
                continue
            if trace.cache_hit:
                r.path = "cache"
            elif trace.reason:
                r.path = f"fallback:{trace.reason}"
            else:
                r.path = "cascade:llm" if cascade else "llm"
            results[i] = r
        if not need_local:
            return
        if local_results is None:
            fallback = self._run_local(task, [items[i] for i, _ in need_local])
        else:
            fallback = [local_results[i] for i, _ in need_local]
        for (i, trace), r in zip(need_local, fallback):
            r = r.model_copy()
            r.path = f"fallback:{trace.reason or 'unavailable'}"
            r.attempts = trace.attempts + max(1, r.attempts)
            r.tokens_in += trace.tokens_in
            r.tokens_out += trace.tokens_out
            r.cost_usd = round(r.cost_usd + trace.cost_usd, 10)
            r.redactions += trace.redactions
            results[i] = r

    # ---- local ---------------------------------------------------------------------------
    def _run_local(self, task: TaskDefinition, items: list[Item]) -> list[TaskResult]:
        if not items:
            return []
        started = telemetry.clock()
        try:
            if not self.local.supports(task):
                raise ValueError(f"the local provider does not support {task.type} tasks")
            out = list(self.local.run(task, items))
            if len(out) != len(items):
                raise ValueError(f"the local provider returned {len(out)} results for {len(items)} items")
            telemetry.local_batch(self.family, task, self.local, items, out, started)
            return out
        except Exception as exc:  # noqa: BLE001 - the end of the chain: every item gets a reason, never a raise
            message = scrub(f"local provider failed: {type(exc).__name__}: {exc}", self._secrets)
            self.log.error(f"{task.key}: {message}")
            telemetry.local_batch(self.family, task, self.local, items, None, started, error=exc)
            return [error_result(task, item, getattr(self.local, "name", "local"), message) for item in items]

    # ---- remote --------------------------------------------------------------------------
    def _cache_key(self, task: TaskDefinition, provider: OpenAIProvider, item: Item) -> tuple[str, str]:
        input_hash = provider.input_hash(task, item)
        key = content_hash(self.family, task.name, provider.model.model, provider.prompt_hash(task), input_hash)
        return key, input_hash

    async def _run_remote(self, task: TaskDefinition, items: list[Item], chain: list[str],
                          accept: Acceptance, stats: RouterStats, journal: BatchJournal) -> list[ItemTrace]:
        use_cache = self.catalog.cache.enabled
        keys = {(name, i): self._cache_key(task, self.remote[name], it) for name in chain
                for i, it in enumerate(items)} if use_cache else {}
        cached = self._cache.get_many(k for k, _ in keys.values())
        clients: dict[str, Any] = {}  # one async SDK client per endpoint, created in this loop
        for name in chain:
            provider = self.remote[name]
            if provider.name not in clients and provider.has_key:
                clients[provider.name] = provider.make_client()
        ctx = CallContext(self._budget, stats, asyncio.Semaphore(self.catalog.concurrency), self.log, journal)
        endpoint_slots = {name: asyncio.Semaphore(ep.cfg.max_concurrency) for name, ep in self._endpoints.items()}
        # items are prepared (redacted, serialised) just in time, not all up front
        admission = asyncio.Semaphore(2 * self.catalog.concurrency)

        async def one(i: int, item: Item) -> ItemTrace:
            async with admission:
                try:
                    return await chain_for(i, item)
                except Exception as exc:  # noqa: BLE001 - a bug here must not sink the batch: local answers
                    self.log.error(scrub(f"{task.key} {item.id}: router error {type(exc).__name__}: {exc}",
                                         self._secrets))
                    return ItemTrace(reason="router_error")
                finally:
                    journal.item_done()

        async def chain_for(i: int, item: Item) -> ItemTrace:
            trace = ItemTrace()
            for name in chain:
                provider = self.remote[name]
                mark = telemetry.start_remote(trace)
                key, input_hash = keys.get((name, i), ("", ""))
                hit = cached.get(key) if use_cache else None
                if hit is not None:
                    result = from_cache(hit, item)
                    reason = cached_failure(result) or accept.why_not(i, result)
                    if result.error is not None:  # a deterministic failure bought earlier: not paid for again
                        stats.cache_hits += 1
                        stats.cached_failures += 1
                    elif reason is None:
                        trace.result, trace.cache_hit = result, True
                        stats.cache_hits += 1
                        telemetry.end_remote(mark, self.family, task, provider, item, trace, result)
                        return trace
                elif not provider.has_key:
                    reason = "no_api_key"
                else:
                    call = provider.prepare(task, item)
                    trace.redactions += call.redactions
                    outcome, reason = await call_with_retries(
                        provider, clients[provider.name], call, trace, self._endpoints[provider.name],
                        endpoint_slots[provider.name], ctx,
                    )
                    if outcome is None and trace.settled_failure is not None and use_cache:
                        journal.answer(self._cache_row(task, provider, key, input_hash, self._failure(
                            task, provider, item, trace.settled_failure)))
                        trace.settled_failure = None
                    if outcome is not None:
                        result = outcome.result
                        if use_cache:
                            journal.answer(self._cache_row(task, provider, key, input_hash, result))
                        reason = accept.why_not(i, result)
                        if reason is None:
                            result.tokens_in, result.tokens_out = trace.tokens_in, trace.tokens_out
                            result.cost_usd = round(trace.cost_usd, 10)
                            result.attempts = trace.attempts
                            result.redactions = trace.redactions
                            result.latency_ms = (time.perf_counter() - trace.started) * 1000
                            trace.result = result
                            telemetry.end_remote(mark, self.family, task, provider, item, trace, result)
                            return trace
                telemetry.end_remote(mark, self.family, task, provider, item, trace, None, reason)
                trace.reason = trace.reason or reason
                self.log.debug(f"{task.key} {item.id}: {name} failed ({reason}); next in chain")
            return trace

        writer = asyncio.create_task(journal.keep_writing())
        try:
            return list(await asyncio.gather(*(one(i, it) for i, it in enumerate(items))))
        finally:
            writer.cancel()
            for client in clients.values():
                await client.close()
            self._log_rejected_keys(task, ctx)

    @staticmethod
    def _failure(task: TaskDefinition, provider: OpenAIProvider, item: Item, err: Any) -> TaskResult:
        """A deterministic failure as a cache entry: what it cost, and why (``<kind>: <detail>``)."""
        return provider.error_result(task, item, str(err), tokens_in=err.tokens_in, tokens_out=err.tokens_out,
                                     cost_usd=provider.model.cost(err.tokens_in, err.tokens_out))

    def _cache_row(self, task: TaskDefinition, provider: OpenAIProvider, key: str, input_hash: str,
                   result: TaskResult) -> dict[str, Any]:
        return {
            "cache_key": key, "family": self.family, "task": task.name, "model_id": provider.model.model,
            "prompt_hash": provider.prompt_hash(task), "input_hash": input_hash,
            "result_json": result.model_dump_json(), "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out, "cost_usd": result.cost_usd,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }

    # ---- bookkeeping ---------------------------------------------------------------------
    def _refresh_budget(self) -> None:
        """Bases of the family's limits: its ledger spend (and others' holds) of this run and of today."""
        b = self._budget
        if b.holds is not None:
            b.run_base, b.day_base = b.holds.others()
        elif self.warehouse is not None and b.limited:
            table = self.catalog.ledger_table
            b.run_base = ledger_spend(self.warehouse, family=self.family, run_id=self.run_id, table=table).cost_usd
            b.day_base = ledger_spend(self.warehouse, family=self.family, day=utc_today(), table=table).cost_usd
        else:
            b.run_base = b.day_base = self._session_spent

    def _log_rejected_keys(self, task: TaskDefinition, ctx: CallContext) -> None:
        for (endpoint, model_id, status), n in sorted(ctx.rejected_keys.items()):
            source = self._key_sources.get(endpoint, "the router's api_key")
            self.log.error(
                f"router {task.key}: endpoint {endpoint!r} (model {model_id}) rejected the API key (HTTP {status}) "
                f"on {n} call(s); their answers came from the rest of the fallback chain and this run's spend "
                f"check fails. Check the key in {source}."
            )

    def _log_summary(self, task: TaskDefinition, s: RouterStats) -> None:
        if s.calls == 0 and s.fallbacks == 0 and s.cache_hits == 0:
            return
        msg = (f"router {task.key}: {s.items} items, paths {dict(sorted(s.paths.items()))}, {s.calls} calls "
               f"({s.retries} retries), {s.cache_hits} cache hits, {s.tokens_in}+{s.tokens_out} tokens, "
               f"${s.cost_usd:.6f}")
        (self.log.warning if s.fallbacks else self.log.info)(scrub(msg, self._secrets))
