"""Prometheus metrics files: content parsed back with prometheus_client, and atomic replace."""

from __future__ import annotations

import enum
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler import metrics
from reconciler.errors import ReconcilerError
from reconciler.metrics import (
    HEALTH_STATUSES,
    AccountHealth,
    AuditSummary,
    ReconcileCounters,
    write_metrics_file,
)


def make_summary() -> AuditSummary:
    return AuditSummary(
        accounts=(
            AccountHealth("leyah", "microsoft", "leyah@example.com", "healthy"),
            AccountHealth("support", "imap", "support@example.com", "invalid"),
            AccountHealth("ceo", "google", "ceo@example.com", "healthy"),
            AccountHealth("ops", "google", "ops@example.com", "rotation_pending"),
        ),
        unmanaged_grants=2,
        grants_by_provider={"google": 3, "microsoft": 1, "imap": 1},
        finished_at=1_760_000_000.5,
        duration_s=4.25,
    )


def parse(path: Path) -> dict[str, list[Sample]]:
    families = text_string_to_metric_families(path.read_text(encoding="utf-8"))
    return {family.name: list(family.samples) for family in families}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, f"expected one {name}{labels}, found {len(matches)}"
    return matches[0]


def test_audit_accounts_every_status(tmp_path: Path) -> None:
    """grantctl_accounts has one sample per health status, zero included."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, make_summary())
    samples = parse(path)["grantctl_accounts"]

    assert {s.labels["status"] for s in samples} == set(HEALTH_STATUSES)
    assert value(samples, "grantctl_accounts", status="healthy") == 2
    assert value(samples, "grantctl_accounts", status="invalid") == 1
    assert value(samples, "grantctl_accounts", status="rotation_pending") == 1
    assert value(samples, "grantctl_accounts", status="quarantined") == 0
    assert value(samples, "grantctl_accounts", status="error") == 0


def test_audit_scalars_and_providers(tmp_path: Path) -> None:
    """Unmanaged count, grants per provider, timestamp and duration round-trip."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, make_summary())
    families = parse(path)

    assert value(families["grantctl_unmanaged_grants"], "grantctl_unmanaged_grants") == 2
    grants = families["grantctl_grants"]
    assert value(grants, "grantctl_grants", provider="google") == 3
    assert value(grants, "grantctl_grants", provider="microsoft") == 1
    assert value(grants, "grantctl_grants", provider="imap") == 1
    timestamp = families["grantctl_last_audit_timestamp_seconds"]
    assert value(timestamp, "grantctl_last_audit_timestamp_seconds") == 1_760_000_000.5
    duration = families["grantctl_audit_duration_seconds"]
    assert value(duration, "grantctl_audit_duration_seconds") == 4.25


def test_account_healthy_without_emails(tmp_path: Path) -> None:
    """Per-account health carries account and provider labels, no email by default."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, make_summary())
    samples = parse(path)["grantctl_account_healthy"]

    assert len(samples) == 4
    assert value(samples, "grantctl_account_healthy", account="leyah", provider="microsoft") == 1
    assert value(samples, "grantctl_account_healthy", account="support", provider="imap") == 0
    assert "@" not in path.read_text(encoding="utf-8")


def test_account_healthy_with_emails(tmp_path: Path) -> None:
    """include_emails adds an email label to each per-account sample."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, make_summary(), include_emails=True)
    samples = parse(path)["grantctl_account_healthy"]

    healthy = value(
        samples,
        "grantctl_account_healthy",
        account="ops",
        provider="google",
        email="ops@example.com",
    )
    assert healthy == 0


