"""Plan views: golden text and markdown for a plan with every action and error, and edge cases.

Set UPDATE_GOLDEN=1 to rewrite the files in tests/golden/ after an intended change, then
review the diff.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from reconciler.model import Action, Change, ErrorCode, Plan, Reason
from reconciler.planfile import plan_to_document
from reconciler.reconcile_round import _log_quarantined
from reconciler.render.common import escape_markdown, summary_sentence
from reconciler.render.plan_markdown import render_plan_markdown
from reconciler.render.plan_text import render_plan_text
from tests.test_planner import CASES_DIR, load_case, plan_case

GOLDEN_DIR = Path(__file__).parent / "golden"
SCHEMA = json.loads(
    (Path(__file__).parents[1] / "reconciler" / "schemas" / "plan.schema.json").read_text()
)


def representative_plan() -> Plan:
    """Return a plan with every action and every error code.

    No single input can hold every error, because `deletes_everything` needs every managed
    account to be deleted and `owned_elsewhere` needs a grant marked by another inventory's
    lineage, so those errors come from their own cases.
    """
    plan = plan_case(load_case(CASES_DIR / "representative.yaml"))
    extra = []
    for case, code in (
        ("error_deletes_everything.yaml", ErrorCode.DELETES_EVERYTHING),
        ("error_owned_elsewhere.yaml", ErrorCode.OWNED_ELSEWHERE),
    ):
        other = plan_case(load_case(CASES_DIR / case))
        extra += [e for e in other.errors if e.code is code]
    errors = sorted([*plan.errors, *extra], key=lambda e: (e.account or "", e.code.value))
    return replace(plan, errors=tuple(errors))


def check_golden(name: str, text: str) -> None:
    """Compare `text` with tests/golden/`name`, or rewrite it when UPDATE_GOLDEN=1."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the golden file; rerun with UPDATE_GOLDEN=1"


def test_representative_plan_has_everything() -> None:
    """The golden plan contains every action and every error code."""
    plan = representative_plan()
    assert {c.action for c in plan.changes} == set(Action)
    assert {e.code for e in plan.errors} == set(ErrorCode)


def test_text_golden() -> None:
    """The text view matches its golden file."""
    check_golden("plan.txt", render_plan_text(representative_plan(), color=False))


def test_text_verbose_golden() -> None:
    """The verbose text view lists no-ops one by one."""
    check_golden(
        "plan_verbose.txt", render_plan_text(representative_plan(), color=False, verbose=True)
    )


def test_markdown_golden() -> None:
    """The markdown view matches its golden file."""
    check_golden("plan.md", render_plan_markdown(representative_plan()))


def test_json_golden_matches_schema() -> None:
    """The JSON view validates against the schema and matches its golden file."""
    document = plan_to_document(
        representative_plan(),
        plan_id="plan-0001",
        created_at="2026-01-02T03:04:05Z",
        tool_version="0.1.0",
        manifest_path="grants.yaml",
    )
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    check_golden("plan.json", json.dumps(document, sort_keys=True, indent=2) + "\n")


def in_sync_plan() -> Plan:
    """Return a plan whose only account is in sync."""
    return plan_case(load_case(CASES_DIR / "noop_in_sync.yaml"))


def plan_of_one_change(
    name: str, action: Action, reason: Reason, *, grant_id: str | None, version: int | None
) -> Plan:
    """Return a plan whose one change is for google account `name`, which recorded no version.

    A delete has no after side; any other change ends valid at `version`.
    """
    before = {"email": f"{name}@example.com", "provider": "google", "grant_id": grant_id}
    before |= {"vault_version": None, "status": "valid" if grant_id else None}
    after = {**before, "vault_version": version, "status": "valid"}
    change = Change(
        account=name,
        action=action,
        reason=reason,
        message=f"{action.value.capitalize()}.",
        provider="google",
        email=f"{name}@example.com",
        grant_id=grant_id,
        vault_path=f"team/{name}",
        vault_version=version,
        before=before,
        after=None if action is Action.DELETE else after,
    )
    return replace(in_sync_plan(), changes=(change,))


def test_connect_over_entry_without_grant() -> None:
    """A connect over an inventory entry without a grant shows no before side, like any connect."""
    plan = plan_of_one_change(
        "frank", Action.CONNECT, Reason.NOT_CONNECTED, grant_id=None, version=1
    )

    text = render_plan_text(plan, color=False)
    markdown = render_plan_markdown(plan)

    assert "vault:         team/frank (version 1)\n" in text
    assert "->" not in text
    assert "| 1 |" in markdown


def test_adopt_shows_recorded_version_without_transitions() -> None:
    """An adopt records the version and `protect` it had no record of; neither reads as a move."""
    plan = representative_plan()
    (adopt,) = [change for change in plan.changes if change.action is Action.ADOPT]
    assert adopt.before is not None and adopt.before["protect"] is None
    plan = replace(plan, changes=(adopt,), errors=(), warnings=())

    text = render_plan_text(plan, color=False)
    markdown = render_plan_markdown(plan)

    assert f"vault:         {adopt.vault_path} (version 6)\n" in text
    assert "->" not in text
    assert "(none)" not in text
    assert "| 6 |" in markdown


