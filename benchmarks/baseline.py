"""The approach a user would write without grantctl: one request at a time, in a loop.

Both loops use the same client libraries as grantctl (hvac for Vault, httpx for Nylas) and
the same servers, so the ratio measures the design, not the libraries. A 429 answer is
handled the way a hand-written script usually does it: sleep one second and try again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import hvac


@dataclass(frozen=True)
class BaselineTarget:
    """Where the baseline sends its requests."""

    vault_addr: str
    vault_token: str
    mount: str
    nylas_url: str
    api_key: str


def _nylas_request(
    client: httpx.Client, method: str, path: str, **kwargs: object
) -> httpx.Response:
    while True:
        # The keyword arguments are httpx's own (params, json).
        response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        if response.status_code != 429:
            return response
        time.sleep(1.0)


def _clients(target: BaselineTarget) -> tuple[hvac.Client, httpx.Client]:
    vault = hvac.Client(url=target.vault_addr, token=target.vault_token)
    nylas = httpx.Client(
        base_url=target.nylas_url,
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=30.0,
    )
    return vault, nylas


def baseline_plan(target: BaselineTarget, accounts: Sequence[tuple[str, str, str]]) -> int:
    """Read each account's secret metadata and look up its grant, one request at a time.

    `accounts` holds (email, provider, secret path) triples. Returns how many accounts
    have no grant, which is what a plan would connect.
    """
    vault, nylas = _clients(target)
    missing = 0
    with nylas:
        for email, provider, path in accounts:
            vault.secrets.kv.v2.read_secret_metadata(path=path, mount_point=target.mount)
            response = _nylas_request(nylas, "GET", "/v3/grants", params={"email": email})
            response.raise_for_status()
            grants = [g for g in response.json()["data"] if g["provider"] == provider]
            if not grants:
                missing += 1
    return missing


def baseline_apply(target: BaselineTarget, accounts: Sequence[tuple[str, str, str]]) -> int:
    """Read each account's secret and send one connect, one request at a time.

    Returns how many connects succeeded.
    """
    vault, nylas = _clients(target)
    connected = 0
    with nylas:
        for _email, provider, path in accounts:
            secret = vault.secrets.kv.v2.read_secret_version(
                path=path, mount_point=target.mount, raise_on_deleted_version=True
            )
            settings = dict(secret["data"]["data"])
            body = {"provider": provider, "settings": settings}
            response = _nylas_request(nylas, "POST", "/v3/connect/custom", json=body)
            if response.status_code in (200, 201):
                connected += 1
    return connected
