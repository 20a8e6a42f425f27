"""Contract tests: the emulator keeps each documented fact of the Nylas v3 API.

Each test drives the emulator over loopback with httpx, as grantctl's client does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.emulator import EmulatorServer
from tests.support.emulator import API_KEY, GOOGLE_SCOPES, StartEmulator, api_client

IMAP_SETTINGS = {
    "imap_username": "support@example.com",
    "imap_password": "pw-support-1",
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
}
MICROSOFT = {"provider": "microsoft", "settings": {"refresh_token": "rt-leyah-1"}}


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """Return an httpx client for the default emulator, with a valid API key."""
    with api_client(emulator) as c:
        yield c


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the error envelope and request id header; return the `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "error"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["error"]["type"], str)
    assert isinstance(body["error"]["message"], str)
    return body["error"]  # type: ignore[no-any-return]


def list_ids(client: httpx.Client, **params: Any) -> list[str]:
    """Return the ids of one page of `GET /v3/grants` with `params`."""
    response = client.get("/v3/grants", params=params)
    assert response.status_code == 200, response.text
    return [grant["id"] for grant in response.json()["data"]]


# Envelopes and request ids


def test_connect_envelope_and_request_id(client: httpx.Client) -> None:
    """A created grant comes in `{request_id, data}` with the same id in the header."""
    response = client.post("/v3/connect/custom", json=MICROSOFT)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"request_id", "data"}
    assert body["request_id"] == response.headers["x-request-id"]


def test_list_envelope_has_limit_and_offset(client: httpx.Client) -> None:
    """A list response carries `data`, `limit` (default 10) and `offset` (default 0)."""
    body = client.get("/v3/grants").json()
    assert set(body) == {"request_id", "data", "limit", "offset"}
    assert body["limit"] == 10
    assert body["offset"] == 0


def test_delete_envelope_is_request_id_only(client: httpx.Client) -> None:
    """DELETE returns 200 with only `request_id`, then the grant is 404."""
    grant_id = client.post("/v3/connect/custom", json=MICROSOFT).json()["data"]["id"]
    response = client.delete(f"/v3/grants/{grant_id}")
    assert response.status_code == 200
    assert set(response.json()) == {"request_id"}
    assert_error(client.get(f"/v3/grants/{grant_id}"), 404)
    assert_error(client.delete(f"/v3/grants/{grant_id}"), 404)


def test_request_ids_are_unique(client: httpx.Client) -> None:
    """Every response has its own request id."""
    ids = {client.get("/v3/grants").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_grant_object_fields(client: httpx.Client) -> None:
    """A grant has the required fields with their types and echoes `state`."""
    body = {**MICROSOFT, "state": "my-state"}
    grant = client.post("/v3/connect/custom", json=body).json()["data"]
    assert isinstance(grant["id"], str)
    assert grant["provider"] == "microsoft"
    assert grant["scope"] == ["Mail.Read", "User.Read", "offline_access"]
    assert isinstance(grant["created_at"], int)
    assert grant["updated_at"] == grant["created_at"]
    assert grant["grant_status"] == "valid"
    assert grant["email"] == "leyah@example.com"
    assert grant["name"] == "Leyah"
    assert grant["blocked"] is False
    assert grant["state"] == "my-state"


def test_grant_settings_hold_no_secrets(client: httpx.Client) -> None:
    """Settings on the grant keep hosts and ports but never a password."""
    response = client.post(
        "/v3/connect/custom", json={"provider": "imap", "settings": IMAP_SETTINGS}
    )
    settings = response.json()["data"]["settings"]
    assert "imap_password" not in settings
    assert settings["imap_host"] == "imap.example.com"
    assert "pw-support-1" not in response.text


def test_credential_id_recorded_on_grant(client: httpx.Client) -> None:
    """An OAuth connect with `credential_id` puts it on the grant, not in settings."""
    credential_id = "e280d2fa-86db-4937-81c9-ffbd539872d6"
    body = {
        "provider": "microsoft",
        "settings": {"refresh_token": "rt-leyah-1", "credential_id": credential_id},
    }
    grant = client.post("/v3/connect/custom", json=body).json()["data"]
    assert grant["credential_id"] == credential_id
    assert "credential_id" not in grant["settings"]


# Errors


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    """An unknown path returns 404 in the error envelope."""
    error = assert_error(client.get("/v3/nothing-here"), 404)
    assert error["type"] == "api.not_found_error"


def test_unknown_grant_is_json_404(client: httpx.Client) -> None:
    """GET of a grant id that never existed returns 404 in the error envelope."""
    assert_error(client.get("/v3/grants/does-not-exist"), 404)


def test_wrong_method_is_json_405(client: httpx.Client) -> None:
    """A known path with a wrong method returns 405 with `Allow`."""
    response = client.post("/v3/grants", json={})
    assert_error(response, 405)
    assert response.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer nyk_wrong"}, {}, {"Authorization": API_KEY}],
    ids=["wrong-key", "no-header", "no-bearer"],
)
def test_bad_api_key_is_401(emulator: EmulatorServer, headers: dict[str, str]) -> None:
    """A missing or unknown API key returns 401 `token.unauthorized_access`."""
    with api_client(emulator, headers=headers) as raw:
        response = raw.get("/v3/grants")
    assert assert_error(response, 401)["type"] == "token.unauthorized_access"


def test_invalid_json_body_is_400(client: httpx.Client) -> None:
    """A body that is not JSON returns 400."""
    response = client.post(
        "/v3/connect/custom", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


# connect/custom: per-provider validation

CONNECT_REJECTIONS = [
    ("missing-provider", {"settings": {"refresh_token": "rt-leyah-1"}}, "provider"),
    ("unknown-provider", {"provider": "aol", "settings": {}}, "aol"),
    ("missing-settings", {"provider": "microsoft"}, "settings"),
    ("settings-not-object", {"provider": "microsoft", "settings": "rt"}, "settings"),
    ("oauth-missing-token", {"provider": "microsoft", "settings": {}}, "refresh_token"),
    (
        "oauth-unknown-key",
        {"provider": "microsoft", "settings": {"refresh_token": "rt-leyah-1", "client_id": "x"}},
        "client_id",
    ),
    (
        "imap-missing-host",
        {
            "provider": "imap",
            "settings": {k: v for k, v in IMAP_SETTINGS.items() if k != "imap_host"},
        },
        "imap_host",
    ),
    (
        "imap-port-string",
        {"provider": "imap", "settings": {**IMAP_SETTINGS, "imap_port": "993"}},
        "imap_port",
    ),
    ("imap-unknown-key", {"provider": "imap", "settings": {**IMAP_SETTINGS, "ssl": "yes"}}, "ssl"),
    (
        "icloud-imap-keys",
        {"provider": "icloud", "settings": {"imap_username": "a@icloud.com", "imap_password": "p"}},
        "imap_username",
    ),
    (
        "icloud-missing-password",
        {"provider": "icloud", "settings": {"username": "a@icloud.com"}},
        "password",
    ),
    (
        "ews-missing-email",
        {"provider": "ews", "settings": {"ews_username": "u@corp.example", "ews_password": "p"}},
        "email",
    ),
    (
        "ews-port-string",
        {
            "provider": "ews",
            "settings": {
                "email": "u@corp.example",
                "ews_username": "u@corp.example",
                "ews_password": "p",
                "ews_port": "443",
            },
        },
        "ews_port",
    ),
    ("scope-not-array", {**MICROSOFT, "scope": "Mail.Read"}, "scope"),
    ("state-not-string", {**MICROSOFT, "state": 5}, "state"),
    ("unknown-top-level", {**MICROSOFT, "region": "us"}, "region"),
]


@pytest.mark.parametrize(
    ("body", "named"),
    [(body, named) for _, body, named in CONNECT_REJECTIONS],
    ids=[case for case, _, _ in CONNECT_REJECTIONS],
)
def test_connect_rejects_invalid_body(
    client: httpx.Client, body: dict[str, Any], named: str
) -> None:
    """Each invalid body returns 400 and the message names the offending field or value."""
    error = assert_error(client.post("/v3/connect/custom", json=body), 400)
    assert named in error["message"]


def test_missing_provider_has_documented_type(client: httpx.Client) -> None:
    """A body without `provider` returns 400 `grant.provider_required`."""
    response = client.post("/v3/connect/custom", json={"settings": {}})
    assert assert_error(response, 400)["type"] == "grant.provider_required"


@pytest.mark.parametrize(
    "settings",
    [{"refresh_token": "rt-unknown"}, {"refresh_token": "rt-revoked"}],
    ids=["unknown-token", "revoked-token"],
)
def test_rejected_token_is_400_invalid_grant(
    emulator_factory: StartEmulator, settings: dict[str, str]
) -> None:
    """An unknown or revoked refresh token returns 400 with provider_error invalid_grant."""
    revoked = {
        "provider": "microsoft",
        "refresh_token": "rt-revoked",
        "email": "r@example.com",
        "valid": False,
    }
    server = emulator_factory({"api_keys": [API_KEY], "identities": [revoked]})
    with api_client(server) as client:
        response = client.post(
            "/v3/connect/custom", json={"provider": "microsoft", "settings": settings}
        )
    error = assert_error(response, 400)
    assert error["provider_error"]["error"] == "invalid_grant"


def test_wrong_imap_password_is_400(client: httpx.Client) -> None:
    """An IMAP login with the wrong password returns 400 invalid_grant."""
    settings = {**IMAP_SETTINGS, "imap_password": "wrong"}
    error = assert_error(
        client.post("/v3/connect/custom", json={"provider": "imap", "settings": settings}), 400
    )
    assert error["provider_error"]["error"] == "invalid_grant"


def test_google_token_needs_identity_scopes(emulator_factory: StartEmulator) -> None:
    """A Google token without userinfo.profile returns 400 "Authentication failed"."""
    scopes = [scope for scope in GOOGLE_SCOPES if not scope.endswith("userinfo.profile")]
    identity = {
        "provider": "google",
        "refresh_token": "rt-g",
        "email": "g@example.com",
        "scopes": scopes,
    }
    server = emulator_factory({"api_keys": [API_KEY], "identities": [identity]})
    with api_client(server) as client:
        response = client.post(
            "/v3/connect/custom", json={"provider": "google", "settings": {"refresh_token": "rt-g"}}
        )
    error = assert_error(response, 400)
    assert "Authentication failed" in error["message"]
    assert "userinfo.profile" in error["message"]


def test_google_token_with_scopes_connects(client: httpx.Client) -> None:
    """A Google token carrying openid, email and profile scopes connects."""
    response = client.post(
        "/v3/connect/custom",
        json={"provider": "google", "settings": {"refresh_token": "rt-gina-1"}},
    )
    assert response.status_code == 201
    assert response.json()["data"]["scope"] == GOOGLE_SCOPES


def test_connect_without_connector_is_400(emulator_factory: StartEmulator) -> None:
    """With `connectors: [google]`, a Microsoft connect returns 400 naming the provider."""
    identity = {"provider": "microsoft", "refresh_token": "rt-m", "email": "m@example.com"}
    server = emulator_factory(
        {"api_keys": [API_KEY], "connectors": ["google"], "identities": [identity]}
    )
    with api_client(server) as client:
        response = client.post(
            "/v3/connect/custom",
            json={"provider": "microsoft", "settings": {"refresh_token": "rt-m"}},
        )
    assert "microsoft" in assert_error(response, 400)["message"]


# connect/custom: the grant's email and re-authentication


def test_email_comes_from_identity(emulator_factory: StartEmulator) -> None:
    """The grant email is the identity's (OAuth), the username (IMAP, iCloud) or `email` (EWS)."""
    identities = [
        {"provider": "yahoo", "refresh_token": "rt-y", "email": "Yu@Example.com"},
        {"provider": "imap", "imap_username": "box@example.com", "imap_password": "p1"},
        {"provider": "icloud", "username": "me@icloud.com", "password": "app-pw"},
        {
            "provider": "ews",
            "email": "ex@corp.example",
            "ews_username": "CORP\\ex",
            "ews_password": "p2",
        },
    ]
    server = emulator_factory({"api_keys": [API_KEY], "identities": identities})
    requests = [
        ("yahoo", {"refresh_token": "rt-y"}, "Yu@Example.com"),
        (
            "imap",
            {**IMAP_SETTINGS, "imap_username": "box@example.com", "imap_password": "p1"},
            "box@example.com",
        ),
        ("icloud", {"username": "me@icloud.com", "password": "app-pw"}, "me@icloud.com"),
        (
            "ews",
            {
                "email": "ex@corp.example",
                "ews_username": "CORP\\ex",
                "ews_password": "p2",
                "ews_host": "ews.corp.example",
                "ews_port": 443,
            },
            "ex@corp.example",
        ),
    ]
    with api_client(server) as client:
        for provider, settings, email in requests:
            response = client.post(
                "/v3/connect/custom", json={"provider": provider, "settings": settings}
            )
            assert response.status_code == 201, (provider, response.text)
            assert response.json()["data"]["email"] == email, provider


