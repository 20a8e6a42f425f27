"""The apply journal: records each finished change in the inventory before reporting it.

Workers hand every finished change to `Journal.submit`; one writer thread applies the pending
records to the in-memory inventory and stores it with a single `StateBackend.write`, then
reports those changes (result list, callbacks). Records that arrive while a write is in
progress go into the next write, so a slow backend means larger batches, not a queue of
writes. Because a change is reported only after the write that holds it, a process killed at
any moment loses only changes that no one was told about yet, and the next plan sees every
grant it made: in the inventory, or as an existing grant to adopt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.errors import ReconcilerError
from reconciler.model import ChangeResult, Inventory, InventoryEntry, Outcome
from reconciler.protocols import StateBackend
from reconciler.secrets import REDACTOR

LOGGER = logging.getLogger(__name__)

# After each inventory write the writer pauses this many times the write's duration, capped
# at MAX_WRITE_PAUSE_S, so writes take at most a quarter of its time. Every write stores the
# whole inventory: without the pause, a first apply of 1,000 accounts made about 1,000 writes
# of up to 1,000 entries. A kill during a pause loses only unreported changes, whose grants
# the next plan adopts.
WRITE_PAUSE_FACTOR = 3.0
MAX_WRITE_PAUSE_S = 2.0


@dataclass(frozen=True)
class JournalRecord:
    """How one finished change alters the inventory, and the result to report after.

    `entry` replaces the account's entry; `remove` drops it; `failed` records the failure's
    message on the entry (the stored one, or `entry` when given). When `account_fault` is
    also set, the failure was caused by the account's data: it counts towards quarantine,
    and an account without an entry gets one without a grant, built from `placeholder`.
    Other failures (outages) leave the failure count alone. `failed_version` is the secret
    version a failed connect sent.
    """

    result: ChangeResult
    entry: InventoryEntry | None = None
    remove: bool = False
    failed: bool = False
    account_fault: bool = False
    placeholder: InventoryEntry | None = None
    failed_version: int | None = None


class Journal:
    """Serializes inventory writes for an apply and reports changes once they are stored."""

    def __init__(
        self,
        state: StateBackend,
        inventory: Inventory,
        *,
        quarantine_after: int,
        now: Callable[[], str],
        report: Callable[[ChangeResult], None],
    ) -> None:
        self._state = state
        self._inventory = inventory
        self._quarantine_after = quarantine_after
        self._now = now
        self._report = report
        self._pending: list[JournalRecord] = []
        self._condition = threading.Condition()
        self._closing = False
        self.error: str = ""  # set when a write failed; the apply must stop
        self._thread = threading.Thread(target=self._run, name="grantctl-journal", daemon=True)
        self._thread.start()

    @property
    def inventory(self) -> Inventory:
        """The inventory as last stored."""
        return self._inventory

    def submit(self, record: JournalRecord) -> None:
        """Queue a finished change; it is stored and then reported by the writer thread."""
        with self._condition:
            self._pending.append(record)
            self._condition.notify()

    def close(self) -> None:
        """Store and report everything submitted, then stop the writer thread."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join()

    def _run(self) -> None:
        pause_s, last_write_end = 0.0, 0.0
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                # Let records gather between writes, so writing the whole inventory takes at
                # most a fixed share of the apply's time instead of one write per change.
                resume_at = last_write_end + pause_s
                while not self._closing and (remaining := resume_at - time.monotonic()) > 0:
                    self._condition.wait(remaining)
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            started = time.monotonic()
            self._store_and_report(batch)
            last_write_end = time.monotonic()
            pause_s = min(MAX_WRITE_PAUSE_S, WRITE_PAUSE_FACTOR * (last_write_end - started))

    def _store_and_report(self, batch: list[JournalRecord]) -> None:
        if self.error:
            self._report_unstored(batch)
            return
        entries = dict(self._inventory.entries)
        for record in batch:
            self._apply_record(entries, record)
        try:
            self._inventory = self._state.write(
                Inventory(self._inventory.lineage, self._inventory.serial, entries)
            )
        except Exception as error:  # any failure must stop the apply, not kill this thread
            self.error = _describe_write_error(error)
            # The traceback goes to debug only: the message already names the failure.
            LOGGER.error("could not record changes in the inventory: %s", self.error)  # noqa: TRY400
            LOGGER.debug("inventory write failure", exc_info=True)
            self._report_unstored(batch)
            return
        for record in batch:
            self._report(record.result)

    def _apply_record(self, entries: dict[str, InventoryEntry], record: JournalRecord) -> None:
        name = record.result.account
        if record.remove:
            entries.pop(name, None)
            return
        if not record.failed:
            if record.entry is not None:
                entries[name] = record.entry
            return
        previous = entries.get(name)
        if not record.account_fault:
            # An outage is not the account's fault: keep its failure count and quarantine.
            if previous is not None:
                entries[name] = replace(
                    previous, last_error=record.result.message, updated_at=self._now()
                )
            return
        base = record.entry or previous or record.placeholder
        if base is None:
            return
        failures = (previous.failures if previous is not None else 0) + 1
        entries[name] = replace(
            base,
            failures=failures,
            quarantined=failures >= self._quarantine_after,
            last_error=record.result.message,
            updated_at=self._now(),
            vault_version_failed=(
                record.failed_version
                if record.failed_version is not None
                else base.vault_version_failed
            ),
        )

    def _report_unstored(self, batch: list[JournalRecord]) -> None:
        for record in batch:
            result = record.result
            if result.outcome is Outcome.DONE:
                grant = f" (grant {result.grant_id})" if result.grant_id else ""
                result = replace(
                    result,
                    outcome=Outcome.FAILED,
                    message=(
                        f"{result.action.value} succeeded in Nylas{grant}, but the inventory "
                        f"could not record it: {self.error}. The next plan shows the grant "
                        "and adopts it."
                    ),
                )
            self._report(result)


def _describe_write_error(error: Exception) -> str:
    if isinstance(error, ReconcilerError):
        return REDACTOR.redact(error.message)
    return REDACTOR.redact(f"{type(error).__name__}: {error}")
