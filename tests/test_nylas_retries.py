"""NylasClient error mapping, retries, Retry-After, unknown outcomes and API key reloads."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from reconciler.errors import (
    NylasAuthenticationError,
    NylasConnectionError,
    NylasError,
    NylasInvalidRequestError,
    NylasOutcomeUnknownError,
    NylasPermissionError,
    NylasRateLimitError,
    NylasServerError,
    NylasTimeoutError,
)
from reconciler.nylas import NylasClient
from reconciler.protocols import ConnectResult
from reconciler.secrets import Secret
from tests.test_nylas_fakes import API_KEY, FAST, error, grant_json, list_page, make_harness

REFRESH_TOKEN = "rt_canary_refresh_token_abcdef0123456789"
HTML_502 = (
    "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad "
    "Gateway</h1></center>\n<hr><center>nginx</center>\n"
    + "<p>padding</p>\n" * 80
    + "</body></html>"
)


def connect_answer(status: int = 201) -> httpx.Response:
    return httpx.Response(status, json={"request_id": "req-c", "data": grant_json()})


def connect(client: NylasClient, account: str = "leyah") -> ConnectResult:
    return client.connect("google", {"refresh_token": Secret(REFRESH_TOKEN)}, account=account)


def too_many(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {
        "request_id": "req-429",
        "error": {"type": "nylas_rate_limit_exceeded", "message": "slow down"},
    }
    return httpx.Response(429, json=body, headers=headers)


# Status mapping


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, NylasInvalidRequestError),
        (401, NylasAuthenticationError),
        (403, NylasPermissionError),
        (500, NylasServerError),
    ],
)
def test_status_maps_to_error_class(status: int, expected: type[NylasError]) -> None:
    settings = replace(FAST, max_retries=0)
    harness = make_harness(error(status, "some.type", "went wrong"), settings=settings)
    with pytest.raises(expected) as caught:
        harness.client.list_grants()
    assert isinstance(caught.value, NylasError)
    assert caught.value.status == status
    assert caught.value.error_type == "some.type"
    assert caught.value.error_message == "went wrong"
    assert caught.value.request_id == f"req-{status}"


def test_request_id_from_header() -> None:
    answer = httpx.Response(403, text="denied", headers={"x-request-id": "hdr-123"})
    harness = make_harness(answer)
    with pytest.raises(NylasPermissionError) as caught:
        harness.client.list_grants()
    assert caught.value.request_id == "hdr-123"
    assert "hdr-123" in str(caught.value)


def test_html_502_gives_short_snippet() -> None:
    settings = replace(FAST, max_retries=2)
    harness = make_harness(*[httpx.Response(502, text=HTML_502)] * 3, settings=settings)
    with pytest.raises(NylasServerError) as caught:
        harness.client.list_grants()
    message = caught.value.message
    assert "502 Bad Gateway 502 Bad Gateway nginx" in message
    assert "<" not in message
    snippet = message.split("non-JSON body: ", 1)[1]
    assert len(snippet) <= 200 + len(")")
    assert "after 3 attempts" in message


def test_connect_400_names_account_and_next_step() -> None:
    provider_error = {"error": "invalid_grant", "echo": f"token={REFRESH_TOKEN}"}
    answer = error(
        400, "invalid_request_error", "Authentication failed", provider_error=provider_error
    )
    harness = make_harness(answer)
    with pytest.raises(NylasInvalidRequestError) as caught:
        connect(harness.client)
    text = str(caught.value)
    assert "account 'leyah'" in text
    assert "Vault path" in text
    assert "invalid_grant" in text
    assert REFRESH_TOKEN not in text
    assert REFRESH_TOKEN not in repr(caught.value.provider_error)


def test_connect_401_with_provider_error_blames_credentials() -> None:
    answer = error(
        401, "grant.refresh_token_invalid", "token revoked", provider_error={"error": "x"}
    )
    harness = make_harness(answer, answer)
    with pytest.raises(NylasAuthenticationError, match="provider rejected the credentials"):
        connect(harness.client)


# Retries of idempotent requests


def test_get_retried_after_5xx_to_success() -> None:
    harness = make_harness(error(500), httpx.Response(503, text="busy"), list_page([grant_json()]))
    assert len(harness.client.list_grants()) == 1
    assert len(harness.sleeps) == 2
    assert harness.client.stats.retries == 2
    assert harness.client.stats.requests == 3


def test_backoff_is_capped_full_jitter() -> None:
    settings = replace(FAST, max_retries=6, backoff_base_s=1, backoff_cap_s=4)
    harness = make_harness(*[error(500)] * 6, list_page([]), settings=settings)
    harness.client.list_grants()
    ceilings = [1, 2, 4, 4, 4, 4]
    for delay, ceiling in zip(harness.sleeps, ceilings, strict=True):
        assert 0 <= delay <= ceiling


def test_get_retry_budget_exhausted() -> None:
    settings = replace(FAST, max_retries=2)
    harness = make_harness(error(500), error(500), error(504), settings=settings)
    with pytest.raises(NylasServerError, match="provider timed out"):
        harness.client.list_grants()
    assert len(harness.script.requests) == 3


def test_get_retried_after_read_timeout() -> None:
    harness = make_harness(httpx.ReadTimeout, httpx.RemoteProtocolError, list_page([]))
    assert harness.client.list_grants() == []
    assert len(harness.script.requests) == 3


def test_delete_retried_after_dropped_answer() -> None:
    harness = make_harness(httpx.ReadError, error(404))
    assert harness.client.delete_grant("g-1") is False


def test_timeouts_exhausted_raise_timeout_error() -> None:
    settings = replace(FAST, max_retries=1)
    harness = make_harness(httpx.ReadTimeout, httpx.ReadTimeout, settings=settings)
    with pytest.raises(NylasTimeoutError, match="GRANTCTL_NYLAS_TIMEOUT"):
        harness.client.list_grants()


def test_connect_error_exhausted_raises_connection_error() -> None:
    settings = replace(FAST, max_retries=1)
    harness = make_harness(httpx.ConnectError, httpx.ConnectError, settings=settings)
    with pytest.raises(NylasConnectionError):
        harness.client.list_grants()


def test_unsupported_protocol_not_retried() -> None:
    harness = make_harness(httpx.UnsupportedProtocol)
    with pytest.raises(NylasConnectionError):
        harness.client.list_grants()
    assert harness.sleeps == []


# Connect (POST) is never re-sent once it may have been sent


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout],
    ids=["connect-error", "connect-timeout", "pool-timeout"],
)
def test_connect_retried_when_never_sent(failure: type[httpx.RequestError]) -> None:
    harness = make_harness(failure, connect_answer())
    assert connect(harness.client).grant.id == "g-1"
    assert len(harness.script.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ],
    ids=["read-timeout", "write-timeout", "remote-protocol", "read-error", "write-error"],
)
def test_connect_maybe_sent_is_unknown(failure: type[httpx.RequestError]) -> None:
    harness = make_harness(failure)
    with pytest.raises(NylasOutcomeUnknownError) as caught:
        connect(harness.client)
    assert len(harness.script.requests) == 1
    assert "account 'leyah'" in caught.value.message
    assert harness.client.stats.snapshot().outcome_unknown == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_connect_5xx_is_unknown(status: int) -> None:
    harness = make_harness(error(status))
    with pytest.raises(NylasOutcomeUnknownError) as caught:
        connect(harness.client)
    assert caught.value.status == status
    assert len(harness.script.requests) == 1


# 429 and Retry-After


def test_retry_after_seconds_honoured() -> None:
    harness = make_harness(too_many("2"), list_page([]))
    harness.client.list_grants()
    assert 2 <= harness.sleeps[0] <= 2 + FAST.backoff_base_s
    assert harness.client.stats.rate_limited == 1


def test_retry_after_http_date_honoured() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=5)
    harness = make_harness(too_many(format_datetime(when, usegmt=True)), list_page([]))
    harness.client.list_grants()
    assert 3 <= harness.sleeps[0] <= 5 + FAST.backoff_base_s


def test_retry_after_unreadable_uses_backoff() -> None:
    harness = make_harness(too_many("soon"), too_many(), list_page([]))
    harness.client.list_grants()
    assert 0 <= harness.sleeps[0] <= FAST.backoff_base_s
    assert 0 <= harness.sleeps[1] <= FAST.backoff_base_s * 2


def test_retry_after_beyond_cap_raises_at_once() -> None:
    harness = make_harness(too_many("120"))
    with pytest.raises(NylasRateLimitError) as caught:
        connect(harness.client, account="ceo")
    assert "account 'ceo'" in caught.value.message
    assert "120 s" in caught.value.message
    assert harness.sleeps == []


def test_connect_retried_after_429() -> None:
    harness = make_harness(too_many("1"), connect_answer())
    assert connect(harness.client).created is True
    assert len(harness.script.requests) == 2


def test_429_budget_exhausted_names_account() -> None:
    settings = replace(FAST, rate_limit_budget_s=1.5)
    harness = make_harness(too_many("1"), too_many("1"), too_many("1"), settings=settings)
    with pytest.raises(NylasRateLimitError, match=r"account 'leyah'.*after 2 attempts"):
        connect(harness.client)
    assert len(harness.sleeps) == 1


def test_429_storm_within_budget_succeeds() -> None:
    """Short 429s are waited out by time, not counted against the 5xx retry budget."""
    settings = replace(FAST, max_retries=2)
    storm = [too_many("0") for _ in range(8)]
    harness = make_harness(*storm, connect_answer(), settings=settings)
    assert connect(harness.client).created is True
    assert len(harness.script.requests) == 9


# API key re-read after 401


def test_401_rereads_rotated_key_once() -> None:
    keys = iter([Secret("nyk_old_key_123456"), Secret("nyk_new_key_654321")])
    harness = make_harness(error(401), list_page([]), list_page([]), api_key=lambda: next(keys))
    harness.client.list_grants()
    harness.client.list_grants()
    authorizations = [request.headers["authorization"] for request in harness.script.requests]
    assert authorizations == [
        "Bearer nyk_old_key_123456",
        "Bearer nyk_new_key_654321",
        "Bearer nyk_new_key_654321",
    ]
    assert harness.client.stats.snapshot().key_reloads == 1


def test_401_twice_names_key_and_region() -> None:
    keys = iter([Secret("nyk_old_key_123456"), Secret("nyk_new_key_654321")])
    harness = make_harness(error(401), error(401), api_key=lambda: next(keys))
    with pytest.raises(NylasAuthenticationError) as caught:
        harness.client.list_grants()
    assert "NYLAS_API_KEY" in caught.value.hint
    assert "nylas.region" in caught.value.hint


def test_401_with_unchanged_key_not_resent() -> None:
    harness = make_harness(error(401))
    with pytest.raises(NylasAuthenticationError):
        harness.client.list_grants()
    assert len(harness.script.requests) == 1


# Secrets never reach messages or logs


@pytest.mark.parametrize(
    "answer",
    [
        error(
            400,
            "invalid_request_error",
            f"bad token {REFRESH_TOKEN}",
            provider_error={"t": REFRESH_TOKEN},
        ),
        httpx.Response(502, text=f"<html>upstream said {REFRESH_TOKEN}</html>"),
        httpx.ReadTimeout,
    ],
    ids=["400-echo", "502-html-echo", "read-timeout"],
)
def test_failed_connect_leaks_no_secret(answer: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.nylas")
    harness = make_harness(answer)  # type: ignore[arg-type]
    with pytest.raises(Exception) as caught:
        connect(harness.client)
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert REFRESH_TOKEN not in text
        assert API_KEY not in text
    assert "POST /v3/connect/custom" in caplog.text


def test_debug_log_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.nylas")
    answer = httpx.Response(
        200, json={"request_id": "r", "data": []}, headers={"x-request-id": "rid-7"}
    )
    harness = make_harness(error(503), answer)
    harness.client.list_grants()
    debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert len(debug) == 2
    assert "GET /v3/grants?limit=200&offset=0 -> 200" in debug[1]
    assert "request id rid-7, attempt 2" in debug[1]
    retries = [record for record in caplog.records if record.message.startswith("retrying")]
    assert len(retries) == 1
    assert retries[0].levelno == logging.INFO


def test_provider_429_hint_blames_provider() -> None:
    body = {
        "request_id": "req-429",
        "error": {"type": "rate_limit_error", "message": "slow", "provider_error": {"e": "x"}},
    }
    harness = make_harness(httpx.Response(429, json=body, headers={"Retry-After": "600"}))
    with pytest.raises(NylasRateLimitError) as caught:
        harness.client.list_grants()
    assert "mail provider behind Nylas rate-limited" in caught.value.hint
