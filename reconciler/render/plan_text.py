"""The human view of a plan, printed by `grantctl plan` and before `grantctl apply`.

Rendered from the same `Plan` that the plan file serializes. Colour is the caller's choice
(the CLI decides from the terminal and NO_COLOR); nothing here inspects the environment.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from reconciler.model import Action, Change, Plan
from reconciler.planfile import attribute_diff
from reconciler.render.common import (
    SYMBOLS,
    actions_used,
    align_columns,
    no_changes_sentence,
    noop_breakdown,
    summary_sentence,
    version_transition,
)

_COLORS = {
    Action.CONNECT: "green",
    Action.RECONNECT: "yellow",
    Action.ADOPT: "cyan",
    Action.DELETE: "red",
    Action.FORGET: "magenta",
}
# Attributes every change block shows on its own lines; the diff shows only the others.
_SHOWN = {"email", "provider", "grant_id", "vault_version"}

Styler = Callable[..., str]


def render_plan_text(plan: Plan, *, color: bool, verbose: bool = False) -> str:
    """Render `plan` for a terminal: legend, one block per change, sections, summary.

    No-ops are summarized in one line unless `verbose`.
    """
    style: Styler = click.style if color else _plain
    lines: list[str] = []
    used = actions_used(plan)
    if used:
        lines.append("grantctl will perform these actions, marked by these symbols:")
        lines += [style(f"  {SYMBOLS[a]} {a.value}", fg=_COLORS[a]) for a in used]
        lines.append("")
    for change in plan.changes:
        if change.will_change or verbose:
            lines += _change_block(change, style)
    breakdown = noop_breakdown(plan)
    if breakdown and not verbose:
        lines += [breakdown, ""]
    lines += _unmanaged_section(plan)
    lines += _warnings_section(plan, style)
    lines += _errors_section(plan, style)
    lines += _closing(plan, style)
    return "\n".join(lines) + "\n"


def _plain(text: str, **_: object) -> str:
    return text


def _change_block(change: Change, style: Styler) -> list[str]:
    """Return the lines describing one change, indented under its heading."""
    destructive = change.action is Action.DELETE
    symbol = SYMBOLS[change.action]
    heading = f"  {symbol} {change.account}: {change.action.value} ({change.reason.value})"
    lines = [style(heading, fg=_COLORS.get(change.action), bold=destructive)]
    lines.append(f"      {change.message}")
    lines.append(f"      email:         {change.email}")
    lines.append(f"      provider:      {change.provider}")
    lines.append(f"      grant id:      {change.grant_id or '(known after apply)'}")
    if change.vault_path:
        # A delete or forget of an entry that never recorded a version has none to show.
        version = version_transition(change)
        suffix = "" if version == "-" else f" (version {version})"
        lines.append(f"      vault:         {change.vault_path}{suffix}")
    # Only a change that keeps the account managed moves attributes from one value to another.
    # A connect creates them, even over a grantless inventory entry, so it shows no diff.
    both_sides = change.before is not None and change.after is not None
    both_sides = both_sides and change.action is not Action.CONNECT
    adopting = change.action is Action.ADOPT
    for item in attribute_diff(change.before, change.after) if both_sides else ():
        # An adopt only starts recording values such as `protect`, so it shows no move from
        # nothing. Other changes show a value that appears, such as a first credential_id.
        if item["path"] in _SHOWN or (adopting and item["before"] is None):
            continue
        if item["before"] != item["after"]:
            name = f"{item['path']}:".ljust(14)
            lines.append(f"      {name} {_value(item['before'])} -> {_value(item['after'])}")
    lines.append("")
    return lines


def _value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _unmanaged_section(plan: Plan) -> list[str]:
    if not plan.unmanaged:
        return []
    lines = [
        f"Unmanaged grants ({len(plan.unmanaged)}): in Nylas, not in the manifest or the inventory."
    ]
    lines.append("grantctl never deletes them. Add an account to the manifest to manage one.")
    rows = [(grant.id, grant.provider, grant.email, grant.status.value) for grant in plan.unmanaged]
    lines += align_columns(rows, indent="  ? ")
    lines.append("")
    return lines


def _warnings_section(plan: Plan, style: Styler) -> list[str]:
    if not plan.warnings:
        return []
    lines = [style("Warnings:", fg="yellow", bold=True)]
    lines += [f"  - {warning}" for warning in plan.warnings]
    lines.append("")
    return lines


def _errors_section(plan: Plan, style: Styler) -> list[str]:
    if not plan.errors:
        return []
    count = len(plan.errors)
    noun = "error" if count == 1 else "errors"
    heading = f"Errors ({count} {noun}). The plan cannot be applied until they are fixed:"
    lines = [style(heading, fg="red", bold=True)]
    for error in plan.errors:
        subject = error.account if error.account is not None else "(plan)"
        lines.append(style(f"  ! {subject}: {error.code.value}", fg="red"))
        lines.append(f"      {error.message}")
        lines.append(f"      next step: {error.next_step}")
    lines.append("")
    return lines


def _closing(plan: Plan, style: Styler) -> list[str]:
    lines: list[str] = []
    # With errors the grants may well differ from the manifest, so the sentence would lie.
    if not plan.has_changes and not plan.errors:
        lines.append(no_changes_sentence(plan))
    summary = summary_sentence(plan)
    if plan.count(Action.DELETE):
        summary = style(summary, bold=True)
    lines.append(summary)
    if plan.partial:
        lines.append(
            "This plan is partial: accounts left out by --target/--exclude were not planned."
        )
    return lines
