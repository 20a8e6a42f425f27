"""Apply: run a plan's changes against Nylas and record each result in the inventory.

Accounts run concurrently in a bounded thread pool; the changes of one account run in plan
order. A failure of one account does not stop the others. Every finished change goes through
the `Journal`, which stores it in the inventory before it is reported, so a killed apply loses
only the changes in flight. The caller holds the state lock (`apply_with_lock` takes it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from reconciler.errors import NylasError, ReconcilerError, is_account_fault, stops_apply
from reconciler.journal import Journal, JournalRecord
from reconciler.model import (
    Action,
    ApplyResult,
    Change,
    ChangeResult,
    Inventory,
    InventoryEntry,
    Manifest,
    Outcome,
    Plan,
    Reason,
    owner_state,
)
from reconciler.protocols import GrantsAPI, SecretStore, StateBackend
from reconciler.secrets import REDACTOR
from reconciler.verify import ConnectContext, ConnectFailedError, run_connect

LOGGER = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class ApplyOptions:
    """How `apply_plan` runs.

    `stop`, once set, stops new changes from starting: changes in flight finish and are
    recorded, the rest are reported as not attempted. `on_event` receives one `start` and
    one `finish` dict per change (JSON-ready, no secret); `on_result` receives each finished
    `ChangeResult`. Both are called from worker threads, one call at a time. `clock` returns
    Unix time in seconds; tests replace it.
    """

    parallelism: int = 10
    quarantine_after: int = 3
    stop: threading.Event | None = None
    on_event: EventCallback | None = None
    on_result: Callable[[ChangeResult], None] | None = None
    clock: Callable[[], float] = time.time
    # Nylas' clock may trail ours by this many seconds when an unknown connect outcome is
    # settled by comparing a grant's updated_at with the send time.
    clock_skew_s: float = 30.0


def apply_plan(  # noqa: PLR0917  (the positional order is the documented interface)
    plan: Plan,
    manifest: Manifest,
    grants_api: GrantsAPI,
    secret_store: SecretStore,
    state: StateBackend,
    options: ApplyOptions | None = None,
    *,
    inventory: Inventory | None = None,
) -> ApplyResult:
    """Apply every change of `plan` and return their results in plan order.

    The caller must hold the state lock. `inventory` is the inventory as read under that lock;
    when None it is read from `state`. No-op changes are skipped and not reported.
    """
    options = options or ApplyOptions()
    run = _Run(
        plan,
        manifest,
        grants_api=grants_api,
        secret_store=secret_store,
        state=state,
        options=options,
    )
    return run.execute(inventory if inventory is not None else state.read())


def apply_with_lock(  # noqa: PLR0917  (mirrors apply_plan)
    plan: Plan,
    manifest: Manifest,
    grants_api: GrantsAPI,
    secret_store: SecretStore,
    state: StateBackend,
    options: ApplyOptions | None = None,
    *,
    lock_timeout_s: float = 0.0,
) -> ApplyResult:
    """Take the state lock (waiting up to `lock_timeout_s`), then `apply_plan`."""
    with state.lock("apply", timeout_s=lock_timeout_s):
        return apply_plan(plan, manifest, grants_api, secret_store, state, options)


def utc_now_iso(clock: Callable[[], float]) -> str:
    """Return `clock()` as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Run:
    """One apply: the pool, the journal, and the results collected so far."""

    def __init__(
        self,
        plan: Plan,
        manifest: Manifest,
        *,
        grants_api: GrantsAPI,
        secret_store: SecretStore,
        state: StateBackend,
        options: ApplyOptions,
    ) -> None:
        self.plan = plan
        self.manifest = manifest
        self.grants_api = grants_api
        self.secret_store = secret_store
        self.state = state
        self.options = options
        self.stop = options.stop or threading.Event()
        self.changes = [change for change in plan.changes if change.will_change]
        self.observations = {item.account: item for item in plan.observations}
        self.results: dict[int, ChangeResult] = {}
        self._report_lock = threading.Lock()
        self._journal: Journal | None = None
        # Set by the first failure that every later change would repeat (see `stops_apply`).
        self._halt_reason = ""
        self._halt_lock = threading.Lock()

    def execute(self, inventory: Inventory) -> ApplyResult:
        """Run every change and return the results in plan order."""
        inventory = self._create_state(inventory)
        context = self._connect_context(inventory)
        self._journal = Journal(
            self.state,
            inventory,
            quarantine_after=self.options.quarantine_after,
            now=lambda: utc_now_iso(self.options.clock),
            report=self._report,
        )
        try:
            with ThreadPoolExecutor(
                max_workers=max(1, self.options.parallelism), thread_name_prefix="grantctl-apply"
            ) as pool:
                for indexes in self._by_account().values():
                    pool.submit(self._run_account, indexes, context)
        finally:
            self._journal.close()
        return self._result()

    def _create_state(self, inventory: Inventory) -> Inventory:
        """Write an unwritten state once before any connect, so its lineage is durable.

        Connects mark each grant with the inventory's lineage, and an unwritten state has a
        new lineage on every read: without this write, grants connected by an apply whose
        first state write failed would later look owned by another inventory. When this
        write fails, nothing has been sent yet.
        """
        unwritten = inventory.serial == 0 and inventory.is_empty
        sends = any(
            change.action in (Action.CONNECT, Action.RECONNECT) for change in self.plan.changes
        )
        if unwritten and sends:
            return self.state.write(inventory)
        return inventory

    def _connect_context(self, inventory: Inventory) -> ConnectContext:
        known = {item.grant_id for item in self.plan.observations if item.grant_id}
        known |= {grant.id for grant in self.plan.unmanaged}
        known |= {change.grant_id for change in self.plan.changes if change.grant_id}
        known |= {entry.grant_id for entry in inventory.entries.values() if entry.grant_id}
        return ConnectContext(
            grants_api=self.grants_api,
            secret_store=self.secret_store,
            known_grant_ids=frozenset(known),
            clock=self.options.clock,
            clock_skew_s=self.options.clock_skew_s,
            now_iso=lambda: utc_now_iso(self.options.clock),
            owner_state=owner_state(inventory.lineage),
        )

    def _by_account(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for index, change in enumerate(self.changes):
            groups.setdefault(change.account, []).append(index)
        return groups

    def _run_account(self, indexes: list[int], context: ConnectContext) -> None:
        blocked_by = ""
        for index in indexes:
            change = self.changes[index]
            if blocked_by or self._stopping():
                why = blocked_by or self._stop_reason()
                self._record_not_attempted(index, change, why)
                continue
            self._emit({"event": "start", "account": change.account, "action": change.action.value})
            started = time.monotonic()
            record = self._run_change(change, context)
            duration = round(time.monotonic() - started, 3)
            record = replace(record, result=replace(record.result, duration_s=duration))
            assert self._journal is not None
            self._journal.submit(record)
            if record.result.outcome is not Outcome.DONE:
                blocked_by = f"an earlier change of account {change.account!r} failed"

    def _run_change(self, change: Change, context: ConnectContext) -> JournalRecord:
        try:
            record = self._dispatch(change, context)
        except Exception as error:  # one account's failure must not stop the others
            LOGGER.debug(
                "account %s: %s failed", change.account, change.action.value, exc_info=True
            )
            record = _failure_record(change, error)
            if stops_apply(error):
                self._halt(change, record.result.message)
        if record.failed and change.action in (Action.CONNECT, Action.RECONNECT):
            # Count the failure even for an account without a grant, so it can be quarantined.
            record = replace(
                record, placeholder=self._placeholder(change), failed_version=change.vault_version
            )
        return record

    def _dispatch(self, change: Change, context: ConnectContext) -> JournalRecord:
        if change.action in (Action.CONNECT, Action.RECONNECT):
            account = self.manifest.account(change.account)
            if account is None:
                raise ReconcilerError(
                    f"account {change.account!r} of the plan is not in the manifest "
                    f"{self.manifest.path}"
                )
            return run_connect(change, account, context, self.observations.get(change.account))
        if change.action is Action.DELETE:
            return self._delete(change)
        if change.action is Action.FORGET:
            return JournalRecord(result=_done(change, _forget_message(change)), remove=True)
        if change.action is Action.ADOPT:
            return self._adopt(change, context)
        raise ReconcilerError(f"action {change.action.value!r} cannot be applied")

    def _delete(self, change: Change) -> JournalRecord:
        if not change.grant_id:
            message = "no grant was recorded, so only the inventory entry was dropped"
            return JournalRecord(result=_done(change, message), remove=True)
        existed = self.grants_api.delete_grant(change.grant_id, account=change.account)
        message = (
            f"grant {change.grant_id} revoked and dropped from the inventory"
            if existed
            else f"grant {change.grant_id} was already gone, so it was dropped from the inventory"
        )
        return JournalRecord(result=_done(change, message), remove=True)

    def _adopt(self, change: Change, context: ConnectContext) -> JournalRecord:
        if not change.grant_id:
            raise ReconcilerError(f"the plan adopts account {change.account!r} without a grant id")
        account = self.manifest.account(change.account)
        # An adopt sends nothing, so it records the planned version (the `after` side) as sent,
        # and a later rotation of the secret is planned as a reconnect.
        recorded = change.vault_version
        if recorded is None and change.after:
            recorded = change.after.get("vault_version")
        entry = InventoryEntry(
            name=change.account,
            grant_id=change.grant_id,
            provider=change.provider,
            email=change.email,
            vault_path=change.vault_path or (account.secret_path if account else ""),
            vault_version_sent=recorded if isinstance(recorded, int) else None,
            protect=account.protect if account else False,
            credential_id=account.credential_id if account else None,
            scopes=account.scopes if account else (),
            updated_at=context.now_iso(),
        )
        message = f"grant {change.grant_id} recorded in the inventory"
        return JournalRecord(result=_done(change, message), entry=entry)

    def _placeholder(self, change: Change) -> InventoryEntry:
        account = self.manifest.account(change.account)
        return InventoryEntry(
            name=change.account,
            grant_id="",
            provider=change.provider,
            email=change.email,
            vault_path=change.vault_path or (account.secret_path if account else ""),
            protect=account.protect if account else False,
            credential_id=account.credential_id if account else None,
            scopes=account.scopes if account else (),
        )

    def _halt(self, change: Change, message: str) -> None:
        """Stop starting changes after a failure that every later change would repeat."""
        with self._halt_lock:
            if self._halt_reason:
                return
            self._halt_reason = (
                f"not started because {change.action.value} of account {change.account!r} "
                f"failed with an error that affects every account: {message}"
            )
        LOGGER.warning(
            "stopping the apply: %s of account %s failed with an error that affects every "
            "account, so no further change is started: %s",
            change.action.value,
            change.account,
            message,
        )

    def _stopping(self) -> bool:
        journal_failed = self._journal is not None and bool(self._journal.error)
        return self.stop.is_set() or journal_failed or bool(self._halt_reason)

    def _stop_reason(self) -> str:
        if self._journal is not None and self._journal.error:
            return f"the inventory could not be written: {self._journal.error}"
        if self._halt_reason:
            return self._halt_reason
        return "the apply was interrupted before this change started"

    def _record_not_attempted(self, index: int, change: Change, why: str) -> None:
        result = ChangeResult(change.account, change.action, Outcome.NOT_ATTEMPTED, message=why)
        self.results[index] = result
        self._emit(_finish_event(result))

    def _report(self, result: ChangeResult) -> None:
        """Called by the journal once the change is stored."""
        for index, change in enumerate(self.changes):
            if change.account == result.account and change.action is result.action:
                self.results[index] = result
        self._emit(_finish_event(result))
        if self.options.on_result is not None:
            with self._report_lock:
                _call_safely(self.options.on_result, result)

    def _emit(self, event: dict[str, Any]) -> None:
        if self.options.on_event is None:
            return
        event = {**event, "time": utc_now_iso(self.options.clock)}
        with self._report_lock:
            _call_safely(self.options.on_event, event)

    def _result(self) -> ApplyResult:
        results = []
        for index, change in enumerate(self.changes):
            result = self.results.get(index)
            if result is None:
                result = ChangeResult(
                    change.account,
                    change.action,
                    Outcome.NOT_ATTEMPTED,
                    message=self._stop_reason(),
                )
            results.append(result)
        interrupted = self.stop.is_set() and any(
            result.outcome is Outcome.NOT_ATTEMPTED for result in results
        )
        return ApplyResult(results=tuple(results), interrupted=interrupted)


def _done(change: Change, message: str) -> ChangeResult:
    return ChangeResult(
        change.account, change.action, Outcome.DONE, message=message, grant_id=change.grant_id
    )


def _failure_record(change: Change, error: Exception) -> JournalRecord:
    request_id = getattr(error, "request_id", None)
    # The result view names the account and the action, so Nylas errors give only their detail.
    if isinstance(error, NylasError):
        message = error.detail
    elif isinstance(error, ConnectFailedError):
        message = error.message
    elif isinstance(error, ReconcilerError):
        message = error.message if not error.hint else f"{error.message}; {error.hint}"
    else:
        message = f"unexpected {type(error).__name__}: {error}"
    result = ChangeResult(
        change.account,
        change.action,
        Outcome.FAILED,
        message=REDACTOR.redact(message),
        grant_id=change.grant_id,
        request_id=request_id if isinstance(request_id, str) else None,
    )
    return JournalRecord(result=result, failed=True, account_fault=is_account_fault(error))


def _finish_event(result: ChangeResult) -> dict[str, Any]:
    return {
        "event": "finish",
        "account": result.account,
        "action": result.action.value,
        "outcome": result.outcome.value,
        "message": result.message,
        "grant_id": result.grant_id,
        "request_id": result.request_id,
        "duration_s": result.duration_s,
    }


def _call_safely(callback: Callable[[Any], None], value: Any) -> None:
    try:
        callback(value)
    except Exception:  # a broken progress display must not fail the apply
        LOGGER.warning("apply event callback failed", exc_info=True)


def _forget_message(change: Change) -> str:
    """Return what a forget did, which depends on whether the account's grant still exists."""
    if not change.grant_id:
        return "the inventory entry is removed, because the account never had a grant"
    if change.reason is Reason.REMOVED_KEEP_GRANT:
        return "the grant is kept but no longer managed"
    return f"the inventory entry is removed, because grant {change.grant_id} no longer exists"
