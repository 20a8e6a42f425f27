"""Pauses of the cyclic garbage collector for bounded steps that allocate much and leak nothing."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, restoring its previous state on exit.

    When the collector was on before the pause, every tracked object then moves to the oldest
    generation.

    Loading, gathering and planning 10,000 accounts allocate millions of container objects
    that form no reference cycles, so reference counting frees them all. The collector only
    re-scanned the growing heap: about 30% of the planner's time at 100,000 accounts, and
    0.15 s of a 7 s plan at the command line's raised threshold.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # The objects allocated in the pause are young, so the first collection after it
            # would scan them all: a whole plan, which cost the planner a tenth of its time
            # at 100,000 accounts. Freezing and unfreezing moves every tracked object to the
            # oldest generation at once, without a scan, where full collections still find
            # any garbage cycle.
            gc.freeze()
            gc.unfreeze()
            gc.enable()
