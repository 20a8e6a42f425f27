"""When the Nylas client sends a request again, and how long it waits first.

The rules, applied per request:

- 429 is retried for every method, `POST /v3/connect/custom` included, because Nylas did
  not process the request. The client waits `Retry-After` (seconds or an HTTP date) when
  present and readable, else an exponential backoff with full jitter. Its budget is time:
  a `Retry-After` above `retry_after_cap_s`, or waits adding up to more than
  `rate_limit_budget_s`, raise `NylasRateLimitError`.
- Every other failure counts against a budget of `max_retries` further attempts.
- 5xx, timeouts and network errors are retried for idempotent requests (GET, DELETE) with
  capped exponential backoff and full jitter.
- A connect (POST) is sent again only when it certainly never left this process: the
  connection could not be opened (`ConnectError`, `ConnectTimeout`) or no pooled connection
  became free (`PoolTimeout`). Anything after the first byte may have been sent (a read
  timeout, a write error or timeout mid-body, a connection dropped before the response) and a
  5xx response may come after the grant was stored. Those raise `NylasOutcomeUnknownError`,
  so apply looks the grant up with `find_grants` and decides instead of re-sending.
- A 401 makes the client read the API key again and, when the key changed, send the request
  once more outside the budget, so a key rotated with overlap does not fail the run.
"""

from __future__ import annotations

import enum
import math
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from reconciler.nylas.settings import ClientSettings

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
# Failures that happen before any byte of the request leaves the process.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# Failures that no retry can fix: a bad URL scheme, or a request httpx refused to write.
PERMANENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


class Decision(enum.Enum):
    """The client's next step after an httpx request failure."""

    RETRY = "retry"
    FAIL = "fail"
    OUTCOME_UNKNOWN = "outcome_unknown"


def decide_after_request_error(exc: httpx.RequestError, method: str) -> Decision:
    """Classify an httpx failure of a request with `method` by the rules above."""
    if not isinstance(exc, httpx.TransportError):
        # The response arrived but could not be decoded: Nylas processed the request.
        return Decision.FAIL if method in IDEMPOTENT_METHODS else Decision.OUTCOME_UNKNOWN
    if isinstance(exc, PERMANENT_ERRORS):
        return Decision.FAIL
    if isinstance(exc, NOT_SENT_ERRORS) or method in IDEMPOTENT_METHODS:
        return Decision.RETRY
    return Decision.OUTCOME_UNKNOWN


def backoff_delay(attempt: int, settings: ClientSettings, rng: random.Random) -> float:
    """Return the wait before attempt `attempt + 1`: full jitter over a capped exponential.

    Full jitter (a uniform draw between 0 and the exponential) spreads the workers that
    failed together, so their retries do not arrive at Nylas together.
    """
    ceiling = min(settings.backoff_cap_s, settings.backoff_base_s * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a `Retry-After` header requests, or None when absent or unreadable.

    The header contains either delay seconds or an HTTP date, and a date
    in the past means zero.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # HTTP dates are always GMT; parsedate_to_datetime leaves "-0000" dates naive.
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class StatsSnapshot:
    """Counts of one `NylasClient`'s traffic at one moment."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    key_reloads: int = 0
    outcome_unknown: int = 0


class RequestStats:
    """Thread-safe counters of a client's requests, for benchmarks, tests and logs.

    `requests` counts every attempt sent (retries included), `retries` the attempts after the
    first, `rate_limited` the 429 responses seen, `key_reloads` the API key re-reads after a
    401, and `outcome_unknown` the connects whose outcome could not be known.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(StatsSnapshot.__dataclass_fields__, 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Add `amount` to the counter `name`."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> StatsSnapshot:
        """Return the current counts."""
        with self._lock:
            return StatsSnapshot(**self._counts)

    @property
    def requests(self) -> int:
        """Attempts sent, retries included."""
        return self.snapshot().requests

    @property
    def retries(self) -> int:
        """Attempts after the first of each request."""
        return self.snapshot().retries

    @property
    def rate_limited(self) -> int:
        """429 responses seen."""
        return self.snapshot().rate_limited
