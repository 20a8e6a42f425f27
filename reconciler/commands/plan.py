"""`grantctl plan`, and the plan rendering that `grantctl apply` shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    MANIFEST_ARGUMENT,
    client_flags,
    client_options,
    emit,
    plan_flags,
    plan_options,
    use_color,
    vault_flags,
    vault_options,
)
from reconciler.commands.outputs import check_output_paths
from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.gc_pause import collector_paused
from reconciler.model import Plan
from reconciler.planfile import write_plan_file
from reconciler.render.plan_markdown import render_plan_markdown
from reconciler.render.plan_text import render_plan_text
from reconciler.workflow import plan_document, run_plan
from reconciler.workflow_settings import RunSettings

PLAN_FORMATS = ("text", "json", "markdown")


def render_plan(
    plan: Plan, output_format: str, *, color: bool, verbose: bool, document: dict[str, Any]
) -> str:
    """Render `plan` in one of `PLAN_FORMATS`; `document` is its saved-plan document."""
    if output_format == "json":
        return json.dumps(document, indent=2, sort_keys=True)
    if output_format == "markdown":
        return render_plan_markdown(plan)
    return render_plan_text(plan, color=color, verbose=verbose)


@click.command("plan")
@LOG_LEVEL_OPTION
@MANIFEST_ARGUMENT
@click.option(
    "--format", "output_format", type=click.Choice(PLAN_FORMATS), default="text", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also save the plan as a JSON plan file for `grantctl apply FILE`.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    default=False,
    help="Exit 2 when the plan has changes (0: none, 1: error).",
)
@plan_options
@client_options
@vault_options
# Paused through rendering too: re-enabled earlier, the collector's first run scanned the
# whole plan (0.06 s at 10,000 accounts, measured on the 2-core benchmark machine).
@collector_paused()
def plan_command(
    *,
    manifest: str,
    output_format: str,
    out: str | None,
    detailed_exitcode: bool,
    no_color: bool,
    verbose: bool,
    **params: Any,
) -> int:
    """Show the changes that would make the grants match MANIFEST; change nothing."""
    check_output_paths({"--out": out}, manifest_path=manifest, plan_out_flag="--out")
    settings = RunSettings(
        vault=vault_flags(params), client=client_flags(params), plan=plan_flags(params)
    )
    run = run_plan(manifest, settings)
    # Only --out and --format json need the saved-plan document, which took about a second
    # of CPU time to build for 10,000 accounts on the benchmark machine.
    document: dict[str, Any] = {}
    if out is not None or output_format == "json":
        document = plan_document(run.plan, manifest, settings.plan)
    if out is not None:
        write_plan_file(Path(out), document)
    color = use_color(no_color)
    emit(render_plan(run.plan, output_format, color=color, verbose=verbose, document=document))

    if not run.plan.applyable:
        return EXIT_ERROR
    if detailed_exitcode and run.plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
