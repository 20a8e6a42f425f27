"""A tiny JSON HTTP server on loopback, for Vault failure cases a real server cannot produce.

Subclass `JSONHandler`, implement `do_GET`/`do_POST` with `reply`, and run it with `serving`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """A request handler that replies with JSON bodies and logs nothing."""

    def reply(self, status: int, body: object) -> None:
        """Send `status` with `body` encoded as JSON."""
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def reply_token_lookup(self) -> bool:
        """Reply to `auth/token/lookup-self` with a token that never expires; return whether."""
        if not self.path.startswith("/v1/auth/token/lookup-self"):
            return False
        self.reply(200, {"data": {"ttl": 0, "renewable": False}})
        return True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # base signature
        pass


@contextmanager
def serving(handler: type[JSONHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
