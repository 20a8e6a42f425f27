"""The emulator's state and the admin operations on it, shared by Python and HTTP callers.

`EmulatorCore` owns the grant store, the API keys, the fault injector, the rate limiter and
the request log. `EmulatorServer` adds the HTTP server on top; the admin HTTP API under
`/_emulator/` calls the same methods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from reconciler.emulator.faults import (
    DEFAULT_RATE_LIMIT,
    FaultInjector,
    FaultSettings,
    SlidingWindowLimiter,
    coerce_faults,
    replace_faults,
)
from reconciler.emulator.fixture import FixtureError, load_fixture, parse_grant, parse_identity
from reconciler.emulator.requestlog import RequestLog
from reconciler.emulator.store import GrantRecord, GrantStore

FixtureSource = Mapping[str, object] | str | Path | None


class EmulatorCore:
    """Grants, identities, API keys, faults and the request log of one emulator instance."""

    def __init__(
        self,
        fixture: FixtureSource = None,
        faults: FaultSettings | Mapping[str, object] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = GrantStore(clock)
        loaded = load_fixture(fixture, now=self.store.now())
        self.connectors = loaded.connectors
        self._keys_lock = threading.Lock()
        self._api_keys = set(loaded.api_keys)
        self._first_api_key = loaded.api_keys[0]
        for identity in loaded.identities:
            self.store.put_identity(identity)
        problems = []
        for index, grant in enumerate(loaded.grants):
            try:
                self.store.insert(grant)
            except ValueError as error:
                problems.append(f"grants[{index}]: {error}")
        if problems:
            raise FixtureError(problems)
        self._fixture_rate_limit = loaded.rate_limit
        settings = coerce_faults(faults)
        self.injector = FaultInjector(settings)
        self.limiter = SlidingWindowLimiter(self._rate_limit_for(settings))
        self.log = RequestLog()

    def _rate_limit_for(self, settings: FaultSettings) -> int:
        if settings.rate_limit is not None:
            return settings.rate_limit
        if self._fixture_rate_limit is not None:
            return self._fixture_rate_limit
        return DEFAULT_RATE_LIMIT

    # API keys

    @property
    def api_key(self) -> str:
        """The first API key of the fixture, for callers that need a working key."""
        return self._first_api_key

    def is_api_key(self, key: str) -> bool:
        """Return True when `key` is one of the accepted API keys."""
        with self._keys_lock:
            return key in self._api_keys

    def update_api_keys(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> int:
        """Accept the keys in `add`, reject those in `remove` and return the key count."""
        with self._keys_lock:
            self._api_keys.update(add)
            self._api_keys.difference_update(remove)
            return len(self._api_keys)

    # Grants and identities

    def grants(self) -> list[dict[str, object]]:
        """Return every live grant as the API renders it, oldest first."""
        with self.store.lock:
            return [grant.to_json() for grant in self.store.all()]

    def expire_grant(
        self, grant_id: str | None = None, email: str | None = None
    ) -> list[dict[str, object]]:
        """Set the grant `grant_id`, or every grant for `email`, to `invalid` and return them.

        Raise ValueError when neither is given and KeyError when nothing matches.
        """
        if grant_id is None and email is None:
            raise ValueError("expire_grant needs grant_id or email")
        with self.store.lock:
            return [grant.to_json() for grant in self.store.expire(grant_id=grant_id, email=email)]

    def revoke_token(self, token_or_username: str) -> list[dict[str, object]]:
        """Revoke a refresh token or password-provider username and return the grants expired.

        Later connects with that credential return 400 `invalid_grant`. Raise KeyError when
        no identity has the credential.
        """
        with self.store.lock:
            return [grant.to_json() for grant in self.store.revoke(token_or_username)]

    def add_identity(self, **identity: object) -> None:
        """Add or replace an identity, given the fields of a fixture `identities` entry."""
        problems: list[str] = []
        parsed = parse_identity(identity, "identity", problems)
        if parsed is None:
            raise FixtureError(problems)
        self.store.put_identity(parsed)

    def add_grant(self, **grant: object) -> dict[str, object]:
        """Add a grant made outside grantctl, given the fields of a fixture `grants` entry."""
        problems: list[str] = []
        parsed = parse_grant(grant, "grant", problems, now=self.store.now())
        if parsed is None:
            raise FixtureError(problems)
        try:
            record: GrantRecord = self.store.insert(parsed)
        except ValueError as error:
            raise FixtureError([f"grant: {error}"]) from error
        with self.store.lock:
            return record.to_json()

    def advance_clock(self, seconds: float) -> int:
        """Move the emulator's clock forward, so timestamps differ without sleeping."""
        return self.store.advance_clock(seconds)

    # Faults

    @property
    def faults(self) -> FaultSettings:
        """The fault settings in force."""
        return self.injector.settings

    def set_faults(self, **faults: object) -> FaultSettings:
        """Change the named fault settings, keep the others, and return the result."""
        settings = replace_faults(self.injector.settings, faults)
        self.injector.update(settings)
        self.limiter.set_limit(self._rate_limit_for(settings))
        return settings

    @property
    def rate_limit(self) -> int:
        """Requests per second allowed per endpoint group, 0 when disabled."""
        return self.limiter.limit

    # Request log

    def request_log(self) -> list[dict[str, object]]:
        """Return the logged API requests, oldest first, credentials masked."""
        return self.log.entries()

    def request_counts(self) -> dict[str, dict[str, int]]:
        """Return API request counts per endpoint, status and endpoint group."""
        return self.log.counts()

    def clear_log(self) -> None:
        """Forget the logged requests and reset the counts."""
        self.log.clear()
