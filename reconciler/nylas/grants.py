"""Parse Nylas grant objects and list envelopes into `model.Grant` values.

Nylas requires `id`, `provider`, `scope` and `created_at` on a grant and documents the rest as
optional, so missing optional fields get neutral defaults and unknown fields are ignored. A
value of the wrong type, or a `grant_status` other than `valid` or `invalid`, is an error that
names the grant id, because planning on a misread grant could delete or reconnect the wrong
mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.errors import NylasError
from reconciler.model import Grant, GrantStatus

_STATUSES = {status.value: status for status in GrantStatus}


@dataclass(frozen=True)
class GrantPage:
    """One page of `GET /v3/grants`: its grants and the `limit` the server reports."""

    grants: tuple[Grant, ...]
    limit: int | None
    request_id: str | None


def parse_grant(data: object, *, request_id: str | None = None) -> Grant:
    """Parse one grant object; raise `NylasError` naming the grant on a malformed field."""
    if not isinstance(data, dict):
        raise _malformed("a grant is not a JSON object", request_id)
    grant_id = data.get("id")
    if not isinstance(grant_id, str) or not grant_id:
        raise _malformed("a grant has no string `id`", request_id)
    return Grant(
        id=grant_id,
        provider=_text(data, "provider", grant_id, request_id, required=True),
        email=_text(data, "email", grant_id, request_id),
        status=_status(data, grant_id, request_id),
        scopes=_scopes(data, grant_id, request_id),
        created_at=_timestamp(data, "created_at", grant_id, request_id) or 0,
        updated_at=_timestamp(data, "updated_at", grant_id, request_id),
        credential_id=_text(data, "credential_id", grant_id, request_id) or None,
        state=_text(data, "state", grant_id, request_id) or None,
    )


def parse_grant_page(body: object, *, request_id: str | None = None) -> GrantPage:
    """Parse a list envelope `{"request_id", "data": [...], "limit", "offset"}`."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise _malformed("the grant list has no `data` array", request_id)
    grants = tuple(parse_grant(item, request_id=request_id) for item in body["data"])
    limit = body.get("limit")
    # bool is an int subclass, and `"limit": true` is no limit at all.
    echoed = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    return GrantPage(grants=grants, limit=echoed, request_id=request_id)


def _text(
    data: dict[str, Any], key: str, grant_id: str, request_id: str | None, *, required: bool = False
) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _malformed(f"grant {grant_id!r} has an invalid `{key}`: {value!r}", request_id)
    return value


def _status(data: dict[str, Any], grant_id: str, request_id: str | None) -> GrantStatus:
    value = data.get("grant_status")
    if value is None:
        # NOTE: Nylas documents grant_status as optional. A grant without it is treated as
        # valid, because nothing marks it expired, and the next connect fixes it anyway.
        return GrantStatus.VALID
    status = _STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        raise _malformed(
            f"grant {grant_id!r} has an unknown grant_status {value!r} "
            f"(expected one of {sorted(_STATUSES)})",
            request_id,
            hint="upgrade grantctl if Nylas added a grant status",
        )
    return status


def _scopes(data: dict[str, Any], grant_id: str, request_id: str | None) -> tuple[str, ...]:
    value = data.get("scope")
    if value is None:
        return ()
    if isinstance(value, str):
        # OAuth writes scopes as one space-separated string; accept that form too.
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _malformed(f"grant {grant_id!r} has an invalid `scope`: {value!r}", request_id)


def _timestamp(data: dict[str, Any], key: str, grant_id: str, request_id: str | None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(
            f"grant {grant_id!r} has an invalid `{key}` {value!r} (expected unix seconds)",
            request_id,
        )
    return int(value)


def _malformed(problem: str, request_id: str | None, *, hint: str = "") -> NylasError:
    return NylasError(
        f"Nylas returned a malformed grant: {problem}",
        request_id=request_id,
        hint=hint or "quote the request id to Nylas support; grantctl cannot plan on this grant",
    )
