"""Pieces shared by the plan views: action symbols, the summary sentence, markdown escaping.

The text and markdown plan views (`plan_text`, `plan_markdown`) render the same `Plan` that
`reconciler.planfile` serializes, so they agree on counts, order and wording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from reconciler.model import Action, Change, Plan, Reason

# Terraform-like markers, one per action; no-ops are summarized, so they rarely show.
SYMBOLS: Mapping[Action, str] = {
    Action.CONNECT: "+",
    Action.RECONNECT: "~",
    Action.ADOPT: "=",
    Action.DELETE: "-",
    Action.FORGET: "x",
    Action.NOOP: " ",
}

# Order of actions in the legend and the summary sentence.
ACTION_ORDER = (Action.CONNECT, Action.RECONNECT, Action.ADOPT, Action.DELETE, Action.FORGET)

NO_CHANGES = "No changes. The grants match the manifest."


def quarantined_accounts(plan: Plan) -> list[str]:
    """Return the accounts that `plan` skips because they are quarantined."""
    return [change.account for change in plan.changes if change.reason is Reason.QUARANTINED]


def no_changes_sentence(plan: Plan) -> str:
    """Return the sentence for a plan without changes.

    Quarantined accounts are skipped as no-ops, so their grants may well differ from the
    manifest, and the sentence says so instead of claiming that everything matches.
    """
    quarantined = quarantined_accounts(plan)
    if not quarantined:
        return NO_CHANGES
    count = len(quarantined)
    subject = "1 account is" if count == 1 else f"{count} accounts are"
    return (
        f"No changes to apply, but {subject} quarantined: run `grantctl audit MANIFEST` "
        "for details, or `grantctl plan MANIFEST --retry-quarantined`."
    )


def summary_sentence(plan: Plan) -> str:
    """Return `Plan: 2 to connect, 1 to reconnect, ... 0 to forget.` for `plan`."""
    parts = [f"{plan.count(action)} to {action.value}" for action in ACTION_ORDER]
    return "Plan: " + ", ".join(parts) + "."


def actions_used(plan: Plan) -> list[Action]:
    """Return the actions other than no-op that `plan` contains, in legend order."""
    present = {change.action for change in plan.changes}
    return [action for action in ACTION_ORDER if action in present]


def version_transition(change: Change) -> str:
    """Return the Vault version as `old -> new`, or the one version when it does not move."""
    before = change.before.get("vault_version") if change.before else None
    after = change.after.get("vault_version") if change.after else None
    # A missing side has no version to compare with. A connect creates its grant, so the
    # grantless inventory entry that failed connects leave is no before side either. An
    # adopt starts recording the version: the inventory had none to move from.
    if before is None or change.action is Action.CONNECT:
        before = after
    if change.after is None:
        after = before
    if before == after:
        return "-" if after is None else str(after)
    return f"{_or_dash(before)} -> {_or_dash(after)}"


def align_columns(rows: Sequence[Sequence[str]], indent: str) -> list[str]:
    """Return one line per row, each column padded to its longest value, two spaces apart."""
    if not rows:
        return []
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def noop_breakdown(plan: Plan) -> str:
    """Return e.g. `3 accounts unchanged (2 in_sync, 1 quarantined).`, or '' when none."""
    noops = [change for change in plan.changes if change.action is Action.NOOP]
    if not noops:
        return ""
    counts: dict[str, int] = {}
    for change in noops:
        counts[change.reason.value] = counts.get(change.reason.value, 0) + 1
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
    noun = "account" if len(noops) == 1 else "accounts"
    return f"{len(noops)} {noun} unchanged ({detail})."


# Characters with an inline meaning in GitHub-flavoured markdown. Block markers such as `#`
# or `-` only act at the start of a line, and values never start one.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def escape_markdown(text: str) -> str:
    """Return `text` safe to place in a markdown paragraph or table cell.

    Inline markdown characters are backslash-escaped, `|` included so a value cannot split a
    table cell, `&` becomes `&amp;` so a value cannot spell an HTML entity, and line breaks
    become spaces so a value cannot end a table row.
    """
    flat = " ".join(text.splitlines()).replace("&", "&amp;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
