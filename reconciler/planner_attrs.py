"""Grant matching and the non-secret attribute views the planner puts in each change.

Part of the pure planner: `planner.make_plan` indexes the grants here and builds each change's
`before` and `after` mappings from the grant, the inventory entry and the manifest account.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from reconciler.model import Account, Grant, GrantStatus, InventoryEntry

# Every before/after mapping has exactly these keys, so a diff never reports a key that
# merely appeared.
ATTRIBUTE_KEYS = (
    "grant_id",
    "email",
    "provider",
    "status",
    "scopes",
    "vault_version",
    "credential_id",
    "protect",
)
# Per-account code reads an enum member's value as `member._value_`, the attribute behind
# `.value`: on Python 3.11 `.value` goes through a Python-level descriptor and costs about
# five times as much, which added up to a tenth of the planner's time.
_VALID = GrantStatus.VALID.value
_GRANT_ID = operator.attrgetter("id")
# The email index's entry for one email: a grant, or a tuple of several sorted by id.
Found = Grant | tuple[Grant, ...] | None
_NO_EMAILS: Mapping[str, Grant | tuple[Grant, ...]] = MappingProxyType({})


def matches_of(found: Found) -> Sequence[Grant]:
    """Return the grants of one `GrantIndex.claim_all` result as a sequence sorted by id."""
    if found is None:
        return ()
    return found if isinstance(found, tuple) else (found,)


class GrantIndex:
    """Grants by provider and case-folded email, the key matching uses, and by id."""

    def __init__(self, grants: Sequence[Grant]) -> None:
        self._grants = grants
        self._by_id: dict[str, Grant] | None = None
        # How many grants `claim_all` has returned. Manifest emails are unique, so when it
        # reaches the number of grants, every grant matched an account.
        self.claimed = 0
        self._shared = False
        # provider -> case-folded email -> the one grant with that key, or a tuple of several
        # sorted by id. Nested by provider, so no key tuple is built per grant or lookup, and
        # a grant alone needs no container: both kept a large plan's memory smaller.
        self.by_email: dict[str, dict[str, Grant | tuple[Grant, ...]]] = {}
        # An estate has a handful of providers, so one pass per provider stays linear.
        for provider in {grant.provider for grant in grants}:
            group = [grant for grant in grants if grant.provider == provider]
            emails: dict[str, Grant | tuple[Grant, ...]] = {
                grant.email_key: grant for grant in group
            }
            if len(emails) < len(group):
                _collect_duplicates(group, emails)
                self._shared = True
            self.by_email[provider] = emails

    @property
    def size(self) -> int:
        """Return how many grants the index holds."""
        return len(self._grants)

    def claim_all(self, accounts: Sequence[Account]) -> list[Found]:
        """Return the index entry for each account's provider and email, in order.

        `claimed` counts the grants returned. The lookups run in one tight pass, where the
        processor overlaps their cache misses. `matches_of` turns each result into a sequence.
        """
        by_email = self.by_email
        found = [
            by_email.get(account.provider._value_, _NO_EMAILS).get(account.email_key)
            for account in accounts
        ]
        self.claimed += sum(map(operator.is_not, found, itertools.repeat(None)))
        if self._shared:
            # Emails that several grants share map to a tuple, so count each of its grants.
            self.claimed += sum(len(item) - 1 for item in found if isinstance(item, tuple))
        return found

    def by_id(self, grant_id: str) -> Grant | None:
        """Return the grant with this id, or None."""
        # Built on first use: a plan in which every account matches its grant by email
        # never needs it, and at 100,000 grants it cost about 0.1 us per grant.
        if self._by_id is None:
            self._by_id = {grant.id: grant for grant in self._grants}
        return self._by_id.get(grant_id)


def _collect_duplicates(group: list[Grant], emails: dict[str, Grant | tuple[Grant, ...]]) -> None:
    """Store, for each email that several grants in `group` share, all of them sorted by id."""
    by_key: dict[str, list[Grant]] = {}
    for grant in group:
        by_key.setdefault(grant.email_key, []).append(grant)
    for key, same in by_key.items():
        if len(same) > 1:
            emails[key] = tuple(sorted(same, key=_GRANT_ID))


@functools.lru_cache(maxsize=1024)
def _sorted_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    # Most accounts share a handful of scope tuples, so each is sorted once per process
    # instead of once per account and side of a change.
    return tuple(sorted(scopes))


def describe_before(grant: Grant | None, entry: InventoryEntry | None) -> dict[str, Any] | None:
    """Return the attributes as they are now, or None when neither grant nor entry exists.

    Grant facts win over the inventory's record of them; `vault_version` is the version
    last sent, which only the inventory records.
    """
    if entry is None:
        if grant is None:
            return None
        return {
            "grant_id": grant.id,
            "email": grant.email,
            "provider": grant.provider,
            "status": grant.status._value_,
            "scopes": _sorted_scopes(grant.scopes),
            "vault_version": None,
            "credential_id": grant.credential_id,
            "protect": None,
        }
    attributes: dict[str, Any] = {
        "grant_id": entry.grant_id,
        "email": entry.email,
        "provider": entry.provider,
        "status": None,
        "scopes": _sorted_scopes(entry.scopes),
        "vault_version": entry.vault_version_sent,
        "credential_id": entry.credential_id,
        "protect": entry.protect,
    }
    if grant is not None:
        attributes["grant_id"] = grant.id
        attributes["email"] = grant.email
        attributes["provider"] = grant.provider
        attributes["status"] = grant.status._value_
        attributes["scopes"] = _sorted_scopes(grant.scopes)
    return attributes


def describe_after(
    account: Account,
    grant: Grant | None,
    vault_version: int | None,
) -> dict[str, Any]:
    """Return the attributes the account will have once the change is applied.

    `grant` is the grant that keeps its id (a reconnect or adopt), None when a connect
    creates one whose id is not known yet. Scopes are the manifest's when it names any,
    else the grant's.
    """
    scopes = account.scopes
    if not scopes and grant is not None:
        scopes = grant.scopes
    return {
        "grant_id": grant.id if grant else None,
        "email": account.email,
        "provider": account.provider._value_,
        "status": _VALID,
        "scopes": _sorted_scopes(scopes),
        "vault_version": vault_version,
        "credential_id": account.credential_id,
        "protect": account.protect,
    }


def missing_scopes(account: Account, grant: Grant) -> list[str]:
    """Return the manifest's scopes that the grant does not carry, sorted."""
    carried = grant.scopes
    # Scope lists hold a few entries, so scanning the tuples beats building two sets, and
    # most grants carry every required scope, which makes the list below empty.
    absent = [scope for scope in account.scopes if scope not in carried]
    return sorted(set(absent)) if absent else []
