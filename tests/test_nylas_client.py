"""NylasClient over httpx.MockTransport: requests it builds and responses it parses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from reconciler import __version__
from reconciler.errors import NylasError, NylasOutcomeUnknownError, SecretShapeError
from reconciler.model import GrantStatus
from reconciler.nylas.errors import error_from_response
from reconciler.secrets import Secret
from tests.test_nylas_fakes import API_KEY, error, grant_json, list_page, make_harness


def page_of(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        grant_json(f"g-{start + index}", f"user{start + index}@example.com")
        for index in range(count)
    ]


def test_list_pages_until_short_page() -> None:
    harness = make_harness(
        list_page(page_of(200)), list_page(page_of(200, 200)), list_page(page_of(17, 400))
    )
    grants = harness.client.list_grants()
    assert len(grants) == 417
    offsets = [request.url.params["offset"] for request in harness.script.requests]
    assert offsets == ["0", "200", "400"]
    assert all(request.url.params["limit"] == "200" for request in harness.script.requests)


def test_list_follows_clamped_limit() -> None:
    harness = make_harness(
        list_page(page_of(100), limit=100), list_page(page_of(30, 100), limit=100)
    )
    assert len(harness.client.list_grants()) == 130
    assert harness.script.requests[1].url.params["offset"] == "100"


def test_list_stops_on_empty_page() -> None:
    harness = make_harness(list_page(page_of(200)), list_page([]))
    assert len(harness.client.list_grants()) == 200


def test_list_rejects_server_ignoring_offset() -> None:
    harness = make_harness(list_page(page_of(200)), list_page(page_of(200)))
    with pytest.raises(NylasError, match="ignores `offset`"):
        harness.client.list_grants()


def test_list_drops_grant_repeated_across_pages() -> None:
    # A grant created while paging shifts the newest-first order by one.
    harness = make_harness(list_page(page_of(200)), list_page(page_of(5, 199)))
    grants = harness.client.list_grants()
    assert [grant.id for grant in grants][-1] == "g-203"
    assert len(grants) == 204


def test_grant_fields_parsed() -> None:
    extra: dict[str, Any] = {
        "blocked": False,
        "settings": {},
        "credential_id": "cred-1",
        "new_field": [1],
    }
    harness = make_harness(list_page([grant_json("g-9", grant_status="invalid", **extra)]))
    grant = harness.client.list_grants()[0]
    assert grant.status is GrantStatus.INVALID
    assert grant.scopes == ("Mail.Read", "offline_access")
    assert grant.created_at == 1_700_000_000
    assert grant.updated_at == 1_700_000_100
    assert grant.credential_id == "cred-1"


def test_grant_missing_optional_fields() -> None:
    harness = make_harness(list_page([{"id": "g-2", "provider": "imap"}]))
    grant = harness.client.list_grants()[0]
    assert grant.email == ""
    assert grant.status is GrantStatus.VALID
    assert grant.scopes == ()
    assert grant.updated_at is None


def test_grant_unknown_status_names_grant() -> None:
    harness = make_harness(list_page([grant_json("g-odd", grant_status="paused")]))
    with pytest.raises(NylasError, match=r"'g-odd'.*'paused'"):
        harness.client.list_grants()


def test_grant_wrong_type_names_grant() -> None:
    harness = make_harness(list_page([grant_json("g-bad", scope=7)]))
    with pytest.raises(NylasError, match=r"'g-bad'.*scope"):
        harness.client.list_grants()


def test_find_grants_filters_case_insensitively() -> None:
    grants = [grant_json("g-1", "Leyah@Example.com"), grant_json("g-2", "other@example.com")]
    harness = make_harness(list_page(grants))
    found = harness.client.find_grants("LEYAH@example.COM")
    assert [grant.id for grant in found] == ["g-1"]
    assert harness.script.requests[0].url.params["email"] == "LEYAH@example.COM"


def test_get_grant_returns_grant() -> None:
    body = {"request_id": "req-get", "data": grant_json("g/1")}
    harness = make_harness(httpx.Response(200, json=body))
    grant = harness.client.get_grant("g/1")
    assert grant is not None
    assert grant.id == "g/1"
    assert harness.script.requests[0].url.raw_path == b"/v3/grants/g%2F1"


def test_get_grant_404_returns_none() -> None:
    harness = make_harness(error(404, "api.not_found_error"))
    assert harness.client.get_grant("g-gone") is None


def test_delete_grant_returns_true() -> None:
    harness = make_harness(httpx.Response(200, json={"request_id": "req-del"}))
    assert harness.client.delete_grant("g-1", account="leyah") is True
    assert harness.script.requests[0].method == "DELETE"


def test_delete_grant_404_returns_false() -> None:
    harness = make_harness(error(404, "grant.not_found"))
    assert harness.client.delete_grant("g-1") is False


def test_malformed_json_on_get_is_clean_error() -> None:
    harness = make_harness(httpx.Response(200, text='{"data": [ {"id": '))
    with pytest.raises(NylasError) as caught:
        harness.client.list_grants()
    assert "not JSON" in caught.value.message
    assert "Expecting" not in caught.value.message


def test_connect_body_reveals_secrets_and_keeps_ints() -> None:
    answer = httpx.Response(201, json={"request_id": "req-c", "data": grant_json("g-new")})
    harness = make_harness(answer)
    settings: dict[str, Secret | str | int] = {
        "imap_username": "support@example.com",
        "imap_password": Secret("imap-password-1234"),
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "smtp_host": "smtp.example.com",
        "smtp_port": Secret("587"),
    }
    result = harness.client.connect("imap", settings, account="support")
    body = json.loads(harness.script.requests[0].content)
    assert body["provider"] == "imap"
    assert body["settings"]["imap_password"] == "imap-password-1234"
    assert body["settings"]["imap_port"] == 993
    assert body["settings"]["smtp_port"] == 587
    assert "scope" not in body
    assert result.created is True
    assert result.request_id == "req-c"
    assert result.grant.id == "g-new"


def test_connect_sends_scope() -> None:
    answer = httpx.Response(200, json={"request_id": "req-c", "data": grant_json()})
    harness = make_harness(answer)
    result = harness.client.connect(
        "microsoft", {"refresh_token": Secret("rt-abcdef")}, ["Mail.Read", "User.Read"]
    )
    body = json.loads(harness.script.requests[0].content)
    assert body["scope"] == ["Mail.Read", "User.Read"]
    assert result.created is False


def test_connect_sends_and_parses_state() -> None:
    grant = {**grant_json(), "state": "grantctl:lineage-1"}
    harness = make_harness(httpx.Response(200, json={"request_id": "req-c", "data": grant}))
    result = harness.client.connect(
        "microsoft", {"refresh_token": Secret("rt-abcdef")}, state="grantctl:lineage-1"
    )
    body = json.loads(harness.script.requests[0].content)
    assert body["state"] == "grantctl:lineage-1"
    assert result.grant.state == "grantctl:lineage-1"
    assert result.grant.owner_lineage == "lineage-1"


def test_connect_without_state_omits_it() -> None:
    harness = make_harness(httpx.Response(200, json={"request_id": "req-c", "data": grant_json()}))
    result = harness.client.connect("microsoft", {"refresh_token": Secret("rt-abcdef")})
    body = json.loads(harness.script.requests[0].content)
    assert "state" not in body
    assert result.grant.state is None
    assert result.grant.owner_lineage is None


def test_connect_rejects_non_numeric_port() -> None:
    harness = make_harness()
    with pytest.raises(SecretShapeError, match="imap_port"):
        harness.client.connect("imap", {"imap_port": Secret("nine-nine-three")}, account="x")
    assert harness.script.requests == []


def test_connect_unreadable_success_is_unknown() -> None:
    harness = make_harness(httpx.Response(201, text="<html>ok</html>"))
    with pytest.raises(NylasOutcomeUnknownError, match="not JSON"):
        harness.client.connect("google", {"refresh_token": Secret("rt-abcdef")}, account="a")


def test_headers_carry_key_and_user_agent() -> None:
    harness = make_harness(list_page([]))
    harness.client.list_grants()
    request = harness.script.requests[0]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"] == f"grantctl/{__version__} (+python-httpx)"
    assert request.headers["accept"] == "application/json"


def test_client_is_context_manager() -> None:
    harness = make_harness(list_page([]))
    with harness.client as client:
        client.list_grants()
    with pytest.raises(RuntimeError):
        harness.client.list_grants()


def test_repr_shows_no_key() -> None:
    harness = make_harness()
    assert API_KEY not in repr(harness.client)


def test_error_detail_omits_operation() -> None:
    """An error's detail is its message without the operation and account it starts with."""
    response = httpx.Response(
        400,
        json={"request_id": "req-1", "error": {"type": "invalid_request_error", "message": "bad"}},
    )
    failure = error_from_response(response, "connect", "leyah")
    assert failure.message.startswith("connect for account 'leyah' failed: ")
    assert failure.message.endswith(failure.detail)
    assert failure.detail.endswith("(request id req-1)")
