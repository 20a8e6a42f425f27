"""The small interfaces between the engine and its clients.

The planner and executor depend only on these protocols, so they are tested with in-memory
fakes; the real implementations (`reconciler.nylas`, `reconciler.vault`, `reconciler.state`)
are tested against the emulator and a real OpenBao server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import Grant, Inventory, SecretVersion
from reconciler.secrets import Secret


@dataclass(frozen=True)
class ConnectResult:
    """A successful `POST /v3/connect/custom`: the grant and the call's request id."""

    grant: Grant
    request_id: str | None
    created: bool  # True on 201 for a grant id not seen before the call, when known


class GrantsAPI(Protocol):
    """The Nylas calls grantctl makes. Implementations raise `NylasError` subclasses."""

    def list_grants(self) -> list[Grant]:
        """Return every grant of the application, paging to the end."""
        ...

    def find_grants(self, email: str) -> list[Grant]:
        """Return the grants whose email equals `email` case-insensitively (one filtered list
        call); apply uses it to settle a connect whose outcome is unknown."""
        ...

    def get_grant(self, grant_id: str) -> Grant | None:
        """Return one grant, or None when Nylas returns 404."""
        ...

    def connect(
        self,
        provider: str,
        settings: Mapping[str, Secret | str | int],
        scopes: Sequence[str] = (),
        *,
        account: str = "",
        state: str | None = None,
    ) -> ConnectResult:
        """Create or re-authenticate a grant. `account` names the account in errors, and
        `state`, when given, is stored on the grant as its `state` field.

        Raises `NylasOutcomeUnknownError` when the request may have reached Nylas but no
        response arrived. The caller then re-lists the grant before sending again.
        """
        ...

    def delete_grant(self, grant_id: str, *, account: str = "") -> bool:
        """Revoke a grant; return False when it was already gone (404)."""
        ...


class SecretStore(Protocol):
    """Read access to account secrets. Implementations raise `VaultError` subclasses."""

    def read_metadata(self, path: str) -> SecretVersion:
        """Return the metadata of the secret at `path` (relative to the mount); no value."""
        ...

    def read_metadata_many(self, paths: Sequence[str]) -> dict[str, SecretVersion]:
        """Return the metadata of several paths, read concurrently."""
        ...

    def read_secret(self, path: str, version: int | None) -> dict[str, Secret]:
        """Return the data of `path` at `version` (None: current; ignored on KV v1)."""
        ...


@dataclass(frozen=True)
class LockInfo:
    """The holder of the state lock, as recorded in the lock document."""

    id: str
    operation: str
    who: str
    version: str
    created: str  # ISO 8601 UTC
    expires: str  # ISO 8601 UTC; a lock past this time is stale and may be taken over
    run_url: str = ""


class StateBackend(Protocol):
    """Stores the inventory and the lock that serializes applies."""

    def read(self) -> Inventory:
        """Return the current inventory; an empty one with a new lineage when none exists."""
        ...

    def write(self, inventory: Inventory) -> Inventory:
        """Store `inventory` and return it with `serial` incremented.

        Raises `StateConflictError` when the stored serial is no longer `inventory.serial`.
        """
        ...

    def lock(self, operation: str, *, timeout_s: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the state lock for the `with` block, waiting up to `timeout_s` for it."""
        ...

    def current_lock(self) -> LockInfo | None:
        """Return the lock as recorded, or None when unlocked."""
        ...

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock if its id is `lock_id`; raise `LockError` otherwise."""
        ...
