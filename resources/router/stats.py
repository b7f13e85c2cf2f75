"""What the router reports: per-batch and per-session counters, and a batch of results."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from resources.providers.base import TaskResult


class RouterStats(BaseModel):
    """Counters of a batch or (cumulative) of a session."""

    items: int = 0
    calls: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    cached_failures: int = 0  # of the cache hits: a deterministic failure (invalid_output, truncated) not paid again
    redactions: int = 0
    errors: int = 0  # results no provider could answer
    cooldowns: int = 0  # times an endpoint's cooldown opened
    auth_failures: int = 0  # calls an endpoint refused for their API key (401/403)
    budget_overruns: int = 0  # calls that cost more than the worst case reserved for them (should stay 0)
    fallbacks_by_reason: dict[str, int] = Field(default_factory=dict)
    paths: dict[str, int] = Field(default_factory=dict)
    # model name -> where its price came from ("catalog", "genai-prices 0.2.3"), for the models a batch routed to
    price_sources: dict[str, str] = Field(default_factory=dict)
    budget_remaining_usd: float | None = None

    def merge(self, other: "RouterStats") -> None:
        for name in ("items", "calls", "retries", "tokens_in", "tokens_out", "cache_hits", "cached_failures",
                     "redactions", "errors", "cooldowns", "auth_failures", "budget_overruns"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd = round(self.cost_usd + other.cost_usd, 10)
        for attr in ("fallbacks_by_reason", "paths"):
            mine = Counter(getattr(self, attr))
            mine.update(getattr(other, attr))
            setattr(self, attr, dict(mine))
        self.price_sources = {**self.price_sources, **other.price_sources}
        self.budget_remaining_usd = other.budget_remaining_usd

    def tally(self, results: list[TaskResult]) -> None:
        """Fill the per-result counters (paths, fallback reasons, tokens, cost) from final results."""
        paths: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        # summed in locals, in the same order, and set once: a model attribute set costs ~1 us per result
        tokens_in, tokens_out, cost, redactions, errors = (self.tokens_in, self.tokens_out, self.cost_usd,
                                                           self.redactions, self.errors)
        for r in results:
            path = r.path
            paths[path] += 1
            if path.startswith("fallback:"):
                reasons[path.split(":", 1)[1]] += 1
            if path != "cache":  # a cached answer cost nothing in this run
                tokens_in += r.tokens_in
                tokens_out += r.tokens_out
                cost += r.cost_usd
            redactions += r.redactions
            if r.error is not None:
                errors += 1
        self.tokens_in, self.tokens_out, self.redactions, self.errors = tokens_in, tokens_out, redactions, errors
        self.cost_usd = round(cost, 10)
        self.paths = dict(paths)
        self.fallbacks_by_reason = dict(reasons)

    @property
    def fallbacks(self) -> int:
        return sum(self.fallbacks_by_reason.values())

    def as_metadata(self) -> dict[str, float | int | str]:
        """Flat plain values (``llm.calls``, ``llm.cost_usd``, ``llm.fallbacks.timeout`` ...)."""
        md: dict[str, float | int | str] = {
            "llm.items": self.items,
            "llm.calls": self.calls,
            "llm.retries": self.retries,
            "llm.tokens_in": self.tokens_in,
            "llm.tokens_out": self.tokens_out,
            "llm.cost_usd": round(self.cost_usd, 6),
            "llm.cache_hits": self.cache_hits,
            "llm.cached_failures": self.cached_failures,
            "llm.redactions": self.redactions,
            "llm.errors": self.errors,
            "llm.cooldowns": self.cooldowns,
            "llm.auth_failures": self.auth_failures,
            "llm.budget_overruns": self.budget_overruns,
            "llm.fallbacks": self.fallbacks,
        }
        for reason, n in sorted(self.fallbacks_by_reason.items()):
            md[f"llm.fallbacks.{reason}"] = n
        for path, n in sorted(self.paths.items()):
            md[f"llm.paths.{path.replace(':', '.')}"] = n
        for model, source in sorted(self.price_sources.items()):
            md[f"llm.price_source.{model}"] = source
        md["llm.budget_remaining_usd"] = (
            round(self.budget_remaining_usd, 6) if self.budget_remaining_usd is not None else "unlimited"
        )
        return md


class TaskBatch(BaseModel):
    """The results of one task for a batch of items (one per item, in order) and the batch's stats."""

    task: str
    results: list[TaskResult]
    stats: RouterStats
