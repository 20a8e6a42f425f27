"""A light GET path for the many small secret and metadata reads of plans and applies.

A plan reads the metadata of every account's secret: 10,000 requests for a 10,000-account
manifest. An apply also reads each secret it sends. Through hvac and requests each read
costs 2 to 3 ms of CPU, measured on a 2-core machine against a local OpenBao, against about
0.6 ms for `http.client` with one keep-alive connection per thread. This module is that thin
path, and it handles only the common responses: 200 and 404. Everything else (a 403, a 5xx,
a sealed server, a network error, a proxy or client certificate in the settings) returns
None, and the caller repeats the read through `VaultSession.request`, which owns retries,
token recovery and error translation. It logs nothing, so secret values in a response body
reach only the caller.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from reconciler.vault.auth import AuthConfig

_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy")


class FastReader:
    """Keep-alive GETs on one connection per thread; None for anything but 200 or 404."""

    def __init__(self, config: AuthConfig) -> None:
        self._url = urlsplit(config.addr)
        # A Vault behind a gateway can live under a path, as in https://gateway/vault, and
        # every API path goes below it, as the vault CLI and hvac do.
        self._prefix = self._url.path.rstrip("/")
        self._namespace = config.namespace
        self._enabled = _usable(config)
        self._context = _tls_context(config) if self._url.scheme == "https" else None
        self._local = threading.local()
        self._headers: dict[str, str] = {}
        # The full client's timeout (GRANTCTL_VAULT_TIMEOUT), so that a Vault that accepts
        # connections and then sends nothing fails both paths within the time it sets.
        self._timeout_s = config.timeout_s

    def get(
        self, path: str, token: str, params: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """Return (status, decoded body) of `GET /v1/<path>` when it is 200 or 404, else None."""
        if not self._enabled:
            return None
        # Built once per token, because a plan sends the same headers once per account.
        headers = self._headers
        if headers.get("X-Vault-Token") != token:
            headers = {"X-Vault-Token": token}
            if self._namespace:
                headers["X-Vault-Namespace"] = self._namespace
            self._headers = headers
        url = self._prefix + "/v1/" + quote(path.strip("/"), safe="/")
        if params:
            url += "?" + urlencode(params)
        try:
            connection = self._connection()
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            return None
        if response.status not in (200, 404):
            return None
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            return None
        return (response.status, body) if isinstance(body, dict) else None

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            host, port = self._url.hostname or "127.0.0.1", self._url.port
            if self._context is not None:
                connection = http.client.HTTPSConnection(
                    host, port, timeout=self._timeout_s, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self._timeout_s)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _usable(config: AuthConfig) -> bool:
    # Proxies, client certificates and skipped verification stay with the full client, which
    # implements them. The fast path would otherwise need its own copy of each.
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return False
    if config.client_cert or config.client_key or config.tls_skip_verify:
        return False
    return urlsplit(config.addr).scheme in ("http", "https")


def _tls_context(config: AuthConfig) -> ssl.SSLContext:
    if config.cacert and Path(config.cacert).is_dir():
        return ssl.create_default_context(capath=config.cacert)
    return ssl.create_default_context(cafile=config.cacert or None)