def test_reconcile_counters(tmp_path: Path) -> None:
    """Reconcile counters use the _total suffix and list every applied action."""
    counters = ReconcileCounters(
        rounds_total=7,
        failed_rounds_total=2,
        last_success_at=1_760_000_100.0,
        changes_applied={"connect": 3, "delete": 1},
    )
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, counters)
    families = parse(path)

    rounds = families["grantctl_reconcile_rounds"]
    assert value(rounds, "grantctl_reconcile_rounds_total") == 7
    failed = families["grantctl_reconcile_failed_rounds"]
    assert value(failed, "grantctl_reconcile_failed_rounds_total") == 2
    success = families["grantctl_last_reconcile_success_timestamp_seconds"]
    assert value(success, "grantctl_last_reconcile_success_timestamp_seconds") == 1_760_000_100.0
    applied = families["grantctl_changes_applied"]
    assert value(applied, "grantctl_changes_applied_total", action="connect") == 3
    assert value(applied, "grantctl_changes_applied_total", action="delete") == 1
    assert value(applied, "grantctl_changes_applied_total", action="reconnect") == 0
    assert {s.labels["action"] for s in applied} == set(metrics.APPLIED_ACTIONS)
    assert "no-op" not in metrics.APPLIED_ACTIONS
    assert "grantctl_accounts" not in families


def test_reconcile_before_first_success(tmp_path: Path) -> None:
    """The success timestamp is 0 until a round succeeds."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, ReconcileCounters(rounds_total=1, failed_rounds_total=1))
    samples = parse(path)["grantctl_last_reconcile_success_timestamp_seconds"]

    assert value(samples, "grantctl_last_reconcile_success_timestamp_seconds") == 0


def test_reconcile_with_audit(tmp_path: Path) -> None:
    """Counters carrying an audit summary also write the health families."""
    path = tmp_path / "grantctl.prom"
    write_metrics_file(path, ReconcileCounters(rounds_total=1, audit=make_summary()))
    families = parse(path)

    assert value(families["grantctl_reconcile_rounds"], "grantctl_reconcile_rounds_total") == 1
    assert value(families["grantctl_accounts"], "grantctl_accounts", status="healthy") == 2


def test_status_enum_accepted() -> None:
    """A str-valued enum member is stored as its value."""

    class Health(str, enum.Enum):
        SCOPE_DRIFT = "scope_drift"

    account = AccountHealth("a", "google", "a@example.com", Health.SCOPE_DRIFT)

    assert account.status == "scope_drift"
    assert type(account.status) is str


def test_unknown_status_rejected() -> None:
    """An unknown status names the account and the valid statuses."""
    with pytest.raises(ValueError, match=r"'a'.*'sick'.*healthy") as caught:
        AccountHealth("a", "google", "a@example.com", "sick")

    assert "email_drift" in str(caught.value)


def test_existing_file_replaced_whole(tmp_path: Path) -> None:
    """A rewrite replaces the old content entirely and leaves no temporary file."""
    path = tmp_path / "grantctl.prom"
    path.write_text("stale_metric 1\n" * 1000, encoding="utf-8")

    write_metrics_file(path, ReconcileCounters(rounds_total=3))

    text = path.read_text(encoding="utf-8")
    assert "stale_metric" not in text
    assert "grantctl_reconcile_rounds_total 3.0" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grantctl.prom"]
    assert path.stat().st_mode & 0o777 == metrics.FILE_MODE


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails before the rename leaves the old file and no temporary file."""
    path = tmp_path / "grantctl.prom"
    path.write_text("old_metric 1\n", encoding="utf-8")

    def fail_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics.os, "fsync", fail_fsync)
    with pytest.raises(ReconcilerError, match="No space left on device") as caught:
        write_metrics_file(path, make_summary())

    assert str(path) in str(caught.value)
    assert path.read_text(encoding="utf-8") == "old_metric 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grantctl.prom"]


def test_missing_directory_reported(tmp_path: Path) -> None:
    """A metrics path in a directory that does not exist raises a ReconcilerError."""
    path = tmp_path / "absent" / "grantctl.prom"

    with pytest.raises(ReconcilerError, match="could not write the metrics file") as caught:
        write_metrics_file(path, make_summary())

    assert "directory exists" in caught.value.hint
