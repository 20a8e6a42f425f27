"""Pure parts of a reconcile round: which changes a round applies, and its health summary."""

from __future__ import annotations

import logging

import pytest

from reconciler.audit import AccountHealth as AuditAccount
from reconciler.audit import AuditReport, Health
from reconciler.model import (
    Action,
    ApplyResult,
    Change,
    ChangeResult,
    ErrorCode,
    Grant,
    GrantStatus,
    Outcome,
    Plan,
    PlanError,
    Reason,
)
from reconciler.reconcile_round import (
    _log_failed_changes,
    _log_plan_errors,
    applicable_part,
    audit_summary,
)
from reconciler.secrets import Secret


def change(account: str, action: Action = Action.CONNECT) -> Change:
    return Change(
        account=account,
        action=action,
        reason=Reason.NOT_CONNECTED,
        message="",
        provider="microsoft",
        email=f"{account}@example.com",
    )


def error(account: str | None, code: ErrorCode = ErrorCode.SECRET_MISSING) -> PlanError:
    return PlanError(code, account, "problem", "fix it")


def test_applicable_part_drops_errored_accounts() -> None:
    """Changes of accounts with a plan error are left out; the others stay."""
    plan = Plan(changes=(change("a"), change("b"), change("c")), errors=(error("b"),))

    applicable = applicable_part(plan)

    assert [item.account for item in applicable.changes] == ["a", "c"]
    assert applicable.errors == ()
    assert applicable.applyable


def test_applicable_part_plan_wide_error() -> None:
    """A plan-wide error such as too many deletes blocks every change."""
    plan = Plan(
        changes=(change("a"), change("b", Action.DELETE)),
        errors=(error(None, ErrorCode.TOO_MANY_DELETES),),
    )

    applicable = applicable_part(plan)

    assert applicable.changes == ()
    assert not applicable.has_changes


def test_applicable_part_keeps_plan_facts() -> None:
    """The filtered plan keeps the inventory serial and observations the executor checks."""
    plan = Plan(changes=(change("a"),), inventory_serial=7, manifest_digest="abc")

    applicable = applicable_part(plan)

    assert applicable.inventory_serial == 7
    assert applicable.manifest_digest == "abc"


def test_audit_summary_counts() -> None:
    """The summary carries each account's health, unmanaged grants and grants per provider."""
    grants = [
        Grant("g1", "microsoft", "a@example.com", GrantStatus.VALID),
        Grant("g2", "microsoft", "x@example.com", GrantStatus.VALID),
        Grant("g3", "imap", "b@example.com", GrantStatus.INVALID),
    ]
    report = AuditReport(
        accounts=(
            AuditAccount("a", Health.HEALTHY, "", provider="microsoft", email="a@example.com"),
            AuditAccount("b", Health.INVALID, "", provider="imap", email="b@example.com"),
        ),
        unmanaged=(grants[1],),
    )

    summary = audit_summary(report, grants, finished_at=100.0, duration_s=2.5)

    assert [(item.name, item.status) for item in summary.accounts] == [
        ("a", "healthy"),
        ("b", "invalid"),
    ]
    assert summary.unmanaged_grants == 1
    assert dict(summary.grants_by_provider) == {"microsoft": 2, "imap": 1}
    assert summary.finished_at == 100.0
    assert summary.duration_s == 2.5


def test_plan_error_log_punctuation(caplog: pytest.LogCaptureFixture) -> None:
    message = "Vault secret 'nylas/ghost' of account 'ghost' is missing (not found)."
    plan = Plan(
        changes=(), errors=(PlanError(ErrorCode.SECRET_MISSING, "ghost", message, "store it"),)
    )

    with caplog.at_level(logging.WARNING):
        _log_plan_errors(plan)

    assert "(not found); next step: store it" in caplog.text
    assert ".;" not in caplog.text


def test_failed_change_logged(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("refresh-token-for-round-log")
    failed = ChangeResult(
        "leyah",
        Action.RECONNECT,
        Outcome.FAILED,
        message=f"the provider rejected the credentials ({secret.reveal()})",
        request_id="req-42",
    )
    done = ChangeResult("ines", Action.CONNECT, Outcome.DONE, message="grant g-1 is valid")
    result = ApplyResult(results=(failed, done))

    with caplog.at_level(logging.WARNING, logger="reconciler.reconcile_round"):
        _log_failed_changes(result)

    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "'leyah'" in line
    assert "reconnect failed" in line
    assert "the provider rejected the credentials" in line
    assert "request id req-42" in line
    assert secret.reveal() not in line
