"""Grant matching and the non-secret attribute views the planner puts in each change.

Part of the pure planner: `planner.make_plan` indexes the grants here and builds each change's
`before` and `after` mappings from the grant, the inventory entry and the manifest account.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class GrantIndex:
    """Grants by id and by (provider, case-folded email), the key matching uses."""

    by_id: dict[str, Grant] = field(default_factory=dict)
    by_key: dict[tuple[str, str], list[Grant]] = field(default_factory=dict)

    @classmethod
    def build(cls, grants: Sequence[Grant]) -> GrantIndex:
        """Index `grants`; each list of matches is sorted by id so output is deterministic."""
        index = cls()
        for grant in grants:
            index.by_id[grant.id] = grant
            key = (grant.provider, grant.email_key)
            index.by_key.setdefault(key, []).append(grant)
        # Only the few lists with several grants need sorting, which keeps building linear.
        for matches in index.by_key.values():
            if len(matches) > 1:
                matches.sort(key=_GRANT_ID)
        return index

    def matches(self, provider: str, email: str) -> Sequence[Grant]:
        """Return the grants with this provider and email, compared case-insensitively.

        The sequence is the index's own, not a copy: callers must not modify it.
        """
        return self.by_key.get((provider, email.casefold()), ())


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
            "scopes": list(_sorted_scopes(grant.scopes)),
            "vault_version": None,
            "credential_id": grant.credential_id,
            "protect": None,
        }
    attributes: dict[str, Any] = {
        "grant_id": entry.grant_id,
        "email": entry.email,
        "provider": entry.provider,
        "status": None,
        "scopes": list(_sorted_scopes(entry.scopes)),
        "vault_version": entry.vault_version_sent,
        "credential_id": entry.credential_id,
        "protect": entry.protect,
    }
    if grant is not None:
        attributes["grant_id"] = grant.id
        attributes["email"] = grant.email
        attributes["provider"] = grant.provider
        attributes["status"] = grant.status._value_
        attributes["scopes"] = list(_sorted_scopes(grant.scopes))
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
        "scopes": list(_sorted_scopes(scopes)),
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
