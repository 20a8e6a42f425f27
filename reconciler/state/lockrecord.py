"""The lock record both state backends store, and the loop that takes and renews it.

A lock record is a small JSON object: `id`, `operation`, `who` (user@host), `run_url` (the CI
run, when known), `version` (of grantctl), `created`, `expires`, plus `host` and `pid` of the
holder. While a lock is held a heartbeat thread moves `expires` forward; a record whose
`expires` has passed, or whose holder process is gone from this host, is stale and may be
taken over.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from reconciler import __version__
from reconciler.errors import LockError
from reconciler.protocols import LockInfo

LOGGER = logging.getLogger(__name__)

DEFAULT_LOCK_TTL_S = 60.0
# How often a waiting process re-checks a busy lock, in seconds.
LOCK_POLL_INTERVAL_S = 0.25


class LockPrimitives(Protocol):
    """The three lock operations a backend implements; `held_lock` builds the rest."""

    def try_acquire(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store `record` as the lock unless a live lock exists; return that lock, else None."""
        ...

    def renew(self, record: dict[str, Any]) -> bool:
        """Store `record` (with a later `expires`) if the lock is still ours; return whether."""
        ...

    def release(self, lock_id: str) -> None:
        """Remove the lock if its id is `lock_id`."""
        ...


def default_who() -> str:
    """Return `user@host` for the lock record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def ci_run_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the URL of the CI run this process belongs to, or "" outside CI.

    GitHub Actions sets GITHUB_SERVER_URL, GITHUB_REPOSITORY and GITHUB_RUN_ID; GitLab CI
    sets CI_JOB_URL.
    """
    env = os.environ if environ is None else environ
    parts = [
        env.get(name, "") for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    ]
    if all(parts):
        return f"{parts[0].rstrip('/')}/{parts[1]}/actions/runs/{parts[2]}"
    return env.get("CI_JOB_URL", "")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def new_lock_record(operation: str, *, who: str, ttl_s: float) -> dict[str, Any]:
    """Build a lock record for `operation` that expires `ttl_s` seconds from now."""
    now = datetime.now(timezone.utc)
    return {
        "id": str(uuid.uuid4()),
        "operation": operation,
        "who": who,
        "run_url": ci_run_url(),
        "version": __version__,
        "created": _iso(now),
        "expires": _iso(now + timedelta(seconds=ttl_s)),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def renewed(record: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    """Return a copy of `record` expiring `ttl_s` seconds from now."""
    return {**record, "expires": _iso(datetime.now(timezone.utc) + timedelta(seconds=ttl_s))}


def lock_info(record: Mapping[str, Any]) -> LockInfo:
    """Return the `LockInfo` view of a stored record."""
    return LockInfo(
        id=str(record.get("id", "")),
        operation=str(record.get("operation", "")),
        who=str(record.get("who", "")),
        version=str(record.get("version", "")),
        created=str(record.get("created", "")),
        expires=str(record.get("expires", "")),
        run_url=str(record.get("run_url", "")),
    )


def is_stale(record: Mapping[str, Any]) -> bool:
    """Return whether a stored lock may be taken over: expired, unreadable, or its holder
    process no longer runs on this host."""
    expires = _parse_iso(str(record.get("expires", "")))
    if expires is None or expires <= datetime.now(timezone.utc):
        return True
    return _holder_process_is_gone(record)


def _holder_process_is_gone(record: Mapping[str, Any]) -> bool:
    # A process killed without releasing its lock would otherwise block everyone until the
    # record expires. Only a holder on this host can be checked.
    # NOTE: two containers with the same host name but separate PID namespaces would see
    # each other's holder as gone; give containers sharing a state file distinct host names.
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists but belongs to another user
    return False


def describe_holder(record: Mapping[str, Any], *, removed: bool = False) -> str:
    """Return a one-line description of who holds a lock, for messages.

    `removed` describes a lock that was just removed or taken over, in the past tense.
    """
    verb = "was" if removed else "is"
    text = (
        f"lock {record.get('id')} {verb} held by {record.get('who')} for "
        f"{record.get('operation')!r} since {record.get('created')} "
        f"(grantctl {record.get('version')}, expires {record.get('expires')} unless renewed)"
    )
    if record.get("run_url"):
        text += f", CI run {record['run_url']}"
    return text


@contextmanager
def held_lock(
    backend: LockPrimitives, record: dict[str, Any], *, timeout_s: float, ttl_s: float, where: str
) -> Iterator[LockInfo]:
    """Take the lock (waiting up to `timeout_s`), renew it in the background, release it."""
    acquire_waiting(backend, record, timeout_s=timeout_s, where=where)
    heartbeat = Heartbeat(backend, record, ttl_s=ttl_s)
    heartbeat.start()
    try:
        yield lock_info(record)
    finally:
        heartbeat.stop()
        backend.release(str(record["id"]))


def acquire_waiting(
    backend: LockPrimitives, record: dict[str, Any], *, timeout_s: float, where: str
) -> None:
    """Call `try_acquire` until it succeeds or `timeout_s` passes; then raise `LockError`."""
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while True:
        holder = backend.try_acquire(record)
        if holder is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {timeout_s:g} s" if timeout_s > 0 else ""
            raise LockError(
                f"state {where} is locked{waited}: {describe_holder(holder)}",
                hint=(
                    "wait for that run to finish, or pass `--lock-timeout SECONDS` to wait for "
                    "it; if its process is gone, run "
                    f"`grantctl force-unlock {holder.get('id')} MANIFEST`"
                ),
            )
        time.sleep(min(LOCK_POLL_INTERVAL_S, remaining))


class Heartbeat:
    """A daemon thread that renews a held lock every third of its time to live."""

    def __init__(self, backend: LockPrimitives, record: dict[str, Any], *, ttl_s: float) -> None:
        self._backend = backend
        self._record = record
        self._ttl_s = ttl_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="grantctl-lock-heartbeat", daemon=True
        )
        self.lost = False

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for the thread."""
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._ttl_s / 3):
            self._renew_once(self._backend.renew)

    def _renew_once(self, renew: Callable[[dict[str, Any]], bool]) -> None:
        try:
            still_ours = renew(renewed(self._record, self._ttl_s))
        except Exception:  # a failed renewal must not kill the thread; the next one may work
            LOGGER.warning("could not renew state lock %s", self._record["id"], exc_info=True)
            return
        if not still_ours and not self.lost:
            self.lost = True
            LOGGER.error(
                "state lock %s was taken over or force-unlocked; writes will be rejected",
                self._record["id"],
            )
