"""One round of `grantctl reconcile`: plan and apply under the state lock, then report health.

`reconciler.reconcile` schedules rounds and imports no client code; this module builds the
round from `reconciler.workflow`. A round differs from `grantctl apply` in two ways, both so
that one broken account cannot stall a controller:
- changes of accounts that have a plan error (a missing secret, a protected delete, ...) are
  left out and the other accounts' changes are applied; plan-wide errors (too many deletes,
  a manifest that would delete everything) still block the whole round;
- no confirmation is asked, as with `grantctl apply --auto-approve`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from reconciler.audit import AuditReport
from reconciler.errors import ReconcilerError
from reconciler.executor import ApplyOptions, apply_plan
from reconciler.metrics import AccountHealth, AuditSummary
from reconciler.model import ApplyResult, Grant, Outcome, Plan
from reconciler.reconcile import RoundResult
from reconciler.render.common import quarantined_accounts
from reconciler.secrets import REDACTOR
from reconciler.workflow import PlanInputs, audit_from_inputs, gather_inputs, plan_from_inputs
from reconciler.workflow_clients import Clients, load_checked_manifest, open_clients
from reconciler.workflow_settings import RunSettings

LOG = logging.getLogger(__name__)
LOCK_OPERATION = "reconcile"


def audit_summary(
    report: AuditReport, grants: Sequence[Grant], *, finished_at: float, duration_s: float
) -> AuditSummary:
    """Reduce an audit report and the grants it saw to what the metrics file reports."""
    accounts = tuple(
        AccountHealth(item.account, item.provider, item.email, item.health)
        for item in report.accounts
    )
    return AuditSummary(
        accounts=accounts,
        unmanaged_grants=len(report.unmanaged),
        grants_by_provider=dict(Counter(grant.provider for grant in grants)),
        finished_at=finished_at,
        duration_s=duration_s,
    )


def applicable_part(plan: Plan) -> Plan:
    """Return `plan` without the changes of accounts that have errors, or an empty plan when
    a plan-wide error blocks every change. The result carries no errors."""
    if any(error.account is None for error in plan.errors):
        return dataclasses.replace(plan, changes=(), errors=())
    blocked = {error.account for error in plan.errors}
    changes = tuple(change for change in plan.changes if change.account not in blocked)
    return dataclasses.replace(plan, changes=changes, errors=())


def make_round(
    manifest_path: str,
    settings: RunSettings,
    *,
    stop: threading.Event,
    wall_clock: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], RoundResult]:
    """Build the `round_fn` that `run_reconcile_loop` calls.

    Each call re-reads the manifest and logs in to Vault again, so a changed manifest or a
    rotated credential takes effect at the next round. `stop` is handed to the executor:
    once set, changes in flight finish and the rest are not attempted.
    """

    def round_fn() -> RoundResult:
        return run_round(manifest_path, settings, stop=stop, wall_clock=wall_clock, clock=clock)

    return round_fn


def run_round(
    manifest_path: str,
    settings: RunSettings,
    *,
    stop: threading.Event,
    wall_clock: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
) -> RoundResult:
    """Run one round: plan and apply under the lock, then build the health summary."""
    started = clock()
    manifest = load_checked_manifest(manifest_path)
    with open_clients(manifest, settings.vault, settings.client) as clients:
        with clients.state.lock(LOCK_OPERATION, timeout_s=settings.lock_timeout_s):
            inputs = gather_inputs(
                manifest, clients.state, clients.grants_api, clients.secret_store
            )
            plan = plan_from_inputs(manifest, inputs, settings.plan)
            _log_plan_errors(plan)
            _log_quarantined(plan)
            result = _apply(applicable_part(plan), clients, inputs, stop)
            _log_failed_changes(result)
        health_inputs: PlanInputs | None = inputs
        if result is not None and any(item.did_change for item in result.results):
            health_inputs = _gather_after_apply(clients)

    audit = None
    if health_inputs is not None:
        audit = audit_summary(
            audit_from_inputs(manifest, health_inputs),
            health_inputs.grants,
            finished_at=wall_clock(),
            duration_s=clock() - started,
        )
    return RoundResult.from_apply(plan, result, audit=audit)


def _apply(
    plan: Plan, clients: Clients, inputs: PlanInputs, stop: threading.Event
) -> ApplyResult | None:
    if not plan.has_changes or stop.is_set():
        return None
    options = ApplyOptions(parallelism=clients.parallelism, stop=stop)
    return apply_plan(
        plan,
        clients.manifest,
        clients.grants_api,
        clients.secret_store,
        clients.state,
        options,
        inventory=inputs.inventory,
    )


def _gather_after_apply(clients: Clients) -> PlanInputs | None:
    # The health reported after a round that changed grants must describe the grants as they
    # are now, so the inputs are read again, outside the lock because nothing is written.
    try:
        return gather_inputs(
            clients.manifest, clients.state, clients.grants_api, clients.secret_store
        )
    except ReconcilerError as error:
        LOG.warning(
            "could not read the grants again after applying, so this round reports no "
            "account health: %s",
            error,
        )
        return None


def _log_plan_errors(plan: Plan) -> None:
    for error in plan.errors:
        if error.account is None:
            LOG.error("plan error blocks every change: %s", error.message)
        else:
            LOG.warning(
                "account %r left out of this round: %s; next step: %s",
                error.account,
                error.message.rstrip("."),
                error.next_step,
            )


def _log_failed_changes(result: ApplyResult | None) -> None:
    """Log one warning per failed change, because a controller has no one reading its output."""
    if result is None:
        return
    for item in result.results:
        if item.outcome is not Outcome.FAILED:
            continue
        LOG.warning(
            "account %r: %s failed: %s (request id %s)",
            item.account,
            item.action.value,
            REDACTOR.redact(item.message),
            item.request_id or "none",
        )


# At most this many quarantined accounts are named in a round's warning, to keep it one line.
MAX_QUARANTINED_NAMED = 20


def _log_quarantined(plan: Plan) -> None:
    """Warn every round about the accounts that the round skips because they are quarantined."""
    names = quarantined_accounts(plan)
    if not names:
        return
    shown = ", ".join(names[:MAX_QUARANTINED_NAMED])
    if len(names) > MAX_QUARANTINED_NAMED:
        shown += f" and {len(names) - MAX_QUARANTINED_NAMED} more"
    noun = "account is" if len(names) == 1 else "accounts are"
    LOG.warning(
        "%d %s quarantined and skipped until a new Vault secret version is stored: %s; run "
        "`grantctl audit MANIFEST` for details, or `grantctl plan MANIFEST --retry-quarantined`",
        len(names),
        noun,
        shown,
    )
