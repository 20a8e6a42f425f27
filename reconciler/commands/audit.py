"""`grantctl audit`: each account's health, read-only and lock-free."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from reconciler.audit import DRIFT_STATUSES, AuditReport, parse_fail_on
from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    MANIFEST_ARGUMENT,
    METRICS_INCLUDE_EMAILS_OPTION,
    client_flags,
    client_options,
    emit,
    use_color,
    vault_flags,
    vault_options,
)
from reconciler.commands.outputs import check_output_paths
from reconciler.errors import ReconcilerError
from reconciler.gc_pause import collector_paused
from reconciler.metrics import write_metrics_file
from reconciler.model import Grant
from reconciler.reconcile_round import audit_summary
from reconciler.render.audit import render_audit_json, render_audit_markdown, render_audit_text
from reconciler.secrets import REDACTOR
from reconciler.state.atomic import write_atomic
from reconciler.workflow import run_audit_with_grants
from reconciler.workflow_settings import RunSettings


@click.command("audit")
@LOG_LEVEL_OPTION
@MANIFEST_ARGUMENT
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json", "markdown")),
    default="text",
    show_default=True,
)
@click.option("--no-color", is_flag=True, default=False, help="Never colour the output.")
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="STATUS[,STATUS]",
    help="Exit 2 only for these statuses (repeatable or comma-separated): "
    f"{', '.join(DRIFT_STATUSES)} [default: all of them]. Errors always exit 1.",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the JSON report to this file, whatever --format prints.",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the audit as a Prometheus text file (node_exporter's textfile "
    "collector reads *.prom files).",
)
@METRICS_INCLUDE_EMAILS_OPTION
@client_options
@vault_options
# Paused through rendering too: re-enabled earlier, the collector's first run scanned the
# whole plan (0.06 s at 10,000 accounts, measured on the 2-core benchmark machine).
@collector_paused()
def audit_command(
    *,
    manifest: str,
    output_format: str,
    no_color: bool,
    fail_on: tuple[str, ...],
    json_out: str | None,
    metrics_file: str | None,
    metrics_include_emails: bool,
    **params: Any,
) -> int:
    """Report each account's health against MANIFEST without changing anything.

    Exit 0 when every account is healthy, 2 on drift (expired grants, rotated secrets not
    yet sent, unmanaged grants and the like; --fail-on narrows which), 1 on errors.
    """
    drift_statuses = parse_fail_on(fail_on) if fail_on else frozenset(DRIFT_STATUSES)
    check_output_paths(
        {"--json-out": json_out, "--metrics-file": metrics_file}, manifest_path=manifest
    )
    settings = RunSettings(vault=vault_flags(params), client=client_flags(params))
    started = time.monotonic()
    report, grants = run_audit_with_grants(manifest, settings)
    if metrics_file is not None:
        _write_metrics(metrics_file, report, grants, started, metrics_include_emails)
    if json_out is not None:
        _write_report(json_out, render_audit_json(report))

    if output_format == "json":
        emit(render_audit_json(report))
    elif output_format == "markdown":
        emit(render_audit_markdown(report, fail_on=drift_statuses))
    else:
        emit(render_audit_text(report, color=use_color(no_color), fail_on=drift_statuses))
    return report.exit_code_for(drift_statuses)


def _write_metrics(
    path: str,
    report: AuditReport,
    grants: tuple[Grant, ...],
    started: float,
    include_emails: bool,
) -> None:
    summary = audit_summary(
        report, grants, finished_at=time.time(), duration_s=time.monotonic() - started
    )
    write_metrics_file(path, summary, include_emails=include_emails)


def _write_report(path: str, text: str) -> None:
    """Write the JSON report atomically, so a reader never sees half of it."""
    data = (REDACTOR.redact(text) + "\n").encode("utf-8")
    try:
        write_atomic(Path(path), data)
    except OSError as error:
        raise ReconcilerError(
            f"could not write the audit report {path!r}: {error.strerror or error}",
            hint="check that the directory exists and is writable by this user",
        ) from error
