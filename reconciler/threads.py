"""Run one blocking call per item on a few threads, for the many small reads of a plan.

`ThreadPoolExecutor.map` creates a future, a condition and a lock round trip per item, and
its ten workers wait for the pool's semaphore as well as for the interpreter lock. Measured
with 10,000 Vault metadata reads on 2 cores, the reads took about 10% longer than with
workers that take the next item from a shared queue, as `map_in_threads` does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_threads(
    function: Callable[[T], R], items: Sequence[T], workers: int, *, name: str
) -> list[R]:
    """Return `[function(item) for item in items]`, computed by at most `workers` threads.

    The first exception a call raises stops the workers from starting more calls and is
    raised here once the calls already running have returned. Threads are named
    `<name>-<n>`, so a profile or a hung-thread dump shows what they were doing.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    results: list[R | None] = [None] * len(items)
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(items)):
        pending.put(index)
    stop = threading.Event()
    failures: list[BaseException] = []

    def work() -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = function(items[index])
            except BaseException as error:  # noqa: BLE001  # raised again in the caller
                failures.append(error)
                stop.set()
                return

    # Daemon threads, so that an interrupted command exits at once instead of waiting for
    # calls whose results are discarded.
    threads = [
        threading.Thread(target=work, name=f"{name}-{number}", daemon=True)
        for number in range(min(workers, len(items)))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    if failures:
        raise failures[0]
    # Every slot is filled: no call failed and every index was taken from the queue.
    return results  # type: ignore[return-value]
