"""The Vault state backend: the inventory and the lock as KV v2 documents.

The inventory is one KV v2 secret at `<mount>/<path>`, written with check-and-set on the
version read, so two writers can never both succeed. Large inventories are stored compressed
in one field (`encoding` + `payload`): 10,000 synthetic accounts in the tests take about
400 KB, under the 512 KiB value limit of Consul-backed Vault and the 1 MiB default entry
limit of integrated storage. The lock is a second secret at `<path>.lock`: created with
`cas=0`, renewed, taken over and released with `cas` set to the version last read, so
every transition is atomic.
A released lock is a tombstone version (`released: true`), not a deleted secret, so the
token needs only create, read and update on the two paths.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from reconciler.errors import LockError, StateConflictError, StateError
from reconciler.model import Inventory
from reconciler.protocols import LockInfo
from reconciler.state.document import (
    COMPRESSED_ENCODING,
    FORMAT_VERSION,
    compress_document,
    corrupt_state_hint,
    decompress_document,
    document_to_inventory,
    dump_document,
    inventory_to_document,
    utc_now_iso,
)
from reconciler.state.holding import LockHoldingBackend, check_write_base
from reconciler.state.lockrecord import (
    DEFAULT_LOCK_TTL_S,
    default_who,
    describe_holder,
    is_stale,
    lock_info,
)
from reconciler.vault.session import VaultSession

LOGGER = logging.getLogger(__name__)

# Inventories larger than either limit are stored compressed. The entry limit exists because
# OpenBao rejects a request whose JSON holds too many strings ("refused JSON input due to
# high complexity: exceeded maximum number of strings", seen with OpenBao 2.x dev servers at
# about 200 entries); a compressed document is a handful of strings whatever its size.
COMPRESS_ABOVE_BYTES = 64 * 1024
COMPRESS_ABOVE_ENTRIES = 25
# Above this size a write warns: Consul-backed Vault rejects values over 512 KiB.
WARN_ABOVE_BYTES = 512 * 1024
_CAS_MISMATCH = "check-and-set"


@dataclass(frozen=True)
class _Read:
    """One KV v2 read: the data (None when absent or deleted) and the version to cas on."""

    data: dict[str, Any] | None
    version: int
    deleted: bool = False


class VaultStateBackend(LockHoldingBackend):
    """A `StateBackend` keeping the inventory and lock in a KV v2 mount.

    `session` is an authenticated `VaultSession`, whose retries, token renewal and error
    translation every request goes through. The token needs create, read and update on
    `<mount>/data/<path>` and `<mount>/data/<path>.lock`.
    """

    def __init__(
        self,
        session: VaultSession,
        mount: str,
        path: str,
        *,
        who: str | None = None,
        lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
    ) -> None:
        self._session = session
        self.mount = mount.strip("/")
        self.path = path.strip("/")
        self.lock_path = self.path + ".lock"
        self.who = who or default_who()
        self.lock_ttl_s = lock_ttl_s
        self.lock_location = f"Vault {self.mount}/{self.path}"
        self._known: tuple[str, int, int] | None = None  # lineage, serial, KV version
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultStateBackend({self.mount}/{self.path})"

    # KV v2 requests

    def _api_path(self, path: str) -> str:
        return f"{self.mount}/data/{path}"

    def _kv_read(self, path: str) -> _Read:
        response = self._session.request("GET", self._api_path(path), capability="read")
        raw = response.body.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        metadata = data.get("metadata") or {}
        version = int(metadata.get("version") or 0)
        if response.status == 404:
            # A deleted or destroyed latest version still has metadata: cas must name it.
            deleted = bool(metadata.get("deletion_time") or metadata.get("destroyed"))
            return _Read(None, version, deleted=deleted)
        return _Read(data.get("data"), version)

    def _kv_write(self, path: str, data: dict[str, Any], cas: int) -> int | None:
        """Write with check-and-set; return the new version, or None on a cas mismatch.

        The write is retried like a read, because check-and-set stops a repeated write from
        applying twice. A mismatch caused by this write's own earlier attempt counts as done.
        """
        api_path = self._api_path(path)
        response = self._session.request(
            "POST",
            api_path,
            body={"options": {"cas": cas}, "data": data},
            capability="create" if cas == 0 else "update",
            idempotent=True,
            expected_statuses=(400,),
        )
        if response.status != 400:
            return int(response.body.get("data", {}).get("version", cas + 1))
        errors = "; ".join(str(item) for item in response.body.get("errors") or [])
        if _CAS_MISMATCH not in errors:
            raise StateError(
                f"Vault rejected the state write to {api_path}: {errors or 'no detail'}",
                hint="check that the mount is KV version 2, then run again",
            )
        stored = self._kv_read(path)
        return stored.version if stored.data == data else None

    # Inventory

    def read(self) -> Inventory:
        """Return the stored inventory; an empty one with a new lineage when none exists."""
        with self._mutex:
            stored, version = self._read_stored()
            if stored is None:
                return Inventory(lineage=str(uuid.uuid4()), serial=0)
            self._known = (stored.lineage, stored.serial, version)
            return stored

    def _read_stored(self) -> tuple[Inventory | None, int]:
        read = self._kv_read(self.path)
        where = f"Vault state {self.mount}/{self.path}"
        if read.deleted:
            raise StateError(
                f"{where} was deleted (version {read.version})",
                hint=(
                    f"undelete it with `bao kv undelete -mount={self.mount} "
                    f"-versions={read.version} {self.path}`; " + corrupt_state_hint(where)
                ),
            )
        if read.data is None:
            return None, read.version
        document: Any = read.data
        if read.data.get("encoding") == COMPRESSED_ENCODING:
            document = decompress_document(str(read.data.get("payload", "")), source=where)
        elif "encoding" in read.data:
            raise StateError(
                f"{where} uses encoding {read.data['encoding']!r}, which this grantctl cannot read",
                hint="upgrade grantctl to the version that wrote this state",
            )
        return document_to_inventory(document, source=where), read.version

    def write(self, inventory: Inventory) -> Inventory:
        """Store `inventory` with check-and-set and return it with its serial incremented.

        Raises `StateConflictError` when another writer changed the document, and
        `LockError` when this backend's lock was taken over.
        """
        with self._mutex:
            self._check_lock_still_held()
            version = self._version_for(inventory)
            written = Inventory(inventory.lineage, inventory.serial + 1, inventory.entries)
            new_version = self._kv_write(self.path, self._encode(written), version)
            if new_version is None:
                self._known = None
                raise StateConflictError(
                    f"Vault state {self.mount}/{self.path} changed while this run wrote it "
                    f"(check-and-set on version {version} failed)",
                    hint="run `grantctl plan MANIFEST` again to see the current state",
                )
            self._known = (written.lineage, written.serial, new_version)
            return written

    def _version_for(self, inventory: Inventory) -> int:
        """Return the KV version to cas on, re-reading unless this backend wrote it last."""
        if self._known is not None and self._known[:2] == (inventory.lineage, inventory.serial):
            return self._known[2]
        stored, version = self._read_stored()
        check_write_base(stored, inventory, where=f"Vault state {self.mount}/{self.path}")
        return version

    def _encode(self, inventory: Inventory) -> dict[str, Any]:
        document = inventory_to_document(inventory)
        size = len(dump_document(document, pretty=False))
        if size <= COMPRESS_ABOVE_BYTES and len(inventory.entries) <= COMPRESS_ABOVE_ENTRIES:
            return document
        payload = compress_document(document)
        if len(payload) > WARN_ABOVE_BYTES:
            LOGGER.warning(
                "the compressed state is %d bytes, more than Consul-backed Vault accepts (%d)",
                len(payload),
                WARN_ABOVE_BYTES,
            )
        return {
            "format_version": FORMAT_VERSION,
            "lineage": inventory.lineage,
            "serial": inventory.serial,
            "written_at": utc_now_iso(),
            "encoding": COMPRESSED_ENCODING,
            "payload": payload,
        }

    # Lock

    def _read_lock(self) -> tuple[dict[str, Any] | None, int]:
        read = self._kv_read(self.lock_path)
        if read.data is None or read.data.get("released"):
            return None, read.version
        return read.data, read.version

    def _read_lock_record(self) -> dict[str, Any] | None:
        return self._read_lock()[0]

    def current_lock(self) -> LockInfo | None:
        """Return the lock as recorded (possibly stale), or None when unlocked."""
        record, _ = self._read_lock()
        return None if record is None else lock_info(record)

    def try_acquire(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store `record` as the lock unless a live one exists; return the live one, else None."""
        existing, version = self._read_lock()
        if existing is not None and not is_stale(existing):
            return existing
        if self._kv_write(self.lock_path, record, version) is None:
            # Another process wrote the lock between the read and the write.
            holder, _ = self._read_lock()
            return holder or {"id": "unknown", "who": "another process", "expires": ""}
        if existing is not None:
            LOGGER.warning(
                "took over a stale state lock: %s", describe_holder(existing, removed=True)
            )
        return None

    def renew(self, record: dict[str, Any]) -> bool:
        """Store `record` with its new expiry if the lock is still ours; return whether."""
        existing, version = self._read_lock()
        if existing is None or existing.get("id") != record["id"]:
            return False
        return self._kv_write(self.lock_path, record, version) is not None

    def release(self, lock_id: str) -> None:
        """Replace the lock with a tombstone if it is still `lock_id`'s."""
        existing, version = self._read_lock()
        if (
            existing is None
            or existing.get("id") != lock_id
            or not self._tombstone(lock_id, version)
        ):
            LOGGER.warning("state lock %s was no longer held at release", lock_id)

    def _tombstone(self, lock_id: str, version: int) -> bool:
        tombstone = {"released": True, "id": lock_id, "released_at": utc_now_iso()}
        return self._kv_write(self.lock_path, tombstone, version) is not None

    def force_unlock(self, lock_id: str) -> None:
        """Release the lock if its id is `lock_id`; raise `LockError` otherwise."""
        existing, version = self._read_lock()
        where = f"Vault state {self.mount}/{self.path}"
        if existing is None:
            raise LockError(f"{where} is not locked", hint="nothing to unlock")
        if existing.get("id") != lock_id:
            raise LockError(
                f"lock id {lock_id} does not match: {describe_holder(existing)}",
                hint="copy the lock id from the message of the run that is blocked",
            )
        if not self._tombstone(lock_id, version):
            raise LockError(
                f"the lock on {where} changed while it was being force-unlocked",
                hint="run `grantctl force-unlock LOCK_ID MANIFEST` again with the id shown above",
            )
        LOGGER.warning(
            "force-unlocked %s: removed %s", where, describe_holder(existing, removed=True)
        )
