"""The cyclic garbage collector's thresholds for processes that run a family's steps.

A run process keeps a long-lived heap of about half a million tracked objects (Dagster's
definitions, pandas, pydantic schemas, the models) and allocates a few containers per record
(items, results, rows) that stay alive for a step. With CPython's defaults (700, 10, 10) those
survivors promote quickly and trigger a full collection over the whole heap every few thousand
records: 27 full collections cost 9.0 s of a ``bench/scale.py --n 20000`` process (0.3 s each).
With (2000, 10, 100) the same process runs 4 full collections (0.7 s) and all collections
together cost 4.6 s instead of 12.4 s. Garbage without cycles is freed by reference counting as
before; cyclic garbage waits longer for its collection, which at these thresholds is still several
times per step of a large batch.
"""

import gc

THRESHOLDS = (2000, 10, 100)


def tune_collector() -> None:
    """Set :data:`THRESHOLDS` unless the process already raised them or turned collection off
    (``gc.set_threshold(0)``): an embedding application's choice wins."""
    current = gc.get_threshold()
    if current[0] and all(c <= t for c, t in zip(current, THRESHOLDS)):
        gc.set_threshold(*THRESHOLDS)
