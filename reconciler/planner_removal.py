"""Decisions of the pure planner for accounts on their way out: `ensure: absent` and removal.

`planner.make_plan` calls these for manifest accounts marked `ensure: absent` and for
inventory entries whose account left `accounts:`. Only grants the inventory records are ever
deleted. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model import (
    Account,
    Action,
    Change,
    ErrorCode,
    Grant,
    InventoryEntry,
    PlanError,
    Reason,
    RemovedAccount,
)
from reconciler.planner_attrs import GrantIndex, describe_before
from reconciler.planner_decide import Decision


def decide_absent(
    account: Account, entry: InventoryEntry | None, matches: Sequence[Grant], index: GrantIndex
) -> Decision:
    """Decide the change for an account with `ensure: absent`.

    `matches` are the grants with the account's provider and email, sorted by id.
    """
    if entry is not None:
        grant = index.by_id(entry.grant_id)
        if grant is None:
            message = _gone_message(entry)
            action, reason = Action.FORGET, Reason.GRANT_DELETED_OUTSIDE
        else:
            message = (
                f"The account is marked `ensure: absent`. Delete grant {grant.id} ({grant.email})."
            )
            action, reason = Action.DELETE, Reason.ENSURE_ABSENT
        change = _entry_change(entry, action, reason, message, grant)
        # With the recorded grant gone, a grant for the email is what the stale-plan check
        # would find, so the observation records that one.
        observed = grant or (matches[0] if matches else None)
        return Decision(change=change, grant=observed)
    if matches:
        ids = ", ".join(grant.id for grant in matches)
        error = PlanError(
            ErrorCode.UNMANAGED_DELETE,
            account.name,
            f"The account is marked `ensure: absent`, but grant {ids} for {account.email} is "
            "not in the inventory, and grantctl deletes only grants it manages.",
            "delete the grant in the Nylas dashboard, or set `ensure: present` and apply to "
            "adopt it, then set `ensure: absent` again",
        )
        return Decision(error=error, grant=matches[0])
    message = "The account is marked `ensure: absent` and has no grant. Nothing to do."
    change = Change(
        account=account.name,
        action=Action.NOOP,
        reason=Reason.IN_SYNC,
        message=message,
        provider=account.provider.value,
        email=account.email,
    )
    return Decision(change=change)


def decide_inventory_only(
    entry: InventoryEntry, removed: RemovedAccount | None, grant: Grant | None
) -> Change:
    """Decide the change for an inventory entry whose account left `accounts:`."""
    if grant is None:
        message = _gone_message(entry)
        return _entry_change(entry, Action.FORGET, Reason.GRANT_DELETED_OUTSIDE, message, None)
    if removed is None:
        message = (
            f"The account was removed from the manifest and is not listed under `removed:`. "
            f"Delete grant {grant.id} ({grant.email})."
        )
        return _entry_change(entry, Action.DELETE, Reason.REMOVED_FROM_MANIFEST, message, grant)
    if removed.destroy:
        message = (
            "Listed under `removed:` with `destroy: true`. "
            f"Delete grant {grant.id} ({grant.email})."
        )
        return _entry_change(entry, Action.DELETE, Reason.REMOVED_DESTROY, message, grant)
    message = (
        f"Listed under `removed:` with `destroy: false`. Stop managing grant {grant.id}, "
        "which stays in Nylas."
    )
    return _entry_change(entry, Action.FORGET, Reason.REMOVED_KEEP_GRANT, message, grant)


def _entry_change(
    entry: InventoryEntry, action: Action, reason: Reason, message: str, grant: Grant | None
) -> Change:
    """Build a delete or forget: the account stops being managed, so `after` is None."""
    return Change(
        account=entry.name,
        action=action,
        reason=reason,
        message=message,
        provider=entry.provider,
        email=entry.email,
        grant_id=entry.grant_id,
        vault_path=entry.vault_path,
        vault_version=None,
        before=describe_before(grant, entry),
        after=None,
    )


def _gone_message(entry: InventoryEntry) -> str:
    if not entry.grant_id:
        return "The account never had a grant (its connects failed). Drop it from the inventory."
    return f"Grant {entry.grant_id} is already gone from Nylas. Drop it from the inventory."
