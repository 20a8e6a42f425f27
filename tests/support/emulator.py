"""Fixtures: Nylas emulator instances on free loopback ports, stopped at teardown.

`emulator_factory` returns `start(fixture=None, **faults)`; `emulator` is one running
instance with `DEFAULT_FIXTURE`. Both bind 127.0.0.1 with port 0, so parallel tests never
collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from reconciler.emulator import EmulatorServer

API_KEY = "nyk_test_key"

# Scopes a Google token must carry for connect/custom to accept it.
GOOGLE_SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/gmail.readonly",
]

DEFAULT_FIXTURE: dict[str, Any] = {
    "api_keys": [API_KEY],
    "identities": [
        {
            "provider": "microsoft",
            "refresh_token": "rt-leyah-1",
            "email": "leyah@example.com",
            "name": "Leyah",
            "scopes": ["Mail.Read", "User.Read", "offline_access"],
        },
        {
            "provider": "google",
            "refresh_token": "rt-gina-1",
            "email": "gina@example.com",
            "scopes": GOOGLE_SCOPES,
        },
        {
            "provider": "imap",
            "imap_username": "support@example.com",
            "imap_password": "pw-support-1",
            "scopes": ["imap"],
        },
    ],
}

StartEmulator = Callable[..., EmulatorServer]


def api_client(
    server: EmulatorServer, key: str = API_KEY, *, headers: dict[str, str] | None = None
) -> httpx.Client:
    """Return an httpx client for `server` that sends `key`, or exactly `headers` when given."""
    chosen = {"Authorization": f"Bearer {key}"} if headers is None else headers
    # The emulator speaks plain HTTP; verify=False only skips loading the CA bundle (~0.1 s).
    return httpx.Client(base_url=server.url, headers=chosen, verify=False)  # noqa: S501


def admin_client(server: EmulatorServer) -> httpx.Client:
    """Return an httpx client for the admin API, which needs no API key."""
    return api_client(server, headers={})


@pytest.fixture
def emulator_factory() -> Iterator[StartEmulator]:
    """Return `start(fixture=None, **faults)`, which starts an emulator; all stop at teardown.

    `fixture=None` uses `DEFAULT_FIXTURE`; pass `{}` for an empty one.
    """
    servers: list[EmulatorServer] = []

    def start(fixture: dict[str, Any] | None = None, **faults: Any) -> EmulatorServer:
        chosen = DEFAULT_FIXTURE if fixture is None else fixture
        server = EmulatorServer(chosen, host="127.0.0.1", port=0, faults=faults or None)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def emulator(emulator_factory: StartEmulator) -> EmulatorServer:
    """Return a running emulator with `DEFAULT_FIXTURE` and no faults."""
    return emulator_factory()