def test_reauth_keeps_id_and_created_at(emulator: EmulatorServer, client: httpx.Client) -> None:
    """A second connect returns 200 with the same id and created_at and a later updated_at."""
    first = client.post("/v3/connect/custom", json=MICROSOFT)
    emulator.expire_grant(grant_id=first.json()["data"]["id"])
    emulator.advance_clock(30)
    second = client.post("/v3/connect/custom", json=MICROSOFT)
    assert first.status_code == 201
    assert second.status_code == 200
    before, after = first.json()["data"], second.json()["data"]
    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] == before["updated_at"] + 30
    assert after["grant_status"] == "valid"


def test_reauth_matches_email_case_insensitively(emulator_factory: StartEmulator) -> None:
    """Two tokens for the same mailbox in different letter case share one grant."""
    identities = [
        {"provider": "microsoft", "refresh_token": "rt-a", "email": "Case@Example.com"},
        {"provider": "microsoft", "refresh_token": "rt-b", "email": "case@example.com"},
    ]
    server = emulator_factory({"api_keys": [API_KEY], "identities": identities})
    with api_client(server) as client:
        first = client.post(
            "/v3/connect/custom",
            json={"provider": "microsoft", "settings": {"refresh_token": "rt-a"}},
        )
        second = client.post(
            "/v3/connect/custom",
            json={"provider": "microsoft", "settings": {"refresh_token": "rt-b"}},
        )
    assert second.json()["data"]["id"] == first.json()["data"]["id"]


