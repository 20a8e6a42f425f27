"""The lower bound a plan cannot beat: the slower of its two dependencies.

- Nylas: grantctl lists grants with `limit=200` and offset paging until a short page, so N
  grants take N // 200 + 1 sequential requests. Each costs at least the emulator's added
  latency, and the client's token bucket admits `burst` requests at once and then one per
  1/rate seconds. The bound is computed, not measured, and ignores server and network time.
- Vault: one metadata read per account. The bound is measured in the same run by the
  smallest reader that does the job: `parallelism` threads, one keep-alive `http.client`
  connection each, parsing only `current_version` from each response. The threads come from
  `reconciler.threads.map_in_threads`, the fan-out grantctl's own reads use, so the bound
  differs from grantctl's reads only in what grantctl does with each response.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from reconciler.threads import map_in_threads

PAGE_SIZE = 200


def list_pages(grants: int) -> int:
    """Return how many list requests offset paging needs for `grants` grants."""
    return grants // PAGE_SIZE + 1


def nylas_bound_s(grants: int, latency_s: float, rate_per_s: float, burst: int) -> float:
    """Return the least time to list `grants` grants one page after another."""
    pages = list_pages(grants)
    by_latency = pages * latency_s
    by_rate = max(0, pages - burst) / rate_per_s
    return max(by_latency, by_rate)


def read_metadata_raw(
    vault_addr: str, token: str, mount: str, paths: Sequence[str], parallelism: int
) -> int:
    """Read every path's KV v2 metadata with `parallelism` threads; return how many exist."""
    address = urlsplit(vault_addr)
    if address.hostname is None:
        raise ValueError(f"the Vault address {vault_addr!r} has no host name")
    host = address.hostname
    local = threading.local()
    headers = {"X-Vault-Token": token}

    def read(path: str) -> bool:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(host, address.port, timeout=30)
            local.connection = connection
        connection.request("GET", f"/v1/{mount}/metadata/{quote(path)}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return False
        return int(json.loads(body)["data"]["current_version"]) > 0

    return sum(map_in_threads(read, paths, parallelism, name="floor"))
