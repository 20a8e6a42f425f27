"""`NylasClient`: the Nylas v3 grant and Bring Your Own Authentication calls grantctl makes.

It implements `reconciler.protocols.GrantsAPI` on top of a `Sender`, which owns the
connection pool, the shared rate limit, the API key and the retry rules. The executor calls
one client from its whole thread pool.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.errors import NylasError, SecretShapeError
from reconciler.model import INTEGER_SECRET_KEYS, Grant
from reconciler.nylas.errors import request_id_of
from reconciler.nylas.grants import parse_grant, parse_grant_page
from reconciler.nylas.ratelimit import TokenBucket
from reconciler.nylas.retry import RequestStats
from reconciler.nylas.sender import Call, Sender, data_object
from reconciler.nylas.settings import ClientSettings, validate_base_url
from reconciler.protocols import ConnectResult
from reconciler.secrets import Secret

# The maximum page size of `GET /v3/grants`; Nylas' default is 10.
LIST_LIMIT = 200
CONNECT_PATH = "/v3/connect/custom"


class NylasClient:
    """A thread-safe Nylas v3 client for grants and Bring Your Own Authentication.

    `api_key` is called for the key at the first request and after a 401. `transport`
    replaces the network (tests use `httpx.MockTransport`); `rate_limiter` lets several
    clients share one budget; `sleep` and `rng` drive the retry waits.
    """

    def __init__(
        self,
        api_key: Callable[[], Secret],
        base_url: str,
        settings: ClientSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        self.base_url = validate_base_url(base_url)
        self._sender = Sender(
            api_key,
            self.base_url,
            self.settings,
            transport=transport,
            rate_limiter=rate_limiter,
            sleep=sleep,
            rng=rng,
        )

    @property
    def stats(self) -> RequestStats:
        """Counters of the requests this client sent."""
        return self._sender.stats

    def __repr__(self) -> str:
        return f"NylasClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._sender.close()

    def __enter__(self) -> NylasClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # GrantsAPI

    def list_grants(self) -> list[Grant]:
        """Return every grant of the application, paging with `limit=200` to the end."""
        return self._list_grants({}, "list grants")

    def find_grants(self, email: str) -> list[Grant]:
        """Return the grants whose email equals `email` case-insensitively."""
        wanted = email.casefold()
        grants = self._list_grants({"email": email}, f"find grants for {email}")
        # The server filter is not trusted to fold case the same way: filter here too.
        return [grant for grant in grants if grant.email_key == wanted]

    def get_grant(self, grant_id: str) -> Grant | None:
        """Return one grant, or None when Nylas returns 404."""
        call = Call(
            "GET",
            _grant_path(grant_id),
            f"get grant {grant_id!r}",
            passed_statuses=frozenset({404}),
        )
        response = self._sender.send(call)
        if response.status_code == 404:
            return None
        body = self._sender.json(response, call)
        return parse_grant(
            data_object(body, call, response), request_id=request_id_of(response, body)
        )

    def connect(
        self,
        provider: str,
        settings: Mapping[str, Secret | str | int],
        scopes: Sequence[str] = (),
        *,
        account: str = "",
        state: str | None = None,
    ) -> ConnectResult:
        """Create or re-authenticate a grant with `POST /v3/connect/custom`.

        `state`, when given, is sent as the request's `state`, which Nylas stores on the
        grant and returns in every grant object.

        Raises `NylasOutcomeUnknownError` when the request may have reached Nylas but no
        usable response arrived; the caller looks the grant up before sending again.
        """
        call = Call(
            "POST",
            CONNECT_PATH,
            "connect",
            account=account,
            content=_connect_body(provider, settings, scopes, account, state),
        )
        response = self._sender.send(call)
        body = self._sender.json(response, call)
        request_id = request_id_of(response, body)
        try:
            grant = parse_grant(data_object(body, call, response), request_id=request_id)
        except NylasError as exc:
            raise self._sender.unknown(
                call, response, f"the grant in the response is unusable: {exc.message}"
            ) from exc
        return ConnectResult(
            grant=grant, request_id=request_id, created=response.status_code == 201
        )

    def delete_grant(self, grant_id: str, *, account: str = "") -> bool:
        """Revoke a grant; return False when it was already gone (404)."""
        call = Call(
            "DELETE",
            _grant_path(grant_id),
            f"delete grant {grant_id!r}",
            account=account,
            passed_statuses=frozenset({404}),
        )
        return self._sender.send(call).status_code != 404

    # Paging

    def _list_grants(self, filters: Mapping[str, str], operation: str) -> list[Grant]:
        grants: dict[str, Grant] = {}
        offset = 0
        while True:
            call = Call(
                "GET",
                "/v3/grants",
                operation,
                params={**filters, "limit": LIST_LIMIT, "offset": offset},
            )
            response = self._sender.send(call)
            body = self._sender.json(response, call)
            page = parse_grant_page(body, request_id=request_id_of(response, body))
            if page.grants and all(grant.id in grants for grant in page.grants):
                raise NylasError(
                    f"{operation} failed: the page at offset {offset} repeats grants already "
                    "listed, so the server ignores `offset`",
                    request_id=page.request_id,
                    hint="check GRANTCTL_NYLAS_API_URI points at the Nylas API or the emulator",
                )
            for grant in page.grants:
                grants.setdefault(grant.id, grant)
            # A server may clamp the limit; the page is full at the limit it reports.
            # NOTE: a server that clamps without echoing `limit` ends the listing early.
            page_size = min(LIST_LIMIT, page.limit or LIST_LIMIT)
            if len(page.grants) < page_size:
                return list(grants.values())
            offset += len(page.grants)


def _grant_path(grant_id: str) -> str:
    if not grant_id:
        raise ValueError("grant_id must not be empty")
    # Quote everything, "/" included, so an odd id cannot reach another route.
    return f"/v3/grants/{quote(grant_id, safe='')}"


def _connect_body(
    provider: str,
    settings: Mapping[str, Secret | str | int],
    scopes: Sequence[str],
    account: str,
    state: str | None,
) -> bytes:
    """Serialize the connect request; secrets are revealed only inside this function."""
    plain: dict[str, str | int] = {}
    for key, value in settings.items():
        text_or_number = value.reveal() if isinstance(value, Secret) else value
        if key in INTEGER_SECRET_KEYS and isinstance(text_or_number, str):
            text_or_number = _port_number(key, text_or_number, account)
        plain[key] = text_or_number
    body: dict[str, Any] = {"provider": provider, "settings": plain}
    if scopes:
        body["scope"] = list(scopes)
    if state:
        body["state"] = state
    return json.dumps(body, separators=(",", ":")).encode()


def _port_number(key: str, text: str, account: str) -> int:
    # Vault KV stores strings; Nylas wants ports as JSON numbers.
    if text.strip().isdigit():
        return int(text.strip())
    raise SecretShapeError(
        f"setting {key!r} of account {account!r} is not a whole number",
        hint=f"store {key} as a port number such as 993 at the account's Vault path",
    )
