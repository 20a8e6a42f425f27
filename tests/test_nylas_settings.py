"""Nylas client settings, base URL, API key source, Retry-After parsing and the token bucket."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from reconciler.errors import ConfigError
from reconciler.model import Region
from reconciler.nylas import (
    ClientSettings,
    TokenBucket,
    api_base_url,
    api_key_from_environment,
)
from reconciler.nylas.retry import parse_retry_after

# ClientSettings


def test_settings_defaults_stay_under_nylas_limit() -> None:
    settings = ClientSettings()
    assert settings.rate_limit_per_s + settings.rate_burst < 50
    assert settings.parallelism == 10


def test_settings_from_empty_environment_are_defaults() -> None:
    assert ClientSettings.from_environment({}) == ClientSettings()


def test_settings_from_environment() -> None:
    environ = {
        "GRANTCTL_NYLAS_TIMEOUT": "12.5",
        "GRANTCTL_NYLAS_CONNECT_TIMEOUT": "2",
        "GRANTCTL_NYLAS_RATE_LIMIT": "20",
        "GRANTCTL_PARALLELISM": "4",
    }
    settings = ClientSettings.from_environment(environ)
    assert settings.timeout_read_s == 12.5
    assert settings.timeout_connect_s == 2
    assert settings.rate_limit_per_s == 20
    assert settings.parallelism == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GRANTCTL_NYLAS_TIMEOUT", "soon"),
        ("GRANTCTL_NYLAS_TIMEOUT", "0"),
        ("GRANTCTL_NYLAS_CONNECT_TIMEOUT", "-1"),
        ("GRANTCTL_NYLAS_RATE_LIMIT", "nan"),
        ("GRANTCTL_NYLAS_RATE_LIMIT", "inf"),
        ("GRANTCTL_PARALLELISM", "2.5"),
        ("GRANTCTL_PARALLELISM", "0"),
    ],
)
def test_settings_bad_value_names_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        ClientSettings.from_environment({variable: value})


def test_settings_replace_validates() -> None:
    with pytest.raises(ConfigError, match="parallelism"):
        replace(ClientSettings(), parallelism=0)


# Base URL and API key


def test_base_url_per_region() -> None:
    assert api_base_url(Region.US, {}) == "https://api.us.nylas.com"
    assert api_base_url(Region.EU, {}) == "https://api.eu.nylas.com"


def test_base_url_environment_override() -> None:
    environ = {"GRANTCTL_NYLAS_API_URI": "http://127.0.0.1:8787/"}
    assert api_base_url(Region.EU, environ) == "http://127.0.0.1:8787"


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1", "127.0.0.1:8787", "http://", "http://user:pw@127.0.0.1", "http://h/?x=1"],
)
def test_base_url_override_rejected(url: str) -> None:
    with pytest.raises(ConfigError, match="GRANTCTL_NYLAS_API_URI"):
        api_base_url(Region.US, {"GRANTCTL_NYLAS_API_URI": url})


def test_api_key_read_on_every_call() -> None:
    environ = {"NYLAS_API_KEY": "nyk_first_value"}
    source = api_key_from_environment(environ)
    assert source().reveal() == "nyk_first_value"
    environ["NYLAS_API_KEY"] = "nyk_second_value\n"
    assert source().reveal() == "nyk_second_value"


def test_api_key_unset_names_variable() -> None:
    source = api_key_from_environment({})
    with pytest.raises(ConfigError, match="NYLAS_API_KEY") as caught:
        source()
    assert "GRANTCTL_NYLAS_API_KEY_VAULT_PATH" in caught.value.hint


# Retry-After


NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("Sat, 01 Mar 2025 12:00:07 GMT", 7.0),
        ("Sat, 01 Mar 2025 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("nan", None),
        ("tomorrow", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


# Token bucket


class FakeClock:
    """A clock that only moves when the bucket sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def max_in_window(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] < moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_bucket_never_exceeds_rate_plus_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(40, 5, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for index in range(400):
        if index % 97 == 0:
            clock.now += 3  # idle gaps let the bucket fill up again
        bucket.acquire()
        sent.append(clock.now)
    assert max_in_window(sent) <= 45


def test_bucket_allows_burst_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5] == pytest.approx(0.1)


def test_bucket_shared_by_threads() -> None:
    bucket = TokenBucket(200, 5)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(30):
            bucket.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 300
    # 300 requests at 200/s with 5 up front take about 1.5 s; sleeps may overshoot, not undershoot.
    assert max(sent) - min(sent) >= (300 - 5) / 200 - 0.01
    # A thread that wakes late can land in the next window, so allow one per thread.
    assert max_in_window(sent) <= 205 + 10


def test_bucket_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0, 5)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(10, 0)


def test_plain_http_to_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"GRANTCTL_NYLAS_API_URI": "http://emulator.internal:8787"}
    assert api_base_url(Region.US, environ) == "http://emulator.internal:8787"
    assert "unencrypted" in caplog.text


def test_plain_http_to_loopback_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    api_base_url(Region.US, {"GRANTCTL_NYLAS_API_URI": "http://[::1]:8787"})
    assert caplog.text == ""
