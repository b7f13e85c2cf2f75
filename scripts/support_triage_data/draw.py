"""Seeded draws and value formats shared by the generator's modules."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from random import Random
from typing import Any, Mapping, Sequence


def weighted(rng: Random, options: Mapping[Any, float] | Sequence[tuple[Any, float]]) -> Any:
    """One value drawn by weight (a mapping value -> weight, or (value, weight) pairs)."""
    pairs = list(options.items()) if isinstance(options, Mapping) else list(options)
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    return rng.choices(values, weights=weights, k=1)[0]


def iso(ts: datetime) -> str:
    """ISO-8601 in UTC, to the second: ``2026-10-03T14:22:05+00:00``."""
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def money(value: float, rng: Random, formats: Sequence[Sequence[Any]]) -> str:
    """``value`` in one of ``formats``: (cumulative probability, format string) pairs."""
    style = rng.random()
    for upto, fmt in formats:
        if style < upto:
            return fmt.format(value=value)
    return formats[-1][1].format(value=value)
