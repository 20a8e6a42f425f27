"""In-memory planner inputs of any size, shaped like a real estate mid-life.

Of every ten accounts: six are in sync, one has a rotated secret, one has an expired grant,
one is new (no grant yet) and one has a grant the inventory does not know (an adopt). This
exercises every branch of the common path rather than only the no-op one.
"""

from __future__ import annotations

from types import MappingProxyType

from reconciler.model import (
    Account,
    Grant,
    GrantStatus,
    Inventory,
    InventoryEntry,
    Manifest,
    Policy,
    Provider,
    Region,
    SecretState,
    SecretVersion,
    StateSettings,
    VaultSettings,
)

SCOPES = ("Mail.Read", "User.Read", "offline_access")


def build_inputs(
    count: int,
) -> tuple[Manifest, Inventory, dict[str, SecretVersion], list[Grant]]:
    """Return (manifest, inventory, secrets by account, grants) for `count` accounts."""
    accounts: list[Account] = []
    entries: dict[str, InventoryEntry] = {}
    secrets: dict[str, SecretVersion] = {}
    grants: list[Grant] = []
    for index in range(count):
        name, email = f"acct-{index:06d}", f"user{index:06d}@example.com"
        path = f"nylas/bench/{name}"
        accounts.append(Account(name, email, Provider.MICROSOFT, path, SCOPES))
        kind = index % 10
        secrets[name] = SecretVersion(path, SecretState.PRESENT, version=2 if kind == 6 else 1)
        if kind == 8:
            continue  # new account: no grant, no inventory entry
        status = GrantStatus.INVALID if kind == 7 else GrantStatus.VALID
        grant_id = f"grant-{index:06d}"
        grants.append(Grant(grant_id, "microsoft", email, status, SCOPES, 1_700_000_000))
        if kind != 9:  # kind 9: the grant exists but the inventory does not know it
            entries[name] = InventoryEntry(
                name, grant_id, "microsoft", email, path, vault_version_sent=1, scopes=SCOPES
            )
    manifest = Manifest(
        path="bench.yaml",
        digest="0" * 64,
        version=1,
        region=Region.US,
        vault=VaultSettings(path_prefix="nylas/bench"),
        state=StateSettings(),
        policy=Policy(max_deletes=count),
        accounts=tuple(accounts),
    )
    inventory = Inventory("bench-lineage", 7, MappingProxyType(entries))
    return manifest, inventory, secrets, grants
