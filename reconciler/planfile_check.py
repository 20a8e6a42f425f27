"""The stale-plan check that apply runs before executing a saved plan.

A saved plan is valid only for the world it was made against: the same manifest bytes, the
same inventory serial, the same Vault versions and the same grants. `check_plan_is_current`
compares the plan document's record of those with what apply reads now, and lists every
difference, not just the first. Nothing here performs I/O.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from reconciler.errors import StalePlanError
from reconciler.grammar import plural
from reconciler.model import Grant, Inventory, SecretVersion


def check_plan_is_current(
    document: Mapping[str, Any],
    *,
    manifest_digest: str,
    inventory: Inventory,
    secrets: Mapping[str, SecretVersion],
    grants: Sequence[Grant],
    manifest_accounts: Collection[str],
    manifest_path: str | None = None,
    plan_path: str | None = None,
) -> None:
    """Raise `StalePlanError` naming everything that moved since the plan was made.

    `secrets` maps account names to their current Vault metadata; an account missing from
    it is not compared, so apply may omit accounts whose secret it does not read.
    `manifest_accounts` names the manifest's accounts. Only those are matched to grants by
    email, so a grant that appeared since the plan counts only for them.
    `manifest_path` is the manifest apply read (default: the one the plan records) and
    `plan_path` the plan file; both go into the message and its next step.
    """
    manifest_path = manifest_path or document["manifest"]["path"]
    moved = _manifest_moved(document, manifest_digest, manifest_path)
    moved += _inventory_moved(document, inventory)
    by_id = {grant.id: grant for grant in grants}
    by_key: dict[tuple[str, str], list[str]] = {}
    for grant in grants:
        by_key.setdefault((grant.provider, grant.email_key), []).append(grant.id)
    for observation in document["observations"]:
        moved += _secret_moved(observation, secrets.get(observation["account"]))
        if observation["grant_id"] is not None:
            moved += _grant_moved(observation, by_id)
        elif observation["account"] in manifest_accounts:
            moved += _grant_appeared(observation, by_key)
    if moved:
        count = len(moved)
        noun = "thing" if count == 1 else "things"
        lines = "\n".join(f"  - {line}" for line in moved)
        raise StalePlanError(
            f"The saved plan is stale: {count} {noun} changed since it was made.\n{lines}",
            hint=_replan_hint(manifest_path, plan_path),
        )


def _replan_hint(manifest_path: str, plan_path: str | None) -> str:
    return (
        f"run `grantctl plan {shlex.quote(manifest_path)} --out "
        f"{shlex.quote(plan_path or 'PLAN')}` again, review the new plan, and apply that one"
    )


def check_plan_matches(
    document: Mapping[str, Any],
    fresh: Mapping[str, Any],
    *,
    manifest_path: str,
    plan_path: str | None = None,
) -> None:
    """Raise `StalePlanError` unless `fresh`, a plan of the same inputs, has the same changes.

    `fresh` contains the changes and errors of a plan made now with the saved plan's flags
    (`planfile.changes_and_errors`). The planner is deterministic, so after the stale-plan
    check they match, unless the file was edited and its checksum made again, or an input
    that check does not compare moved (such as a grant's scopes).
    """
    saved_changes = {change["account"]: change for change in document["changes"]}
    fresh_changes = {change["account"]: change for change in fresh["changes"]}
    differ = sorted(
        name
        for name in saved_changes.keys() | fresh_changes.keys()
        if saved_changes.get(name) != fresh_changes.get(name)
    )
    errors_differ = list(document["errors"]) != list(fresh["errors"])
    # An edited file could also list one account twice, which the mapping above hides.
    if not differ and not errors_differ and len(saved_changes) == len(document["changes"]):
        return
    named = ", ".join(repr(name) for name in differ[:5]) or "its errors"
    more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
    raise StalePlanError(
        f"The saved plan does not match a plan of the same inputs made now: {named}{more} "
        "differ. The file was edited after it was written, or an input the stale-plan "
        "check does not compare moved, such as a grant's scopes.",
        hint=_replan_hint(manifest_path, plan_path),
    )


def _manifest_moved(document: Mapping[str, Any], digest: str, manifest_path: str) -> list[str]:
    planned, planned_path = document["manifest"]["digest"], document["manifest"]["path"]
    if planned == digest:
        return []
    if manifest_path == planned_path:
        what = f"the manifest {manifest_path!r} changed"
    else:
        what = (
            f"the manifest {manifest_path!r} differs from {planned_path!r}, the one the plan "
            "was made from"
        )
    return [
        f"{what} (digest {_short(planned)} -> {_short(digest)}). The digest covers every byte "
        "of the file, so any edit, a comment or a blank line included, makes a saved plan stale"
    ]


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "(none)"


def _inventory_moved(document: Mapping[str, Any], inventory: Inventory) -> list[str]:
    recorded = document["inventory"]
    if _is_unwritten(recorded["serial"], recorded["empty"]):
        # A backend returns a new random lineage on each read of an unwritten state, so
        # lineages cannot match here. Such a plan is current while the state stays unwritten.
        if _is_unwritten(inventory.serial, inventory.is_empty):
            return []
        return [
            "the plan was made against an empty inventory, which is now at serial "
            f"{inventory.serial} with {plural(len(inventory.entries), 'account')}; another "
            "apply ran since, possibly of this plan"
        ]
    if recorded["lineage"] != inventory.lineage:
        return [
            f"the inventory was replaced (lineage {recorded['lineage']!r} -> {inventory.lineage!r})"
        ]
    if recorded["empty"] and not inventory.is_empty:
        return [
            "the plan was made against an empty inventory, which now holds "
            f"{plural(len(inventory.entries), 'account')}; another apply ran since, possibly of "
            "this plan"
        ]
    if recorded["serial"] != inventory.serial:
        return [
            f"the inventory changed since the plan was made (serial {recorded['serial']} -> "
            f"{inventory.serial}); the plan may already have been applied"
        ]
    return []


def _is_unwritten(serial: int, empty: bool) -> bool:
    """Return True for a state never written: serial 0 and no entries."""
    return serial == 0 and empty


def _secret_moved(observation: Mapping[str, Any], secret: SecretVersion | None) -> list[str]:
    if secret is None:
        return []
    planned, current = observation["vault_version"], secret.version
    if planned == current:
        return []
    return [
        f"Vault secret {observation['vault_path']!r} of account {observation['account']!r} "
        f"moved from version {planned} to {current}"
    ]


def _grant_appeared(
    observation: Mapping[str, Any], by_key: Mapping[tuple[str, str], list[str]]
) -> list[str]:
    """Return a difference when a grant now matches an account that had none."""
    key = (observation["provider"], observation["email"].casefold())
    appeared = sorted(by_key.get(key, ()))
    if not appeared:
        return []
    return [f"a grant appeared for account {observation['account']!r}: {', '.join(appeared)}"]


def _grant_moved(observation: Mapping[str, Any], by_id: Mapping[str, Grant]) -> list[str]:
    account, grant_id = observation["account"], observation["grant_id"]
    grant = by_id.get(grant_id)
    if grant is None:
        return [f"grant {grant_id} of account {account!r} no longer exists"]
    differences = []
    if grant.status.value != observation["grant_status"]:
        differences.append(f"status {observation['grant_status']} -> {grant.status.value}")
    if grant.updated_at != observation["grant_updated_at"]:
        differences.append(f"updated_at {observation['grant_updated_at']} -> {grant.updated_at}")
    if not differences:
        return []
    return [f"grant {grant_id} of account {account!r} changed: {', '.join(differences)}"]
