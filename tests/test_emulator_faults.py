"""Fault injection and the per-group rate limit of the emulator."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import httpx
import pytest

from reconciler.emulator import EmulatorServer, FaultSettings
from reconciler.errors import ConfigError
from tests.support.emulator import API_KEY, StartEmulator, admin_client, api_client

MICROSOFT = {"provider": "microsoft", "settings": {"refresh_token": "rt-leyah-1"}}


def test_latency_delays_each_request(emulator_factory: StartEmulator) -> None:
    """latency_ms=100 makes a request take at least 100 ms."""
    server = emulator_factory(latency_ms=100)
    with api_client(server) as client:
        started = time.monotonic()
        client.get("/v3/grants")
    assert time.monotonic() - started >= 0.1


def test_latency_requests_run_concurrently(emulator_factory: StartEmulator) -> None:
    """20 parallel clients at 50 ms each finish far sooner than 20 x 50 ms."""
    server = emulator_factory(latency_ms=50, jitter_ms=10)

    def one_request(_: int) -> int:
        with api_client(server) as client:
            return client.get("/v3/grants").status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(one_request, range(20)))
    assert statuses == [200] * 20
    assert time.monotonic() - started < 0.8


def test_error_rate_one_returns_503(emulator_factory: StartEmulator) -> None:
    """error_rate=1 makes every API request return 503 in the error envelope."""
    server = emulator_factory(error_rate=1.0)
    with api_client(server) as client:
        response = client.get("/v3/grants")
    assert response.status_code == 503
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.json()["error"]["type"] == "internal_error"


def test_error_status_is_configurable(emulator_factory: StartEmulator) -> None:
    """error_status=504 makes injected errors return 504 (a provider timeout)."""
    server = emulator_factory(error_rate=1.0, error_status=504)
    with api_client(server) as client:
        assert client.get("/v3/grants").status_code == 504


def test_error_rate_half_fails_about_half(emulator_factory: StartEmulator) -> None:
    """error_rate=0.5 fails roughly half of 200 requests (bounds are 7 standard deviations)."""
    server = emulator_factory(error_rate=0.5, rate_limit=0)
    with api_client(server) as client:
        failures = sum(client.get("/v3/grants").status_code == 503 for _ in range(200))
    assert 50 < failures < 150


def test_error_fault_skips_processing(emulator_factory: StartEmulator) -> None:
    """An injected 5xx on connect creates no grant."""
    server = emulator_factory(error_rate=1.0)
    with api_client(server) as client:
        client.post("/v3/connect/custom", json=MICROSOFT)
    assert server.grants() == []


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(3, "3"), (0.2, "1"), ("Wed, 21 Oct 2026 07:28:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT")],
    ids=["seconds", "fraction-rounded-up", "http-date"],
)
def test_burst_429_carries_retry_after(
    emulator_factory: StartEmulator, retry_after: float | str, header: str
) -> None:
    """burst_429=2 makes the next two requests return 429 with Retry-After, then recovers."""
    server = emulator_factory(burst_429=2, retry_after=retry_after)
    with api_client(server) as client:
        responses = [client.get("/v3/grants") for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == header
    assert responses[0].json()["error"]["type"] == "rate_limit_error"
    assert "provider_error" in responses[0].json()["error"]


def test_burst_429_accepts_current_http_date(emulator_factory: StartEmulator) -> None:
    """An HTTP-date built from the current time is sent unchanged."""
    date = formatdate(time.time() + 2, usegmt=True)
    server = emulator_factory(burst_429=1, retry_after=date)
    with api_client(server) as client:
        assert client.get("/v3/grants").headers["Retry-After"] == date


def test_drop_closes_without_response(emulator_factory: StartEmulator) -> None:
    """drop_rate=1 closes the connection with no status line and does not run the request."""
    server = emulator_factory(drop_rate=1.0)
    with api_client(server) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/v3/connect/custom", json=MICROSOFT)
    assert server.grants() == []
    assert server.request_counts()["by_status"] == {"dropped": 1}


def test_drop_after_processing_creates_grant(emulator_factory: StartEmulator) -> None:
    """With drop_after_processing the connect takes effect although no response arrives."""
    server = emulator_factory(drop_rate=1.0, drop_after_processing=True)
    with api_client(server) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/v3/connect/custom", json=MICROSOFT)
    assert [grant["email"] for grant in server.grants()] == ["leyah@example.com"]


def test_html_error_is_proxy_page(emulator_factory: StartEmulator) -> None:
    """html_error_rate=1 returns 502 with an HTML body and no request id."""
    server = emulator_factory(html_error_rate=1.0)
    with api_client(server) as client:
        response = client.get("/v3/grants")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")
    assert "x-request-id" not in response.headers


def test_admin_requests_are_never_faulted(emulator_factory: StartEmulator) -> None:
    """With every fault on, admin requests still return 200 and are not logged."""
    server = emulator_factory(error_rate=1.0, drop_rate=1.0, rate_limit=1)
    with admin_client(server) as admin:
        statuses = [admin.get("/_emulator/grants").status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert server.request_log() == []


def test_set_faults_changes_and_keeps_fields(emulator: EmulatorServer) -> None:
    """set_faults changes the named fields and keeps the rest."""
    emulator.set_faults(latency_ms=5)
    settings = emulator.set_faults(error_rate=0.25)
    assert settings.latency_ms == 5
    assert settings.error_rate == 0.25


@pytest.mark.parametrize(
    "faults",
    [{"error_rate": 1.5}, {"error_status": 404}, {"burst_429": -1}, {"latency": 5}],
    ids=["rate-above-one", "status-not-5xx", "negative-burst", "unknown-field"],
)
def test_invalid_fault_settings_are_rejected(
    emulator: EmulatorServer, faults: dict[str, object]
) -> None:
    """Out-of-range values and unknown names raise ConfigError."""
    with pytest.raises(ConfigError):
        emulator.set_faults(**faults)


def test_fault_settings_from_mapping() -> None:
    """EmulatorServer accepts a FaultSettings or a plain mapping of its fields."""
    server = EmulatorServer({}, faults={"latency_ms": 7})
    assert server.faults == FaultSettings(latency_ms=7)


# Rate limit


def test_rate_limit_returns_429_over_limit(emulator_factory: StartEmulator) -> None:
    """Past `rate_limit` requests in one second, the group returns 429 nylas_rate_limit_exceeded."""
    server = emulator_factory(rate_limit=5)
    with api_client(server) as client:
        responses = [client.get("/v3/grants") for _ in range(8)]
    statuses = [response.status_code for response in responses]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = next(response for response in responses if response.status_code == 429)
    assert limited.json()["error"]["type"] == "nylas_rate_limit_exceeded"
    assert "Retry-After" not in limited.headers


def test_rate_limit_is_per_group(emulator_factory: StartEmulator) -> None:
    """A limited grants group leaves the auth group (connect/custom) untouched."""
    server = emulator_factory(rate_limit=3)
    with api_client(server) as client:
        for _ in range(4):
            client.get("/v3/grants")
        response = client.post("/v3/connect/custom", json=MICROSOFT)
    assert response.status_code == 201


def test_rate_limit_window_slides(emulator_factory: StartEmulator) -> None:
    """One second after the window filled, requests are admitted again."""
    server = emulator_factory(rate_limit=2)
    with api_client(server) as client:
        first = [client.get("/v3/grants").status_code for _ in range(3)]
        time.sleep(1.05)
        later = client.get("/v3/grants").status_code
    assert first == [200, 200, 429]
    assert later == 200


def test_default_limit_is_fifty_per_second(emulator: EmulatorServer) -> None:
    """The default allows 50 requests at once and rejects the 51st."""
    with api_client(emulator) as client:
        statuses = [client.get("/v3/grants").status_code for _ in range(51)]
    assert statuses[:50] == [200] * 50
    assert statuses[50] == 429


def test_fixture_rate_limit_applies(emulator_factory: StartEmulator) -> None:
    """The fixture's `rate_limit` is used when the faults set none."""
    server = emulator_factory({"api_keys": [API_KEY], "rate_limit": 7})
    assert server.rate_limit == 7


def test_token_bucket_client_never_limited(emulator: EmulatorServer) -> None:
    """A client pacing itself at 45/s with a burst of 5 gets no 429 in two seconds."""
    rate, burst = 45.0, 5.0
    tokens, last = burst, time.monotonic()
    statuses = []
    with api_client(emulator) as client:
        deadline = last + 2.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            tokens = min(burst, tokens + (now - last) * rate)
            last = now
            if tokens < 1:
                time.sleep((1 - tokens) / rate)
                continue
            tokens -= 1
            statuses.append(client.get("/v3/grants").status_code)
    # Fewer than the ideal 95 requests on a loaded machine still exercise the window.
    assert len(statuses) > 40
    assert 429 not in statuses
