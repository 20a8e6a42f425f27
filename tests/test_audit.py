"""The audit core and its views, run on the planner's case files (no network).

Each case in tests/planner_cases/ is planned and audited as `grantctl audit` does. The table
below pins the health and the detail sentence of the accounts that show each status. Every
case's JSON document must also be valid against schemas/audit.schema.json.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.audit import DRIFT_STATUSES, AuditReport, Health, make_audit, parse_fail_on
from reconciler.cli import grantctl
from reconciler.errors import ConfigError
from reconciler.model import Grant, GrantStatus
from reconciler.planner import PlanOptions, make_plan
from reconciler.render.audit import (
    audit_schema,
    audit_to_document,
    render_audit_markdown,
    render_audit_text,
)
from tests.test_planner import (
    CASE_FILES,
    CASES_DIR,
    build_grant,
    build_inventory,
    build_manifest,
    build_secrets,
    load_case,
)


def audit_case(path: Path) -> AuditReport:
    """Plan a case with default options and audit it, as `grantctl audit` does."""
    case = load_case(path)
    manifest = build_manifest(case)
    inventory = build_inventory(case)
    secrets = build_secrets(case, manifest)
    grants = [build_grant(item) for item in case.get("grants", [])]
    plan = make_plan(manifest, inventory, secrets, grants, PlanOptions())
    return make_audit(manifest, inventory, secrets, grants, plan)


# (case file, account, health, text the detail sentence must contain)
STATUS_CASES = [
    ("noop_in_sync", "alice", Health.HEALTHY, "is valid and matches the manifest"),
    ("adopt_invalid_grant_reconnects", "alice", Health.INVALID, "expired or revoked"),
    ("connect_not_connected", "alice", Health.MISSING, "No google grant exists for alice@"),
    ("connect_grant_deleted_outside", "alice", Health.MISSING, "deleted outside grantctl"),
    ("reconnect_secret_rotated", "alice", Health.ROTATION_PENDING, "at version 4, but grant"),
    ("reconnect_scopes_missing", "alice", Health.SCOPE_DRIFT, "lacks scopes Mail.Send"),
    ("error_scopes_missing", "alice", Health.SCOPE_DRIFT, "cannot add scopes"),
    ("error_email_changed", "alice", Health.EMAIL_DRIFT, "cannot change mailbox"),
    ("quarantined_skipped", "alice", Health.QUARANTINED, "after 3 failed applies in a row"),
    ("quarantined_retried", "alice", Health.QUARANTINED, "next apply retries the reconnect"),
    ("delete_ensure_absent", "alice", Health.CHANGE_PENDING, "pending delete"),
]


@pytest.mark.parametrize(
    ("case", "account", "health", "text"), STATUS_CASES, ids=[row[0] for row in STATUS_CASES]
)
def test_status_and_detail(case: str, account: str, health: Health, text: str) -> None:
    """The account gets the status and a detail sentence that explains it."""
    report = audit_case(CASES_DIR / f"{case}.yaml")
    entry = next(item for item in report.accounts if item.account == account)

    assert entry.health is health
    assert text in entry.detail, entry.detail
    if health is not Health.HEALTHY:
        assert entry.next_step, f"{account}: no next step"


def test_table_covers_every_status_but_error() -> None:
    """STATUS_CASES covers each status, and the secret-state case covers errors."""
    covered = {row[2] for row in STATUS_CASES}
    assert set(Health) - covered == {Health.ERROR}


def test_secret_missing_is_error() -> None:
    """A missing Vault secret is an account error with the planner's next step."""
    report = audit_case(CASES_DIR / "error_secret_states.yaml")
    errors = [entry for entry in report.accounts if entry.health is Health.ERROR]

    assert errors, "no account in error"
    assert all(entry.next_step for entry in errors)
    assert report.exit_code == 1


def test_quarantine_next_step() -> None:
    """The next step of a skipped quarantined account names the secret and the retry flag."""
    report = audit_case(CASES_DIR / "quarantined_skipped.yaml")
    entry = next(item for item in report.accounts if item.account == "alice")

    assert "--retry-quarantined" in entry.next_step
    assert "'nylas/alice'" in entry.next_step


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_document_matches_schema(path: Path) -> None:
    """Every case's JSON document is valid against the audit schema."""
    document = audit_to_document(audit_case(path))

    jsonschema.Draft202012Validator(audit_schema()).validate(document)


def test_schema_is_valid_draft_2020_12() -> None:
    """The schema itself is valid under its own metaschema."""
    schema = audit_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_lists_every_status() -> None:
    """The schema's health enum and summary keys name every Health value."""
    schema = audit_schema()
    values = {health.value for health in Health}

    assert set(schema["$defs"]["account"]["properties"]["health"]["enum"]) == values
    assert values <= set(schema["properties"]["summary"]["required"])


