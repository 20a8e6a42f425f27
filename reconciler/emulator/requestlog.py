"""The emulator's log of API requests, with every credential masked, and its counters."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

from reconciler.secrets import MASK

# Entries kept. The counters go on counting past it, so long soak runs use bounded memory.
MAX_LOG_ENTRIES = 100_000


@dataclass(frozen=True)
class LoggedRequest:
    """One API request as the log records it. `status` 0 means the connection was dropped."""

    method: str
    path: str
    endpoint: str  # route template, e.g. "GET /v3/grants/{id}"
    group: str  # rate-limit group: "auth", "grants" or "other"
    query: dict[str, str]
    status: int
    request_id: str
    time: float  # unix seconds
    body: object
    fault: str = ""  # the injected fault, if any

    def to_json(self) -> dict[str, object]:
        """Return the entry as a JSON-ready dict."""
        return {
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "group": self.group,
            "query": dict(self.query),
            "status": self.status,
            "request_id": self.request_id,
            "time": self.time,
            "body": self.body,
            "fault": self.fault,
        }


def mask_body(body: object) -> object:
    """Return a copy of a request body with every `settings` value replaced by the mask."""
    if not isinstance(body, dict):
        return body
    masked = dict(body)
    settings = masked.get("settings")
    if isinstance(settings, dict):
        masked["settings"] = dict.fromkeys(settings, MASK)
    elif "settings" in masked:
        masked["settings"] = MASK
    return masked


class RequestLog:
    """Thread-safe bounded log of API requests with counts per endpoint, status and group."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=MAX_LOG_ENTRIES)
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._by_group: Counter[str] = Counter()

    def record(self, entry: LoggedRequest) -> None:
        """Append `entry` and count it."""
        with self._lock:
            self._entries.append(entry)
            self._by_endpoint[entry.endpoint] += 1
            self._by_status[str(entry.status) if entry.status else "dropped"] += 1
            self._by_group[entry.group] += 1

    def entries(self) -> list[dict[str, object]]:
        """Return the logged requests, oldest first."""
        with self._lock:
            return [entry.to_json() for entry in self._entries]

    def counts(self) -> dict[str, dict[str, int]]:
        """Return request counts per endpoint, status ("dropped": no response) and group."""
        with self._lock:
            return {
                "by_endpoint": dict(self._by_endpoint),
                "by_status": dict(self._by_status),
                "by_group": dict(self._by_group),
            }

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._by_endpoint.clear()
            self._by_status.clear()
            self._by_group.clear()