def test_same_email_other_provider_is_new_grant(emulator_factory: StartEmulator) -> None:
    """The uniqueness key is (provider, email): another provider gets its own grant."""
    identities = [
        {"provider": "microsoft", "refresh_token": "rt-m", "email": "both@example.com"},
        {"provider": "imap", "imap_username": "both@example.com", "imap_password": "p"},
    ]
    server = emulator_factory({"api_keys": [API_KEY], "identities": identities})
    imap = {**IMAP_SETTINGS, "imap_username": "both@example.com", "imap_password": "p"}
    with api_client(server) as client:
        first = client.post(
            "/v3/connect/custom",
            json={"provider": "microsoft", "settings": {"refresh_token": "rt-m"}},
        )
        second = client.post("/v3/connect/custom", json={"provider": "imap", "settings": imap})
    assert second.status_code == 201
    assert second.json()["data"]["id"] != first.json()["data"]["id"]


def test_deleted_email_gets_new_id(client: httpx.Client) -> None:
    """After a delete, a connect for the same email creates a grant with a new id."""
    first_id = client.post("/v3/connect/custom", json=MICROSOFT).json()["data"]["id"]
    client.delete(f"/v3/grants/{first_id}")
    response = client.post("/v3/connect/custom", json=MICROSOFT)
    assert response.status_code == 201
    assert response.json()["data"]["id"] != first_id