def drifted_report() -> AuditReport:
    """One invalid account and one unmanaged grant."""
    report = audit_case(CASES_DIR / "adopt_invalid_grant_reconnects.yaml")
    stranger = Grant("g9", "google", "stranger@example.com", GrantStatus.VALID)
    return AuditReport(accounts=report.accounts, unmanaged=(stranger,))


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [
        (DRIFT_STATUSES, 2),
        (("invalid",), 2),
        (("unmanaged",), 2),
        (("email_drift",), 0),
        (("email_drift", "missing"), 0),
    ],
    ids=["all", "invalid", "unmanaged", "email-drift", "two-absent"],
)
def test_exit_code_for_fail_on(fail_on: tuple[str, ...], code: int) -> None:
    """Drift exits 2 only when its status is selected."""
    assert drifted_report().exit_code_for(fail_on) == code


def test_errors_exit_1_whatever_fail_on() -> None:
    """An account error exits 1 even when --fail-on selects no present status."""
    report = audit_case(CASES_DIR / "error_secret_states.yaml")

    assert report.exit_code_for({"email_drift"}) == 1


def test_parse_fail_on_lists() -> None:
    """Repeated and comma-separated values are merged; spaces are ignored."""
    parsed = parse_fail_on(["invalid, missing", "unmanaged"])

    assert parsed == {"invalid", "missing", "unmanaged"}


@pytest.mark.parametrize("value", ["healthy", "error", "expired", ","])
def test_parse_fail_on_rejects(value: str) -> None:
    """An unknown status, `healthy`, `error` or an empty list is rejected."""
    with pytest.raises(ConfigError) as raised:
        parse_fail_on([value])

    assert "rotation_pending" in str(raised.value) + (raised.value.hint or "")


def test_cli_rejects_fail_on_before_audit(tmp_path: Path) -> None:
    """An invalid --fail-on exits 1 and lists the valid statuses without contacting Vault."""
    manifest = tmp_path / "grants.yaml"
    manifest.write_text("version: 1\n", encoding="utf-8")
    arguments = ["audit", str(manifest), "--fail-on", "invalid,expired"]

    result = CliRunner().invoke(grantctl, arguments, env={"VAULT_ADDR": "http://127.0.0.1:9"})

    assert result.exit_code == 1
    assert "invalid --fail-on status 'expired'" in result.stderr
    assert "scope_drift" in result.stderr


def test_text_view_lines() -> None:
    """The text view prints the status, the detail, the next step and the unmanaged grant."""
    text = render_audit_text(drifted_report())

    assert "alice  invalid" in text
    assert "next step: review the reconnect with `grantctl plan grants.yaml`" in text
    assert "g9  google  stranger@example.com" in text
    assert "Audit: 0 of 1 account healthy, 1 invalid, 1 unmanaged grant." in text


def test_text_unmanaged_columns_aligned() -> None:
    """Unmanaged grant lines in the audit text pad each column to its longest value."""
    report = drifted_report()
    other = Grant("g-long-10", "microsoft", "shared@example.com", GrantStatus.VALID)
    text = render_audit_text(
        AuditReport(accounts=report.accounts, unmanaged=(*report.unmanaged, other))
    )

    assert "  g9         google     stranger@example.com\n" in text
    assert "  g-long-10  microsoft  shared@example.com\n" in text


def healthy_with_unmanaged() -> AuditReport:
    """Return a report whose only drift is one unmanaged grant."""
    report = drifted_report()
    return AuditReport(accounts=(), unmanaged=report.unmanaged)


def test_unmanaged_drift_said() -> None:
    """When unmanaged grants make audit exit 2, the summary says why."""
    report = healthy_with_unmanaged()
    text = render_audit_text(report)
    markdown = render_audit_markdown(report)

    assert report.exit_code_for(DRIFT_STATUSES) == 2
    assert "The unmanaged grant counts as drift, so audit exits 2." in text
    assert "pass --fail-on with only the account statuses" in text
    assert "The unmanaged grant counts as drift, so audit exits 2." in markdown
    assert "### grantctl audit: drift" in markdown


def test_unmanaged_excluded_by_fail_on() -> None:
    """With unmanaged left out of --fail-on, the summary does not call it drift."""
    report = healthy_with_unmanaged()
    fail_on = parse_fail_on(["invalid"])

    assert report.exit_code_for(fail_on) == 0
    assert "counts as drift" not in render_audit_text(report, fail_on=fail_on)
    assert "### grantctl audit: healthy" in render_audit_markdown(report, fail_on=fail_on)


def test_markdown_view_rows() -> None:
    """The markdown view has one table row per account and lists unmanaged grants."""
    markdown = render_audit_markdown(drifted_report())

    assert markdown.startswith("### grantctl audit: drift\n")
    assert "| `alice` | invalid | `g1` | Grant g1 for alice@example.com is invalid" in markdown
    assert "- `g9` google stranger@example.com" in markdown
