"""Lock holding and the write-base check that both state backends share.

A backend provides the lock primitives of `reconciler.state.lockrecord.LockPrimitives` and a
way to read the stored lock record. `LockHoldingBackend` builds `lock()` on them, and fences
writes: a backend whose lock was taken over or force-unlocked stops writing.
`check_write_base` rejects a write whose base is not the stored inventory.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from reconciler.errors import LockError, StateConflictError
from reconciler.model import Inventory
from reconciler.protocols import LockInfo
from reconciler.state.lockrecord import describe_holder, held_lock, new_lock_record


class LockHoldingBackend(abc.ABC):
    """The lock half of a state backend, built on its lock primitives.

    Subclasses set `who`, `lock_ttl_s` and `lock_location` (how messages name the lock, such
    as `file state.json`) and implement the primitives and `_read_lock_record`.
    """

    who: str
    lock_ttl_s: float
    lock_location: str
    _held_lock_id: str | None = None

    @abc.abstractmethod
    def try_acquire(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store `record` as the lock unless a live one exists; return the live one, else None."""

    @abc.abstractmethod
    def renew(self, record: dict[str, Any]) -> bool:
        """Store `record` with its new expiry if the lock is still ours; return whether."""

    @abc.abstractmethod
    def release(self, lock_id: str) -> None:
        """Remove the lock if it is still `lock_id`'s."""

    @abc.abstractmethod
    def _read_lock_record(self) -> Mapping[str, Any] | None:
        """Return the stored lock record, or None when unlocked."""

    def lock(self, operation: str, *, timeout_s: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the state lock for a `with` block, waiting up to `timeout_s` for a busy one."""
        record = new_lock_record(operation, who=self.who, ttl_s=self.lock_ttl_s)
        return self._holding(record, timeout_s)

    @contextlib.contextmanager
    def _holding(self, record: dict[str, Any], timeout_s: float) -> Iterator[LockInfo]:
        with held_lock(
            self, record, timeout_s=timeout_s, ttl_s=self.lock_ttl_s, where=self.lock_location
        ) as info:
            self._held_lock_id = info.id
            try:
                yield info
            finally:
                self._held_lock_id = None

    def _check_lock_still_held(self) -> None:
        """Raise `LockError` when this backend holds the lock and the stored one is another's."""
        if self._held_lock_id is None:
            return
        record = self._read_lock_record()
        if record is None or record.get("id") != self._held_lock_id:
            holder = describe_holder(record) if record else "nobody holds it now"
            raise LockError(
                f"state lock {self._held_lock_id} on {self.lock_location} was taken over or "
                f"force-unlocked ({holder}); this run stopped writing the state",
                hint="run `grantctl plan MANIFEST` again once the other run has finished",
            )


def check_write_base(stored: Inventory | None, inventory: Inventory, *, where: str) -> None:
    """Raise `StateConflictError` unless `inventory` was read from `stored`.

    `stored` is None for an unwritten state, which any inventory at serial 0 may replace.
    `where` names the state in messages, such as `state file state.json`.
    """
    if stored is not None and stored.lineage != inventory.lineage:
        raise StateConflictError(
            f"{where} has lineage {stored.lineage}, but the inventory being written has "
            f"lineage {inventory.lineage}: it was replaced by another state",
            hint="run `grantctl plan MANIFEST` again against the current state",
        )
    stored_serial = 0 if stored is None else stored.serial
    if stored_serial != inventory.serial:
        raise StateConflictError(
            f"{where} is at serial {stored_serial}, but this run read serial "
            f"{inventory.serial}: another run wrote the state meanwhile",
            hint="run `grantctl plan MANIFEST` again to see the current state",
        )
