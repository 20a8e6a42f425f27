"""`grantctl audit`: each account's health, read-only and lock-free."""

from __future__ import annotations

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
from reconciler.render.audit import render_audit_json, render_audit_markdown, render_audit_text
from reconciler.workflow import run_audit
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
@client_options
@vault_options
def audit_command(*, manifest: str, output_format: str, no_color: bool, **params: Any) -> int:
    """Report each account's health against MANIFEST without changing anything.

    Exit 0 when every account is healthy, 2 on drift (expired grants, rotated secrets not
    yet sent, unmanaged grants and the like), 1 on errors.
    """
    settings = RunSettings(vault=vault_flags(params), client=client_flags(params))
    report = run_audit(manifest, settings)
    if output_format == "json":
        emit(render_audit_json(report))
    elif output_format == "markdown":
        emit(render_audit_markdown(report))
    else:
        emit(render_audit_text(report, color=use_color(no_color)))
    return report.exit_code
