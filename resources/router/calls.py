"""One remote call for one item: retries with backoff, cooldown, budget reservation, rate limits.

The order inside an attempt matters: the concurrency slots are taken first, then the endpoint's
cooldown and the budget are checked (a refused call is never sent), then the RPM / TPM limits are
waited for, then the request goes out. The budget reserves the call's worst case: its prompt's
UTF-8 bytes bound its tokens (byte-level BPE tokenizers never make more tokens than bytes) plus the
full ``max_tokens`` output; a call that then cost more is logged and counted (``llm.budget_overruns``). Retries (tenacity) honor the server's
``Retry-After`` up to ``max_retry_after_s``; a longer one is not waited for. Every attempt sent is
written to the batch's journal with what it cost; an attempt the endpoint refused for its API key
(401/403) is not retried, and is counted apart so the run's spend check can fail on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from resources.providers.base import TaskResult
from resources.providers.openai import CallOutcome, OpenAIProvider, PreparedCall, ProviderCallError
from resources.router.catalog import EndpointConfig
from resources.router.journal import BatchJournal
from resources.router.ledger import Spend
from resources.router.limits import BudgetGuard, EndpointState
from resources.router.stats import RouterStats


class Refused(Exception):
    """A call the router did not send (``cooldown`` or ``budget``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ItemTrace:
    """What happened to one item on the remote chain: its answer or first failure, and its cost."""

    result: TaskResult | None = None
    reason: str | None = None  # first failure reason
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    redactions: int = 0
    started: float = field(default_factory=time.perf_counter)
    cache_hit: bool = False

    def account(self, tokens_in: int, tokens_out: int, cost: float) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_usd += cost


def worst_case_tokens_in(call: PreparedCall) -> int:
    """An upper bound on the prompt's tokens: its UTF-8 bytes (schema included) plus the chat framing."""
    size = sum(len((m.get("content") or "").encode("utf-8")) for m in call.messages) + call.prompt.extra_chars
    return max(call.est_tokens_in, size + 8 * len(call.messages) + 8)


def call_lifetime(cfg: EndpointConfig) -> float:
    """Seconds a reservation must stay covered: one attempt's timeout, and the bookkeeping around it."""
    return cfg.timeout_s + 5.0


def wait_policy(cfg: EndpointConfig):
    """Exponential backoff with jitter, or the server's ``Retry-After`` when it sent one."""
    expo = wait_exponential_jitter(initial=cfg.backoff.initial_s, max=cfg.backoff.max_s, jitter=cfg.backoff.jitter_s)

    def wait(retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ProviderCallError) and exc.retry_after is not None:
            return min(exc.retry_after, cfg.max_retry_after_s)
        return expo(retry_state)

    return wait


@dataclass
class CallContext:
    """What every call of a batch shares: limits, budget, stats and the logger."""

    budget: BudgetGuard
    stats: RouterStats
    global_slots: asyncio.Semaphore
    log: Any
    journal: BatchJournal
    # (endpoint, model id, HTTP status) -> attempts refused for their API key
    rejected_keys: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def paid(self, trace: ItemTrace, provider: OpenAIProvider, tokens_in: int, tokens_out: int, cost: float,
             refused: ProviderCallError | None = None) -> None:
        """One attempt sent: on the item's trace and in the journal (``refused``: the key was rejected)."""
        trace.account(tokens_in, tokens_out, cost)
        self.journal.spend(Spend(provider.name, provider.model.model, 1, tokens_in, tokens_out, cost,
                                 auth_failures=int(refused is not None)))
        if refused is not None:
            self.stats.auth_failures += 1
            self.rejected_keys[(provider.name, provider.model.model, refused.status or 401)] += 1


async def call_with_retries(
    provider: OpenAIProvider, client: Any, call: PreparedCall, trace: ItemTrace, endpoint: EndpointState,
    endpoint_slots: asyncio.Semaphore, ctx: CallContext,
) -> tuple[CallOutcome | None, str | None]:
    """The outcome of the first successful attempt, or None and the reason the call failed."""
    cfg = endpoint.cfg
    est_cost = provider.model.price.cost(worst_case_tokens_in(call), provider.model.max_tokens)
    est_tokens = call.est_tokens_in + provider.model.max_tokens
    lasting = call_lifetime(cfg)
    last_error: list[ProviderCallError] = []
    sent = 0

    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, ProviderCallError) or not exc.retryable:
            return False
        return exc.retry_after is None or exc.retry_after <= cfg.max_retry_after_s

    retrying = AsyncRetrying(
        stop=stop_after_attempt(cfg.max_attempts), wait=wait_policy(cfg), retry=retry_if_exception(should_retry),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                async with ctx.global_slots, endpoint_slots:
                    if endpoint.cooling():
                        raise Refused("cooldown")
                    if not await ctx.budget.reserve(est_cost, lasting):
                        _warn_budget(ctx)
                        raise Refused("budget")
                    try:
                        await endpoint.throttle(est_tokens)
                        covered = ctx.budget.still_covered(lasting)
                    except BaseException:
                        ctx.budget.settle(est_cost, 0.0)
                        raise
                    if not covered:  # the hold could not be renewed while the limits were waited for
                        ctx.budget.settle(est_cost, 0.0)
                        _warn_budget(ctx)
                        raise Refused("budget")
                    trace.attempts += 1
                    sent += 1
                    ctx.stats.calls += 1
                    if sent > 1:
                        ctx.stats.retries += 1
                    try:
                        outcome = await provider.acall(client, call)
                    except ProviderCallError as err:
                        actual = provider.model.price.cost(err.tokens_in, err.tokens_out)
                        _settle(ctx, provider, est_cost, actual)
                        ctx.paid(trace, provider, err.tokens_in, err.tokens_out, actual,
                                 refused=err if err.kind == "auth" else None)
                        last_error[:] = [err]
                        if err.endpoint_failure and endpoint.record_failure():
                            ctx.stats.cooldowns += 1
                            ctx.log.warning(
                                f"endpoint {endpoint.name!r}: {cfg.cooldown.after_failures} failures in a row "
                                f"(last: {err.kind}); no calls for {cfg.cooldown.seconds:g}s"
                            )
                        raise
                    except BaseException:  # cancelled mid-call: the reservation is released, nothing spent
                        ctx.budget.settle(est_cost, 0.0)
                        raise
                    _settle(ctx, provider, est_cost, outcome.result.cost_usd)
                    ctx.paid(trace, provider, outcome.tokens_in, outcome.tokens_out, outcome.result.cost_usd)
                    endpoint.record_success()
                    return outcome, None
    except Refused as refused:
        # a refusal after failed attempts reports what failed, not the refusal
        return None, (last_error[0].kind if last_error else refused.reason)
    except ProviderCallError as err:
        return None, err.kind
    return None, last_error[0].kind if last_error else "unavailable"  # pragma: no cover


def _settle(ctx: CallContext, provider: OpenAIProvider, reserved: float, actual: float) -> None:
    if not ctx.budget.settle(reserved, actual):
        ctx.stats.budget_overruns += 1
        ctx.log.warning(
            f"budget: a call to {provider.name!r} (model {provider.model.model}) cost ${actual:.6f}, more than "
            f"its reserved worst case ${reserved:.6f}; check the model's price and max_tokens in the catalog"
        )


def _warn_budget(ctx: CallContext) -> None:
    if not ctx.budget.warned:
        ctx.budget.warned = True
        ctx.log.warning(
            f"LLM budget reached (remaining ${ctx.budget.remaining() or 0:.6f}): "
            "the rest of this batch falls back to the local provider"
        )
