"""`grantctl apply`: apply a manifest (plan, confirm, apply) or a saved plan file.

Its own module, so that `grantctl plan` does not import the executor and the apply workflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from reconciler.commands.apply_ui import ConsoleApplyUI, apply_exit_code
from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    client_flags,
    client_options,
    lock_timeout_option,
    plan_flags,
    plan_options,
    use_color,
    vault_flags,
    vault_options,
)
from reconciler.commands.outputs import check_output_paths
from reconciler.commands.plan import render_plan
from reconciler.workflow import plan_document
from reconciler.workflow_apply import apply_manifest, apply_saved_plan, is_plan_file
from reconciler.workflow_settings import RunSettings


@click.command("apply")
@LOG_LEVEL_OPTION
@click.argument("source", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option(
    "--auto-approve", is_flag=True, default=False, help="Apply without asking for confirmation."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
)
@click.option(
    "--events",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write one JSON line per finished change to this file.",
)
@lock_timeout_option("Seconds to wait for the state lock held by another run.")
@click.option(
    "--manifest",
    "manifest_override",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    default=None,
    help="With a plan file: the manifest it was made from [default: the path in the plan].",
)
@plan_options
@client_options
@vault_options
def apply_command(
    *,
    source: str,
    auto_approve: bool,
    output_format: str,
    events: str | None,
    lock_timeout_s: float,
    manifest_override: str | None,
    no_color: bool,
    verbose: bool,
    **params: Any,
) -> int:
    """Apply SOURCE: a manifest (plan, confirm, apply) or a plan file saved by `plan --out`."""
    _check_events_path(source, events, manifest_override)
    settings = RunSettings(
        vault=vault_flags(params),
        client=client_flags(params),
        plan=plan_flags(params),
        lock_timeout_s=lock_timeout_s,
    )
    color = use_color(no_color)
    with ConsoleApplyUI(
        auto_approve=auto_approve,
        output_format=output_format,
        events_path=events,
        color=color,
        render=lambda plan: render_plan(plan, "text", color=color, verbose=verbose, document={}),
        document=lambda plan: plan_document(plan, source),
    ) as ui:
        if is_plan_file(source):
            result = apply_saved_plan(source, settings, ui, manifest_path=manifest_override)
        else:
            result = apply_manifest(source, settings, ui)
    return apply_exit_code(result)


def _check_events_path(source: str, events: str | None, manifest_override: str | None) -> None:
    if events is None:
        return
    if not is_plan_file(source):
        check_output_paths({"--events": events}, manifest_path=source)
        return
    check_output_paths(
        {"--events": events},
        manifest_path=manifest_override or _manifest_of_plan(source),
        inputs={f"the plan file {source}": source},
    )


def _manifest_of_plan(path: str) -> str | None:
    """Return the manifest path a saved plan names, or None when it cannot be read."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    manifest = document.get("manifest") if isinstance(document, dict) else None
    manifest_path = manifest.get("path") if isinstance(manifest, dict) else None
    return manifest_path if isinstance(manifest_path, str) else None
