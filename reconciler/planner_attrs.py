"""Grant matching and the non-secret attribute views the planner puts in each change.

Part of the pure planner: `planner.make_plan` indexes the grants here and builds each change's
`before` and `after` mappings from the grant, the inventory entry and the manifest account.
"""

from __future__ import annotations

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


@dataclass
class GrantIndex:
    """Grants by id and by (provider, case-folded email), the key matching uses."""

    by_id: dict[str, Grant] = field(default_factory=dict)
    by_key: dict[tuple[str, str], list[Grant]] = field(default_factory=dict)

    @classmethod
    def build(cls, grants: Sequence[Grant]) -> GrantIndex:
        """Index `grants`; each list of matches is sorted by id so output is deterministic."""
        index = cls()
        for grant in sorted(grants, key=lambda item: item.id):
            index.by_id[grant.id] = grant
            key = (grant.provider, grant.email_key)
            index.by_key.setdefault(key, []).append(grant)
        return index

    def matches(self, provider: str, email: str) -> list[Grant]:
        """Return the grants with this provider and email, compared case-insensitively."""
        return list(self.by_key.get((provider, email.casefold()), ()))


def describe_before(grant: Grant | None, entry: InventoryEntry | None) -> dict[str, Any] | None:
    """Return the attributes as they are now, or None when neither grant nor entry exists.

    Grant facts win over the inventory's record of them; `vault_version` is the version
    last sent, which only the inventory records.
    """
    if grant is None and entry is None:
        return None
    attributes: dict[str, Any] = dict.fromkeys(ATTRIBUTE_KEYS)
    if entry is not None:
        attributes.update(
            grant_id=entry.grant_id,
            email=entry.email,
            provider=entry.provider,
            scopes=sorted(entry.scopes),
            vault_version=entry.vault_version_sent,
            credential_id=entry.credential_id,
            protect=entry.protect,
        )
    if grant is not None:
        attributes.update(
            grant_id=grant.id,
            email=grant.email,
            provider=grant.provider,
            status=grant.status.value,
            scopes=sorted(grant.scopes),
        )
        if entry is None:
            attributes["credential_id"] = grant.credential_id
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
    scopes = sorted(account.scopes)
    if not scopes and grant is not None:
        scopes = sorted(grant.scopes)
    return {
        "grant_id": grant.id if grant else None,
        "email": account.email,
        "provider": account.provider.value,
        "status": GrantStatus.VALID.value,
        "scopes": scopes,
        "vault_version": vault_version,
        "credential_id": account.credential_id,
        "protect": account.protect,
    }


def missing_scopes(account: Account, grant: Grant) -> list[str]:
    """Return the manifest's scopes that the grant does not carry, sorted."""
    carried = set(grant.scopes)
    return sorted(scope for scope in set(account.scopes) if scope not in carried)
