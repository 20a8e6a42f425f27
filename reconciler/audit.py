"""Audit: the health of every account, read-only, from the same inputs as the planner.

Part of the pure core: `make_audit` runs the planner on the observed inputs and reads each
account's health off the change the planner would make, so plan and audit can never disagree
about what drift is. It performs no I/O; `reconciler.workflow` gathers the inputs and
`reconciler.render.audit` renders the report.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.model import (
    Action,
    Change,
    ErrorCode,
    Grant,
    Inventory,
    Manifest,
    Plan,
    PlanError,
    Reason,
    SecretVersion,
)


class Health(str, enum.Enum):
    """The health of one account, worst first in `SEVERITY`."""

    HEALTHY = "healthy"
    INVALID = "invalid"  # the grant exists but is expired or revoked
    MISSING = "missing"  # no grant, although the manifest wants one
    ROTATION_PENDING = "rotation_pending"  # Vault contains a newer secret than the one sent
    SCOPE_DRIFT = "scope_drift"  # the grant lacks scopes the manifest requires
    EMAIL_DRIFT = "email_drift"  # the grant's email is not the manifest's
    QUARANTINED = "quarantined"  # failed too often; apply skips it until retried
    CHANGE_PENDING = "change_pending"  # any other planned change (adopt, delete, settings)
    ERROR = "error"  # a problem apply cannot fix, such as a missing secret


# Reasons whose change maps straight onto one health value.
_HEALTH_BY_REASON: Mapping[Reason, Health] = {
    Reason.IN_SYNC: Health.HEALTHY,
    Reason.NOT_CONNECTED: Health.MISSING,
    Reason.GRANT_DELETED_OUTSIDE: Health.MISSING,
    Reason.GRANT_INVALID: Health.INVALID,
    Reason.SECRET_ROTATED: Health.ROTATION_PENDING,
    Reason.SCOPES_MISSING: Health.SCOPE_DRIFT,
    Reason.QUARANTINED: Health.QUARANTINED,
}
_HEALTH_BY_ERROR: Mapping[ErrorCode, Health] = {
    ErrorCode.SCOPES_MISSING: Health.SCOPE_DRIFT,
    ErrorCode.EMAIL_CHANGED: Health.EMAIL_DRIFT,
}


@dataclass(frozen=True)
class AccountHealth:
    """One account's health, why, and what apply would do about it."""

    account: str
    health: Health
    message: str
    action: Action | None = None
    reason: Reason | None = None
    provider: str = ""
    email: str = ""
    grant_id: str | None = None
    next_step: str = ""


@dataclass(frozen=True)
class AuditReport:
    """Every account's health, the unmanaged grants, and plan-wide errors."""

    accounts: tuple[AccountHealth, ...]
    unmanaged: tuple[Grant, ...] = ()
    errors: tuple[PlanError, ...] = ()
    warnings: tuple[str, ...] = ()

    def count(self, health: Health) -> int:
        """Return how many accounts have `health`."""
        return sum(1 for entry in self.accounts if entry.health is health)

    @property
    def has_errors(self) -> bool:
        """True when an account is in error or the inputs had a plan-wide error."""
        return bool(self.errors) or self.count(Health.ERROR) > 0

    @property
    def has_drift(self) -> bool:
        """True when any account is not healthy or an unmanaged grant exists."""
        unhealthy = any(entry.health is not Health.HEALTHY for entry in self.accounts)
        return unhealthy or bool(self.unmanaged)

    @property
    def exit_code(self) -> int:
        """Return 1 on errors, 2 on drift, 0 when everything is healthy."""
        if self.has_errors:
            return EXIT_ERROR
        if self.has_drift:
            return EXIT_CHANGES
        return EXIT_OK


def make_audit(
    manifest: Manifest,
    inventory: Inventory,
    secrets: Mapping[str, SecretVersion],
    grants: Sequence[Grant],
    plan: Plan,
) -> AuditReport:
    """Build the audit report from the planner's inputs and the plan made from them.

    `plan` must come from `make_plan` on exactly these inputs with default options (no
    target filter, no replacements), so every account appears in it.
    """
    del secrets  # the plan already reflects them; kept so the signature matches the planner's
    grants_by_id = {grant.id: grant for grant in grants}
    errors_by_account: dict[str, list[PlanError]] = {}
    for error in plan.errors:
        if error.account is not None:
            errors_by_account.setdefault(error.account, []).append(error)

    accounts = []
    for change in plan.changes:
        entry = inventory.entries.get(change.account)
        quarantined = entry is not None and entry.quarantined
        problems = errors_by_account.pop(change.account, [])
        health = _health_of(change, problems, quarantined)
        grant = grants_by_id.get(change.grant_id or "")
        accounts.append(_describe(change, health, problems, grant))

    # Errors for accounts without a change (the planner skipped them) still count.
    for name, problems in sorted(errors_by_account.items()):
        accounts.append(_describe_error_only(name, problems, manifest))

    return AuditReport(
        accounts=tuple(sorted(accounts, key=lambda item: item.account)),
        unmanaged=plan.unmanaged,
        errors=tuple(error for error in plan.errors if error.account is None),
        warnings=plan.warnings,
    )


def _health_of(change: Change, problems: Sequence[PlanError], quarantined: bool) -> Health:
    if problems:
        return _HEALTH_BY_ERROR.get(problems[0].code, Health.ERROR)
    if quarantined or change.reason is Reason.QUARANTINED:
        return Health.QUARANTINED
    health = _HEALTH_BY_REASON.get(change.reason)
    if health is not None:
        return health
    return Health.HEALTHY if change.action is Action.NOOP else Health.CHANGE_PENDING


def _describe(
    change: Change, health: Health, problems: Sequence[PlanError], grant: Grant | None
) -> AccountHealth:
    message = change.message
    next_step = ""
    if problems:
        message = "; ".join(problem.message for problem in problems)
        next_step = problems[0].next_step
    elif health is not Health.HEALTHY:
        next_step = "run `grantctl plan` and `grantctl apply` to fix it"
    return AccountHealth(
        account=change.account,
        health=health,
        message=message,
        action=change.action,
        reason=change.reason,
        provider=change.provider,
        email=grant.email if grant is not None else change.email,
        grant_id=change.grant_id,
        next_step=next_step,
    )


def _describe_error_only(
    name: str, problems: Sequence[PlanError], manifest: Manifest
) -> AccountHealth:
    account = manifest.account(name)
    return AccountHealth(
        account=name,
        health=_HEALTH_BY_ERROR.get(problems[0].code, Health.ERROR),
        message="; ".join(problem.message for problem in problems),
        provider=account.provider.value if account is not None else "",
        email=account.email if account is not None else "",
        next_step=problems[0].next_step,
    )
