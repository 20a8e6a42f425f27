"""The emulator's admin API, its in-process twins, fixture validation and `serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from reconciler.emulator import EmulatorServer, FixtureError, check_host
from reconciler.errors import ConfigError
from tests.support.emulator import API_KEY, admin_client, api_client

MICROSOFT = {"provider": "microsoft", "settings": {"refresh_token": "rt-leyah-1"}}
IMAP_SETTINGS = {
    "imap_username": "support@example.com",
    "imap_password": "pw-support-1",
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
}


def connect(server: EmulatorServer, body: Mapping[str, object]) -> httpx.Response:
    """Send one connect/custom request with the default API key."""
    with api_client(server) as client:
        return client.post("/v3/connect/custom", json=body)


def get_grant(server: EmulatorServer, grant_id: str) -> dict[str, object]:
    """Return a grant through the public API."""
    with api_client(server) as client:
        return client.get(f"/v3/grants/{grant_id}").json()["data"]  # type: ignore[no-any-return]


# Grants


def test_admin_add_and_list_grants(emulator: EmulatorServer) -> None:
    """POST /_emulator/grants adds an unmanaged grant that both list endpoints show."""
    body = {
        "id": "hand-made",
        "provider": "google",
        "email": "old@example.com",
        "status": "invalid",
        "scopes": ["openid"],
    }
    with admin_client(emulator) as admin:
        created = admin.post("/_emulator/grants", json=body)
        listed = admin.get("/_emulator/grants").json()["data"]
    assert created.status_code == 201
    assert [grant["id"] for grant in listed] == ["hand-made"]
    assert get_grant(emulator, "hand-made")["grant_status"] == "invalid"


def test_admin_add_duplicate_grant_is_400(emulator: EmulatorServer) -> None:
    """A second grant for the same provider and email is rejected."""
    emulator.add_grant(provider="google", email="dup@example.com")
    with admin_client(emulator) as admin:
        response = admin.post(
            "/_emulator/grants", json={"provider": "google", "email": "DUP@example.com"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_admin_expire_by_id(emulator: EmulatorServer) -> None:
    """POST /_emulator/grants/{id}/expire sets grant_status to invalid."""
    grant_id = connect(emulator, MICROSOFT).json()["data"]["id"]
    with admin_client(emulator) as admin:
        response = admin.post(f"/_emulator/grants/{grant_id}/expire")
    assert response.status_code == 200
    assert get_grant(emulator, grant_id)["grant_status"] == "invalid"


def test_admin_expire_unknown_is_404(emulator: EmulatorServer) -> None:
    """Expiring a grant that does not exist returns 404."""
    with admin_client(emulator) as admin:
        assert admin.post("/_emulator/grants/nope/expire").status_code == 404


def test_admin_expire_by_email(emulator: EmulatorServer) -> None:
    """POST /_emulator/expire {email} expires the grant for that email, case-insensitively."""
    grant_id = connect(emulator, MICROSOFT).json()["data"]["id"]
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/expire", json={"email": "LEYAH@example.com"})
    assert [grant["id"] for grant in response.json()["data"]] == [grant_id]
    assert get_grant(emulator, grant_id)["grant_status"] == "invalid"


def test_expired_grant_recovers_on_reconnect(emulator: EmulatorServer) -> None:
    """An expired grant is valid again after a connect with a working token."""
    grant_id = connect(emulator, MICROSOFT).json()["data"]["id"]
    emulator.expire_grant(email="leyah@example.com")
    response = connect(emulator, MICROSOFT)
    assert response.json()["data"]["id"] == grant_id
    assert get_grant(emulator, grant_id)["grant_status"] == "valid"


# Identities and revocation


def test_admin_identity_enables_connect(emulator: EmulatorServer) -> None:
    """A refresh token added through POST /_emulator/identities is accepted by connect."""
    identity = {"provider": "zoom", "refresh_token": "rt-zoom", "email": "z@example.com"}
    with admin_client(emulator) as admin:
        assert admin.post("/_emulator/identities", json=identity).status_code == 201
    response = connect(emulator, {"provider": "zoom", "settings": {"refresh_token": "rt-zoom"}})
    assert response.status_code == 201


def test_admin_invalid_identity_is_400_without_secret(emulator: EmulatorServer) -> None:
    """An identity missing its email returns 400 and the message never echoes the token."""
    identity = {"provider": "zoom", "refresh_token": "rt-very-secret"}
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/identities", json=identity)
    assert response.status_code == 400
    assert "email" in response.json()["error"]["message"]
    assert "rt-very-secret" not in response.text


def test_admin_revoke_expires_and_blocks_token(emulator: EmulatorServer) -> None:
    """Revoking a token expires its grant and makes later connects return 400 invalid_grant."""
    grant_id = connect(emulator, MICROSOFT).json()["data"]["id"]
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/revoke", json={"token": "rt-leyah-1"})
    assert response.status_code == 200
    assert get_grant(emulator, grant_id)["grant_status"] == "invalid"
    retry = connect(emulator, MICROSOFT)
    assert retry.status_code == 400
    assert retry.json()["error"]["provider_error"]["error"] == "invalid_grant"


def test_revoke_by_imap_username(emulator: EmulatorServer) -> None:
    """revoke_token also takes a password provider's username."""
    connect(emulator, {"provider": "imap", "settings": IMAP_SETTINGS})
    expired = emulator.revoke_token("support@example.com")
    assert [grant["grant_status"] for grant in expired] == ["invalid"]


