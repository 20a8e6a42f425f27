"""Audit: the health of every account, read-only, from the same inputs as the planner.

Part of the pure core: `make_audit` runs the planner on the observed inputs and reads each
account's health off the change the planner would make, so plan and audit can never disagree
about what drift is. It performs no I/O; `reconciler.workflow` gathers the inputs and
`reconciler.render.audit` renders the report.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, ConfigError
from reconciler.model import (
    Account,
    Action,
    Change,
    ErrorCode,
    Grant,
    Inventory,
    InventoryEntry,
    Manifest,
    Plan,
    PlanError,
    Reason,
    SecretVersion,
)
from reconciler.planner_attrs import missing_scopes


class Health(str, enum.Enum):
    """The health of one account."""

    HEALTHY = "healthy"
    INVALID = "invalid"  # the grant exists but is expired or revoked
    MISSING = "missing"  # no grant, although the manifest wants one
    ROTATION_PENDING = "rotation_pending"  # Vault contains a newer secret than the one sent
    SCOPE_DRIFT = "scope_drift"  # the grant lacks scopes the manifest requires
    EMAIL_DRIFT = "email_drift"  # the grant's email is not the manifest's
    QUARANTINED = "quarantined"  # failed too often; apply skips it until retried
    CHANGE_PENDING = "change_pending"  # any other planned change (adopt, delete, settings)
    ERROR = "error"  # a problem apply cannot fix, such as a missing secret


# The `--fail-on` vocabulary: every status that counts as drift, plus unmanaged grants.
# `error` is not in it because account errors and plan-wide errors always exit 1.
UNMANAGED = "unmanaged"
DRIFT_STATUSES: tuple[str, ...] = (
    *(health.value for health in Health if health not in (Health.HEALTHY, Health.ERROR)),
    UNMANAGED,
)

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
    """One account's health, the sentence that explains it, and what apply would do.

    `detail` is what the audit found, in one or two sentences. `planned_change` is the
    planner's message for the change apply would make, "" when there is none.
    """

    account: str
    health: Health
    detail: str
    action: Action | None = None
    reason: Reason | None = None
    provider: str = ""
    email: str = ""
    grant_id: str | None = None
    next_step: str = ""
    planned_change: str = ""


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
        return self.drift_found(DRIFT_STATUSES)

    def drift_found(self, fail_on: Collection[str]) -> bool:
        """True when an account has a status in `fail_on`, or `fail_on` contains
        `unmanaged` and an unmanaged grant exists."""
        if UNMANAGED in fail_on and self.unmanaged:
            return True
        return any(entry.health.value in fail_on for entry in self.accounts)

    @property
    def exit_code(self) -> int:
        """Return 1 on errors, 2 on drift of any status, 0 when everything is healthy."""
        return self.exit_code_for(DRIFT_STATUSES)

    def exit_code_for(self, fail_on: Collection[str]) -> int:
        """Return 1 on errors, 2 when drift of a status in `fail_on` exists, else 0."""
        if self.has_errors:
            return EXIT_ERROR
        if self.drift_found(fail_on):
            return EXIT_CHANGES
        return EXIT_OK


def parse_fail_on(values: Iterable[str]) -> frozenset[str]:
    """Return the statuses named in `values`, each a comma-separated list.

    Raises `ConfigError` listing the valid statuses when a name is not one of them.
    """
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(DRIFT_STATUSES))
    if unknown:
        raise ConfigError(
            f"invalid --fail-on status {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(DRIFT_STATUSES)}",
            hint="name statuses from the valid list; errors exit 1 whatever --fail-on selects",
        )
    if not names:
        raise ConfigError(
            "--fail-on needs at least one status", hint=f"valid: {', '.join(DRIFT_STATUSES)}"
        )
    return frozenset(names)


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
        facts = _Facts(
            account=manifest.account(change.account),
            entry=entry,
            grant=grants_by_id.get(change.grant_id or ""),
            secret=secrets.get(change.account),
            manifest_path=manifest.path,
        )
        accounts.append(_describe(change, health, problems, facts))

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


@dataclass(frozen=True)
class _Facts:
    """The audit's observations of one account; a field is None when nothing was found."""

    account: Account | None
    entry: InventoryEntry | None
    grant: Grant | None
    secret: SecretVersion | None
    manifest_path: str


