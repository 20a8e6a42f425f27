"""The planner: a pure function from (manifest, inventory, Vault metadata, grants) to a `Plan`.

It sits between the input readers (manifest loader, Vault metadata, the Nylas grant list, the
state backend) and everything that consumes a plan (renderers, the plan file, the executor).
It performs no I/O, reads no clock and draws no random numbers: the same inputs always give
the same `Plan`, with changes sorted by account name. Its one effect on the interpreter
concerns the cyclic garbage collector, which is paused while the planner runs. Every tracked
object then moves to the collector's oldest generation (see `reconciler.gc_pause`).

Decisions the executor relies on:
- An account with an account-level error (secret unusable, duplicate grants, provider or
  email changed, scopes a reconnect cannot add, protected delete, unmanaged grant to delete)
  gets no change, only the error. Plan-wide errors (too many deletes, deleting everything)
  keep the delete changes they refer to, so reviewers see what was refused.
- An adopt's `after["vault_version"]` is the current Vault version: the executor records it
  as the version sent, so a later rotation is detected. No secret is sent on adopt.
- A no-op may still differ between `before` and `after` (for example `protect`); the
  executor records `after` in the inventory for such accounts.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.gc_pause import collector_paused
from reconciler.grammar import plural
from reconciler.model import (
    Account,
    Action,
    Change,
    Ensure,
    ErrorCode,
    Grant,
    Inventory,
    InventoryEntry,
    Manifest,
    Observation,
    Plan,
    PlanError,
    SecretState,
    SecretVersion,
)
from reconciler.planner_attrs import GrantIndex, matches_of
from reconciler.planner_decide import decide_present
from reconciler.planner_removal import decide_absent, decide_inventory_only
from reconciler.planner_safety import check_deletes, protected_delete_error, secret_error

# Sort keys as C callables, which cost less than a lambda per item on large plans.
_BY_NAME = operator.attrgetter("name")
_BY_ACCOUNT = operator.attrgetter("account")


@dataclass(frozen=True)
class PlanOptions:
    """Choices from the command line that shape a plan.

    `targets` and `excludes` are fnmatch globs on account names; `allow_deletes` replaces
    `policy.max_deletes` when set; `retry_quarantined` plans quarantined accounts again.
    """

    replace: frozenset[str] = frozenset()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    allow_deletes: int | None = None
    retry_quarantined: bool = False


@dataclass(frozen=True)
class _Inputs:
    """Everything `make_plan` was given, with the grants indexed."""

    manifest: Manifest
    inventory: Inventory
    secrets: Mapping[str, SecretVersion]
    index: GrantIndex
    options: PlanOptions


@dataclass
class _Draft:
    """The plan under construction."""

    changes: list[Change] = field(default_factory=list)
    errors: list[PlanError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    blocked_deletes: list[str] = field(default_factory=list)


def make_plan(
    manifest: Manifest,
    inventory: Inventory,
    secrets: Mapping[str, SecretVersion],
    grants: Sequence[Grant],
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """Plan the changes that make the grants match the manifest.

    `secrets` maps account names to their Vault metadata; an account without an entry is
    treated as having a missing secret. `grants` is every grant of the application.
    It relies on account names and emails (compared case-insensitively) being unique, which
    `Manifest` ensures.
    """
    with collector_paused():
        return _make_plan(manifest, inventory, secrets, grants, options)


def _make_plan(
    manifest: Manifest,
    inventory: Inventory,
    secrets: Mapping[str, SecretVersion],
    grants: Sequence[Grant],
    options: PlanOptions,
) -> Plan:
    inputs = _Inputs(manifest, inventory, secrets, GrantIndex(grants), options)
    draft = _Draft()
    # None selects every account. Without --target or --exclude no set of names is built:
    # at 100,000 accounts each such set took about 2% of the planner's time.
    selected: set[str] | None = None
    if options.targets or options.excludes:
        names = _all_names(manifest, inventory)
        selected = _select(names, options, draft.warnings)
        draft.errors += _unmatched_targets(names, options)
    if options.replace:
        _check_replace(manifest, options, draft.errors)

    accounts = sorted(manifest.accounts, key=_BY_NAME)
    if selected is not None:
        accounts = [account for account in accounts if account.name in selected]
    # Each account's inventory entry, Vault metadata and grants are looked up in passes of
    # their own before planning. In such a tight pass the processor overlaps the cache misses
    # of many lookups, which took 6% off the planner's time at 100,000 accounts.
    account_names = list(map(_BY_NAME, accounts))
    found_entries = list(map(inventory.entries.get, account_names))
    found_secrets = list(map(inputs.secrets.get, account_names))
    found_grants = inputs.index.claim_all(accounts)
    for account, entry, secret, grants_found in zip(
        accounts, found_entries, found_secrets, found_grants, strict=True
    ):
        _plan_account(
            inputs,
            account,
            draft,
            entry=entry,
            found_secret=secret,
            matches=matches_of(grants_found),
        )
    # Inventory entries whose account left the manifest, and `removed:` entries, are planned
    # after the loop, and a partial plan has to look for them. Without any of these, nothing
    # is added after the loop, so changes and observations are already in account name order.
    # Counting the entries found (names are unique) spares a set of every manifest name.
    entries_seen = sum(map(operator.is_not, found_entries, itertools.repeat(None)))
    nothing_left_over = (
        selected is None and entries_seen == len(inventory.entries) and not manifest.removed
    )
    if not nothing_left_over:
        _plan_inventory_only(inputs, selected, draft)

    limit = (
        options.allow_deletes if options.allow_deletes is not None else manifest.policy.max_deletes
    )
    draft.errors += check_deletes(
        draft.changes, draft.blocked_deletes, inventory, limit, options.allow_deletes is not None
    )
    return Plan(
        changes=tuple(
            draft.changes if nothing_left_over else sorted(draft.changes, key=_BY_ACCOUNT)
        ),
        errors=tuple(sorted(draft.errors, key=_error_key)),
        warnings=tuple(draft.warnings),
        unmanaged=_unmanaged(manifest, inventory, inputs.index),
        observations=tuple(
            draft.observations if nothing_left_over else sorted(draft.observations, key=_BY_ACCOUNT)
        ),
        manifest_digest=manifest.digest,
        inventory_lineage=inventory.lineage,
        inventory_serial=inventory.serial,
        inventory_empty=inventory.is_empty,
        partial=bool(options.targets or options.excludes),
    )


def _error_key(error: PlanError) -> tuple[str, str]:
    # Plan-wide errors (no account) sort first.
    return (error.account or "", error.code.value)


def _all_names(manifest: Manifest, inventory: Inventory) -> set[str]:
    # Left unsorted: no caller depends on the order, and sorting 100,000 names took a
    # twentieth of the planner's time at that size.
    names = {account.name for account in manifest.accounts}
    names |= set(inventory.entries)
    names |= {removed.name for removed in manifest.removed}
    return names


def _select(names: Iterable[str], options: PlanOptions, warnings: list[str]) -> set[str]:
    """Return the account names the plan considers, warning about a partial plan."""
    names = list(names)
    selected = set(names)
    if options.targets:
        selected = {n for n in names if any(fnmatch.fnmatchcase(n, t) for t in options.targets)}
    for pattern in options.excludes:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            warnings.append(f"--exclude {pattern!r} matches no account.")
        selected = {name for name in selected if not fnmatch.fnmatchcase(name, pattern)}
    if options.targets or options.excludes:
        left_out = len(names) - len(selected)
        warnings.insert(
            0,
            f"This plan is partial: it considers {len(selected)} of "
            f"{plural(len(names), 'account')}, and --target/--exclude left out {left_out}. "
            "Their drift is not shown.",
        )
    return selected


def _unmatched_targets(names: Collection[str], options: PlanOptions) -> list[PlanError]:
    """Return an error for each --target glob that matches no account.

    A mistyped target would otherwise plan nothing and report "no changes", which a CI job
    would take for success.
    """
    errors = []
    for pattern in options.targets:
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            continue
        close = difflib.get_close_matches(pattern, names, n=3)
        suggestion = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        errors.append(
            PlanError(
                ErrorCode.UNKNOWN_ACCOUNT,
                None,
                f"--target {pattern!r} matches no account in the manifest or the inventory.",
                f"{suggestion}check the name or glob against the manifest's account names",
            )
        )
    return errors


def _check_replace(manifest: Manifest, options: PlanOptions, errors: list[PlanError]) -> None:
    present = {a.name for a in manifest.accounts if a.ensure is Ensure.PRESENT}
    for name in sorted(options.replace - present):
        errors.append(
            PlanError(
                ErrorCode.UNKNOWN_ACCOUNT,
                name,
                f"--replace names {name!r}, which is not an account with `ensure: present` "
                "in the manifest.",
                "check the spelling against the manifest's account names",
            )
        )


def _plan_account(
    inputs: _Inputs,
    account: Account,
    draft: _Draft,
    *,
    entry: InventoryEntry | None,
    found_secret: SecretVersion | None,
    matches: Sequence[Grant],
) -> None:
    """Plan one manifest account, recording what was observed for it.

    `entry` and `found_secret` are the account's inventory entry and Vault metadata, if any.
    `matches` are the grants with its provider and email, sorted by id.
    """
    secret = found_secret or SecretVersion(
        path=account.secret_path, state=SecretState.MISSING, detail="no metadata was read"
    )
    if account.ensure is Ensure.ABSENT:
        decision = decide_absent(account, entry, matches, inputs.index)
    else:
        decision = decide_present(
            account,
            entry,
            secret,
            matches,
            inputs.index,
            lineage=inputs.inventory.lineage,
            replace_names=inputs.options.replace,
            retry_quarantined=inputs.options.retry_quarantined,
        )

    draft.observations.append(_observe(account, secret, decision.grant))
    draft.warnings += decision.warnings
    if decision.error is not None:
        draft.errors.append(decision.error)
        return
    change = decision.change
    if change is None:
        return

    if _needs_secret_check(change, secret):
        draft.errors.append(secret_error(inputs.manifest, account, secret))
        return
    if change.action is Action.DELETE and _is_protected(entry, account):
        draft.errors.append(
            protected_delete_error(account.name, change.grant_id or "", change.reason)
        )
        draft.blocked_deletes.append(account.name)
        return
    draft.changes.append(change)


def _needs_secret_check(change: Change, secret: SecretVersion) -> bool:
    """Return whether `secret`'s state blocks `change`.

    Connect and reconnect send the secret, so anything but `present` blocks them. Other
    changes only need to know the current version, so only a denied read blocks them.
    """
    if change.action in (Action.CONNECT, Action.RECONNECT):
        return secret.state is not SecretState.PRESENT
    if change.action in (Action.ADOPT, Action.NOOP) and change.vault_path is not None:
        return secret.state is SecretState.DENIED
    return False


def _is_protected(entry: InventoryEntry | None, account: Account | None) -> bool:
    return bool((entry and entry.protect) or (account and account.protect))


def _observe(account: Account, secret: SecretVersion, grant: Grant | None) -> Observation:
    # `_value_` is the attribute behind `.value`, read directly because this runs per account
    # and `.value` is a slow Python-level descriptor on Python 3.11.
    return Observation(
        account=account.name,
        vault_path=secret.path or account.secret_path,
        vault_version=secret.version,
        grant_id=grant.id if grant else None,
        grant_status=grant.status._value_ if grant else None,
        grant_updated_at=grant.updated_at if grant else None,
        provider=account.provider._value_,
        email=account.email,
    )


def _plan_inventory_only(inputs: _Inputs, selected: set[str] | None, draft: _Draft) -> None:
    """Plan inventory entries whose account is no longer in `accounts:`.

    `selected` contains the account names the plan considers. None selects every account.
    """
    manifest, inventory, index = inputs.manifest, inputs.inventory, inputs.index
    in_manifest = {account.name for account in manifest.accounts}
    removed = {item.name: item for item in manifest.removed}
    left = [name for name in inventory.entries if name not in in_manifest]
    for name in sorted(left):
        if selected is not None and name not in selected:
            continue
        entry = inventory.entries[name]
        grant = index.by_id(entry.grant_id)
        change = decide_inventory_only(entry, removed.get(name), grant)
        draft.observations.append(_observe_entry(entry, grant, inputs.secrets.get(name)))
        if change.action is Action.DELETE and entry.protect:
            draft.errors.append(protected_delete_error(name, entry.grant_id, change.reason))
            draft.blocked_deletes.append(name)
            continue
        draft.changes.append(change)
    for name in sorted(removed):
        if name in inventory.entries or name in in_manifest:
            continue
        if selected is None or name in selected:
            draft.warnings.append(
                f"{name!r} is listed under `removed:` but grantctl does not manage it, so "
                "there is nothing to do. The entry can be dropped from the manifest."
            )


def _observe_entry(
    entry: InventoryEntry, grant: Grant | None, secret: SecretVersion | None
) -> Observation:
    # Apply reads the metadata of inventory-only entries too, so the stale-plan check
    # compares this version with the current one.
    return Observation(
        account=entry.name,
        vault_path=entry.vault_path,
        vault_version=secret.version if secret else None,
        grant_id=grant.id if grant else None,
        grant_status=grant.status.value if grant else None,
        grant_updated_at=grant.updated_at if grant else None,
        provider=entry.provider,
        email=entry.email,
    )


def _unmanaged(manifest: Manifest, inventory: Inventory, index: GrantIndex) -> tuple[Grant, ...]:
    """Return grants that match no account and no inventory entry, sorted."""
    if index.claimed == index.size:
        # Every grant matched a planned account by email, as in a steady estate.
        return ()
    # Otherwise every manifest account, including those --target or --exclude left out of
    # the plan, claims its email again, by popping it from a copy of the email index. What is
    # left matches no account.
    unclaimed = {provider: dict(emails) for provider, emails in index.by_email.items()}
    for account in manifest.accounts:
        emails = unclaimed.get(account.provider._value_)
        if emails:
            emails.pop(account.email_key, None)
    left: list[Grant] = []
    for emails in unclaimed.values():
        for found in emails.values():
            if isinstance(found, tuple):
                left += found
            else:
                left.append(found)
    if not left:
        return ()
    managed_ids = {entry.grant_id for entry in inventory.entries.values()}
    unmanaged = [grant for grant in left if grant.id not in managed_ids]
    return tuple(sorted(unmanaged, key=lambda grant: (grant.provider, grant.email_key, grant.id)))
