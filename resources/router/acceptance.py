"""Which remote answer a router session takes for an item, and what a cached entry means.

An answer is taken when it is at least the route's ``min_confidence`` (else ``low_confidence``) and,
in a cascade, at least as sure as the local answer it would replace (else ``less_confident``: the
local answer is kept, unless the route sets ``replace_less_confident``). A cache entry is an answer,
or a deterministic failure (``error`` set) that the same request would meet again.
"""

from __future__ import annotations

from resources.providers.base import Item, TaskResult
from resources.router.routes import TaskRoute


def from_cache(stored: str, item: Item) -> TaskResult:
    """A cached answer as this call's result.

    It keeps the tokens and cost it was bought for, so a record's row (and the KPIs summed from
    rows) say what its answer cost even after a re-run; this run's spend (ledger, ``llm.*``
    metadata, budgets) counts nothing for it (``path == "cache"``).
    """
    result = TaskResult.model_validate_json(stored)
    result.latency_ms = 0.0
    result.attempts = result.redactions = 0
    if item.input_hash:
        result.input_hash = item.input_hash
    return result


def cached_failure(result: TaskResult) -> str | None:
    """The failure reason of a cached deterministic failure (``invalid_output`` ...), None for an answer."""
    return result.error.split(":", 1)[0] if result.error is not None else None


def confidence_floor(local: TaskResult, route: TaskRoute) -> float | None:
    """In a cascade: the local answer's confidence, below which an LLM answer does not replace it."""
    if route.replace_less_confident or not local.ok:
        return None
    return local.confidence


class Acceptance:
    """Whether a remote answer is taken: ``min_confidence``, and in a cascade never less sure than local."""

    def __init__(self, min_confidence: float | None, floors: list[float | None]) -> None:
        self.min_confidence, self.floors = min_confidence, floors

    def why_not(self, i: int, result: TaskResult) -> str | None:
        if self.min_confidence is not None and (result.confidence is None or result.confidence < self.min_confidence):
            return "low_confidence"
        floor = self.floors[i] if i < len(self.floors) else None
        if floor is not None and (result.confidence is None or result.confidence < floor):
            return "less_confident"  # the local answer is kept, with what the LLM call cost
        return None
