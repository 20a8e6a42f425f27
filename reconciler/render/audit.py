"""Text, JSON and markdown views of an `AuditReport`, all rendered from the same structure."""

from __future__ import annotations

import json
from collections.abc import Collection
from importlib import resources
from typing import Any

import click

from reconciler.audit import DRIFT_STATUSES, UNMANAGED, AccountHealth, AuditReport, Health
from reconciler.grammar import plural
from reconciler.render.common import align_columns

AUDIT_FORMAT_VERSION = 1
_COLORS = {Health.HEALTHY: "green", Health.ERROR: "red"}
_LABELS = {
    Health.HEALTHY: "healthy",
    Health.INVALID: "invalid",
    Health.MISSING: "missing",
    Health.ROTATION_PENDING: "rotation pending",
    Health.SCOPE_DRIFT: "scope drift",
    Health.EMAIL_DRIFT: "email drift",
    Health.QUARANTINED: "quarantined",
    Health.CHANGE_PENDING: "change pending",
    Health.ERROR: "error",
}


def audit_to_document(report: AuditReport) -> dict[str, Any]:
    """Return the JSON-ready document of `report`, valid against `audit_schema()`."""
    return {
        "format_version": AUDIT_FORMAT_VERSION,
        "status": _status(report),
        "summary": {
            "accounts": len(report.accounts),
            **{health.value: report.count(health) for health in Health},
            "unmanaged": len(report.unmanaged),
            "errors": len(report.errors),
        },
        "accounts": [_account_document(entry) for entry in report.accounts],
        "unmanaged": [
            {"grant_id": grant.id, "provider": grant.provider, "email": grant.email}
            for grant in report.unmanaged
        ],
        "errors": [
            {"code": error.code.value, "message": error.message, "next_step": error.next_step}
            for error in report.errors
        ],
        "warnings": list(report.warnings),
    }


def audit_schema() -> dict[str, Any]:
    """Return the JSON Schema of the audit document (`schemas/audit.schema.json`)."""
    text = resources.files("reconciler").joinpath("schemas/audit.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render_audit_json(report: AuditReport) -> str:
    """Render `report` as indented JSON."""
    return json.dumps(audit_to_document(report), indent=2, sort_keys=False)


def render_audit_text(
    report: AuditReport, *, color: bool = False, fail_on: Collection[str] = DRIFT_STATUSES
) -> str:
    """Render `report` for a terminal: one line per account, then unmanaged grants.

    `fail_on` is the set of statuses that count as drift, as `--fail-on` chose it.
    """
    lines = ["Audit of grants against the manifest:", ""]
    width = max((len(entry.account) for entry in report.accounts), default=0)
    for entry in report.accounts:
        label = _LABELS[entry.health]
        styled = click.style(label, fg=_COLORS.get(entry.health, "yellow")) if color else label
        line = f"  {entry.account.ljust(width)}  {styled}"
        if entry.health is not Health.HEALTHY:
            padding = " " * (len(_LABELS[Health.ROTATION_PENDING]) - len(label))
            line += f"{padding}  {entry.detail}"
        lines.append(line)
        if entry.next_step:
            lines.append(f"  {' ' * width}  next step: {entry.next_step}")
    lines += _text_unmanaged(report)
    for error in report.errors:
        lines += ["", f"Error: {error.message}", f"  next step: {error.next_step}"]
    if report.warnings:
        lines.append("")
    lines += [f"Warning: {warning}" for warning in report.warnings]
    lines += ["", _summary_sentence(report, fail_on)]
    return "\n".join(lines)


def render_audit_markdown(report: AuditReport, *, fail_on: Collection[str] = DRIFT_STATUSES) -> str:
    """Render `report` as GitHub-flavoured markdown, for job summaries and issues."""
    summary = _summary_sentence(report, fail_on)
    lines = [f"### grantctl audit: {_status(report, fail_on)}", "", summary, ""]
    lines += ["| account | health | grant | detail |", "|---|---|---|---|"]
    for entry in report.accounts:
        detail = "" if entry.health is Health.HEALTHY else _escape(entry.detail)
        grant = f"`{entry.grant_id}`" if entry.grant_id else ""
        lines.append(f"| `{entry.account}` | {_LABELS[entry.health]} | {grant} | {detail} |")
    if report.unmanaged:
        lines += ["", "**Unmanaged grants** (in Nylas, not in the manifest; never deleted):", ""]
        lines += [f"- `{grant.id}` {grant.provider} {grant.email}" for grant in report.unmanaged]
    for error in report.errors:
        lines += ["", f"**Error:** {_escape(error.message)} Next step: {_escape(error.next_step)}"]
    return "\n".join(lines) + "\n"


def _account_document(entry: AccountHealth) -> dict[str, Any]:
    return {
        "account": entry.account,
        "health": entry.health.value,
        "detail": entry.detail,
        "action": entry.action.value if entry.action is not None else None,
        "reason": entry.reason.value if entry.reason is not None else None,
        "provider": entry.provider,
        "email": entry.email,
        "grant_id": entry.grant_id,
        "next_step": entry.next_step,
        "planned_change": entry.planned_change or None,
    }


def _status(report: AuditReport, fail_on: Collection[str] | None = None) -> str:
    if report.has_errors:
        return "error"
    drift = report.has_drift if fail_on is None else report.drift_found(fail_on)
    return "drift" if drift else "healthy"


def _summary_sentence(report: AuditReport, fail_on: Collection[str]) -> str:
    healthy = report.count(Health.HEALTHY)
    parts = [f"{healthy} of {plural(len(report.accounts), 'account')} healthy"]
    for health in Health:
        if health is not Health.HEALTHY and report.count(health):
            parts.append(f"{report.count(health)} {_LABELS[health]}")
    unmanaged = len(report.unmanaged)
    parts.append(plural(unmanaged, "unmanaged grant"))
    sentence = "Audit: " + ", ".join(parts) + "."
    account_drift = any(entry.health.value in fail_on for entry in report.accounts)
    if unmanaged and UNMANAGED in fail_on and not account_drift and not report.has_errors:
        # Without this, "4 of 4 accounts healthy" next to exit code 2 reads as a bug.
        subject = "The unmanaged grant counts" if unmanaged == 1 else "The unmanaged grants count"
        sentence += (
            f" {subject} as drift, so audit exits 2. To ignore unmanaged grants, pass --fail-on "
            "with only the account statuses that should fail."
        )
    return sentence


def _text_unmanaged(report: AuditReport) -> list[str]:
    if not report.unmanaged:
        return []
    lines = ["", "Unmanaged grants (in Nylas, not in the manifest; grantctl never deletes them):"]
    rows = [(grant.id, grant.provider, grant.email) for grant in report.unmanaged]
    lines += align_columns(rows, indent="  ")
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
