"""Running asyncio work from synchronous code (Dagster asset bodies, CLI scripts).

The router and the OpenAI-compatible provider both drive many HTTP calls from one event loop but
are called from plain sync code, sometimes from a thread that already runs a loop (a notebook, an
async test). They share these helpers so neither has to import the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
from typing import Any, Coroutine, Iterator, TypeVar

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


@contextlib.contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Keep the cyclic GC off the process's long-lived heap during an async section.

    A Dagster run process holds hundreds of thousands of long-lived objects (definitions, pandas,
    pydantic schemas); a full collection over them pauses the event loop for tens of ms while 32
    calls are in flight. ``gc.freeze`` moves them out of the collector's view until ``unfreeze``;
    objects the section creates are still collected as usual. Nested uses are no-ops.
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