def test_patch_replaces_scope(client: httpx.Client) -> None:
    """PATCH replaces `scope` and leaves the status alone."""
    grant_id = client.post("/v3/connect/custom", json=MICROSOFT).json()["data"]["id"]
    response = client.patch(f"/v3/grants/{grant_id}", json={"scope": ["Mail.Read"]})
    assert response.status_code == 200
    assert response.json()["data"]["scope"] == ["Mail.Read"]


# GET /v3/grants: paging, filters and sorting


@pytest.fixture
def many(emulator_factory: StartEmulator) -> EmulatorServer:
    """An emulator with 250 grants created one second apart."""
    grants = [
        {
            "id": f"g-{index:03d}",
            "provider": "imap" if index % 5 == 0 else "microsoft",
            "email": f"user{index}@example.com",
            "created_at": 1_700_000_000 + index,
            "updated_at": 1_700_000_000 + (index * 7) % 250,
            "status": "invalid" if index % 10 == 0 else "valid",
        }
        for index in range(250)
    ]
    return emulator_factory({"api_keys": [API_KEY], "grants": grants})


def test_default_page_is_ten_newest(many: EmulatorServer) -> None:
    """Without parameters a page contains 10 grants, newest created first."""
    with api_client(many) as client:
        ids = list_ids(client)
    assert ids == [f"g-{index:03d}" for index in range(249, 239, -1)]


def test_limit_over_200_is_clamped(many: EmulatorServer) -> None:
    """limit=500 returns 200 grants and reports limit 200."""
    with api_client(many) as client:
        body = client.get("/v3/grants", params={"limit": 500}).json()
    assert len(body["data"]) == 200
    assert body["limit"] == 200


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_invalid_limit_is_400(client: httpx.Client, limit: str) -> None:
    """A limit that is not a positive integer returns 400."""
    assert_error(client.get("/v3/grants", params={"limit": limit}), 400)


