"""NylasClient against the emulator over loopback HTTP, with faults injected."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.errors import (
    NylasAuthenticationError,
    NylasInvalidRequestError,
    NylasOutcomeUnknownError,
    NylasRateLimitError,
    NylasTimeoutError,
)
from reconciler.nylas import ClientSettings, NylasClient
from reconciler.secrets import Secret

StartEmulator = Callable[..., EmulatorServer]

API_KEY = "nyk_emulator_test_key_1"
MAIL_SCOPES = ["Mail.Read", "User.Read", "offline_access"]
# Short waits keep the suite fast; the retry rules are the production ones.
QUICK = ClientSettings(max_retries=8, backoff_base_s=0.02, backoff_cap_s=0.2, timeout_read_s=5)


def token(index: int) -> str:
    return f"rt-user-{index}-canary-secret"


def make_fixture(identities: int = 3, grants: int = 0) -> dict[str, Any]:
    """Return a fixture with `identities` Microsoft mailboxes and `grants` existing grants."""
    return {
        "api_keys": [API_KEY],
        "identities": [
            {
                "provider": "microsoft",
                "refresh_token": token(index),
                "email": f"user{index}@example.com",
                "scopes": MAIL_SCOPES,
            }
            for index in range(identities)
        ],
        "grants": [
            {"provider": "microsoft", "email": f"listed{index}@example.com", "scopes": MAIL_SCOPES}
            for index in range(grants)
        ],
    }


def make_client(server: EmulatorServer, settings: ClientSettings = QUICK) -> NylasClient:
    return NylasClient(lambda: Secret(API_KEY), server.url, settings)


def connect_user(client: NylasClient, index: int) -> Any:
    settings = {"refresh_token": Secret(token(index))}
    return client.connect("microsoft", settings, MAIL_SCOPES, account=f"user{index}")


def statuses(server: EmulatorServer) -> list[object]:
    return [entry["status"] for entry in server.request_log()]


def test_round_trip(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=2, grants=3))
    with make_client(server) as client:
        first = connect_user(client, 0)
        again = connect_user(client, 0)
        assert first.created is True
        assert again.created is False
        assert again.grant.id == first.grant.id
        assert len(client.list_grants()) == 4
        assert [grant.id for grant in client.find_grants("USER0@example.com")] == [first.grant.id]
        assert client.get_grant(first.grant.id) == again.grant
        assert client.delete_grant(first.grant.id, account="user0") is True
        assert client.delete_grant(first.grant.id, account="user0") is False
        assert client.get_grant(first.grant.id) is None


def test_list_pages_past_200(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=450))
    with make_client(server) as client:
        grants = client.list_grants()
    assert len({grant.id for grant in grants}) == 450
    offsets = [entry["query"]["offset"] for entry in server.request_log()]  # type: ignore[index]
    assert offsets == ["0", "200", "400"]


def test_revoked_token_is_invalid_request(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=1))
    server.revoke_token(token(0))
    with make_client(server) as client, pytest.raises(NylasInvalidRequestError) as caught:
        connect_user(client, 0)
    assert "account 'user0'" in caught.value.message
    assert token(0) not in str(caught.value)


def test_5xx_on_gets_retried_to_success(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(
        make_fixture(identities=0, grants=5), error_rate=0.2, error_status=503
    )
    with make_client(server) as client:
        for _ in range(40):
            assert len(client.list_grants()) == 5
        stats = client.stats.snapshot()
    # 40 lists at 20% failures: the chance of no failure at all is 0.8**40, about 1e-4.
    assert stats.retries > 0
    assert statuses(server).count(503) == stats.retries


def test_html_502_retried_to_success(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=2), html_error_rate=0.3)
    with make_client(server) as client:
        for _ in range(20):
            assert len(client.list_grants()) == 2


def test_429_burst_honours_retry_after(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=1), burst_429=2, retry_after=1)
    started = time.monotonic()
    with make_client(server) as client:
        result = connect_user(client, 0)
        stats = client.stats.snapshot()
    assert result.created is True
    assert stats.rate_limited == 2
    assert time.monotonic() - started >= 2


def test_latency_within_timeout(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=1), latency_ms=80, jitter_ms=40)
    with make_client(server) as client:
        assert connect_user(client, 0).grant.email == "user0@example.com"
        assert len(client.list_grants()) == 1


def test_read_timeout_retried_on_get(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=1), latency_ms=300)
    settings = replace(QUICK, timeout_read_s=0.1, max_retries=1)
    with make_client(server, settings) as client, pytest.raises(NylasTimeoutError):
        client.list_grants()
    assert client.stats.requests == 2


def test_read_timeout_on_connect_is_unknown(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=1), latency_ms=300)
    settings = replace(QUICK, timeout_read_s=0.1)
    with make_client(server, settings) as client:
        with pytest.raises(NylasOutcomeUnknownError):
            connect_user(client, 0)
        assert client.stats.requests == 1
        server.set_faults(latency_ms=0)
        time.sleep(0.3)  # let the emulator finish the connect it was still delaying
        assert len(client.find_grants("user0@example.com")) == 1


def test_dropped_connect_is_unknown_then_found(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=1), drop_rate=1.0, drop_after_processing=True)
    with make_client(server) as client:
        with pytest.raises(NylasOutcomeUnknownError, match="account 'user0'"):
            connect_user(client, 0)
        assert client.stats.requests == 1
        server.set_faults(drop_rate=0.0)
        found = client.find_grants("user0@example.com")
    assert len(found) == 1


def test_dropped_gets_retried_to_success(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=3), drop_rate=0.3)
    with make_client(server) as client:
        for _ in range(15):
            assert len(client.list_grants()) == 3


def test_limiter_keeps_emulator_from_429(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=2))
    with make_client(server, replace(QUICK, parallelism=10)) as client:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(lambda _: client.list_grants(), range(100)))
        stats = client.stats.snapshot()
    assert all(len(grants) == 2 for grants in results)
    assert stats.requests == 100
    assert stats.rate_limited == 0
    assert 429 not in statuses(server)


def test_unlimited_client_meets_emulator_429(emulator_factory: StartEmulator) -> None:
    # The control case for the test above: without the client's limit the emulator returns 429.
    server = emulator_factory(make_fixture(identities=0, grants=1))
    settings = replace(QUICK, parallelism=10, rate_limit_per_s=10_000, rate_burst=1_000)

    def list_quietly(_: int) -> None:
        with contextlib.suppress(NylasRateLimitError):
            client.list_grants()

    with make_client(server, settings) as client, ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(list_quietly, range(150)))
    assert client.stats.rate_limited > 0
    assert 429 in statuses(server)


def test_parallel_connects_share_one_pool(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=30), latency_ms=20)
    with make_client(server) as client, ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda index: connect_user(client, index), range(30)))
        assert len(client.list_grants()) == 30
    assert len({result.grant.id for result in results}) == 30


def test_rotated_api_key_picked_up(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture(identities=0, grants=1))
    environ = {"key": API_KEY}
    with NylasClient(lambda: Secret(environ["key"]), server.url, QUICK) as client:
        assert len(client.list_grants()) == 1
        server.update_api_keys(add=["nyk_rotated_key_2"], remove=[API_KEY])
        environ["key"] = "nyk_rotated_key_2"
        assert len(client.list_grants()) == 1
        assert client.stats.snapshot().key_reloads == 1


def test_wrong_api_key_fails_with_region_hint(emulator_factory: StartEmulator) -> None:
    server = emulator_factory(make_fixture())
    client = NylasClient(lambda: Secret("nyk_wrong_key_999"), server.url, QUICK)
    with client, pytest.raises(NylasAuthenticationError) as caught:
        client.list_grants()
    assert "nylas.region" in caught.value.hint
    assert caught.value.request_id


def test_debug_logs_hold_no_secret(
    emulator_factory: StartEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.nylas")
    server = emulator_factory(make_fixture(identities=1), error_rate=1.0, error_status=502)
    with make_client(server) as client, pytest.raises(NylasOutcomeUnknownError) as caught:
        connect_user(client, 0)
    assert "POST /v3/connect/custom -> 502" in caplog.text
    for text in (caplog.text, str(caught.value)):
        assert token(0) not in text
        assert API_KEY not in text
