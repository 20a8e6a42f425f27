"""The request engine of `NylasClient`: rate limit, API key, retries and error mapping.

One `Sender` is shared by every executor worker: it owns one `httpx.Client` whose pool has a
connection per worker, the token bucket that every attempt passes through, and the API key,
cached and re-read after a 401. The retry rules are described in `reconciler.nylas.retry`.
Requests are logged at DEBUG on the `reconciler.nylas` logger with method, path and query,
status, duration, request id and attempt; header values and bodies are never logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from reconciler import __version__
from reconciler.errors import NylasError
from reconciler.nylas.errors import (
    error_from_response,
    error_from_transport,
    outcome_unknown_from_response,
    rate_limit_error,
    request_id_of,
    snippet_of,
    subject_of,
)
from reconciler.nylas.ratelimit import TokenBucket
from reconciler.nylas.retry import (
    IDEMPOTENT_METHODS,
    Decision,
    RequestStats,
    backoff_delay,
    decide_after_request_error,
    parse_retry_after,
)
from reconciler.nylas.settings import ClientSettings
from reconciler.secrets import Secret

logger = logging.getLogger("reconciler.nylas")

USER_AGENT = f"grantctl/{__version__} (+python-httpx)"


@dataclass(frozen=True)
class Call:
    """One logical request, sent once or more; `content` may hold secrets and is never shown."""

    method: str
    path: str
    operation: str
    account: str = ""
    params: Mapping[str, str | int] = field(default_factory=dict)
    content: bytes | None = field(default=None, repr=False)
    # Non-2xx statuses handed back to the caller instead of raised (404 on get and delete).
    passed_statuses: frozenset[int] = frozenset()

    @property
    def target(self) -> str:
        """Return the path and query for log lines."""
        return f"{self.path}?{urlencode(self.params)}" if self.params else self.path


class ApiKeyCache:
    """The API key, read from its source on first use and again after a 401."""

    def __init__(self, source: Callable[[], Secret]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._key: Secret | None = None

    def current(self) -> Secret:
        """Return the cached key, reading it from the source on first use."""
        with self._lock:
            if self._key is None:
                self._key = self._source()
            return self._key

    def reload(self, rejected: Secret) -> bool:
        """Re-read the key after `rejected` got a 401; return True when another key is current."""
        with self._lock:
            if self._key is not None and self._key != rejected:
                return True  # another worker already re-read it
            self._key = self._source()
            return self._key != rejected


class Sender:
    """Sends `Call`s to one Nylas base URL with the retry rules of `reconciler.nylas.retry`."""

    def __init__(
        self,
        api_key: Callable[[], Secret],
        base_url: str,
        settings: ClientSettings,
        *,
        transport: httpx.BaseTransport | None,
        rate_limiter: TokenBucket | None,
        sleep: Callable[[float], None],
        rng: random.Random | None,
    ) -> None:
        self.settings = settings
        self.stats = RequestStats()
        self._key = ApiKeyCache(api_key)
        self._limiter = rate_limiter or TokenBucket(
            self.settings.rate_limit_per_s, self.settings.rate_burst
        )
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._http = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            # No pool timeout: bodies are read whole, so every connection comes back within
            # the read timeout, and a worker waiting for one must not fail for waiting.
            timeout=httpx.Timeout(
                connect=self.settings.timeout_connect_s,
                read=self.settings.timeout_read_s,
                write=self.settings.timeout_read_s,
                pool=None,
            ),
            limits=httpx.Limits(
                max_connections=self.settings.parallelism,
                max_keepalive_connections=self.settings.parallelism,
            ),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def send(self, call: Call) -> httpx.Response:
        """Send `call` until it succeeds or fails for good, by the rules in `retry`."""
        attempt = 0
        failures = 0
        throttle = _Throttle()
        key_reloaded = False
        while True:
            attempt += 1
            key = self._key.current()
            try:
                response = self._send_once(call, key, attempt)
            except httpx.RequestError as exc:
                failures += 1
                self._wait_after_request_error(call, exc, failures, attempt)
                continue
            status = response.status_code
            if 200 <= status < 300 or status in call.passed_statuses:
                return response
            if status == 401 and not key_reloaded:
                key_reloaded = True
                if self._reload_key(call, key):
                    continue
            if status == 429:
                self._wait_after_rate_limit(call, response, throttle, attempt)
                continue
            failures += 1
            self._wait_after_status(call, response, failures, attempt)

    def _send_once(self, call: Call, key: Secret, attempt: int) -> httpx.Response:
        self._limiter.acquire()
        headers = {"Authorization": f"Bearer {key.reveal()}"}
        if call.content is not None:
            headers["Content-Type"] = "application/json"
        if attempt > 1:
            self.stats.add("retries")
        self.stats.add("requests")
        started = time.monotonic()
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, content=call.content, headers=headers
            )
        except httpx.RequestError as exc:
            logger.debug(
                "%s %s failed after %d ms: %s (attempt %d)",
                call.method,
                call.target,
                _elapsed_ms(started),
                type(exc).__name__,
                attempt,
            )
            raise
        logger.debug(
            "%s %s -> %d in %d ms (request id %s, attempt %d)",
            call.method,
            call.target,
            response.status_code,
            _elapsed_ms(started),
            response.headers.get("x-request-id", "-"),
            attempt,
        )
        return response

    def _wait_after_request_error(
        self, call: Call, exc: httpx.RequestError, failures: int, attempt: int
    ) -> None:
        decision = decide_after_request_error(exc, call.method)
        if decision is Decision.OUTCOME_UNKNOWN:
            self.stats.add("outcome_unknown")
            error = error_from_transport(exc, call.operation, call.account, outcome_unknown=True)
            logger.warning("%s", error.message)
            raise error from exc
        if decision is Decision.FAIL or failures > self.settings.max_retries:
            raise error_from_transport(exc, call.operation, call.account, attempts=attempt) from exc
        delay = backoff_delay(failures, self.settings, self._rng)
        self._pause(call, delay, type(exc).__name__, attempt, logging.INFO)

    def _wait_after_status(
        self, call: Call, response: httpx.Response, failures: int, attempt: int
    ) -> None:
        status = response.status_code
        if status >= 500 and call.method not in IDEMPOTENT_METHODS:
            raise self.unknown(
                call, response, f"Nylas returned {status} after receiving the request"
            )
        if status >= 500 and failures <= self.settings.max_retries:
            delay = backoff_delay(failures, self.settings, self._rng)
            self._pause(call, delay, str(status), attempt, logging.INFO)
            return
        raise error_from_response(response, call.operation, call.account, attempts=attempt)

    def _wait_after_rate_limit(
        self, call: Call, response: httpx.Response, throttle: _Throttle, attempt: int
    ) -> None:
        """Wait out a 429, within the request's own budget of seconds spent waiting.

        A 429 means Nylas did not process the request, so it is safe to send again for any
        method. Its budget is time, not a count, because a storm of short 429s is no reason
        to fail a change that a few seconds more would let through.
        """
        self.stats.add("rate_limited")
        throttle.count += 1
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        cap = self.settings.retry_after_cap_s
        if retry_after is not None and retry_after > cap:
            reason = (
                f"Nylas requested a wait of {retry_after:.0f} s, more than the {cap:g} s allowed"
            )
            raise rate_limit_error(response, call.operation, call.account, reason)
        if retry_after is None:
            delay = backoff_delay(throttle.count, self.settings, self._rng)
        else:
            # A little jitter, so workers given the same Retry-After do not all return together.
            delay = retry_after + self._rng.uniform(0.0, self.settings.backoff_base_s)
        budget = self.settings.rate_limit_budget_s
        if throttle.waited_s + delay > budget:
            reason = (
                f"the rate limit was still exceeded after {attempt} attempts and "
                f"{throttle.waited_s:.0f} s of waiting (budget {budget:g} s)"
            )
            raise rate_limit_error(response, call.operation, call.account, reason)
        throttle.waited_s += delay
        self._pause(call, delay, "429", attempt, logging.WARNING)

    def _pause(self, call: Call, delay: float, cause: str, attempt: int, level: int) -> None:
        logger.log(
            level,
            "retrying %s %s in %.2f s after %s (attempt %d of %d)",
            call.method,
            call.target,
            delay,
            cause,
            attempt + 1,
            self.settings.max_retries + 1,
        )
        self._sleep(delay)

    def _reload_key(self, call: Call, rejected: Secret) -> bool:
        """Re-read the API key after a 401; return True when the request should be re-sent."""
        self.stats.add("key_reloads")
        if self._key.reload(rejected):
            logger.warning(
                "Nylas returned 401 to %s %s: retrying once with the re-read API key",
                call.method,
                call.target,
            )
            return True
        return False

    def unknown(self, call: Call, response: httpx.Response, reason: str) -> NylasError:
        """Count and log a connect of unknown outcome; return the error to raise."""
        self.stats.add("outcome_unknown")
        error = outcome_unknown_from_response(response, call.operation, call.account, reason)
        logger.warning("%s", error.message)
        return error

    def json(self, response: httpx.Response, call: Call) -> Any:
        """Decode a successful response; a body that is not JSON is an error, never a traceback."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            reason = f"its body is not JSON: {snippet_of(response.text) or '(empty)'}"
            if call.method not in IDEMPOTENT_METHODS:
                raise self.unknown(call, response, reason) from exc
            detail = f"Nylas returned {response.status_code} but {reason}"
            raise NylasError(
                f"{subject_of(call.operation, call.account)} failed: {detail}",
                detail=detail,
                status=response.status_code,
                request_id=request_id_of(response),
                hint="check GRANTCTL_NYLAS_API_URI and any proxy between grantctl and Nylas",
            ) from exc


def data_object(body: Any, call: Call, response: httpx.Response) -> object:
    """Return the `data` member of a single-object envelope."""
    if not isinstance(body, dict) or "data" not in body:
        detail = "the response has no `data` object"
        raise NylasError(
            f"{subject_of(call.operation, call.account)} failed: {detail}",
            detail=detail,
            status=response.status_code,
            request_id=request_id_of(response, body),
            hint="quote the request id to Nylas support",
        )
    return body["data"]


@dataclass
class _Throttle:
    """The 429 answers one request met, and the seconds it has waited because of them."""

    count: int = 0
    waited_s: float = 0.0


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
