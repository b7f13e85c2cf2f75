"""The cyclic garbage collector in processes that run a family's steps: its thresholds, and the
sections that keep it off (a local batch) or away from the long-lived heap (an async section).

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

import contextlib
import gc
from typing import Iterator

THRESHOLDS = (2000, 10, 100)


def tune_collector() -> None:
    """Set :data:`THRESHOLDS` unless the process already raised them or turned collection off
    (``gc.set_threshold(0)``): an embedding application's choice wins."""
    current = gc.get_threshold()
    if current[0] and all(c <= t for c, t in zip(current, THRESHOLDS)):
        gc.set_threshold(*THRESHOLDS)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for one batch, then restored.

    A batch allocates a few containers per item (answers, results) that reference counting frees;
    with the collector on, its full passes over every live object (a partition's frames, the
    models) cost up to a quarter of a batch. Nothing is lost: it resumes right after the batch.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