def test_offset_paging_reaches_every_grant(many: EmulatorServer) -> None:
    """Paging with limit 200 until a short page returns each grant exactly once."""
    seen: list[str] = []
    with api_client(many) as client:
        while True:
            page = list_ids(client, limit=200, offset=len(seen))
            seen += page
            if len(page) < 200:
                break
    assert len(seen) == 250
    assert len(set(seen)) == 250


def test_offset_past_end_is_empty(many: EmulatorServer) -> None:
    """An offset past the last grant returns an empty page."""
    with api_client(many) as client:
        assert list_ids(client, offset=1000) == []


FILTER_CASES = [
    ("email-case-insensitive", {"email": "USER7@example.com"}, ["g-007"]),
    ("provider", {"provider": "imap", "limit": 3}, ["g-245", "g-240", "g-235"]),
    ("grant-status", {"grant_status": "invalid", "limit": 2}, ["g-240", "g-230"]),
    ("since", {"since": 1_700_000_247}, ["g-249", "g-248", "g-247"]),
    ("before", {"before": 1_700_000_001, "order_by": "asc"}, ["g-000", "g-001"]),
    ("ascending", {"order_by": "asc", "limit": 2}, ["g-000", "g-001"]),
    ("sort-updated", {"sort_by": "updated_at", "limit": 1}, ["g-107"]),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [(params, expected) for _, params, expected in FILTER_CASES],
    ids=[case for case, _, _ in FILTER_CASES],
)
def test_list_filters(many: EmulatorServer, params: dict[str, Any], expected: list[str]) -> None:
    """Each filter and sort option selects and orders grants as documented."""
    with api_client(many) as client:
        assert list_ids(client, **params) == expected


def test_ip_account_and_workspace_filters(emulator_factory: StartEmulator) -> None:
    """ip, account_id and workspace_id match those grant fields exactly."""
    grants = [
        {"id": "a", "provider": "google", "email": "a@example.com", "ip": "10.0.0.1"},
        {"id": "b", "provider": "google", "email": "b@example.com", "account_id": "v2-acct"},
        {"id": "c", "provider": "google", "email": "c@example.com", "workspace_id": "ws-1"},
    ]
    server = emulator_factory({"api_keys": [API_KEY], "grants": grants})
    with api_client(server) as client:
        assert list_ids(client, ip="10.0.0.1") == ["a"]
        assert list_ids(client, account_id="v2-acct") == ["b"]
        assert list_ids(client, workspace_id="ws-1") == ["c"]


def test_sort_ties_broken_by_id(emulator_factory: StartEmulator) -> None:
    """Grants created in the same second page in a stable order (by id)."""
    grants = [
        {
            "id": f"t-{index:02d}",
            "provider": "google",
            "email": f"t{index}@example.com",
            "created_at": 1_700_000_000,
        }
        for index in range(30)
    ]
    server = emulator_factory({"api_keys": [API_KEY], "grants": grants})
    with api_client(server) as client:
        pages = [
            list_ids(client, limit=7, offset=offset, order_by="asc") for offset in range(0, 30, 7)
        ]
    assert [grant_id for page in pages for grant_id in page] == [g["id"] for g in grants]


@pytest.mark.parametrize(
    "params",
    [{"sort_by": "email"}, {"order_by": "up"}, {"grant_status": "expired"}, {"since": "yesterday"}],
    ids=["sort-by", "order-by", "grant-status", "since"],
)
def test_invalid_list_parameter_is_400(client: httpx.Client, params: dict[str, str]) -> None:
    """An unknown sort field, order, status or a non-integer time returns 400."""
    assert_error(client.get("/v3/grants", params=params), 400)


def test_paging_ten_thousand_grants_is_fast(emulator_factory: StartEmulator) -> None:
    """Paging through 10,000 grants at limit 200 takes well under the client's timeouts."""
    server = emulator_factory({"api_keys": [API_KEY], "rate_limit": 0})
    for index in range(10_000):
        server.add_grant(provider="microsoft", email=f"bulk{index}@example.com")
    seen = 0
    started = time.monotonic()
    with api_client(server) as client:
        while True:
            page = list_ids(client, limit=200, offset=seen)
            seen += len(page)
            if len(page) < 200:
                break
    assert seen == 10_000
    assert time.monotonic() - started < 10
