"""Routes of the emulated Nylas v3 API: connect/custom and the grant endpoints.

Each handler takes the parsed `ApiRequest` and the `EmulatorCore` and returns a `Response`
or raises `ApiError`. Authentication, rate limiting and faults happen before, in the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.emulator.connect import SECRET_KEYS, authenticate, connect, parse_connect
from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.envelope import (
    ApiError,
    Response,
    data_response,
    invalid_request,
    not_found,
)
from reconciler.emulator.store import SORT_FIELDS, GrantRecord

DEFAULT_LIMIT = 10
MAX_LIMIT = 200


@dataclass(frozen=True)
class ApiRequest:
    """A parsed HTTP request, whose `body` is the decoded JSON or None when there was none."""

    method: str
    path: str
    query: dict[str, str]
    body: object
    request_id: str
    client_ip: str
    user_agent: str
    path_params: dict[str, str]


Handler = Callable[[ApiRequest, EmulatorCore], Response]


@dataclass(frozen=True)
class Route:
    """A resolved path: its endpoint template, rate-limit group and the handlers per method."""

    template: str
    group: str
    handlers: Mapping[str, Handler]
    params: dict[str, str]


def connect_custom(request: ApiRequest, core: EmulatorCore) -> Response:
    """Create a grant (201) or re-authenticate the existing one (200)."""
    parsed = parse_connect(request.body, core.connectors)
    identity = authenticate(core.store, parsed)
    outcome = connect(
        core.store, parsed, identity, user_agent=request.user_agent, ip=request.client_ip
    )
    with core.store.lock:
        grant = outcome.grant.to_json()
    return data_response(request.request_id, grant, status=201 if outcome.created else 200)


def list_grants(request: ApiRequest, core: EmulatorCore) -> Response:
    """Return one page of grants after filters and sorting."""
    query = request.query
    limit = min(_int_param(query, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT)
    offset = _int_param(query, "offset", 0, minimum=0)
    sort_by = _choice_param(query, "sort_by", SORT_FIELDS, "created_at")
    order_by = _choice_param(query, "order_by", ("asc", "desc"), "desc")
    matches = _grant_filter(query)
    with core.store.lock:
        ordered = core.store.sorted_grants(sort_by, descending=order_by == "desc")
        # Without filters a page is a slice: filtering every grant for every page made
        # listing 10,000 grants 200 at a time cost the emulator over a second of CPU.
        filtering = any(name in query for name in _FILTER_PARAMETERS)
        selected = [grant for grant in ordered if matches(grant)] if filtering else ordered
        page = [grant.to_json() for grant in selected[offset : offset + limit]]
    body: dict[str, object] = {
        "request_id": request.request_id,
        "data": page,
        "limit": limit,
        "offset": offset,
    }
    return Response(200, body)


# The query parameters `_grant_filter` reads.
_FILTER_PARAMETERS = (
    "email",
    "grant_status",
    "since",
    "before",
    "provider",
    "ip",
    "account_id",
    "workspace_id",
)


def _grant_filter(query: Mapping[str, str]) -> Callable[[GrantRecord], bool]:
    """Build the predicate for the list filters present in `query`."""
    email = query.get("email", "").casefold()
    status = query.get("grant_status")
    if status is not None and status not in ("valid", "invalid"):
        raise invalid_request("grant_status must be valid or invalid")
    since = _int_param(query, "since", None, minimum=0)
    before = _int_param(query, "before", None, minimum=0)
    exact = {
        name: query[name]
        for name in ("provider", "ip", "account_id", "workspace_id")
        if name in query
    }

    def matches(grant: GrantRecord) -> bool:
        if email and grant.email.casefold() != email:
            return False
        if status is not None and grant.grant_status != status:
            return False
        if since is not None and grant.created_at < since:
            return False
        if before is not None and grant.created_at > before:
            return False
        return all(getattr(grant, name) == value for name, value in exact.items())

    return matches


def _int_param(query: Mapping[str, str], name: str, default: int | None, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default  # type: ignore[return-value]  # None only for optional filters
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise invalid_request(f"query parameter {name} must be >= {minimum}, got {value}")
    return value


def _choice_param(
    query: Mapping[str, str], name: str, choices: tuple[str, ...], default: str
) -> str:
    value = query.get(name, default)
    if value not in choices:
        raise invalid_request(
            f"query parameter {name} must be one of {', '.join(choices)}, got {value!r}"
        )
    return value


def _find(request: ApiRequest, core: EmulatorCore) -> GrantRecord:
    grant_id = request.path_params["id"]
    grant = core.store.get(grant_id)
    if grant is None:
        raise not_found(f"grant {grant_id} not found")
    return grant


def get_grant(request: ApiRequest, core: EmulatorCore) -> Response:
    """Return one grant or 404."""
    grant = _find(request, core)
    with core.store.lock:
        return data_response(request.request_id, grant.to_json())


def delete_grant(request: ApiRequest, core: EmulatorCore) -> Response:
    """Delete a grant for good, or raise 404 when it does not exist."""
    grant_id = request.path_params["id"]
    if not core.store.delete(grant_id):
        raise not_found(f"grant {grant_id} not found")
    return Response(200, {"request_id": request.request_id})


def patch_grant(request: ApiRequest, core: EmulatorCore) -> Response:
    """Replace a grant's `settings` and/or `scope` and leave its status as it is."""
    body = request.body
    if not isinstance(body, dict) or not body or set(body) - {"settings", "scope"}:
        raise invalid_request("the request body must be a JSON object with settings and/or scope")
    settings, scope = body.get("settings"), body.get("scope")
    if settings is not None and not isinstance(settings, dict):
        raise invalid_request("settings must be a JSON object")
    if scope is not None and (
        not isinstance(scope, list) or not all(isinstance(s, str) for s in scope)
    ):
        raise invalid_request("scope must be an array of strings")
    with core.store.lock:
        grant = _find(request, core)
        if settings is not None:
            grant.settings = {
                key: value for key, value in settings.items() if key not in SECRET_KEYS
            }
        if scope is not None:
            grant.scope = list(scope)
        core.store.touch(grant)
        return data_response(request.request_id, grant.to_json())


