"""One remote call for one item: retries with backoff, cooldown, budget reservation, rate limits.

The order inside an attempt matters: the concurrency slots are taken first, then the endpoint's
cooldown and the budget are checked (a refused call is never sent), then the RPM / TPM limits are
waited for, then the request goes out. The budget and the TPM windows reserve the call's worst
case: its prompt's token bound (:func:`~resources.providers.openai.tokens_in_bound`: UTF-8 bytes,
spaces as SentencePiece's 3-byte "▁", plus the chat template's framing) plus the full ``max_tokens``
output; after the call both settle with the ``usage`` the server reported (the bound is charged when
it reports none). A call that cost more than reserved is logged and counted (``llm.budget_overruns``).

Retries (tenacity) honor the server's ``Retry-After`` up to ``max_retry_after_s``; a longer one is
not waited for. A deterministic model (temperature 0 or a seed) is never sent the same request
twice for an answer it got wrong: an ``invalid_output`` is retried once with the validation error
appended (a different request), then the item falls back; ``truncated``, ``content_filter`` and a
server's refusal of the request (``client_error``, ``request_error``) are not retried. Every attempt
sent is written to the batch's journal with what it cost; an attempt the endpoint refused for its
API key (401/403) is not retried, and is counted apart so the run's spend check can fail on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from resources.providers.base import TaskResult
from resources.providers.openai import (
    DETERMINISTIC_FAILURES,
    CallOutcome,
    OpenAIProvider,
    PreparedCall,
    ProviderCallError,
)
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
    # the last call ended on a failure the same request would meet again (cached like an answer)
    settled_failure: ProviderCallError | None = None

    def account(self, tokens_in: int, tokens_out: int, cost: float) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_usd += cost


def worst_case_tokens_in(call: PreparedCall) -> int:
    """An upper bound on the prompt's tokens (computed when the call is prepared)."""
    return call.tokens_in_bound


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
    # (endpoint, HTTP status) of requests a server refused, logged once per batch
    refused_requests: set[tuple[str, int | None]] = field(default_factory=set)

    def paid(self, trace: ItemTrace, provider: OpenAIProvider, tokens_in: int, tokens_out: int, cost: float,
             refused: ProviderCallError | None = None, served_model: str | None = None) -> None:
        """One attempt sent: on the item's trace and in the journal (``refused``: the key was rejected)."""
        trace.account(tokens_in, tokens_out, cost)
        self.journal.spend(Spend(provider.name, provider.model.model, 1, tokens_in, tokens_out, cost,
                                 auth_failures=int(refused is not None), served_model=served_model))
        if refused is not None:
            self.stats.auth_failures += 1
            self.rejected_keys[(provider.name, provider.model.model, refused.status or 401)] += 1


async def call_with_retries(
    provider: OpenAIProvider, client: Any, call: PreparedCall, trace: ItemTrace, endpoint: EndpointState,
    endpoint_slots: asyncio.Semaphore, ctx: CallContext,
) -> tuple[CallOutcome | None, str | None]:
    """The outcome of the first successful attempt, or None and the reason the call failed."""
    cfg = endpoint.cfg
    model = provider.model
    lasting = call_lifetime(cfg)
    last_error: list[ProviderCallError] = []
    correction: list[ProviderCallError] = []  # the invalid answer the next attempt corrects
    corrected = False
    sent = 0

    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, ProviderCallError) or not exc.retryable:
            return False
        if exc.kind == "invalid_output" and model.deterministic:
            if correction:  # corrected once already: the same model is not asked a third time
                return False
            correction.append(exc)
            return True
        return exc.retry_after is None or exc.retry_after <= cfg.max_retry_after_s

    retrying = AsyncRetrying(
        stop=stop_after_attempt(cfg.max_attempts), wait=wait_policy(cfg), retry=retry_if_exception(should_retry),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if correction and not corrected:  # the answer was wrong: the model sees why, in a new request
                    call, corrected = call.corrected(correction[0].detail), True
                est_tokens = call.tokens_in_bound + model.max_tokens
                est_cost = model.cost(call.tokens_in_bound, model.max_tokens)
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
                        actual = model.cost(err.tokens_in, err.tokens_out)
                        _settle(ctx, provider, est_cost, actual)
                        if err.tokens_in or err.tokens_out:  # the server counted this answer's tokens
                            await endpoint.settle_tokens(est_tokens, err.tokens_in + err.tokens_out)
                        ctx.paid(trace, provider, err.tokens_in, err.tokens_out, actual,
                                 refused=err if err.kind == "auth" else None)
                        last_error[:] = [err]
                        _log_refused_request(ctx, endpoint.name, model.model, err)
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
                    await endpoint.settle_tokens(est_tokens, outcome.tokens_in + outcome.tokens_out)
                    ctx.paid(trace, provider, outcome.tokens_in, outcome.tokens_out, outcome.result.cost_usd,
                             served_model=outcome.result.served_model)
                    endpoint.record_success()
                    return outcome, None
    except Refused as refused:
        # a refusal after failed attempts reports what failed, not the refusal
        return None, (last_error[0].kind if last_error else refused.reason)
    except ProviderCallError as err:
        if err.kind in DETERMINISTIC_FAILURES and model.deterministic:
            trace.settled_failure = err
        return None, err.kind
    return None, last_error[0].kind if last_error else "unavailable"  # pragma: no cover


def _log_refused_request(ctx: CallContext, endpoint: str, model_id: str, err: ProviderCallError) -> None:
    """A server refusing the request itself (a 4xx, or a 5xx saying so): once per endpoint and status."""
    if err.kind not in ("client_error", "request_error") or (endpoint, err.status) in ctx.refused_requests:
        return
    ctx.refused_requests.add((endpoint, err.status))
    ctx.log.warning(f"endpoint {endpoint!r} (model {model_id}) refused the request with HTTP {err.status} "
                    f"({err.detail}); not retried, no cooldown: the items fall back. Check the model's params "
                    "and structured_output in the model catalog")


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
