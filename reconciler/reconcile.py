"""The continuous reconcile loop behind `grantctl reconcile`.

Each round is one plan and apply under the state lock. The caller builds the round as a
function (`round_fn`), so this module imports no client, lock or click code. It schedules
rounds, backs off on transient failures, logs one summary line per round, keeps the
counters that the metrics file reports, and stops when the `stop` event is set.

Which errors end the loop:
- A transient outage (`TRANSIENT_ERRORS`: Vault unreachable or sealed, Nylas 5xx, 429,
  timeouts, dropped connections, a lock held by someone else) is retried with exponential
  backoff, capped at the interval. The loop keeps running.
- Any other `ReconcilerError` (an invalid manifest, a denied Vault path, a failed login) is
  logged and the next round runs at the normal interval, because the round re-reads the
  manifest and logs in again, so a fixed file or policy takes effect without a restart.
- An exception outside the `ReconcilerError` tree is a bug. It propagates to the CLI's error
  boundary, so the process exits non-zero and its supervisor restarts it.
- With `once=True` exactly one round runs, without retries, and its exit code is returned.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    ConfigError,
    LockError,
    NylasConnectionError,
    NylasRateLimitError,
    NylasServerError,
    NylasTimeoutError,
    ReconcilerError,
    VaultSealedError,
    VaultUnavailableError,
)
from reconciler.metrics import AuditSummary, ReconcileCounters
from reconciler.model import EMPTY_MAPPING, ApplyResult, Outcome, Plan

LOG = logging.getLogger(__name__)

# Failures that a later attempt can succeed past without anyone changing anything.
TRANSIENT_ERRORS: tuple[type[ReconcilerError], ...] = (
    VaultUnavailableError,
    VaultSealedError,
    NylasServerError,
    NylasConnectionError,
    NylasTimeoutError,
    NylasRateLimitError,
    LockError,
)
DEFAULT_INITIAL_BACKOFF_S = 5.0
MIN_INTERVAL_S = 1.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


@dataclass(frozen=True)
class RoundResult:
    """The outcome of one round that ran to its end.

    `exit_code` is 0 (every change done, or no changes), 3 (some changes failed or were not
    attempted) or 1 (nothing could be done, e.g. a non-applyable plan). `applied` maps an
    action value to the number of changes done. `audit`, when set, is written to the
    metrics file with the reconcile counters.
    """

    exit_code: int
    applied: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)
    failed: int = 0
    not_attempted: int = 0
    plan_errors: int = 0
    audit: AuditSummary | None = None

    @classmethod
    def from_apply(
        cls, plan: Plan, result: ApplyResult | None, *, audit: AuditSummary | None = None
    ) -> RoundResult:
        """Build the result of a round from its plan and, when apply ran, its result."""
        applied: dict[str, int] = {}
        failed = not_attempted = 0
        for change in result.results if result is not None else ():
            if change.did_change:
                applied[change.action.value] = applied.get(change.action.value, 0) + 1
            elif change.outcome is Outcome.FAILED:
                failed += 1
            elif change.outcome is Outcome.NOT_ATTEMPTED:
                not_attempted += 1

        exit_code = EXIT_OK
        if plan.errors or failed or not_attempted:
            exit_code = EXIT_PARTIAL if applied else EXIT_ERROR
        return cls(exit_code, applied, failed, not_attempted, len(plan.errors), audit)


def parse_interval(text: str) -> float:
    """Parse a round interval: seconds (`90`) or a duration (`2s`, `30m`, `1h`, `1h30m`).

    Returns seconds. Raises `ConfigError` for any other form and for intervals under 1s.
    """
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(number + unit for number, unit in parts) != value:
            raise ConfigError(
                f"invalid interval {text!r}",
                hint="use a number of seconds or a duration such as 90s, 30m, 1h or 1h30m",
            )
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < MIN_INTERVAL_S:
        raise ConfigError(
            f"interval {text!r} is too short: the minimum is 1s",
            hint="use an interval of at least 1s; 1h is the usual cadence",
        )
    return seconds


def parse_jitter(text: str) -> float:
    """Parse a jitter as a percentage (`10%`) or a fraction (`0.1`) of the interval.

    Returns a fraction in [0, 1). Raises `ConfigError` for anything else.
    """
    value = text.strip()
    number = value[:-1].strip() if value.endswith("%") else value
    try:
        fraction = float(number)
    except ValueError:
        raise ConfigError(
            f"invalid jitter {text!r}",
            hint="use a percentage such as 10% or a fraction such as 0.1",
        ) from None
    if value.endswith("%"):
        fraction /= 100
    if not math.isfinite(fraction) or not 0 <= fraction < 1:
        raise ConfigError(
            f"jitter {text!r} is out of range: it must be at least 0 and below 100%",
            hint="use a percentage such as 10% or a fraction such as 0.1",
        )
    return fraction


@dataclass
class _LoopCounters:
    rounds: int = 0
    failed_rounds: int = 0
    consecutive_transient: int = 0
    last_success_at: float | None = None
    applied: dict[str, int] = field(default_factory=dict)
    audit: AuditSummary | None = None

    def snapshot(self) -> ReconcileCounters:
        return ReconcileCounters(
            rounds_total=self.rounds,
            failed_rounds_total=self.failed_rounds,
            last_success_at=self.last_success_at,
            changes_applied=dict(self.applied),
            audit=self.audit,
        )


@dataclass(frozen=True)
class _RoundOutcome:
    exit_code: int
    duration_s: float
    result: RoundResult | None = None
    error: ReconcilerError | None = None

    @property
    def transient(self) -> bool:
        return isinstance(self.error, TRANSIENT_ERRORS)


def run_reconcile_loop(
    round_fn: Callable[[], RoundResult],
    *,
    interval_s: float,
    stop: threading.Event,
    jitter_fraction: float = 0.0,
    once: bool = False,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    logger: logging.Logger = LOG,
    on_round: Callable[[ReconcileCounters], None] | None = None,
    initial_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S,
) -> int:
    """Run reconcile rounds until `stop` is set, and return the process exit code.

    Between rounds the loop waits `interval_s` plus or minus `jitter_fraction` of it. The
    default `sleep` is `stop.wait`, so setting `stop` (the caller's SIGTERM and SIGINT
    handlers do) ends the wait at once. The loop checks `stop` only between rounds and never
    interrupts a round in progress.
    `on_round` receives the counters after every round, e.g. to refresh the metrics file.
    Returns 0 when stopped; with `once=True`, the exit code of the single round.
    """
    wait = sleep if sleep is not None else stop.wait
    # Jitter spreads rounds in time and needs no cryptographic randomness.
    generator = rng if rng is not None else random.Random()  # noqa: S311
    counters = _LoopCounters()
    if not once:
        logger.info(
            "reconcile started: a round every %s, jitter %d%%",
            format_duration(interval_s),
            round(jitter_fraction * 100),
        )

    while not stop.is_set():
        outcome = _run_round(round_fn, clock)
        _count(counters, outcome, wall_clock())
        _publish(on_round, counters, logger)
        if once:
            _log_round(logger, counters, outcome, next_in_s=None, after="exiting (--once)")
            return outcome.exit_code
        if stop.is_set():
            _log_round(logger, counters, outcome, next_in_s=None, after="stopping")
            break
        delay = _next_delay(
            counters.consecutive_transient,
            interval_s=interval_s,
            jitter_fraction=jitter_fraction,
            initial_backoff_s=initial_backoff_s,
            rng=generator,
        )
        _log_round(logger, counters, outcome, next_in_s=delay)
        # A round's garbage cycles sit in the oldest generation after a collector pause
        # (see `reconciler.gc_pause`), where only a full collection frees them.
        gc.collect()
        wait(delay)

    logger.info("reconcile stopped after %d rounds", counters.rounds)
    return EXIT_OK


def _run_round(round_fn: Callable[[], RoundResult], clock: Callable[[], float]) -> _RoundOutcome:
    started = clock()
    try:
        result = round_fn()
    except ReconcilerError as error:
        return _RoundOutcome(error.exit_code, clock() - started, error=error)
    return _RoundOutcome(result.exit_code, clock() - started, result=result)


def _count(counters: _LoopCounters, outcome: _RoundOutcome, now: float) -> None:
    counters.rounds += 1
    counters.consecutive_transient = counters.consecutive_transient + 1 if outcome.transient else 0
    if outcome.result is None:
        counters.failed_rounds += 1
        return
    for action, count in outcome.result.applied.items():
        counters.applied[action] = counters.applied.get(action, 0) + count
    if outcome.result.audit is not None:
        counters.audit = outcome.result.audit
    if outcome.exit_code == EXIT_OK:
        counters.last_success_at = now
    else:
        counters.failed_rounds += 1


def _publish(
    on_round: Callable[[ReconcileCounters], None] | None,
    counters: _LoopCounters,
    logger: logging.Logger,
) -> None:
    if on_round is None:
        return
    try:
        on_round(counters.snapshot())
    except (ReconcilerError, OSError) as error:
        # A metrics file that cannot be written must not stop reconciling.
        logger.warning("could not publish reconcile metrics: %s", _one_line(error))


def _next_delay(
    consecutive_transient: int,
    *,
    interval_s: float,
    jitter_fraction: float,
    initial_backoff_s: float,
    rng: random.Random,
) -> float:
    """Return seconds until the next round: the jittered interval, or a backoff after a
    transient failure that doubles per failure in a row and never exceeds the interval."""
    if consecutive_transient == 0:
        return _jitter(interval_s, jitter_fraction, rng)
    # The exponent is bounded so that a long outage cannot overflow the float.
    exponent = min(consecutive_transient - 1, 62)
    backoff = min(interval_s, initial_backoff_s * 2.0**exponent)
    return min(interval_s, _jitter(backoff, jitter_fraction, rng))


def _jitter(seconds: float, fraction: float, rng: random.Random) -> float:
    return seconds * (1.0 + rng.uniform(-fraction, fraction))


def _log_round(
    logger: logging.Logger,
    counters: _LoopCounters,
    outcome: _RoundOutcome,
    *,
    next_in_s: float | None,
    after: str = "",
) -> None:
    number = counters.rounds
    took = format_duration(outcome.duration_s)
    error = outcome.error
    if next_in_s is None:
        pass
    elif outcome.transient:
        after = f"retrying in {format_duration(next_in_s)}"
    else:
        after = f"next round in {format_duration(next_in_s)}"

    if error is None:
        assert outcome.result is not None  # a round without an error always has a result
        level = logging.INFO if outcome.exit_code == EXIT_OK else logging.WARNING
        summary = _describe_result(outcome.result)
        logger.log(level, "reconcile round %d finished in %s: %s; %s", number, took, summary, after)
        return

    kind = type(error).__name__
    if outcome.transient:
        kind = f"{kind}, {counters.consecutive_transient} in a row"
    level = logging.WARNING if outcome.transient else logging.ERROR
    message = "reconcile round %d failed after %s: %s (%s); %s"
    logger.log(level, message, number, took, _one_line(error), kind, after)


def _describe_result(result: RoundResult) -> str:
    parts = []
    if result.applied:
        applied = ", ".join(f"{n} {action}" for action, n in sorted(result.applied.items()))
        parts.append(f"applied {applied}")
    if result.failed:
        parts.append(f"{result.failed} failed")
    if result.not_attempted:
        parts.append(f"{result.not_attempted} not attempted")
    if result.plan_errors:
        noun = "plan error" if result.plan_errors == 1 else "plan errors"
        parts.append(f"{result.plan_errors} {noun}")
    return ", ".join(parts) if parts else "no changes"


def _one_line(error: BaseException) -> str:
    # Multi-line messages (a manifest's diagnostics, a hint) become one log line.
    text = ""
    for line in (line.strip() for line in str(error).splitlines()):
        if not line:
            continue
        separator = "" if not text else " " if text.endswith(":") else "; "
        text += separator + line
    return text


def format_duration(seconds: float) -> str:
    """Format seconds as a short duration: `850ms`, `4.2s`, `12m5s`, `1h0m30s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"
