"""Fakes shared by the Nylas client tests (no tests here): scripted MockTransport responses."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.nylas import ClientSettings, NylasClient
from reconciler.secrets import Secret

API_KEY = "nyk_canary_api_key_0123456789"
FAST = ClientSettings(
    rate_limit_per_s=10_000, rate_burst=1_000, backoff_base_s=0.5, backoff_cap_s=4
)

Step = httpx.Response | type[httpx.RequestError] | Callable[[httpx.Request], httpx.Response]


def grant_json(
    grant_id: str = "g-1", email: str = "leyah@example.com", **extra: Any
) -> dict[str, Any]:
    """Return a grant object as Nylas lists it."""
    grant: dict[str, Any] = {
        "id": grant_id,
        "provider": "microsoft",
        "email": email,
        "grant_status": "valid",
        "scope": ["Mail.Read", "offline_access"],
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_100,
    }
    grant.update(extra)
    return grant


def list_page(grants: list[dict[str, Any]], *, limit: int = 200, offset: int = 0) -> httpx.Response:
    """Return a `GET /v3/grants` response containing `grants`."""
    body = {"request_id": "req-list", "data": grants, "limit": limit, "offset": offset}
    return httpx.Response(200, json=body)


def error(
    status: int, error_type: str = "error", message: str = "failed", **extra: Any
) -> httpx.Response:
    """Return a Nylas error envelope response."""
    body = {
        "request_id": f"req-{status}",
        "error": {"type": error_type, "message": message, **extra},
    }
    return httpx.Response(status, json=body)


@dataclass
class Script:
    """A MockTransport handler that plays `steps` in order and records every request."""

    steps: list[Step]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.steps, f"unexpected extra request {request.method} {request.url}"
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        if isinstance(step, type):
            raise step("simulated failure", request=request)
        return step(request)


@dataclass
class Harness:
    """A client over a `Script`, with the waits it asked for recorded instead of slept."""

    client: NylasClient
    script: Script
    sleeps: list[float]


def make_harness(
    *steps: Step,
    settings: ClientSettings = FAST,
    api_key: Callable[[], Secret] | None = None,
) -> Harness:
    """Build a client whose requests get the responses in `steps`."""
    script = Script(list(steps))
    sleeps: list[float] = []
    client = NylasClient(
        api_key or (lambda: Secret(API_KEY)),
        "http://127.0.0.1:9",
        settings,
        transport=httpx.MockTransport(script),
        sleep=sleeps.append,
        rng=random.Random(7),  # noqa: S311 (repeatable jitter, not cryptography)
    )
    return Harness(client, script, sleeps)
