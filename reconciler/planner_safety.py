"""Plan-wide safety checks and the errors for secrets the planner cannot use.

Part of the pure planner: after `planner.make_plan` has decided every account's change, the
checks here turn what apply must not do (too many deletes, deleting every managed account)
into `PlanError` values. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reconciler.grammar import plural
from reconciler.model import (
    Account,
    Action,
    Change,
    ErrorCode,
    Inventory,
    Manifest,
    PlanError,
    Reason,
    SecretState,
    SecretVersion,
)

_SECRET_CODES = {
    SecretState.MISSING: ErrorCode.SECRET_MISSING,
    SecretState.DELETED: ErrorCode.SECRET_DELETED,
    SecretState.DESTROYED: ErrorCode.SECRET_DESTROYED,
    SecretState.DENIED: ErrorCode.SECRET_DENIED,
}


def metadata_route(manifest: Manifest, path: str) -> str:
    """Return the Vault API path whose read capability the metadata lookup needs."""
    mount = manifest.vault.mount
    if manifest.vault.kv_version == 2:
        return f"{mount}/metadata/{path}"
    return f"{mount}/{path}"


def secret_error(manifest: Manifest, account: Account, secret: SecretVersion) -> PlanError:
    """Return the error for an account whose secret is not in the `present` state."""
    path = secret.path or account.secret_path
    detail = f" ({secret.detail})" if secret.detail else ""
    version = f"version {secret.version}" if secret.version is not None else "the current version"
    if secret.state is SecretState.MISSING:
        message = f"Vault secret {path!r} does not exist{detail}."
        next_step = f"write the account's credentials to {path!r} in mount {manifest.vault.mount!r}"
    elif secret.state is SecretState.DELETED:
        message = f"{version.capitalize()} of Vault secret {path!r} is deleted{detail}."
        next_step = f"undelete that version of {path!r} or write a new version"
    elif secret.state is SecretState.DESTROYED:
        message = f"{version.capitalize()} of Vault secret {path!r} is destroyed{detail}."
        next_step = f"write a new version of {path!r}"
    else:
        message = (
            f"Reading the metadata of Vault secret {path!r} was denied{detail}, so the plan "
            "cannot tell whether the secret exists or was rotated."
        )
        next_step = f"grant the plan's Vault identity `read` on {metadata_route(manifest, path)!r}"
    return PlanError(_SECRET_CODES[secret.state], account.name, message, next_step)


def check_deletes(
    changes: Sequence[Change],
    blocked: Collection[str],
    inventory: Inventory,
    max_deletes: int,
    overridden: bool,
) -> list[PlanError]:
    """Return the plan-wide errors about deletes.

    `blocked` names accounts whose delete was already refused (protected), which still
    count towards "every managed account" but not towards the delete limit, because they
    will never run.
    """
    errors: list[PlanError] = []
    deletes = [change for change in changes if change.action is Action.DELETE]
    if len(deletes) > max_deletes:
        limit_source = "--allow-deletes" if overridden else "policy.max_deletes"
        errors.append(
            PlanError(
                ErrorCode.TOO_MANY_DELETES,
                None,
                f"The plan deletes {plural(len(deletes), 'grant')}, more than {limit_source} "
                f"({max_deletes}) allows.",
                f"review the deletes, then run plan again with --allow-deletes {len(deletes)}",
            )
        )
    doomed = {change.account for change in deletes} | set(blocked)
    vanished = any(change.reason is Reason.REMOVED_FROM_MANIFEST for change in deletes)
    if not inventory.is_empty and vanished and set(inventory.entries) <= doomed:
        errors.append(
            PlanError(
                ErrorCode.DELETES_EVERYTHING,
                None,
                f"The plan deletes every one of the {len(inventory.entries)} managed accounts, "
                "some only because they are missing from the manifest. An empty or "
                "truncated manifest looks like this.",
                "check that the manifest is complete. To really delete them all, mark each "
                "account `ensure: absent` or list it under `removed:` with `destroy: true`",
            )
        )
    return errors


def protected_delete_error(account: str, grant_id: str, reason: Reason) -> PlanError:
    """Return the error for a delete of an account that the inventory records as protected."""
    why = {
        Reason.ENSURE_ABSENT: "it is marked `ensure: absent`",
        Reason.REMOVED_FROM_MANIFEST: "it was removed from the manifest",
        Reason.REMOVED_DESTROY: "it is listed under `removed:` with `destroy: true`",
    }.get(reason, "the plan deletes it")
    # The inventory remembers protection, so only an applied `protect: false` releases it.
    if reason is Reason.ENSURE_ABSENT:
        next_step = (
            f"set `protect: false` on {account!r} in a commit of its own, apply it, then delete"
        )
    else:
        next_step = (
            f"put {account!r} back in the manifest with `protect: false`, apply that commit, "
            "then remove it again"
        )
    return PlanError(
        ErrorCode.PROTECTED_DELETE,
        account,
        f"Account {account!r} (grant {grant_id}) is protected, so it cannot be deleted although "
        f"{why}.",
        next_step,
    )
