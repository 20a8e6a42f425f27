"""The admin HTTP API under `/_emulator/`: the same operations as `EmulatorCore`'s methods.

Admin requests need no API key and are never rate-limited, faulted or logged. Bodies are
JSON objects. Responses use the API's envelopes, so one client can read both.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.envelope import (
    ApiError,
    Response,
    data_response,
    invalid_request,
    not_found,
)
from reconciler.errors import ConfigError

ADMIN_PREFIX = "/_emulator/"

AdminHandler = Callable[[EmulatorCore, dict[str, object], str], object]


def _list_grants(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    return core.grants()


def _add_grant(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    fields = dict(body)
    # The admin API accepts `scopes` like the fixture, and also `scope` like the grant object.
    if "scope" in fields and "scopes" not in fields:
        fields["scopes"] = fields.pop("scope")
    return core.add_grant(**fields)


def _expire_one(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    return core.expire_grant(grant_id=param)


def _expire_by_email(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    email = body.get("email")
    if not isinstance(email, str) or not email:
        raise invalid_request("email is required")
    return core.expire_grant(email=email)


def _add_identity(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    core.add_identity(**body)
    return {"provider": body.get("provider"), "email": body.get("email")}


def _revoke(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise invalid_request(
            "token is required: a refresh token or a password provider's username"
        )
    try:
        return core.revoke_token(token)
    except KeyError:
        # The message must not echo the token: it is a credential.
        raise not_found("no identity has that refresh token or username") from None


def _get_faults(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    return {**core.faults.to_dict(), "effective_rate_limit": core.rate_limit}


def _set_faults(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    core.set_faults(**body)
    return _get_faults(core, body, param)


def _api_keys(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    add, remove = body.get("add", []), body.get("remove", [])
    for name, value in (("add", add), ("remove", remove)):
        if not isinstance(value, list) or not all(isinstance(key, str) and key for key in value):
            raise invalid_request(f"{name} must be a list of API keys")
    # The keys themselves are not echoed: they are credentials.
    return {"count": core.update_api_keys(add=add, remove=remove)}  # type: ignore[arg-type]


def _requests(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    return core.request_log()


def _clear_requests(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    core.clear_log()
    return {}


def _advance_clock(core: EmulatorCore, body: dict[str, object], param: str) -> object:
    seconds = body.get("advance_s")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise invalid_request("advance_s must be a number of seconds >= 0")
    return {"now": core.advance_clock(seconds)}


# (method, pattern) -> handler. A group in the pattern captures the one path parameter.
_ROUTES: list[tuple[str, re.Pattern[str], AdminHandler]] = [
    ("GET", re.compile(r"grants"), _list_grants),
    ("POST", re.compile(r"grants"), _add_grant),
    ("POST", re.compile(r"grants/([^/]+)/expire"), _expire_one),
    ("POST", re.compile(r"expire"), _expire_by_email),
    ("POST", re.compile(r"identities"), _add_identity),
    ("POST", re.compile(r"revoke"), _revoke),
    ("GET", re.compile(r"faults"), _get_faults),
    ("POST", re.compile(r"faults"), _set_faults),
    ("POST", re.compile(r"api-keys"), _api_keys),
    ("GET", re.compile(r"requests"), _requests),
    ("DELETE", re.compile(r"requests"), _clear_requests),
    ("POST", re.compile(r"clock"), _advance_clock),
]
_CREATED = {_add_grant, _add_identity}


def handle_admin(
    core: EmulatorCore, method: str, path: str, body: object, request_id: str
) -> Response:
    """Run the admin operation for `method` and `path` (which starts with `/_emulator/`)."""
    rest = path[len(ADMIN_PREFIX) :].rstrip("/")
    allowed = []
    for route_method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(rest)
        if match is None:
            continue
        allowed.append(route_method)
        if route_method != method:
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid_request("the request body must be a JSON object")
        data = _run(handler, core, body, match.group(1) if match.groups() else "")
        response = data_response(request_id, data, status=201 if handler in _CREATED else 200)
        if handler is _requests:
            response.body["counts"] = core.request_counts()  # type: ignore[index]  # always a dict here
        return response
    if allowed:
        raise ApiError(
            405,
            "invalid_request_error",
            f"method {method} is not allowed on {path}",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    raise not_found(f"no admin route {method} {path}")


def _run(handler: AdminHandler, core: EmulatorCore, body: dict[str, object], param: str) -> object:
    try:
        return handler(core, body, param)
    except ConfigError as error:
        raise invalid_request(error.message) from error
    except KeyError as error:
        raise not_found(f"nothing matches {error.args[0]!r}") from error
