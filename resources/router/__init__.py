"""The model router: which model answers each task, with fallbacks, retries, limits, cache and budgets.

Modules: ``routes`` (what a family declares), ``catalog`` (the deployment's endpoints and models),
``session`` (routing a batch), ``resource`` (the Dagster resource), ``calls`` (one call with
retries), ``limits`` (rate limits, cooldowns, budget guard), ``holds`` (budget reserved in the
warehouse), ``ledger`` (cache and spend tables), ``journal`` (a batch's spend and answers, written as
it goes), ``stats``. Names below import lazily, so loading
``resources.router.routes`` or ``.catalog`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelRouter": "resource",
    "RouterSession": "session",
    "RouterStats": "stats",
    "TaskBatch": "stats",
    "SpendSummary": "ledger",
    "ledger_spend": "ledger",
    "ModelCatalog": "catalog",
    "CatalogError": "catalog",
    "load_catalog": "catalog",
    "TaskRoute": "routes",
    "Budget": "routes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
