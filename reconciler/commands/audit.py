"""`grantctl audit`: each account's health, read-only and lock-free."""

from __future__ import annotations

import time
from typing import Any

import click

from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    MANIFEST_ARGUMENT,
    client_flags,
    client_options,
    emit,
    use_color,
    vault_flags,
    vault_options,
)
from reconciler.metrics import write_metrics_file
from reconciler.reconcile_round import audit_summary
from reconciler.render.audit import render_audit_json, render_audit_markdown, render_audit_text
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
    "--metrics-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the audit as a Prometheus text file (node_exporter's textfile "
    "collector reads *.prom files).",
)
@click.option(
    "--metrics-include-emails",
    is_flag=True,
    default=False,
    help="Add an email label to the per-account health metric.",
)
@client_options
@vault_options
def audit_command(
    *,
    manifest: str,
    output_format: str,
    no_color: bool,
    metrics_file: str | None,
    metrics_include_emails: bool,
    **params: Any,
) -> int:
    """Report each account's health against MANIFEST without changing anything.

    Exit 0 when every account is healthy, 2 on drift (expired grants, rotated secrets not
    yet sent, unmanaged grants and the like), 1 on errors.
    """
    settings = RunSettings(vault=vault_flags(params), client=client_flags(params))
    started = time.monotonic()
    report, grants = run_audit_with_grants(manifest, settings)
    if metrics_file is not None:
        summary = audit_summary(
            report,
            grants,
            finished_at=time.time(),
            duration_s=time.monotonic() - started,
        )
        write_metrics_file(metrics_file, summary, include_emails=metrics_include_emails)
    if output_format == "json":
        emit(render_audit_json(report))
    elif output_format == "markdown":
        emit(render_audit_markdown(report))
    else:
        emit(render_audit_text(report, color=use_color(no_color)))
    return report.exit_code
