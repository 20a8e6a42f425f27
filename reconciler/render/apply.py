"""Views of an `ApplyResult`: text for people and a JSON document for machines.

Both list every change in plan order with its outcome; failures carry Nylas' request id,
which is what Nylas support asks for.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import click

from reconciler import __version__
from reconciler.model import ApplyResult, ChangeResult, Outcome
from reconciler.render.common import SYMBOLS

_OUTCOME_COLORS = {Outcome.DONE: "green", Outcome.FAILED: "red", Outcome.NOT_ATTEMPTED: "yellow"}
_OUTCOME_WORDS = {
    Outcome.DONE: "done",
    Outcome.FAILED: "failed",
    Outcome.NOT_ATTEMPTED: "not attempted",
}


def summary_line(result: ApplyResult) -> str:
    """Return `Apply: 5 done, 1 failed, 0 not attempted.` for `result`."""
    done = result.count(Outcome.DONE)
    failed = result.count(Outcome.FAILED)
    skipped = result.count(Outcome.NOT_ATTEMPTED)
    return f"Apply: {done} done, {failed} failed, {skipped} not attempted."


def render_apply_text(result: ApplyResult, *, color: bool = False) -> str:
    """Render one line per change (failures with their request id) and the summary line."""
    lines = [_result_line(item, color=color) for item in result.results]
    if result.interrupted:
        lines.append("")
        lines.append("The apply was interrupted: changes in flight finished and were recorded.")
    lines.append("")
    lines.append(summary_line(result))
    return "\n".join(lines).lstrip("\n")


def _result_line(item: ChangeResult, *, color: bool) -> str:
    outcome = _OUTCOME_WORDS[item.outcome]
    if color:
        outcome = click.style(outcome, fg=_OUTCOME_COLORS[item.outcome])
    line = f"  {SYMBOLS[item.action]} {item.account}: {item.action.value} {outcome}"
    if item.message:
        line += f": {item.message}"
    if item.outcome is Outcome.FAILED and item.request_id and item.request_id not in item.message:
        line += f" (request id {item.request_id})"
    return line


def apply_result_document(result: ApplyResult) -> dict[str, Any]:
    """Build the JSON document of `result` (`schemas/apply-result.schema.json`)."""
    return {
        "format_version": 1,
        "tool_version": __version__,
        "interrupted": result.interrupted,
        "summary": {
            "done": result.count(Outcome.DONE),
            "failed": result.count(Outcome.FAILED),
            "not_attempted": result.count(Outcome.NOT_ATTEMPTED),
        },
        "results": [
            {
                "account": item.account,
                "action": item.action.value,
                "outcome": item.outcome.value,
                "message": item.message,
                "grant_id": item.grant_id,
                "request_id": item.request_id,
                "duration_s": item.duration_s,
            }
            for item in result.results
        ],
    }


# The name the CLI imports.
apply_to_document = apply_result_document


def apply_result_schema() -> dict[str, Any]:
    """Return the JSON Schema of the apply result document."""
    text = resources.files("reconciler").joinpath("schemas/apply-result.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
