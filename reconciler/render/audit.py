"""Text, JSON and markdown views of an `AuditReport`, all rendered from the same structure."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import click

from reconciler.audit import AccountHealth, AuditReport, Health

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


def render_audit_text(report: AuditReport, *, color: bool = False) -> str:
    """Render `report` for a terminal: one line per account, then unmanaged grants."""
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
    lines += ["", _summary_sentence(report)]
    return "\n".join(lines)


def render_audit_markdown(report: AuditReport) -> str:
    """Render `report` as GitHub-flavoured markdown, for job summaries and issues."""
    lines = [f"### grantctl audit: {_status(report)}", "", _summary_sentence(report), ""]
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


def _status(report: AuditReport) -> str:
    if report.has_errors:
        return "error"
    return "drift" if report.has_drift else "healthy"


def _summary_sentence(report: AuditReport) -> str:
    healthy = report.count(Health.HEALTHY)
    parts = [f"{healthy} of {len(report.accounts)} accounts healthy"]
    for health in Health:
        if health is not Health.HEALTHY and report.count(health):
            parts.append(f"{report.count(health)} {_LABELS[health]}")
    unmanaged = len(report.unmanaged)
    parts.append(f"{unmanaged} unmanaged grant{'' if unmanaged == 1 else 's'}")
    return "Audit: " + ", ".join(parts) + "."


def _text_unmanaged(report: AuditReport) -> list[str]:
    if not report.unmanaged:
        return []
    lines = ["", "Unmanaged grants (in Nylas, not in the manifest; grantctl never deletes them):"]
    lines += [f"  {grant.id}  {grant.provider}  {grant.email}" for grant in report.unmanaged]
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
