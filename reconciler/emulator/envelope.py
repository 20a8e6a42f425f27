"""Responses and the error type of the Nylas emulator, in Nylas' JSON envelopes.

Success bodies are `{"request_id", "data"}` (lists add `limit` and `offset`, deletes carry
only `request_id`). Every failure is `{"request_id", "error": {"type", "message",
"provider_error"?}}`, raised anywhere in a handler as `ApiError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class ApiError(Exception):
    """A failure the emulator returns in Nylas' error envelope."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        provider_error: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.provider_error = provider_error
        self.headers = headers or {}

    def to_response(self, request_id: str) -> Response:
        """Return the error as a response in the error envelope."""
        error: dict[str, object] = {"type": self.error_type, "message": self.message}
        if self.provider_error is not None:
            error["provider_error"] = self.provider_error
        return Response(self.status, {"request_id": request_id, "error": error}, dict(self.headers))


def invalid_request(message: str) -> ApiError:
    """Return a 400 `invalid_request_error`."""
    return ApiError(400, "invalid_request_error", message)


def not_found(message: str) -> ApiError:
    """Return a 404 with the type Nylas sends in live traffic."""
    return ApiError(404, "api.not_found_error", message)


@dataclass
class Response:
    """An HTTP response: a JSON document or raw bytes with their content type."""

    status: int
    body: dict[str, object] | bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    # False for responses that imitate a proxy in front of Nylas, which sends no request id.
    with_request_id: bool = True

    def encode(self) -> bytes:
        """Return the body as bytes."""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def data_response(request_id: str, data: object, status: int = 200) -> Response:
    """Return a single-object (or admin) envelope."""
    return Response(status, {"request_id": request_id, "data": data})


HTML_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
