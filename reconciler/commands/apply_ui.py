"""The terminal side of `grantctl apply`: the plan, the confirmation, progress and events.

`ConsoleApplyUI` implements the workflow's `ApplyUI` protocol for a terminal or a CI log.
Plans and results go to stdout; the progress bar goes to stderr and only to a terminal;
`--events FILE` receives one JSON line per event, flushed at once so a tail sees it live.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import click

from reconciler.commands.options import emit
from reconciler.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, ApprovalError, ConfigError
from reconciler.model import ApplyResult, ChangeResult, Outcome, Plan
from reconciler.render.apply import apply_result_document, render_apply_text
from reconciler.secrets import REDACTOR
from reconciler.state.document import utc_now_iso


def apply_exit_code(result: ApplyResult | None) -> int:
    """Return 0 when every change was done (or none was needed), 3 when some were and
    others failed or were not attempted, 1 when changes were needed and none was done."""
    if result is None:
        return EXIT_OK
    unfinished = result.count(Outcome.FAILED) + result.count(Outcome.NOT_ATTEMPTED)
    if unfinished == 0:
        return EXIT_OK
    return EXIT_PARTIAL if result.count(Outcome.DONE) else EXIT_ERROR


class ConsoleApplyUI:
    """The terminal side of an apply: rendering, approval, progress bar and event file."""

    def __init__(
        self,
        *,
        auto_approve: bool,
        output_format: str,
        events_path: str | None,
        color: bool,
        render: Callable[[Plan], str],
        document: Callable[[Plan], dict[str, Any]],
    ) -> None:
        self.auto_approve = auto_approve
        self.output_format = output_format
        self.color = color
        self._render = render
        self._document = document
        self._events_path = events_path
        self._events: IO[str] | None = None
        self._bar: Any = None
        self._plan_document: dict[str, Any] | None = None

    def __enter__(self) -> ConsoleApplyUI:
        if self._events_path is not None:
            try:
                self._events = Path(self._events_path).open("a", encoding="utf-8")
            except OSError as error:
                raise ConfigError(
                    f"cannot open the events file {self._events_path}: {error.strerror or error}",
                    hint="pass --events a path in an existing directory that this user may write",
                ) from error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close_bar()
        if self._events is not None:
            self._events.close()

    def show_plan(self, plan: Plan) -> None:
        """Print the plan about to be applied (text) or keep it for the JSON document."""
        self.event("plan", changes=sum(1 for change in plan.changes if change.will_change))
        if self.output_format == "json":
            self._plan_document = self._document(plan)
        else:
            emit(self._render(plan))

    def confirm(self, plan: Plan) -> None:
        """Ask for approval on a terminal; raise `ApprovalError` when none can be given."""
        if self.auto_approve:
            return
        if self.output_format == "json":
            raise ApprovalError(
                "apply --format json cannot ask for approval",
                hint="review the plan with `grantctl plan MANIFEST`, then pass --auto-approve",
            )
        if not sys.stdin.isatty():
            raise ApprovalError(
                "apply needs approval, but stdin is not a terminal to ask on",
                hint="review the plan, then run again with --auto-approve",
            )
        changes = sum(1 for change in plan.changes if change.will_change)
        question = "Apply this change?" if changes == 1 else f"Apply these {changes} changes?"
        if not click.confirm(f"\n{question}", default=False, err=True):
            raise ApprovalError("apply cancelled: the plan was not approved")

    def start(self, total: int) -> None:
        """Start the progress bar for `total` changes (stderr, terminals only)."""
        self.event("apply_start", changes=total)
        if sys.stderr.isatty() and total > 0:
            self._bar = click.progressbar(length=total, label="Applying", file=sys.stderr)
            self._bar.__enter__()

    def finished(self, result: ChangeResult) -> None:
        """Advance the progress bar by one finished change."""
        del result  # the bar counts changes; the event file receives the details
        if self._bar is not None:
            self._bar.update(1)

    def record(self, event: dict[str, Any]) -> None:
        """Write one executor event (`start` or `finish` of a change) to the events file."""
        fields = dict(event)
        self.event(str(fields.pop("event", "change")), **fields)

    def show_result(self, result: ApplyResult) -> None:
        """Print the apply result (text or one JSON document with the plan)."""
        self._close_bar()
        counts = {outcome.value: result.count(outcome) for outcome in Outcome}
        self.event("apply_end", interrupted=result.interrupted, **counts)
        if self.output_format == "json":
            document = {"plan": self._plan_document, "result": apply_result_document(result)}
            emit(json.dumps(document, indent=2))
        else:
            emit("\n" + render_apply_text(result, color=self.color))

    def event(self, kind: str, **fields: Any) -> None:
        """Append one JSON line to the events file, when one was given.

        Every line's `time` is ISO 8601 UTC with a `Z` suffix, like the executor's events.
        """
        if self._events is None:
            return
        line = json.dumps({"time": utc_now_iso(), "event": kind, **fields}, sort_keys=True)
        self._events.write(REDACTOR.redact(line) + "\n")
        self._events.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
