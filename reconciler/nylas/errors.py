"""The one place where HTTP responses and httpx exceptions become `NylasError` subclasses.

The class follows the HTTP status, never Nylas' `error.type`, because the type strings differ
between Nylas' specification, its docs and live traffic. Every message names the operation,
the account when one is given, and the next step, and passes through the process-wide
redactor, because Nylas may echo request input (a refresh token) in `provider_error`. No
message ever includes a request body or a header value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from reconciler.errors import (
    NylasAuthenticationError,
    NylasConnectionError,
    NylasCredentialsRejectedError,
    NylasError,
    NylasInvalidRequestError,
    NylasNotFoundError,
    NylasOutcomeUnknownError,
    NylasPermissionError,
    NylasRateLimitError,
    NylasServerError,
    NylasTimeoutError,
)
from reconciler.secrets import REDACTOR

ErrorT = TypeVar("ErrorT", bound=NylasError)

SNIPPET_LENGTH = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")

KEY_HINT = (
    "check that NYLAS_API_KEY holds a current API key of the application and that "
    "nylas.region in the manifest matches the application's region (Nylas returns 401 to a "
    "key of the other region)"
)
CREDENTIALS_HINT = (
    "the provider rejected the credentials stored at the account's Vault path: store a fresh "
    "token (or password) there and run apply again; also check that the application has a "
    "connector for the provider"
)
RATE_LIMIT_HINT = (
    "another client may be using the application's 50 requests/s: lower "
    "GRANTCTL_NYLAS_RATE_LIMIT or GRANTCTL_PARALLELISM, or run again later"
)
PROVIDER_RATE_LIMIT_HINT = (
    "the mail provider behind Nylas rate-limited the request: wait for its limit to reset "
    "and run again later"
)
UNKNOWN_OUTCOME_HINT = (
    "the grant may exist now: grantctl looks it up by email before sending again, and "
    "`grantctl plan MANIFEST` shows the current state"
)


@dataclass(frozen=True)
class ErrorBody:
    """The parts of a Nylas error response that go into a `NylasError`, already redacted."""

    request_id: str | None
    error_type: str | None
    error_message: str | None
    provider_error: object
    # A short text of a body that is not a Nylas error envelope (an HTML page from a proxy).
    snippet: str = ""

    def describe(self, status: int) -> str:
        """Return e.g. `400 invalid_request_error: bad scope; provider error: {...}`."""
        text = str(status)
        if self.error_type or self.error_message:
            text += f" {self.error_type or 'error'}: {self.error_message or '(no message)'}"
        if self.provider_error is not None:
            text += f"; provider error: {_compact(self.provider_error)}"
        if self.snippet:
            text += f" with a non-JSON body: {self.snippet}"
        return text


def subject_of(operation: str, account: str) -> str:
    """Return how messages name a call, e.g. `connect for account 'leyah'`."""
    return f"{operation} for account {account!r}" if account else operation


def snippet_of(text: str) -> str:
    """Return `text` without tags, whitespace collapsed, at most `SNIPPET_LENGTH` characters."""
    # Redact before cutting, so a cut never leaves the head of a secret unmasked.
    collapsed = REDACTOR.redact(_SPACE.sub(" ", _TAG.sub(" ", text)).strip())
    if len(collapsed) > SNIPPET_LENGTH:
        collapsed = collapsed[: SNIPPET_LENGTH - 3] + "..."
    return collapsed


def request_id_of(response: httpx.Response, body: object = None) -> str | None:
    """Return the request id from the body's `request_id`, else the `x-request-id` header."""
    if isinstance(body, dict):
        value = body.get("request_id")
        if isinstance(value, str) and value:
            return value
    return response.headers.get("x-request-id") or None


def read_error_body(response: httpx.Response) -> ErrorBody:
    """Parse Nylas' error envelope, falling back to a snippet for any other body."""
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ErrorBody(
            request_id=request_id_of(response, body),
            error_type=None,
            error_message=None,
            provider_error=None,
            snippet=snippet_of(response.text) if body is None else "",
        )
    error_type = error.get("type")
    error_message = error.get("message")
    return ErrorBody(
        request_id=request_id_of(response, body),
        error_type=REDACTOR.redact(str(error_type)) if error_type is not None else None,
        error_message=REDACTOR.redact(str(error_message)) if error_message is not None else None,
        provider_error=_redact_value(error.get("provider_error")),
    )


def error_from_response(
    response: httpx.Response, operation: str, account: str = "", *, attempts: int = 1
) -> NylasError:
    """Map a final, unsuccessful response to the `NylasError` subclass for its status."""
    status = response.status_code
    if status == 429:
        return rate_limit_error(response, operation, account, "the rate limit is still exceeded")
    body = read_error_body(response)
    cls, summary, hint = _classify(status, operation, body)
    subject = subject_of(operation, account) + _after(attempts)
    detail = f"{summary} ({body.describe(status)})"
    return _build(cls, body, status, f"{subject} failed: {detail}", hint, detail=detail)


