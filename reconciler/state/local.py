"""The local state backend: the inventory as a JSON file, and a lock record beside it.

Layout for a state path `state.json`:
- `state.json`: the state document, replaced atomically on every write;
- `state.json.backup`: the document as it was before this process first wrote it;
- `state.json.lock.json`: the lock record while an apply holds the lock;
- `state.json.lock`: an OS file lock held for milliseconds around every read-modify-write of
  the two files above, so processes on one machine never interleave them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from reconciler.errors import LockError, StateError
from reconciler.model import Inventory
from reconciler.protocols import LockInfo
from reconciler.state.atomic import write_atomic
from reconciler.state.document import (
    corrupt_state_hint,
    document_to_inventory,
    dump_document,
    inventory_to_document,
)
from reconciler.state.holding import LockHoldingBackend, check_write_base
from reconciler.state.lockrecord import (
    DEFAULT_LOCK_TTL_S,
    default_who,
    describe_holder,
    is_stale,
    lock_info,
)

LOGGER = logging.getLogger(__name__)

# How long to wait for the OS file lock around one read-modify-write, in seconds. Holders
# keep it for milliseconds, so running out means a process hangs while holding it.
GUARD_TIMEOUT_S = 30.0


class LocalStateBackend(LockHoldingBackend):
    """A `StateBackend` keeping the inventory in a local JSON file.

    For laptops, demos and tests: the lock protects processes on one machine (or on a
    filesystem with working POSIX locks), not CI runners that do not share a disk.
    """

    def __init__(
        self, path: Path, *, who: str | None = None, lock_ttl_s: float = DEFAULT_LOCK_TTL_S
    ) -> None:
        self.path = Path(path)
        self.lock_record_path = self.path.with_name(self.path.name + ".lock.json")
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.who = who or default_who()
        self.lock_ttl_s = lock_ttl_s
        self.lock_location = f"file {self.path}"
        self._guard = filelock.FileLock(str(self.path) + ".lock", timeout=GUARD_TIMEOUT_S)
        self._guard_mutex = threading.Lock()
        self._backed_up = False

    # Inventory

    def read(self) -> Inventory:
        """Return the stored inventory; an empty one with a new lineage when the file is absent.

        Takes no file lock: every write replaces the file by a rename, so a read gets the whole
        old or the whole new file. A read-only plan therefore creates no file or directory.
        """
        stored = self._read_stored()
        if stored is None:
            return Inventory(lineage=str(uuid.uuid4()), serial=0)
        return stored

    def write(self, inventory: Inventory) -> Inventory:
        """Store `inventory` with its serial incremented and return the stored value.

        Raises `StateConflictError` when the file's serial or lineage is not the caller's,
        `LockError` when this backend's lock was taken over, and `StateError` when the file
        cannot be written (the previous file is then unchanged).
        """
        with self._guarded():
            self._check_lock_still_held()
            stored = self._read_stored()
            check_write_base(stored, inventory, where=f"state file {self.path}")
            written = Inventory(inventory.lineage, inventory.serial + 1, inventory.entries)
            data = dump_document(inventory_to_document(written), pretty=True)
            self._ensure_directory()
            if stored is not None and not self._backed_up:
                self._write_file(self.backup_path, self.path.read_bytes())
                self._backed_up = True
            self._write_file(self.path, data)
        return written

    def _read_stored(self) -> Inventory | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateError(
                f"could not read state file {self.path}: {error.strerror or error}",
                hint=f"check that {self.path} is readable",
            ) from error
        try:
            document = json.loads(raw)
        except ValueError as error:
            raise StateError(
                f"state file {self.path} is not valid JSON: {error}",
                hint=corrupt_state_hint(str(self.path)),
            ) from error
        return document_to_inventory(document, source=f"state file {self.path}")

    def _ensure_directory(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateError(
                f"could not create directory {self.path.parent} for the state file: "
                f"{error.strerror or error}",
                hint="create it, or choose another state path",
            ) from error

    def _write_file(self, path: Path, data: bytes) -> None:
        try:
            write_atomic(path, data)
        except OSError as error:
            raise StateError(
                f"could not write {path}: {error.strerror or error}; "
                "the previous file is unchanged",
                hint=f"free disk space or make {path.parent} writable, then run the command again",
            ) from error

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Hold the OS file lock (and a thread mutex, as threads of one process share it)."""
        self._ensure_directory()
        with self._guard_mutex:
            try:
                self._guard.acquire()
            except filelock.Timeout as error:
                raise LockError(
                    f"could not take the file lock {self._guard.lock_file} within "
                    f"{GUARD_TIMEOUT_S:g} s",
                    hint="a grantctl process on this machine seems hung; stop it and retry",
                ) from error
            except OSError as error:
                raise StateError(
                    f"could not open the file lock {self._guard.lock_file}: "
                    f"{error.strerror or error}",
                    hint=f"make {self.path.parent} writable",
                ) from error
            try:
                yield
            finally:
                self._guard.release()

    # Lock

    def current_lock(self) -> LockInfo | None:
        """Return the lock as recorded (possibly stale), or None when unlocked."""
        with self._guarded():
            record = self._read_lock_record()
        return None if record is None else lock_info(record)

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock if its id is `lock_id`; raise `LockError` otherwise."""
        with self._guarded():
            record = self._read_lock_record()
            if record is None:
                raise LockError(f"state file {self.path} is not locked", hint="nothing to unlock")
            if record.get("id") != lock_id:
                raise LockError(
                    f"lock id {lock_id} does not match: {describe_holder(record)}",
                    hint="copy the lock id from the message of the run that is blocked",
                )
            self.lock_record_path.unlink()
        LOGGER.warning(
            "force-unlocked state %s: removed %s", self.path, describe_holder(record, removed=True)
        )

    def try_acquire(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store `record` as the lock unless a live one exists; return the live one, else None."""
        with self._guarded():
            existing = self._read_lock_record()
            if existing is not None and not is_stale(existing):
                return existing
            self._write_file(self.lock_record_path, dump_document(record, pretty=True))
        if existing is not None:
            LOGGER.warning(
                "took over a stale state lock: %s", describe_holder(existing, removed=True)
            )
        return None

    def renew(self, record: dict[str, Any]) -> bool:
        """Store `record` with its new expiry if the lock is still ours; return whether."""
        with self._guarded():
            existing = self._read_lock_record()
            if existing is None or existing.get("id") != record["id"]:
                return False
            self._write_file(self.lock_record_path, dump_document(record, pretty=True))
        return True

    def release(self, lock_id: str) -> None:
        """Remove the lock record if it is still `lock_id`'s."""
        with self._guarded():
            existing = self._read_lock_record()
            if existing is not None and existing.get("id") == lock_id:
                self.lock_record_path.unlink()
                return
        LOGGER.warning("state lock %s was no longer held at release", lock_id)

    def _read_lock_record(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.lock_record_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # Records are written atomically, so this is damage from outside: a record nobody
            # can read is treated as stale rather than blocking every run forever.
            LOGGER.warning(
                "lock record %s is unreadable; treating it as stale", self.lock_record_path
            )
            return {"id": "unreadable", "expires": ""}
        return record if isinstance(record, dict) else {"id": "unreadable", "expires": ""}