def _describe(
    change: Change, health: Health, problems: Sequence[PlanError], facts: _Facts
) -> AccountHealth:
    if problems:
        detail = " ".join(problem.message for problem in problems)
        next_step = problems[0].next_step
    else:
        detail = _detail(change, health, facts)
        next_step = _next_step(change, health, facts)
    planned = "" if change.action is Action.NOOP else change.message
    return AccountHealth(
        account=change.account,
        health=health,
        detail=detail,
        action=change.action,
        reason=change.reason,
        provider=change.provider,
        email=facts.grant.email if facts.grant is not None else change.email,
        grant_id=change.grant_id,
        next_step=next_step,
        planned_change=planned,
    )


def _detail(change: Change, health: Health, facts: _Facts) -> str:
    """Describe what the audit found in the words of the status, else use the plan's."""
    builder = _DETAIL_BUILDERS.get(health)
    return change.message if builder is None else builder(change, facts)


def _invalid_detail(change: Change, facts: _Facts) -> str:
    del facts
    return (
        f"Grant {change.grant_id} for {change.email} is invalid: the provider expired or "
        "revoked its token, so Nylas cannot sync the mailbox."
    )


def _missing_detail(change: Change, facts: _Facts) -> str:
    if change.reason is Reason.GRANT_DELETED_OUTSIDE and facts.entry is not None:
        return (
            f"Grant {facts.entry.grant_id} recorded in the inventory no longer exists in "
            "Nylas, so it was deleted outside grantctl."
        )
    return f"No {change.provider} grant exists for {change.email}."


def _rotation_detail(change: Change, facts: _Facts) -> str:
    sent = facts.entry.vault_version_sent if facts.entry is not None else None
    if facts.secret is None or facts.secret.version is None or sent is None:
        return change.message
    return (
        f"Vault secret {facts.secret.path!r} is at version {facts.secret.version}, but grant "
        f"{change.grant_id} was connected with version {sent}."
    )


def _scope_detail(change: Change, facts: _Facts) -> str:
    if facts.account is None or facts.grant is None:
        return change.message
    absent = ", ".join(missing_scopes(facts.account, facts.grant))
    return (
        f"Grant {change.grant_id} lacks scopes {absent} that the manifest requires. "
        "grantctl never sent its token, so the current Vault token may carry them."
    )


def _quarantine_detail(change: Change, facts: _Facts) -> str:
    entry = facts.entry
    if entry is None:
        return change.message
    detail = f"The account is quarantined after {entry.failures} failed applies in a row."
    if entry.last_error:
        detail += f" The last error was: {entry.last_error.rstrip('.')}."
    if change.action is Action.NOOP:
        return detail + " Apply skips it until its Vault secret changes."
    return detail + f" The next apply retries the {change.action.value}."


def _pending_detail(change: Change, facts: _Facts) -> str:
    del facts
    return f"The plan has a pending {change.action.value}. {change.message}"


_DETAIL_BUILDERS: Mapping[Health, Callable[[Change, _Facts], str]] = {
    Health.INVALID: _invalid_detail,
    Health.MISSING: _missing_detail,
    Health.ROTATION_PENDING: _rotation_detail,
    Health.SCOPE_DRIFT: _scope_detail,
    Health.QUARANTINED: _quarantine_detail,
    Health.CHANGE_PENDING: _pending_detail,
}


def _next_step(change: Change, health: Health, facts: _Facts) -> str:
    if health is Health.HEALTHY:
        return ""
    manifest = shlex.quote(facts.manifest_path)
    if change.action is Action.NOOP:
        secret = f"{facts.secret.path!r}" if facts.secret is not None else "the account's secret"
        return (
            f"fix the cause of the last error, then store a new version of {secret} "
            f"or run `grantctl apply {manifest} --retry-quarantined`"
        )
    return (
        f"review the {change.action.value} with `grantctl plan {manifest}`, then run "
        f"`grantctl apply {manifest}`"
    )


def _describe_error_only(
    name: str, problems: Sequence[PlanError], manifest: Manifest
) -> AccountHealth:
    account = manifest.account(name)
    return AccountHealth(
        account=name,
        health=_HEALTH_BY_ERROR.get(problems[0].code, Health.ERROR),
        detail=" ".join(problem.message for problem in problems),
        provider=account.provider.value if account is not None else "",
        email=account.email if account is not None else "",
        next_step=problems[0].next_step,
    )
