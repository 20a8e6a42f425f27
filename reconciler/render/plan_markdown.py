"""The markdown view of a plan, for pull request comments and `$GITHUB_STEP_SUMMARY`.

Counts come first, then errors, deletions and the other changes; no-ops are folded in a
`<details>` block. Every value from the manifest or Nylas is escaped. The output stays under
`max_chars` (GitHub rejects comments over 65,536 characters) by leaving out table rows,
least important first, and saying how many were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model import Action, Change, Plan
from reconciler.render.common import (
    SYMBOLS,
    escape_markdown,
    no_changes_sentence,
    noop_breakdown,
    summary_sentence,
    version_transition,
)

# Room kept for the truncation note when rows are left out.
_NOTE_RESERVE = 200


@dataclass
class _Section:
    """A heading, table header lines, rows that may be left out, and closing lines."""

    head: list[str]
    rows: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    dropped: int = 0

    def lines(self) -> list[str]:
        note = ["", f"_{self.dropped} more rows left out._"] if self.dropped else []
        return [*self.head, *self.rows, *note, *self.tail]


def render_plan_markdown(plan: Plan, *, max_chars: int = 60000) -> str:
    """Render `plan` as GitHub-flavoured markdown of at most `max_chars` characters."""
    sections = _sections(plan)
    text = _join(sections)
    if len(text) <= max_chars:
        return text
    # Leave out rows from the least important section first: no-ops, unmanaged grants,
    # warnings, other changes, deletions, and errors last.
    _header, errors, deletions, changes, noops, unmanaged, warnings = sections
    excess = len(text) - (max_chars - _NOTE_RESERVE)
    for section in (noops, unmanaged, warnings, changes, deletions, errors):
        while section.rows and excess > 0:
            excess -= len(section.rows.pop()) + 1
            section.dropped += 1
    dropped = sum(section.dropped for section in sections)
    note = (
        f"\n_{dropped} rows were left out to keep this under {max_chars} characters. "
        "The plan file and the job log hold the full plan._\n"
    )
    return (_join(sections) + note)[:max_chars]


def _join(sections: list[_Section]) -> str:
    lines: list[str] = []
    for section in sections:
        lines += section.lines()
    return "\n".join(lines) + "\n"


def _sections(plan: Plan) -> list[_Section]:
    """Return the sections in reading order, which is also the order of importance."""
    deletions = [c for c in plan.changes if c.action is Action.DELETE]
    others = [c for c in plan.changes if c.will_change and c.action is not Action.DELETE]
    return [
        _header(plan),
        _errors(plan),
        _changes("Deletions", deletions),
        _changes("Changes", others),
        _noops(plan),
        _unmanaged(plan),
        _warnings(plan),
    ]


def _header(plan: Plan) -> _Section:
    lines = ["## grantctl plan", "", f"**{summary_sentence(plan)}**", ""]
    if plan.errors:
        count = len(plan.errors)
        noun = "error" if count == 1 else "errors"
        lines += [f"> [!CAUTION]\n> The plan cannot be applied: {count} {noun}.", ""]
    elif not plan.has_changes:
        lines += [no_changes_sentence(plan), ""]
    if plan.partial:
        lines += ["> [!NOTE]\n> This plan is partial: --target/--exclude left accounts out.", ""]
    return _Section(head=lines)


def _errors(plan: Plan) -> _Section:
    if not plan.errors:
        return _Section(head=[])
    head = ["### Errors", "", "| Account | Error | Problem | Next step |", "|---|---|---|---|"]
    rows = [
        f"| {_cell(e.account or '(plan)')} | `{e.code.value}` | {_cell(e.message)} | "
        f"{_cell(e.next_step)} |"
        for e in plan.errors
    ]
    return _Section(head=head, rows=rows, tail=[""])


def _changes(title: str, changes: list[Change]) -> _Section:
    if not changes:
        return _Section(head=[])
    head = [
        f"### {title} ({len(changes)})",
        "",
        "| | Account | Action | Email | Provider | Grant | Vault version | Reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [_change_row(change) for change in changes]
    return _Section(head=head, rows=rows, tail=[""])


def _change_row(change: Change) -> str:
    symbol = _cell(SYMBOLS[change.action])
    action = f"**{change.action.value}**" if change.action is Action.DELETE else change.action.value
    cells = [
        symbol,
        _cell(change.account),
        action,
        _cell(change.email),
        _cell(change.provider),
        _cell(change.grant_id or "(new)"),
        _cell(version_transition(change)),
        f"`{change.reason.value}`: {_cell(change.message)}",
    ]
    return "| " + " | ".join(cells) + " |"


def _noops(plan: Plan) -> _Section:
    noops = [change for change in plan.changes if change.action is Action.NOOP]
    if not noops:
        return _Section(head=[])
    head = [
        f"<details><summary>{escape_markdown(noop_breakdown(plan))}</summary>",
        "",
        "| Account | Reason | Detail |",
        "|---|---|---|",
    ]
    rows = [f"| {_cell(c.account)} | `{c.reason.value}` | {_cell(c.message)} |" for c in noops]
    return _Section(head=head, rows=rows, tail=["", "</details>", ""])


def _unmanaged(plan: Plan) -> _Section:
    if not plan.unmanaged:
        return _Section(head=[])
    head = [
        f"### Unmanaged grants ({len(plan.unmanaged)})",
        "",
        "In Nylas but not in the manifest or the inventory. grantctl never deletes them.",
        "",
        "| Grant | Provider | Email | Status |",
        "|---|---|---|---|",
    ]
    rows = [
        f"| {_cell(g.id)} | {_cell(g.provider)} | {_cell(g.email)} | {g.status.value} |"
        for g in plan.unmanaged
    ]
    return _Section(head=head, rows=rows, tail=[""])


def _warnings(plan: Plan) -> _Section:
    if not plan.warnings:
        return _Section(head=[])
    rows = [f"- {escape_markdown(warning)}" for warning in plan.warnings]
    return _Section(head=["### Warnings", ""], rows=rows, tail=[""])


def _cell(text: str) -> str:
    return escape_markdown(text)
