"""Turn SIGINT and SIGTERM into a stop event, so a run finishes its work in flight.

Apply and the reconcile loop both stop this way: the first signal sets the event and the
run winds down, and a second signal raises `KeyboardInterrupt` at once. Every other command
runs under `sigterm_interrupts`, so SIGTERM stops it as Ctrl-C does.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(
    stop: threading.Event, *, logger: logging.Logger, finishing: str
) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into `stop.set()`; a second one interrupts at once.

    The first signal logs `received SIGTERM: finishing <finishing>, then stopping`. Signal
    handlers can be installed only in the main thread, so elsewhere (a test runner's worker
    thread) the block runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.warning(
            "received %s: finishing %s, then stopping", signal.Signals(signum).name, finishing
        )
        stop.set()

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM interrupt a command as Ctrl-C does: "interrupted" and exit code 130.

    Python's default ends the process at once with 143 and no message. apply and reconcile
    install their own handlers while they run, which finish the work in flight first.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
