"""In-memory identities and grants of the Nylas emulator.

An `Identity` is what a provider would return for a credential: the account's email, name
and granted scopes, and whether the credential still works. A `GrantRecord` is a Nylas
grant. `GrantStore` keeps both, indexed so that connect and list stay fast with tens of
thousands of grants, and enforces Nylas' rule of one grant per (provider, email).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

OAUTH_PROVIDERS = ("google", "microsoft", "yahoo", "zoom")
PASSWORD_PROVIDERS = ("imap", "icloud", "ews")
PROVIDERS = OAUTH_PROVIDERS + PASSWORD_PROVIDERS


@dataclass
class Identity:
    """An account as the provider sees it, reached by one credential.

    `credential` is the refresh token for OAuth providers and the username for password
    providers (`imap_username`, iCloud `username`, `ews_username`); `password` is set only
    for password providers. `valid` False means the provider rejects the credential.
    """

    provider: str
    credential: str
    email: str
    scopes: tuple[str, ...] = ()
    password: str | None = None
    name: str = ""
    valid: bool = True

    @property
    def provider_user_id(self) -> str:
        """A stable provider-side user id derived from provider and email."""
        digest = hashlib.sha256(f"{self.provider}:{self.email.casefold()}".encode())
        return digest.hexdigest()[:24]


@dataclass
class GrantRecord:
    """A Nylas grant, rendered by `to_json` as the API returns it."""

    id: str
    provider: str
    email: str
    scope: list[str]
    created_at: int
    updated_at: int
    grant_status: str = "valid"
    name: str = ""
    blocked: bool = False
    provider_user_id: str = ""
    ip: str = ""
    user_agent: str = ""
    state: str = ""
    settings: dict[str, object] = field(default_factory=dict)
    credential_id: str = ""
    workspace_id: str = ""
    account_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The uniqueness key: provider and case-folded email."""
        return (self.provider, self.email.casefold())

    def to_json(self) -> dict[str, object]:
        """Return the grant as the API serializes it, without empty optional strings."""
        document: dict[str, object] = {
            "id": self.id,
            "provider": self.provider,
            "grant_status": self.grant_status,
            "email": self.email,
            "scope": list(self.scope),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "blocked": self.blocked,
            "settings": dict(self.settings),
        }
        optional = (
            "name",
            "provider_user_id",
            "ip",
            "user_agent",
            "state",
            "credential_id",
            "workspace_id",
            "account_id",
        )
        for name in optional:
            value = getattr(self, name)
            if value:
                document[name] = value
        return document


SORT_FIELDS = ("created_at", "updated_at")


class GrantStore:
    """Thread-safe grants and identities with the indexes the API needs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._clock_offset = 0.0
        self._grants: dict[str, GrantRecord] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._identities: dict[tuple[str, str], Identity] = {}
        # Sorted id lists per (sort_by, descending), dropped on every change to the grants.
        self._sorted: dict[tuple[str, bool], list[GrantRecord]] = {}

    def now(self) -> int:
        """Return the emulator's time in unix seconds, including `advance_clock` offsets."""
        return int(self._clock() + self._clock_offset)

    def advance_clock(self, seconds: float) -> int:
        """Move the emulator's clock forward by `seconds` and return the new time."""
        with self.lock:
            self._clock_offset += seconds
            return self.now()

    # Identities

    def put_identity(self, identity: Identity) -> None:
        """Add `identity`, replacing any with the same provider and credential."""
        with self.lock:
            self._identities[(identity.provider, identity.credential)] = identity

    def find_identity(self, provider: str, credential: str) -> Identity | None:
        """Return the identity behind `credential` for `provider`, or None."""
        with self.lock:
            return self._identities.get((provider, credential))

    def revoke(self, credential: str) -> list[GrantRecord]:
        """Mark identities whose credential is `credential` as revoked and expire their grants.

        Return the grants made invalid. Raise KeyError when no identity has that credential.
        """
        with self.lock:
            matches = [
                ident for ident in self._identities.values() if ident.credential == credential
            ]
            if not matches:
                raise KeyError(credential)
            expired: list[GrantRecord] = []
            for identity in matches:
                identity.valid = False
                grant_id = self._by_key.get((identity.provider, identity.email.casefold()))
                if grant_id is not None:
                    expired.append(self._expire(self._grants[grant_id]))
            return expired

    # Grants

    def get(self, grant_id: str) -> GrantRecord | None:
        """Return the live grant `grant_id`, or None."""
        with self.lock:
            return self._grants.get(grant_id)

    def find_by_key(self, provider: str, email: str) -> GrantRecord | None:
        """Return the live grant for (provider, email), matched case-insensitively, or None."""
        with self.lock:
            grant_id = self._by_key.get((provider, email.casefold()))
            return None if grant_id is None else self._grants[grant_id]

    def insert(self, grant: GrantRecord) -> GrantRecord:
        """Add `grant`, or raise ValueError when its id or (provider, email) is taken."""
        with self.lock:
            if grant.id in self._grants:
                raise ValueError(f"grant id {grant.id} already exists")
            if grant.key in self._by_key:
                raise ValueError(f"a grant for {grant.provider} {grant.email} already exists")
            self._grants[grant.id] = grant
            self._by_key[grant.key] = grant.id
            self._sorted.clear()
            return grant

    def touch(self, grant: GrantRecord) -> None:
        """Record that `grant` changed in place, so sorted views are rebuilt."""
        with self.lock:
            self._sorted.clear()

    def delete(self, grant_id: str) -> bool:
        """Delete a grant for good and return False when it did not exist."""
        with self.lock:
            grant = self._grants.pop(grant_id, None)
            if grant is None:
                return False
            del self._by_key[grant.key]
            self._sorted.clear()
            return True

    def expire(self, grant_id: str | None = None, email: str | None = None) -> list[GrantRecord]:
        """Set `grant_status` to invalid on the grant `grant_id` or on every grant for `email`.

        Return the grants changed, or raise KeyError when none matches.
        """
        with self.lock:
            if grant_id is not None:
                targets = [self._grants[grant_id]] if grant_id in self._grants else []
            else:
                wanted = (email or "").casefold()
                targets = [
                    self._grants[gid] for key, gid in self._by_key.items() if key[1] == wanted
                ]
            if not targets:
                raise KeyError(grant_id or email)
            return [self._expire(grant) for grant in targets]

    def _expire(self, grant: GrantRecord) -> GrantRecord:
        grant.grant_status = "invalid"
        self._sorted.clear()
        return grant

    def all(self) -> list[GrantRecord]:
        """Return every live grant, oldest first."""
        return self.sorted_grants("created_at", descending=False)

    def sorted_grants(self, sort_by: str, *, descending: bool) -> list[GrantRecord]:
        """Return every live grant sorted by `sort_by`, ties broken by id in the same order.

        The list is cached until the next change, so paging through many grants sorts once.
        """
        with self.lock:
            cache_key = (sort_by, descending)
            cached = self._sorted.get(cache_key)
            if cached is None:
                cached = sorted(
                    self._grants.values(),
                    key=lambda grant: (getattr(grant, sort_by), grant.id),
                    reverse=descending,
                )
                self._sorted[cache_key] = cached
            return cached


def new_grant_id() -> str:
    """Return a new grant id in Nylas' UUID format."""
    return str(uuid.uuid4())


def scopes_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """Return scopes as a tuple without duplicates, order kept."""
    return tuple(dict.fromkeys(values))
