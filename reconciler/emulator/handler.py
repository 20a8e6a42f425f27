"""HTTP plumbing of the emulator: the keep-alive request handler and the threaded server.

For each API request the handler reads the body, checks the rate limit on arrival, draws
and applies the faults (latency, 429 bursts, 5xx, HTML errors, dropped connections), checks
the API key, runs the route and logs the request. Admin requests skip all of that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import socketserver
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from reconciler.emulator.admin import ADMIN_PREFIX, handle_admin
from reconciler.emulator.api import ApiRequest, Route, dispatch, resolve
from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.envelope import HTML_BAD_GATEWAY, ApiError, Response, invalid_request
from reconciler.emulator.faults import FaultDecision
from reconciler.emulator.requestlog import LoggedRequest, mask_body

logger = logging.getLogger("reconciler.emulator")

MAX_BODY_BYTES = 1024 * 1024
RATE_LIMITED_GROUPS = ("auth", "grants", "connectors")

# The request type socketserver passes: a socket for TCP, a tuple only for UDP servers.
_Request = socket.socket | tuple[bytes, socket.socket]


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that tracks open connections so `stop` can close idle ones."""

    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], core: EmulatorCore, family: socket.AddressFamily
    ) -> None:
        self.address_family = family
        self.core = core
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, EmulatorRequestHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host, which can stall."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: _Request, client_address: Any) -> None:
        """Track the connection, then serve it on its own thread."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        """Forget the connection and close it."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection, so keep-alive clients see the server go away."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Serves one keep-alive connection: API requests under /v3 and admin under /_emulator/."""

    protocol_version = "HTTP/1.1"
    server_version = "nylas-emulator"
    sys_version = ""
    # Headers and body are separate writes. Without this, Nagle's algorithm and delayed
    # ACKs add about 40 ms to every response on a keep-alive connection.
    disable_nagle_algorithm = True
    timeout = 120  # seconds an idle keep-alive connection stays open
    server: EmulatorHTTPServer

    def do_GET(self) -> None:
        """Handle a GET request."""
        self._handle()

    def do_POST(self) -> None:
        """Handle a POST request."""
        self._handle()

    def do_DELETE(self) -> None:
        """Handle a DELETE request."""
        self._handle()

    def do_PATCH(self) -> None:
        """Handle a PATCH request."""
        self._handle()

    def do_PUT(self) -> None:
        """Handle a PUT request (no route accepts it, so it gets a JSON 405 or 404)."""
        self._handle()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # base class name
        """Send http.server's access log to debug logging instead of stderr."""
        logger.debug("%s " + format, self.client_address[0], *args)

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            raw_body = self._read_body()
        except ApiError as error:
            self.close_connection = True
            self._send(error.to_response(request_id), request_id)
            return
        path = urlsplit(self.path).path
        try:
            if path.startswith(ADMIN_PREFIX):
                self._send(self._admin_response(path, raw_body, request_id), request_id)
            else:
                self._handle_api(path, raw_body, request_id)
        except OSError as error:
            logger.debug("client connection failed: %s", error)
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise invalid_request("Content-Length must be an integer") from None
        if length > MAX_BODY_BYTES:
            raise _body_too_large()
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise invalid_request("malformed chunked request body") from None
            if size == 0:
                # Skip trailer fields up to the blank line that ends the body.
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise _body_too_large()
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _admin_response(self, path: str, raw_body: bytes, request_id: str) -> Response:
        core = self.server.core
        try:
            return handle_admin(core, self.command, path, _parse_json(raw_body), request_id)
        except ApiError as error:
            return error.to_response(request_id)

    def _handle_api(self, path: str, raw_body: bytes, request_id: str) -> None:
        core = self.server.core
        route = resolve(path)
        # The limit is checked on arrival, before injected latency, as a server-side limiter
        # counts requests when they reach it.
        admitted = route.group not in RATE_LIMITED_GROUPS or core.limiter.admit(route.group)
        decision = core.injector.draw()
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)
        logged_body = _masked_for_log(raw_body)
        if decision.drop and not core.faults.drop_after_processing:
            self._log(route, request_id, status=0, body=logged_body, fault="drop")
            self._drop()
            return
        injected = _fault_response(core, decision, request_id)
        if injected is not None:
            response, fault = injected
        else:
            response, fault = self._api_response(route, raw_body, request_id, admitted), ""
        if decision.drop:
            fault = "drop_after_processing"
            self._log(route, request_id, status=0, body=logged_body, fault=fault)
            self._drop()
            return
        self._log(route, request_id, status=response.status, body=logged_body, fault=fault)
        self._send(response, request_id)

    def _api_response(
        self, route: Route, raw_body: bytes, request_id: str, admitted: bool
    ) -> Response:
        core = self.server.core
        try:
            self._check_api_key()
            _check_rate_limit(core, route, admitted)
            request = self._api_request(raw_body, request_id, route)
            return dispatch(route, request, core)
        except ApiError as error:
            return error.to_response(request_id)
        except Exception:
            # A handler bug must still produce a response in the envelope and a log line.
            logger.exception(
                "emulator handler failed on %s %s (request id %s)",
                self.command,
                self.path,
                request_id,
            )
            failure = ApiError(500, "internal_error", "the emulator failed; see its log")
            return failure.to_response(request_id)

    def _check_api_key(self) -> None:
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.server.core.is_api_key(key.strip()):
            raise ApiError(
                401, "token.unauthorized_access", "Unauthorized: the API key is missing or invalid"
            )

    def _api_request(self, raw_body: bytes, request_id: str, route: Route) -> ApiRequest:
        split = urlsplit(self.path)
        return ApiRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            body=_parse_json(raw_body),
            request_id=request_id,
            client_ip=str(self.client_address[0]),
            user_agent=self.headers.get("User-Agent", ""),
            path_params=route.params,
        )

    def _log(self, route: Route, request_id: str, *, status: int, body: object, fault: str) -> None:
        split = urlsplit(self.path)
        self.server.core.log.record(
            LoggedRequest(
                method=self.command,
                path=split.path,
                endpoint=f"{self.command} {route.template}",
                group=route.group,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                status=status,
                request_id=request_id,
                time=time.time(),
                body=body,
                fault=fault,
            )
        )

    def _send(self, response: Response, request_id: str) -> None:
        payload = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        if response.with_request_id:
            self.send_header("x-request-id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        # A close without a status line is what a client sees when the network loses the
        # connection. The client cannot tell whether the request took effect.
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client closed first
            self.connection.shutdown(socket.SHUT_RDWR)


def _check_rate_limit(core: EmulatorCore, route: Route, admitted: bool) -> None:
    if not admitted:
        raise ApiError(
            429,
            "nylas_rate_limit_exceeded",
            f"too many requests: the limit is {core.rate_limit} per second for {route.group}",
        )


def _fault_response(
    core: EmulatorCore, decision: FaultDecision, request_id: str
) -> tuple[Response, str] | None:
    """Return the injected response and the fault's name, or None when none applies."""
    if decision.burst_429:
        return _burst_429(core, request_id), "burst_429"
    if decision.html_error:
        html = Response(502, HTML_BAD_GATEWAY, content_type="text/html", with_request_id=False)
        return html, "html_error"
    if decision.error_status is not None:
        error = ApiError(decision.error_status, "internal_error", "injected server error")
        return error.to_response(request_id), "error_status"
    return None


def _body_too_large() -> ApiError:
    return ApiError(413, "invalid_request_error", f"request body over {MAX_BODY_BYTES} bytes")


def _burst_429(core: EmulatorCore, request_id: str) -> Response:
    # An injected burst imitates a provider-side limit, the kind that carries Retry-After.
    retry_after = core.faults.retry_after
    # HTTP allows only whole seconds, so a fraction is rounded up.
    header = retry_after if isinstance(retry_after, str) else str(math.ceil(retry_after))
    error = ApiError(
        429,
        "rate_limit_error",
        "the provider rate-limited the request",
        provider_error={"error": "rate_limit_exceeded"},
        headers={"Retry-After": header},
    )
    return error.to_response(request_id)


def _parse_json(raw_body: bytes) -> object:
    if not raw_body.strip():
        return None
    try:
        return json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_request("the request body is not valid JSON") from None


def _masked_for_log(raw_body: bytes) -> object:
    try:
        return mask_body(_parse_json(raw_body))
    except ApiError:
        return "<invalid JSON>"