def test_admin_revoke_unknown_is_404_without_echo(emulator: EmulatorServer) -> None:
    """Revoking an unknown token returns 404 and does not echo it."""
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/revoke", json={"token": "rt-never-seen"})
    assert response.status_code == 404
    assert "rt-never-seen" not in response.text


def test_rotated_token_reconnects_same_grant(emulator: EmulatorServer) -> None:
    """After a revoke, a new token for the same mailbox re-authenticates the same grant."""
    grant_id = connect(emulator, MICROSOFT).json()["data"]["id"]
    emulator.revoke_token("rt-leyah-1")
    emulator.add_identity(
        provider="microsoft", refresh_token="rt-leyah-2", email="leyah@example.com"
    )
    response = connect(
        emulator, {"provider": "microsoft", "settings": {"refresh_token": "rt-leyah-2"}}
    )
    assert response.status_code == 200
    assert response.json()["data"]["id"] == grant_id


# API keys, faults and clock


def test_admin_api_key_rotation(emulator: EmulatorServer) -> None:
    """Keys added through /_emulator/api-keys work at once; removed keys return 401."""
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/api-keys", json={"add": ["nyk_new"], "remove": [API_KEY]})
    assert response.json()["data"] == {"count": 1}
    with api_client(emulator, "nyk_new") as client:
        assert client.get("/v3/grants").status_code == 200
    with api_client(emulator) as client:
        assert client.get("/v3/grants").status_code == 401


def test_admin_faults_round_trip(emulator: EmulatorServer) -> None:
    """POST /_emulator/faults sets fields that GET returns and that take effect."""
    with admin_client(emulator) as admin:
        admin.post("/_emulator/faults", json={"error_rate": 1.0, "error_status": 500})
        settings = admin.get("/_emulator/faults").json()["data"]
    assert settings["error_rate"] == 1.0
    assert settings["effective_rate_limit"] == 50
    with api_client(emulator) as client:
        assert client.get("/v3/grants").status_code == 500


def test_admin_unknown_fault_is_400(emulator: EmulatorServer) -> None:
    """An unknown fault name returns 400 naming it."""
    with admin_client(emulator) as admin:
        response = admin.post("/_emulator/faults", json={"latency": 5})
    assert response.status_code == 400
    assert "latency" in response.json()["error"]["message"]


def test_admin_clock_moves_updated_at(emulator: EmulatorServer) -> None:
    """POST /_emulator/clock {advance_s} shifts the time later grants record."""
    first = connect(emulator, MICROSOFT).json()["data"]
    with admin_client(emulator) as admin:
        admin.post("/_emulator/clock", json={"advance_s": 3600})
    second = connect(emulator, MICROSOFT).json()["data"]
    assert second["updated_at"] - first["updated_at"] >= 3600


def test_admin_unknown_route_and_method(emulator: EmulatorServer) -> None:
    """Unknown admin paths return 404, wrong methods 405, both as JSON."""
    with admin_client(emulator) as admin:
        missing = admin.get("/_emulator/nothing")
        wrong = admin.delete("/_emulator/faults")
    assert missing.status_code == 404
    assert wrong.status_code == 405
    assert "error" in wrong.json()


# Request log


def test_request_log_masks_settings(emulator: EmulatorServer) -> None:
    """The log keeps each request's fields but masks every settings value."""
    connect(emulator, {"provider": "imap", "settings": IMAP_SETTINGS})
    with admin_client(emulator) as admin:
        log = admin.get("/_emulator/requests").json()
    entry = log["data"][0]
    assert entry["method"] == "POST"
    assert entry["endpoint"] == "POST /v3/connect/custom"
    assert entry["group"] == "auth"
    assert entry["status"] == 201
    assert set(entry["body"]["settings"]) == set(IMAP_SETTINGS)
    assert "pw-support-1" not in json.dumps(log)
    assert "imap.example.com" not in json.dumps(log)


