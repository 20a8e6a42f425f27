"""`map_in_threads`: results in input order, bounded concurrency, the first failure raised."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from reconciler.threads import call_in_thread, map_in_threads, stop_running


def test_results_keep_the_input_order() -> None:
    def slow_for_small(number: int) -> int:
        time.sleep(0.001 * (10 - number % 10))
        return number * number

    assert map_in_threads(slow_for_small, list(range(50)), 4, name="t") == [
        number * number for number in range(50)
    ]


def test_concurrency_stays_within_workers() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def track(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1

    map_in_threads(track, list(range(40)), 3, name="t")
    assert peak == 3


def test_first_failure_stops_new_calls() -> None:
    started: list[int] = []

    def fail_on_five(number: int) -> int:
        started.append(number)
        if number == 5:
            raise KeyError("five")
        time.sleep(0.002)
        return number

    with pytest.raises(KeyError, match="five"):
        map_in_threads(fail_on_five, list(range(1000)), 2, name="t")
    # The other worker may finish the call it had started, and no more.
    assert len(started) <= 7


def test_threads_carry_the_given_name() -> None:
    names = map_in_threads(lambda _: threading.current_thread().name, [1, 2, 3], 2, name="meta")
    assert set(names) <= {"meta-0", "meta-1"}


def test_empty_input_starts_no_thread() -> None:
    assert map_in_threads(lambda _: 1 / 0, [], 5, name="t") == []


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        map_in_threads(str, [1], 0, name="t")


def test_stop_running_cancels_call() -> None:
    started: list[int] = []
    outcome: list[BaseException] = []

    def slow(number: int) -> int:
        started.append(number)
        time.sleep(0.02)
        return number

    def run() -> None:
        try:
            map_in_threads(slow, list(range(500)), 2, name="t")
        except CancelledError as error:
            outcome.append(error)

    caller = threading.Thread(target=run)
    caller.start()
    time.sleep(0.1)
    stop_running()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert len(outcome) == 1
    assert "left" in str(outcome[0])
    assert len(started) < 50
    # A call started after the stop runs to the end.
    assert map_in_threads(str, [1, 2], 2, name="t") == ["1", "2"]


def test_call_in_thread_returns_the_result() -> None:
    future = call_in_thread(lambda: threading.current_thread().name, name="one-call")

    assert future.result(timeout=5) == "one-call"


def test_call_in_thread_raises_the_error() -> None:
    future = call_in_thread(lambda: 1 // 0, name="one-call")

    with pytest.raises(ZeroDivisionError):
        future.result(timeout=5)
