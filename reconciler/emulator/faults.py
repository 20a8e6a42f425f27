"""Fault injection and the per-group rate limit of the Nylas emulator.

`FaultSettings` contains the knobs, one field per `grantctl emulator` flag. `FaultInjector`
draws the fault for each API request from them, and `SlidingWindowLimiter` enforces the
50 requests/second limit that Nylas applies to each endpoint group of an application.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ConfigError

# Nylas allows 50 requests/second per application for each endpoint group.
DEFAULT_RATE_LIMIT = 50


@dataclass(frozen=True)
class FaultSettings:
    """Faults the emulator injects into API requests (never into admin requests).

    Rates are fractions of API requests between 0 and 1. `rate_limit` is the maximum number
    of requests per endpoint group in any sliding one-second window; None means the
    fixture's `rate_limit` (50 when the fixture sets none) and 0 disables the limit.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    burst_429: int = 0
    retry_after: float | str = 1
    drop_rate: float = 0.0
    drop_after_processing: bool = False
    html_error_rate: float = 0.0
    rate_limit: int | None = None

    def __post_init__(self) -> None:
        problems = _validation_problems(self)
        if problems:
            raise ConfigError("invalid fault settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, object]:
        """Return the settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _validation_problems(settings: FaultSettings) -> list[str]:
    problems = []
    for name in ("error_rate", "drop_rate", "html_error_rate"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            problems.append(f"{name} must be a fraction between 0 and 1, got {value!r}")
    for name in ("latency_ms", "jitter_ms"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{name} must be a number of milliseconds >= 0, got {value!r}")
    if not _is_int(settings.error_status) or not 500 <= settings.error_status <= 599:
        problems.append(
            f"error_status must be an HTTP status from 500 to 599, got {settings.error_status!r}"
        )
    if not _is_int(settings.burst_429) or settings.burst_429 < 0:
        problems.append(f"burst_429 must be an integer >= 0, got {settings.burst_429!r}")
    if settings.rate_limit is not None and (
        not _is_int(settings.rate_limit) or settings.rate_limit < 0
    ):
        problems.append(f"rate_limit must be an integer >= 0, got {settings.rate_limit!r}")
    retry_after = settings.retry_after
    if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float, str)):
        problems.append(f"retry_after must be seconds or an HTTP-date string, got {retry_after!r}")
    elif not isinstance(retry_after, str) and retry_after < 0:
        problems.append(f"retry_after must be >= 0 seconds, got {retry_after!r}")
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def coerce_faults(faults: FaultSettings | Mapping[str, object] | None) -> FaultSettings:
    """Return `faults` as `FaultSettings`, building it from a mapping of field names."""
    if faults is None:
        return FaultSettings()
    if isinstance(faults, FaultSettings):
        return faults
    return replace_faults(FaultSettings(), faults)


def replace_faults(current: FaultSettings, changes: Mapping[str, object]) -> FaultSettings:
    """Return `current` with the fields in `changes` replaced. Unknown names raise ConfigError."""
    known = {field.name for field in dataclasses.fields(FaultSettings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"unknown fault setting(s): {', '.join(unknown)}",
            hint=f"use one of: {', '.join(sorted(known))}",
        )
    return dataclasses.replace(current, **changes)  # type: ignore[arg-type]  # checked in __post_init__


@dataclass(frozen=True)
class FaultDecision:
    """The faults drawn for one API request."""

    delay_s: float = 0.0
    drop: bool = False
    burst_429: bool = False
    error_status: int | None = None  # an injected JSON 5xx
    html_error: bool = False


class FaultInjector:
    """Thread-safe source of one `FaultDecision` per API request."""

    def __init__(self, settings: FaultSettings) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self._burst_left = settings.burst_429
        # Faults simulate an unreliable network, so they need no cryptographic randomness.
        self._random = random.Random()  # noqa: S311

    @property
    def settings(self) -> FaultSettings:
        """The settings in force."""
        return self._settings

    def update(self, settings: FaultSettings) -> None:
        """Replace the settings and restart the `burst_429` count of upcoming 429 responses."""
        with self._lock:
            self._settings = settings
            self._burst_left = settings.burst_429

    def draw(self) -> FaultDecision:
        """Return the faults for the next API request and consume one burst 429 if any remain."""
        with self._lock:
            settings = self._settings
            delay_ms = settings.latency_ms + self._random.uniform(0, settings.jitter_ms)
            if self._burst_left > 0:
                self._burst_left -= 1
                return FaultDecision(delay_s=delay_ms / 1000, burst_429=True)
            if self._random.random() < settings.drop_rate:
                return FaultDecision(delay_s=delay_ms / 1000, drop=True)
            if self._random.random() < settings.html_error_rate:
                return FaultDecision(delay_s=delay_ms / 1000, html_error=True)
            if self._random.random() < settings.error_rate:
                return FaultDecision(delay_s=delay_ms / 1000, error_status=settings.error_status)
            return FaultDecision(delay_s=delay_ms / 1000)


class SlidingWindowLimiter:
    """Admits at most `limit` requests per key in any sliding one-second window."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._arrivals: dict[str, deque[float]] = {}

    @property
    def limit(self) -> int:
        """Maximum requests per key per second, 0 when disabled."""
        return self._limit

    def set_limit(self, limit: int) -> None:
        """Change the limit. Requests already admitted stay in the window."""
        with self._lock:
            self._limit = limit

    def admit(self, key: str) -> bool:
        """Record a request for `key` and return True, or return False when over the limit.

        Rejected requests are not recorded, so a client that backs off is admitted again
        one second after the requests that filled the window.
        """
        now = time.monotonic()
        with self._lock:
            if self._limit <= 0:
                return True
            arrivals = self._arrivals.setdefault(key, deque())
            while arrivals and arrivals[0] <= now - 1.0:
                arrivals.popleft()
            if len(arrivals) >= self._limit:
                return False
            arrivals.append(now)
            return True
