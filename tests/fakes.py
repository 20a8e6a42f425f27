"""In-memory fakes of `GrantsAPI` and `SecretStore` for engine tests.

`FakeGrants` follows Nylas' re-authentication rules: one grant per (provider, case-folded
email); a connect for an email that has a grant returns the same id with `updated_at` moved
to now; a connect after a delete creates a new id. The identity behind a token comes from a
table, as the emulator's fixture does. Faults: latency, scripted connect failures, and
connects whose outcome is unknown (before or after Nylas applied them).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.errors import (
    NylasInvalidRequestError,
    NylasOutcomeUnknownError,
    VaultSecretNotFoundError,
)
from reconciler.model import Grant, GrantStatus, SecretState, SecretVersion
from reconciler.protocols import ConnectResult
from reconciler.secrets import Secret


@dataclass(frozen=True)
class Identity:
    """Who a token authenticates as, and which scopes its grant gets."""

    email: str
    scopes: tuple[str, ...] = ("Mail.Read", "User.Read", "offline_access")


@dataclass
class FakeGrants:
    """A thread-safe in-memory Nylas application implementing `GrantsAPI`.

    `identities` maps a refresh token (or an IMAP/iCloud username) to its identity.
    `unknown_after` and `unknown_before` hold tokens whose next connect raises
    `NylasOutcomeUnknownError` after, respectively before, the grant is changed; each use
    removes one occurrence. `fail_tokens` maps tokens to a 400 error message, and
    `connect_errors` maps tokens to the exception their connects raise.
    """

    identities: dict[str, Identity] = field(default_factory=dict)
    latency_s: float = 0.0
    clock: Callable[[], float] = time.time
    unknown_after: list[str] = field(default_factory=list)
    unknown_before: list[str] = field(default_factory=list)
    fail_tokens: dict[str, str] = field(default_factory=dict)
    connect_errors: dict[str, Exception] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    connects: list[tuple[str, str]] = field(default_factory=list)  # (provider, token)
    deletes: list[str] = field(default_factory=list)
    finds: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    _in_flight: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_grant(self, provider: str, email: str, **extra: object) -> Grant:
        """Create a grant directly, as if connected before the test."""
        with self._lock:
            grant = Grant(
                id=f"grant-{next(self._ids):04d}",
                provider=provider,
                email=email,
                status=GrantStatus.VALID,
                scopes=("Mail.Read", "User.Read", "offline_access"),
                created_at=int(self.clock()) - 1000,
                updated_at=int(self.clock()) - 1000,
            )
            grant = replace(grant, **extra)  # type: ignore[arg-type]
            self.grants[grant.id] = grant
            return grant

    def list_grants(self) -> list[Grant]:
        """Return every grant."""
        with self._lock:
            return list(self.grants.values())

    def find_grants(self, email: str) -> list[Grant]:
        """Return the grants of `email`, compared case-insensitively."""
        with self._lock:
            self.finds.append(email)
            return [grant for grant in self.grants.values() if grant.email_key == email.casefold()]

    def get_grant(self, grant_id: str) -> Grant | None:
        """Return one grant or None."""
        with self._lock:
            return self.grants.get(grant_id)

    def connect(
        self,
        provider: str,
        settings: Mapping[str, Secret | str | int],
        scopes: Sequence[str] = (),
        *,
        account: str = "",
        state: str | None = None,
    ) -> ConnectResult:
        """Create or re-authenticate the grant of the token's identity, storing `state`."""
        token = _token_of(settings)
        self._enter()
        try:
            time.sleep(self.latency_s)
            with self._lock:
                self.connects.append((provider, token))
                if _take(self.unknown_before, token):
                    raise NylasOutcomeUnknownError(f"connect for {account}: timed out (before)")
                if token in self.connect_errors:
                    raise self.connect_errors[token]
                if token in self.fail_tokens:
                    raise NylasInvalidRequestError(
                        self.fail_tokens[token], status=400, request_id=f"req-fail-{account}"
                    )
                identity = self.identities.get(token)
                if identity is None:
                    # Worded as the real client words it: the operation, then the detail.
                    detail = "Authentication failed: invalid_grant"
                    raise NylasInvalidRequestError(
                        f"connect for account {account!r} failed: {detail}",
                        detail=detail,
                        status=400,
                        request_id="req-bad",
                    )
                grant, created = self._upsert(provider, identity, state)
                if _take(self.unknown_after, token):
                    raise NylasOutcomeUnknownError(f"connect for {account}: timed out (after)")
                return ConnectResult(grant=grant, request_id=f"req-{grant.id}", created=created)
        finally:
            self._leave()

    def _upsert(self, provider: str, identity: Identity, state: str | None) -> tuple[Grant, bool]:
        now = int(self.clock())
        for grant in self.grants.values():
            if grant.provider == provider and grant.email_key == identity.email.casefold():
                # Like Nylas, a re-authentication without `state` keeps the grant's state.
                renewed = replace(
                    grant,
                    status=GrantStatus.VALID,
                    updated_at=now,
                    scopes=identity.scopes,
                    state=state or grant.state,
                )
                self.grants[grant.id] = renewed
                return renewed, False
        grant = Grant(
            id=f"grant-{next(self._ids):04d}",
            provider=provider,
            email=identity.email,
            status=GrantStatus.VALID,
            scopes=identity.scopes,
            created_at=now,
            updated_at=now,
            state=state,
        )
        self.grants[grant.id] = grant
        return grant, True

    def delete_grant(self, grant_id: str, *, account: str = "") -> bool:
        """Delete a grant; False when it was already gone."""
        self._enter()
        try:
            time.sleep(self.latency_s)
            with self._lock:
                self.deletes.append(grant_id)
                return self.grants.pop(grant_id, None) is not None
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _token_of(settings: Mapping[str, Secret | str | int]) -> str:
    for key in ("refresh_token", "imap_username", "username", "email"):
        value = settings.get(key)
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, str):
            return value
    raise AssertionError(f"no credential in settings keys {sorted(settings)}")


