"""A thread-safe token bucket that every request of a `NylasClient` passes through.

Nylas allows 50 requests/s per application on the grants and authentication endpoints and
returns 429 beyond that. All executor workers share one bucket, and retries take a token like
first attempts, so the whole process stays under `rate + burst` requests in any 1-second
window: a bucket of `burst` tokens refilled at `rate` tokens/s admits at most
`burst + rate * T` requests in any window of T seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A token bucket with reservations: callers queue in order and sleep outside the lock.

    A caller that finds the bucket empty takes a token on credit and sleeps until the refill
    has paid it back. Reservations are made under the lock, so two workers never get the
    same slot, and waiting happens without the lock, so a waiting worker blocks no one.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be greater than 0, not {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float:
        """Take one token and return the seconds the caller must wait before sending."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._updated = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            # Negative tokens are debt: the refill repays one token every 1/rate seconds.
            return -self._tokens / self.rate_per_s

    def acquire(self) -> float:
        """Wait for a token; return the seconds spent waiting."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