def test_request_counts_by_endpoint_and_status(emulator: EmulatorServer) -> None:
    """Counts group requests per endpoint template and per status."""
    connect(emulator, MICROSOFT)
    with api_client(emulator) as client:
        client.get("/v3/grants/one")
        client.get("/v3/grants/two")
    counts = emulator.request_counts()
    assert counts["by_endpoint"] == {"POST /v3/connect/custom": 1, "GET /v3/grants/{id}": 2}
    assert counts["by_status"] == {"201": 1, "404": 2}
    assert counts["by_group"] == {"auth": 1, "grants": 2}


def test_request_log_records_query_and_request_id(emulator: EmulatorServer) -> None:
    """Each entry has the query parameters and the request id the client saw."""
    with api_client(emulator) as client:
        response = client.get("/v3/grants", params={"limit": 200, "email": "a@example.com"})
    entry = emulator.request_log()[0]
    assert entry["query"] == {"limit": "200", "email": "a@example.com"}
    assert entry["request_id"] == response.headers["x-request-id"]


def test_admin_clear_log(emulator: EmulatorServer) -> None:
    """DELETE /_emulator/requests empties the log and the counts."""
    connect(emulator, MICROSOFT)
    with admin_client(emulator) as admin:
        assert admin.delete("/_emulator/requests").status_code == 200
        log = admin.get("/_emulator/requests").json()
    assert log["data"] == []
    assert log["counts"]["by_endpoint"] == {}


# Fixtures


def test_fixture_yaml_file(tmp_path: Path) -> None:
    """A YAML fixture file loads identities, grants and keys."""
    path = tmp_path / "fixture.yaml"
    path.write_text(
        "api_keys: [nyk_file]\n"
        "identities:\n"
        "  - {provider: imap, imap_username: box@example.com, imap_password: p, scopes: [imap]}\n"
        "grants:\n"
        "  - {id: pre, provider: microsoft, email: old@example.com}\n",
        encoding="utf-8",
    )
    with EmulatorServer(path) as server, api_client(server, "nyk_file") as client:
        ids = [grant["id"] for grant in client.get("/v3/grants").json()["data"]]
    assert ids == ["pre"]


def test_fixture_errors_name_file_and_entry(tmp_path: Path) -> None:
    """Every problem is listed with the file and entry, and no secret value is printed."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "identities:\n"
        "  - {provider: microsoft, refresh_token: rt-hidden-value}\n"
        "  - {provider: imap, imap_username: u, imap_password: pw-hidden, color: blue}\n"
        "grants:\n"
        "  - {provider: microsoft, email: a@example.com, status: expired}\n",
        encoding="utf-8",
    )
    with pytest.raises(FixtureError) as caught:
        EmulatorServer(path)
    message = str(caught.value)
    assert f"{path}: identities[0]: email is missing" in message
    assert f"{path}: identities[1]: unknown key 'color'" in message
    assert f"{path}: grants[0]: status must be valid or invalid" in message
    assert "rt-hidden-value" not in message
    assert "pw-hidden" not in message


def test_fixture_invalid_yaml(tmp_path: Path) -> None:
    """A file that is not YAML raises FixtureError with the line."""
    path = tmp_path / "broken.yaml"
    path.write_text("identities: [\n", encoding="utf-8")
    with pytest.raises(FixtureError, match="not valid YAML"):
        EmulatorServer(path)


def test_fixture_duplicate_grant_ids() -> None:
    """Two fixture grants with one id are rejected."""
    grants = [{"id": "same", "provider": "google", "email": f"{name}@example.com"} for name in "ab"]
    with pytest.raises(FixtureError, match="same"):
        EmulatorServer({"grants": grants})


def test_default_api_key_without_fixture() -> None:
    """Without `api_keys` the emulator accepts `nyk_emulator_key`."""
    assert EmulatorServer().api_key == "nyk_emulator_key"


# Binding and serve


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_allowed(host: str) -> None:
    """Loopback addresses pass the bind check."""
    check_host(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_remote_hosts_rejected(host: str) -> None:
    """Other addresses raise ConfigError unless allow_remote is passed."""
    with pytest.raises(ConfigError):
        EmulatorServer(host=host)
    check_host(host, allow_remote=True)


def test_serve_stops_on_sigterm() -> None:
    """serve() handles requests until SIGTERM, then returns and the process exits 0."""
    script = (
        "import sys\n"
        "from reconciler.emulator import serve\n"
        "serve('127.0.0.1', 0, None, {'latency_ms': 1},"
        " on_ready=lambda s: print(s.url, flush=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        response = httpx.get(
            f"{url}/v3/grants", headers={"Authorization": "Bearer nyk_emulator_key"}
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
