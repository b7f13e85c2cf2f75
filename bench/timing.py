"""The benches' one timer: median of repeated calls, and the last call's output (to compare paths)."""

import statistics
import time
from typing import Any, Callable


def median_time(fn: Callable[[], Any], repeats: int, *, clock: Callable[[], float] = time.perf_counter,
                warm: bool = False) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls by ``clock`` (wall by default, ``time.process_time`` for CPU),
    after one untimed call when ``warm`` (first imports, caches), and the last output."""
    out = fn() if warm else None
    times = []
    for _ in range(repeats):
        start = clock()
        out = fn()
        times.append(clock() - start)
    return statistics.median(times), out
