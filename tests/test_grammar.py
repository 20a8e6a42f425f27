import pytest

from reconciler.grammar import article, plural
from reconciler.model import Action, Change, Inventory, Reason
from reconciler.planner import PlanOptions, _select
from reconciler.planner_safety import check_deletes


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 problems"), (1, "1 problem"), (2, "2 problems")]
)
def test_plural_by_count(count: int, expected: str) -> None:
    assert plural(count, "problem") == expected


def test_plural_irregular_form() -> None:
    assert plural(2, "entry", "entries") == "2 entries"
    assert plural(1, "entry", "entries") == "1 entry"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("imap", "an imap"),
        ("icloud", "an icloud"),
        ("ews", "an ews"),
        ("google", "a google"),
        ("microsoft", "a microsoft"),
        ("yahoo", "a yahoo"),
        ("zoom", "a zoom"),
        ("unique", "a unique"),
        ("hour", "an hour"),
    ],
)
def test_article_by_first_sound(word: str, expected: str) -> None:
    assert article(word) == expected


def test_partial_plan_warning_singular() -> None:
    warnings: list[str] = []

    _select(["alice", "bob"], PlanOptions(targets=("alice",)), warnings)

    assert warnings[0].startswith(
        "This plan is partial: it considers 1 of 2 accounts, and --target/--exclude left out 1."
    )


def test_delete_limit_one_grant() -> None:
    delete = Change(
        "alice", Action.DELETE, Reason.ENSURE_ABSENT, "", "google", "alice@example.com", "g-1"
    )

    errors = check_deletes([delete], (), Inventory("lineage", 1), 0, False)

    assert errors[0].message.startswith("The plan deletes 1 grant, more than")

