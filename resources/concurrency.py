"""Running asyncio work from synchronous code (Dagster asset bodies, CLI scripts).

The router and the OpenAI-compatible provider both drive many HTTP calls from one event loop but
are called from plain sync code, sometimes from a thread that already runs a loop (a notebook, an
async test). They share these helpers so neither has to import the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, whether or not this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # a loop already runs here (it is blocked on us): run ours on a fresh thread
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
