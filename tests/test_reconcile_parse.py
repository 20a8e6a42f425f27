"""Interval and jitter parsing, duration formatting, and round results built from an apply."""

from __future__ import annotations

import pytest

from reconciler.errors import ConfigError
from reconciler.model import Action, ApplyResult, ChangeResult, ErrorCode, Outcome, Plan, PlanError
from reconciler.reconcile import RoundResult, format_duration, parse_interval, parse_jitter


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("2s", 2.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (" 45s ", 45.0),
        ("1", 1.0),
    ],
)
def test_parse_interval_valid(text: str, seconds: float) -> None:
    """Seconds and h/m/s durations, compound ones included, parse to seconds."""
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "5x", "-5", "1h 30m", "30mm", "1e3"])
def test_parse_interval_invalid(text: str) -> None:
    """Anything but seconds or an h/m/s duration names the value and the accepted forms."""
    with pytest.raises(ConfigError, match="invalid interval") as caught:
        parse_interval(text)

    assert repr(text) in caught.value.message
    assert "1h30m" in caught.value.hint


@pytest.mark.parametrize("text", ["0", "0s", "0.5s", "0.999"])
def test_parse_interval_minimum(text: str) -> None:
    """Intervals under one second are rejected."""
    with pytest.raises(ConfigError, match="too short"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("10%", 0.1), ("0.1", 0.1), ("0", 0.0), ("0%", 0.0), ("99%", 0.99), ("12.5 %", 0.125)],
)
def test_parse_jitter_valid(text: str, fraction: float) -> None:
    """Percentages and fractions parse to a fraction of the interval."""
    assert parse_jitter(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["ten", "%", "", "10%%"])
def test_parse_jitter_invalid(text: str) -> None:
    """A jitter that is not a number names the value and the accepted forms."""
    with pytest.raises(ConfigError, match="invalid jitter") as caught:
        parse_jitter(text)

    assert "10%" in caught.value.hint


@pytest.mark.parametrize("text", ["10", "1", "100%", "-5%", "nan", "inf"])
def test_parse_jitter_out_of_range(text: str) -> None:
    """A jitter of 100% or more, or below zero, is rejected."""
    with pytest.raises(ConfigError, match="out of range"):
        parse_jitter(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (4.21, "4.2s"), (59.0, "59.0s"), (725.0, "12m5s"), (3630.0, "1h0m30s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations print in the unit a reader expects."""
    assert format_duration(seconds) == text


def change(action: Action, outcome: Outcome) -> ChangeResult:
    return ChangeResult(account=f"{action.value}-{outcome.value}", action=action, outcome=outcome)


def test_round_result_no_changes() -> None:
    """A plan with no errors and nothing applied is exit code 0."""
    result = RoundResult.from_apply(Plan(changes=()), None)

    assert result.exit_code == 0
    assert dict(result.applied) == {}


def test_round_result_all_done() -> None:
    """Done changes are counted by action; no-ops are not counted."""
    applied = ApplyResult(
        (
            change(Action.CONNECT, Outcome.DONE),
            change(Action.CONNECT, Outcome.DONE),
            change(Action.DELETE, Outcome.DONE),
            change(Action.NOOP, Outcome.DONE),
        )
    )
    result = RoundResult.from_apply(Plan(changes=()), applied)

    assert result.exit_code == 0
    assert dict(result.applied) == {"connect": 2, "delete": 1}


def test_round_result_partial() -> None:
    """Some done and some failed or not attempted is exit code 3."""
    applied = ApplyResult(
        (
            change(Action.CONNECT, Outcome.DONE),
            change(Action.RECONNECT, Outcome.FAILED),
            change(Action.DELETE, Outcome.NOT_ATTEMPTED),
        )
    )
    result = RoundResult.from_apply(Plan(changes=()), applied)

    assert result.exit_code == 3
    assert result.failed == 1
    assert result.not_attempted == 1


def test_round_result_nothing_done() -> None:
    """Failures with nothing done, or a non-applyable plan, is exit code 1."""
    failed = ApplyResult((change(Action.CONNECT, Outcome.FAILED),))
    error = PlanError(ErrorCode.SECRET_MISSING, "a", "secret missing", "write it")

    assert RoundResult.from_apply(Plan(changes=()), failed).exit_code == 1
    not_applyable = RoundResult.from_apply(Plan(changes=(), errors=(error,)), None)
    assert not_applyable.exit_code == 1
    assert not_applyable.plan_errors == 1