_BY_STATUS: dict[int, tuple[type[NylasError], str, str]] = {
    400: (
        NylasInvalidRequestError,
        "Nylas rejected the request as invalid",
        "check the request values named above",
    ),
    401: (NylasAuthenticationError, "Nylas rejected the API key", KEY_HINT),
    403: (
        NylasPermissionError,
        "Nylas denied the request",
        "the API key or the grant lacks the scopes this call needs: check the connector's "
        "scopes in the Nylas dashboard",
    ),
    404: (
        NylasNotFoundError,
        "not found",
        "the grant was deleted outside grantctl: run `grantctl plan MANIFEST` again",
    ),
}
_BY_STATUS[422] = _BY_STATUS[400]


def _classify(status: int, operation: str, body: ErrorBody) -> tuple[type[NylasError], str, str]:
    """Return the error class, the summary and the next step for a failed status."""
    if operation == "connect" and status in (400, 422):
        summary = "Nylas or the provider rejected the credentials or settings"
        return NylasInvalidRequestError, summary, CREDENTIALS_HINT
    if operation == "connect" and status == 401 and _blames_provider(body):
        summary = "the provider rejected the credentials"
        return NylasCredentialsRejectedError, summary, CREDENTIALS_HINT
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return NylasServerError, "Nylas returned a server error", _server_hint(status)
    return (
        NylasError,
        "Nylas returned an unexpected status",
        "quote the request id to Nylas support if this persists",
    )


def rate_limit_error(
    response: httpx.Response, operation: str, account: str, reason: str
) -> NylasRateLimitError:
    """Build the error for a 429 that is not retried further; `reason` explains why not."""
    body = read_error_body(response)
    detail = f"{reason} ({body.describe(429)})"
    message = f"{subject_of(operation, account)} failed: {detail}"
    # A provider-side limit carries the provider's own error; Nylas' own limit does not.
    hint = RATE_LIMIT_HINT if body.provider_error is None else PROVIDER_RATE_LIMIT_HINT
    return _build(NylasRateLimitError, body, 429, message, hint, detail=detail)


def outcome_unknown_from_response(
    response: httpx.Response, operation: str, account: str, reason: str
) -> NylasOutcomeUnknownError:
    """Build the error for a connect whose response does not show whether it took effect."""
    body = read_error_body(response)
    detail = f"the outcome is unknown because {reason} ({body.describe(response.status_code)})"
    message = f"{subject_of(operation, account)}: {detail}"
    return _build(
        NylasOutcomeUnknownError,
        body,
        response.status_code,
        message,
        UNKNOWN_OUTCOME_HINT,
        detail=detail,
    )


def error_from_transport(
    exc: httpx.RequestError,
    operation: str,
    account: str = "",
    *,
    outcome_unknown: bool = False,
    attempts: int = 1,
) -> NylasError:
    """Map an httpx request exception; `outcome_unknown` when the request may have been sent."""
    subject = subject_of(operation, account) + _after(attempts)
    cause = REDACTOR.redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if outcome_unknown:
        detail = f"the request may have reached Nylas but no response arrived ({cause})"
        return NylasOutcomeUnknownError(
            f"{subject}: {detail}", hint=UNKNOWN_OUTCOME_HINT, detail=detail
        )
    if isinstance(exc, httpx.TimeoutException):
        detail = f"the request to Nylas timed out ({cause})"
        return NylasTimeoutError(
            f"{subject} failed: {detail}",
            hint="check network access to the Nylas API, or raise GRANTCTL_NYLAS_TIMEOUT "
            "(read) or GRANTCTL_NYLAS_CONNECT_TIMEOUT",
            detail=detail,
        )
    if isinstance(exc, httpx.TransportError):
        detail = f"could not reach Nylas ({cause})"
        return NylasConnectionError(
            f"{subject} failed: {detail}",
            hint="check network access to the Nylas API URL, proxy settings and "
            "GRANTCTL_NYLAS_API_URI",
            detail=detail,
        )
    # A body that httpx could not decode (a broken Content-Encoding, for example).
    detail = f"the response from Nylas could not be read ({cause})"
    return NylasError(
        f"{subject} failed: {detail}",
        hint="check any proxy between grantctl and Nylas; quote the error to Nylas support",
        detail=detail,
    )


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def _build(
    cls: type[ErrorT], body: ErrorBody, status: int, message: str, hint: str, *, detail: str
) -> ErrorT:
    return cls(
        REDACTOR.redact(message),
        detail=REDACTOR.redact(detail),
        status=status,
        request_id=body.request_id,
        error_type=body.error_type,
        error_message=body.error_message,
        provider_error=body.provider_error,
        hint=hint,
    )


def _blames_provider(body: ErrorBody) -> bool:
    # A revoked refresh token can come back as 401 with the provider's own error attached, or
    # with a `grant.*` type such as `grant.refresh_token_invalid`.
    return body.provider_error is not None or (body.error_type or "").startswith("grant.")


def _server_hint(status: int) -> str:
    if status == 504:
        return "the provider timed out behind Nylas: run again later"
    return (
        "Nylas or the provider failed: run again later, and quote the request id to Nylas "
        "support if it persists"
    )


def _compact(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > SNIPPET_LENGTH:
        text = text[: SNIPPET_LENGTH - 3] + "..."
    return text


def _redact_value(value: object) -> object:
    """Return `value` with every string inside it redacted, keeping its JSON shape."""
    if isinstance(value, str):
        return REDACTOR.redact(value)
    if isinstance(value, dict):
        return {REDACTOR.redact(str(key)): _redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    return value