_GRANT_PATH = re.compile(r"^/v3/grants/(?P<id>[^/]+)$")


def resolve(path: str) -> Route:
    """Return the route for `path`, a route without handlers (404) when unknown."""
    if path == "/v3/connect/custom":
        return Route("/v3/connect/custom", "auth", {"POST": connect_custom}, {})
    if path == "/v3/grants":
        return Route("/v3/grants", "grants", {"GET": list_grants}, {})
    match = _GRANT_PATH.match(path)
    if match:
        handlers: dict[str, Handler] = {
            "GET": get_grant,
            "DELETE": delete_grant,
            "PATCH": patch_grant,
        }
        return Route("/v3/grants/{id}", "grants", handlers, {"id": match["id"]})
    return Route("unknown", _group_of(path), {}, {})


def _group_of(path: str) -> str:
    if path.startswith("/v3/connect"):
        return "auth"
    if path.startswith("/v3/grants"):
        return "grants"
    if path.startswith("/v3/connectors"):
        return "connectors"
    return "other"


def dispatch(route: Route, request: ApiRequest, core: EmulatorCore) -> Response:
    """Run the handler for the request's method, or raise 404 (unknown path) or 405."""
    if not route.handlers:
        raise not_found(f"no route for {request.method} {request.path}")
    handler = route.handlers.get(request.method)
    if handler is None:
        allowed = ", ".join(sorted(route.handlers))
        raise ApiError(
            405,
            "invalid_request_error",
            f"method {request.method} is not allowed on {route.template}; use {allowed}",
            headers={"Allow": allowed},
        )
    return handler(request, core)