def test_reconnect_shows_appearing_value() -> None:
    """A settings change from no value, such as a first credential_id, is shown as a move."""
    plan = plan_of_one_change(
        "carol", Action.RECONNECT, Reason.SETTINGS_CHANGED, grant_id="g-carol", version=1
    )
    (change,) = plan.changes
    assert change.before is not None and change.after is not None
    change = replace(
        change,
        before={**change.before, "credential_id": None},
        after={**change.after, "credential_id": "cred-7"},
    )

    text = render_plan_text(replace(plan, changes=(change,)), color=False)

    assert "credential_id: (none) -> cred-7" in text


def test_delete_unversioned_shows_path_only() -> None:
    """An entry that never recorded a version shows its path without `(version -)`."""
    plan = plan_of_one_change(
        "gone", Action.DELETE, Reason.REMOVED_FROM_MANIFEST, grant_id="g-gone", version=None
    )

    text = render_plan_text(plan, color=False)

    assert "vault:         team/gone\n" in text
    assert "version" not in text


def test_unmanaged_grants_aligned() -> None:
    """Unmanaged grant lines pad each column to its longest value."""
    text = render_plan_text(representative_plan(), color=False)

    lines = [line for line in text.splitlines() if line.startswith("  ? ")]
    assert len(lines) == 2
    assert lines[0].index("<intern>") == lines[1].index("shared|mailbox")
    assert lines[0].index("invalid") == lines[1].index("valid")


def test_text_no_changes() -> None:
    """A plan without changes reports none, with a zero summary."""
    text = render_plan_text(in_sync_plan(), color=False)
    assert "No changes. The grants match the manifest." in text
    assert "Plan: 0 to connect, 0 to reconnect, 0 to adopt, 0 to delete, 0 to forget." in text
    assert "symbols" not in text, "legend printed without changes"


def test_text_legend_lists_only_used_symbols() -> None:
    """The legend names only the actions present."""
    text = render_plan_text(
        plan_case(load_case(CASES_DIR / "connect_not_connected.yaml")), color=False
    )
    assert "  + connect" in text
    assert "~ reconnect" not in text


def test_text_color_highlights_deletes() -> None:
    """With colour on, a delete heading is red and bold."""
    text = render_plan_text(
        plan_case(load_case(CASES_DIR / "delete_ensure_absent.yaml")), color=True
    )
    assert "\x1b[31m\x1b[1m  - alice: delete" in text


def test_text_no_color_has_no_escapes() -> None:
    """With colour off, no ANSI escape appears."""
    assert "\x1b[" not in render_plan_text(representative_plan(), color=False)


def test_summary_sentence_form() -> None:
    """The summary sentence has the fixed Terraform-like form."""
    assert summary_sentence(representative_plan()) == (
        "Plan: 2 to connect, 2 to reconnect, 1 to adopt, 2 to delete, 1 to forget."
    )


def test_markdown_escapes_values() -> None:
    """User values cannot add markdown or split a table cell."""
    assert escape_markdown("a|b*c_<d>\ne") == r"a\|b\*c\_\<d\> e"


def test_markdown_truncates_under_limit() -> None:
    """A small limit drops rows, keeps errors first, and counts the rows left out."""
    text = render_plan_markdown(representative_plan(), max_chars=4000)
    assert len(text) <= 4000
    assert "rows were left out" in text
    assert "### Errors" in text
    assert text.index("### Errors") < text.index("rows were left out")


@pytest.mark.parametrize("limit", [3000, 6000, 60000])
def test_markdown_respects_any_limit(limit: int) -> None:
    """The markdown view never exceeds max_chars."""
    assert len(render_plan_markdown(representative_plan(), max_chars=limit)) <= limit


def test_markdown_no_changes() -> None:
    """A plan without changes reports none and folds the no-ops."""
    text = render_plan_markdown(in_sync_plan())
    assert "No changes. The grants match the manifest." in text
    assert "<details>" in text


def _quarantined_plan(names: tuple[str, ...]) -> Plan:
    changes = tuple(
        Change(
            account=name,
            action=Action.NOOP,
            reason=Reason.QUARANTINED,
            message="Skipped: the account is quarantined after 3 failed applies.",
            provider="microsoft",
            email=f"{name}@example.com",
        )
        for name in names
    )
    return Plan(changes=changes)


def test_quarantined_noops_not_in_sync() -> None:
    plan = _quarantined_plan(("ines", "leyah"))
    expected = "No changes to apply, but 2 accounts are quarantined"
    for view in (render_plan_text(plan, color=False), render_plan_markdown(plan)):
        assert "The grants match the manifest" not in view
        assert expected in view
        assert "--retry-quarantined" in view


def test_quarantined_plan_exits_zero() -> None:
    assert not _quarantined_plan(("leyah",)).has_changes


def test_reconcile_logs_quarantined(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reconciler.reconcile_round"):
        _log_quarantined(_quarantined_plan(("ines", "leyah")))

    assert len(caplog.records) == 1
    assert "2 accounts are quarantined" in caplog.text
    assert "ines, leyah" in caplog.text