def _take(tokens: list[str], token: str) -> bool:
    if token in tokens:
        tokens.remove(token)
        return True
    return False


@dataclass
class FakeSecrets:
    """An in-memory KV v2 store implementing `SecretStore`; `reads` logs (path, version).

    `read_error`, when set, is raised by every `read_secret`, as an outage would.
    """

    versions: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    reads: list[tuple[str, int | None]] = field(default_factory=list)
    read_error: Exception | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, path: str, data: Mapping[str, str]) -> int:
        """Write a new version of `path` and return its number."""
        with self._lock:
            self.versions.setdefault(path, []).append(dict(data))
            return len(self.versions[path])

    def read_metadata(self, path: str) -> SecretVersion:
        """Return the current version of `path`, or a missing state."""
        with self._lock:
            versions = self.versions.get(path)
        if not versions:
            return SecretVersion(path=path, state=SecretState.MISSING)
        return SecretVersion(path=path, state=SecretState.PRESENT, version=len(versions))

    def read_metadata_many(self, paths: Sequence[str]) -> dict[str, SecretVersion]:
        """Return the metadata of each path."""
        return {path: self.read_metadata(path) for path in paths}

    def read_secret(self, path: str, version: int | None) -> dict[str, Secret]:
        """Return the data of `path` at `version` (None: current) as `Secret` values."""
        with self._lock:
            self.reads.append((path, version))
            versions = self.versions.get(path, [])
        if self.read_error is not None:
            raise self.read_error
        index = len(versions) if version is None else version
        if not versions or not 1 <= index <= len(versions):
            raise VaultSecretNotFoundError(f"secret {path} version {version} not found", path=path)
        return {key: Secret(value) for key, value in versions[index - 1].items()}
