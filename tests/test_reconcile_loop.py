"""The reconcile loop with a scripted round function, a fake clock and a fake sleep."""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable

import pytest

from reconciler.errors import (
    LockError,
    ManifestError,
    NylasRateLimitError,
    ReconcilerError,
    VaultAuthError,
    VaultSealedError,
    VaultUnavailableError,
)
from reconciler.gc_pause import collector_paused
from reconciler.metrics import ReconcileCounters
from reconciler.reconcile import RoundResult, run_reconcile_loop

HOUR = 3600.0
Step = RoundResult | ReconcilerError | Exception


class FakeTime:
    """A clock that moves only when the loop sleeps or a round takes time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return 1_760_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedRounds:
    """A round function that plays `steps` in order, then sets `stop`."""

    def __init__(self, steps: Iterable[Step], stop: threading.Event, fake: FakeTime) -> None:
        self.steps = list(steps)
        self.stop = stop
        self.fake = fake
        self.calls = 0

    def __call__(self) -> RoundResult:
        step = self.steps[self.calls]
        self.calls += 1
        self.fake.now += 2.0  # every round takes two seconds
        if self.calls == len(self.steps):
            self.stop.set()
        if isinstance(step, Exception):
            raise step
        return step


def run(
    steps: Iterable[Step],
    *,
    interval_s: float = HOUR,
    jitter: float = 0.0,
    once: bool = False,
    on_round: Callable[[ReconcileCounters], None] | None = None,
) -> tuple[int, ScriptedRounds, FakeTime]:
    fake = FakeTime()
    stop = threading.Event()
    rounds = ScriptedRounds(steps, stop, fake)
    code = run_reconcile_loop(
        rounds,
        interval_s=interval_s,
        jitter_fraction=jitter,
        once=once,
        stop=stop,
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=fake.wall_clock,
        rng=random.Random(7),  # noqa: S311 - a seeded generator makes jitter reproducible
        on_round=on_round,
    )
    return code, rounds, fake


OK = RoundResult(0)
PARTIAL = RoundResult(3, {"connect": 1}, failed=1)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (OK, 0),
        (PARTIAL, 3),
        (RoundResult(1, plan_errors=2), 1),
        (ManifestError([]), 1),
        (VaultSealedError("sealed"), 1),
    ],
    ids=["no-changes", "partial", "plan-errors", "manifest-error", "transient-error"],
)
def test_once_returns_round_exit_code(step: Step, expected: int) -> None:
    """--once runs one round, without retries, and returns its exit code."""
    code, rounds, fake = run([step, OK], once=True)

    assert code == expected
    assert rounds.calls == 1
    assert fake.sleeps == []


def test_loop_waits_interval_between_rounds() -> None:
    """Rounds without errors are spaced by the interval; a stop ends the loop with 0."""
    code, rounds, fake = run([OK, PARTIAL, OK])

    assert code == 0
    assert rounds.calls == 3
    assert fake.sleeps == [HOUR, HOUR]


def test_transient_errors_back_off() -> None:
    """Each transient failure in a row doubles the wait, from 5s, capped at the interval."""
    errors: list[Step] = [
        VaultUnavailableError("down"),
        VaultSealedError("sealed"),
        NylasRateLimitError("429", status=429),
        LockError("held"),
        VaultUnavailableError("down"),
    ]
    code, rounds, fake = run([*errors, OK, OK], interval_s=60.0)

    assert code == 0
    assert rounds.calls == 7
    assert fake.sleeps == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_backoff_resets_after_success() -> None:
    """A round that runs to its end resets the backoff."""
    down = VaultUnavailableError("down")
    code, _, fake = run([down, down, OK, down, OK])

    assert code == 0
    assert fake.sleeps == [5.0, 10.0, HOUR, 5.0]


def test_other_errors_wait_full_interval() -> None:
    """A non-transient error is logged and the next round runs at the normal interval."""
    code, rounds, fake = run([ManifestError([]), VaultAuthError("denied"), OK])

    assert code == 0
    assert rounds.calls == 3
    assert fake.sleeps == [HOUR, HOUR]


def test_bug_propagates() -> None:
    """An exception outside the ReconcilerError tree ends the loop."""
    with pytest.raises(KeyError):
        run([OK, KeyError("bug"), OK])


def test_jitter_within_bounds() -> None:
    """Jittered waits stay within interval ± fraction and are not all equal."""
    code, _, fake = run([OK] * 200, interval_s=100.0, jitter=0.1)

    assert code == 0
    assert len(fake.sleeps) == 199
    assert min(fake.sleeps) >= 90.0
    assert max(fake.sleeps) <= 110.0
    assert len(set(fake.sleeps)) > 100


def test_jittered_backoff_capped() -> None:
    """Backoff with jitter never exceeds the interval."""
    errors: list[Step] = [VaultUnavailableError("down")] * 40
    _, _, fake = run([*errors, OK], interval_s=30.0, jitter=0.5)

    assert max(fake.sleeps) <= 30.0
    assert fake.sleeps[0] >= 2.5
    assert fake.sleeps[0] <= 7.5


def test_stop_during_round_finishes_round() -> None:
    """A stop set while a round runs lets the round finish, then the loop returns 0."""
    code, rounds, fake = run([PARTIAL])

    assert code == 0
    assert rounds.calls == 1
    assert fake.sleeps == []


def test_stop_before_start_runs_nothing() -> None:
    """A loop whose stop event is already set returns 0 without a round."""
    stop = threading.Event()
    stop.set()
    calls: list[int] = []

    def round_fn() -> RoundResult:
        calls.append(1)
        return OK

    assert run_reconcile_loop(round_fn, interval_s=HOUR, stop=stop) == 0
    assert calls == []


def test_stop_during_sleep_wakes_at_once() -> None:
    """With the default sleep, setting stop ends an hour-long wait at once."""
    stop = threading.Event()
    calls: list[float] = []

    def round_fn() -> RoundResult:
        calls.append(time.monotonic())
        return OK

    timer = threading.Timer(0.2, stop.set)
    started = time.monotonic()
    timer.start()
    try:
        code = run_reconcile_loop(round_fn, interval_s=HOUR, stop=stop)
    finally:
        timer.cancel()

    assert code == 0
    assert len(calls) == 1
    assert time.monotonic() - started < 10.0


def test_counters_published_each_round() -> None:
    """on_round receives cumulative counters after every round."""
    published: list[ReconcileCounters] = []
    code, _, _ = run(
        [RoundResult(0, {"connect": 2}), VaultSealedError("sealed"), PARTIAL],
        on_round=published.append,
    )

    assert code == 0
    assert [c.rounds_total for c in published] == [1, 2, 3]
    assert [c.failed_rounds_total for c in published] == [0, 1, 2]
    last = published[-1]
    assert dict(last.changes_applied) == {"connect": 3}
    # Only the first round succeeded: it ended at fake time 1002.
    assert last.last_success_at == 1_760_000_000.0 + 1002.0
    assert published[0].last_success_at == last.last_success_at


def test_metrics_failure_does_not_stop(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that cannot write the metrics file is logged and the loop goes on."""

    def fail(counters: ReconcileCounters) -> None:
        raise ReconcilerError("could not write the metrics file '/x.prom': Permission denied")

    with caplog.at_level(logging.WARNING, logger="reconciler.reconcile"):
        code, rounds, _ = run([OK, OK], on_round=fail)

    assert code == 0
    assert rounds.calls == 2
    warnings = [r.getMessage() for r in caplog.records if "metrics" in r.getMessage()]
    assert len(warnings) == 2
    assert "Permission denied" in warnings[0]


def test_one_log_line_per_round(caplog: pytest.LogCaptureFixture) -> None:
    """Each round logs exactly one summary line naming its outcome and the next wait."""
    steps: list[Step] = [
        RoundResult(0, {"connect": 2, "delete": 1}),
        VaultSealedError("Vault is sealed"),
        ManifestError([], hint="fix it"),
        RoundResult(3, {"reconnect": 1}, failed=2, not_attempted=1),
    ]
    with caplog.at_level(logging.INFO, logger="reconciler.reconcile"):
        run(steps)

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconcile round")]
    assert len(lines) == 4
    assert lines[0] == (
        "reconcile round 1 finished in 2.0s: applied 2 connect, 1 delete; next round in 1h0m0s"
    )
    assert "Vault is sealed (VaultSealedError, 1 in a row); retrying in 5.0s" in lines[1]
    assert "(ManifestError); next round in 1h0m0s" in lines[2]
    assert "\n" not in lines[2]
    assert lines[3].endswith("applied 1 reconnect, 2 failed, 1 not attempted; stopping")
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith("reconcile round")]
    assert levels == [logging.INFO, logging.WARNING, logging.ERROR, logging.WARNING]


def test_loop_frees_round_cycles() -> None:
    """A round's pause moves its cycles to the oldest generation, then the loop frees them."""
    stop = threading.Event()
    probes: list[weakref.ref[object]] = []
    alive_at_wait: list[bool] = []

    class Node:
        partner: Node

    def round_fn() -> RoundResult:
        with collector_paused():
            first, second = Node(), Node()
            first.partner, second.partner = second, first
            probes.append(weakref.ref(first))
        return OK

    def sleep(_: float) -> None:
        alive_at_wait.append(probes[-1]() is not None)
        stop.set()

    run_reconcile_loop(round_fn, interval_s=HOUR, stop=stop, sleep=sleep)

    assert alive_at_wait == [False], "the round's cycle was still alive during the wait"
