"""Executor: connects, deletes, verification and journaling against in-memory fakes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.executor import ApplyOptions, _forget_message
from reconciler.model import Action, Outcome, Reason
from reconciler.render.apply import render_apply_text
from reconciler.verify import MAX_CONNECT_ATTEMPTS
from tests.executor_support import World, account, change


def test_connect_records_grant(tmp_path: Path) -> None:
    """A connect stores the grant id and the Vault version sent."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah)
    result = world.apply([change(leyah)], [leyah])
    assert result.count(Outcome.DONE) == 1
    entry = world.state.read().entries["leyah"]
    assert entry.grant_id == result.results[0].grant_id
    assert entry.vault_version_sent == 1
    assert world.secrets.reads == [("nylas/leyah", 1)]


def test_parallelism_bounds_concurrency(tmp_path: Path) -> None:
    """Accounts run concurrently, never more at once than `parallelism`."""
    world = World(tmp_path)
    world.grants.latency_s = 0.05
    accounts = [account(f"user{i:02d}") for i in range(12)]
    for item in accounts:
        world.mailbox(item)
    result = world.apply([change(a) for a in accounts], accounts, ApplyOptions(parallelism=4))
    assert result.count(Outcome.DONE) == 12
    assert world.grants.max_in_flight == 4
    assert len(world.state.read().entries) == 12


def test_changes_of_one_account_run_in_order(tmp_path: Path) -> None:
    """Two changes of one account run one after the other, in plan order."""
    world = World(tmp_path)
    world.grants.latency_s = 0.02
    leyah = account("leyah")
    world.mailbox(leyah, token="first")
    world.secrets.put(leyah.secret_path, {"refresh_token": "second"})
    world.grants.identities["second"] = world.grants.identities["first"]
    changes = [change(leyah, version=1), change(leyah, Action.RECONNECT, version=2)]
    result = world.apply(changes, [leyah], ApplyOptions(parallelism=4))
    assert [r.outcome for r in result.results] == [Outcome.DONE, Outcome.DONE]
    assert [token for _, token in world.grants.connects] == ["first", "second"]
    assert world.state.read().entries["leyah"].vault_version_sent == 2


def test_failure_continues_with_other_accounts(tmp_path: Path) -> None:
    """A rejected token fails its account only, with Nylas' request id."""
    world = World(tmp_path)
    good, bad = account("good"), account("bad")
    world.mailbox(good)
    world.secrets.put(bad.secret_path, {"refresh_token": "revoked-token"})
    result = world.apply([change(bad), change(good)], [bad, good])
    bad_result, good_result = result.results
    assert bad_result.outcome is Outcome.FAILED
    assert bad_result.request_id == "req-bad"
    assert good_result.outcome is Outcome.DONE


def test_later_change_of_failed_account_not_attempted(tmp_path: Path) -> None:
    """After one change of an account fails, its later changes are not attempted."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.secrets.put(leyah.secret_path, {"refresh_token": "revoked-token"})
    changes = [change(leyah), change(leyah, Action.RECONNECT)]
    result = world.apply(changes, [leyah])
    assert [r.outcome for r in result.results] == [Outcome.FAILED, Outcome.NOT_ATTEMPTED]


def test_wrong_mailbox_deletes_grant_it_created(tmp_path: Path) -> None:
    """A token of another mailbox fails, and the grant this apply created is deleted."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah, email="someone-else@example.com")
    result = world.apply([change(leyah)], [leyah])
    failed = result.results[0]
    assert failed.outcome is Outcome.FAILED
    assert "belongs to someone-else@example.com" in failed.message
    assert "nylas/leyah" in failed.message
    assert world.grants.grants == {}
    assert world.state.read().entries["leyah"].grant_id == ""


def test_wrong_mailbox_keeps_existing_grant(tmp_path: Path) -> None:
    """A token of a mailbox that already had a grant fails, and that grant stays."""
    world = World(tmp_path)
    leyah = account("leyah")
    other = world.grants.add_grant("microsoft", "boss@example.com")
    world.mailbox(leyah, email="boss@example.com")
    result = world.apply([change(leyah)], [leyah])
    failed = result.results[0]
    assert failed.outcome is Outcome.FAILED
    assert "existed before this apply and was left alone" in failed.message
    assert other.id in world.grants.grants
    assert world.grants.deletes == []


def test_missing_scopes_fail_and_keep_ownership(tmp_path: Path) -> None:
    """A grant without a required scope fails naming it, and its id is still recorded."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah, scopes=("Mail.Read",))
    result = world.apply([change(leyah)], [leyah])
    failed = result.results[0]
    assert failed.outcome is Outcome.FAILED
    assert "User.Read, offline_access" in failed.message
    entry = world.state.read().entries["leyah"]
    assert entry.grant_id == failed.grant_id
    assert entry.failures == 1


def test_unknown_outcome_after_apply_not_resent(tmp_path: Path) -> None:
    """A connect that took effect before its answer was lost is settled by listing."""
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.unknown_after.append(token)
    result = world.apply([change(leyah)], [leyah])
    assert result.results[0].outcome is Outcome.DONE
    assert len(world.grants.connects) == 1
    assert world.grants.finds == ["leyah@example.com"]
    assert world.state.read().entries["leyah"].grant_id == result.results[0].grant_id


def test_unknown_reconnect_settled_by_updated_at(tmp_path: Path) -> None:
    """A reconnect whose grant moved `updated_at` after the send counts as done."""
    world = World(tmp_path)
    leyah = account("leyah")
    grant = world.grants.add_grant("microsoft", leyah.email)
    token = world.mailbox(leyah)
    world.grants.unknown_after.append(token)
    reconnect = change(leyah, Action.RECONNECT, grant_id=grant.id)
    result = world.apply([reconnect], [leyah])
    assert result.results[0].outcome is Outcome.DONE
    assert len(world.grants.connects) == 1


def test_unknown_outcome_before_apply_resent_once(tmp_path: Path) -> None:
    """A connect that never reached Nylas is sent exactly once more."""
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.unknown_before.append(token)
    result = world.apply([change(leyah)], [leyah])
    assert result.results[0].outcome is Outcome.DONE
    assert len(world.grants.connects) == 2
    assert len(world.grants.grants) == 1


def test_unknown_outcome_exhausts_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown outcomes with no grant change re-send up to the attempt cap, then fail."""
    monkeypatch.setattr("reconciler.verify._resend_delay_s", lambda attempt: 0.0)
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.unknown_before.extend([token] * (MAX_CONNECT_ATTEMPTS + 1))
    result = world.apply([change(leyah)], [leyah])
    assert result.results[0].outcome is Outcome.FAILED
    assert f"unknown {MAX_CONNECT_ATTEMPTS} times" in result.results[0].message
    assert len(world.grants.connects) == MAX_CONNECT_ATTEMPTS


def test_unknown_outcome_resent_until_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three unknown outcomes that changed nothing, then a success: one grant, done."""
    monkeypatch.setattr("reconciler.verify._resend_delay_s", lambda attempt: 0.0)
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.unknown_before.extend([token] * 3)
    result = world.apply([change(leyah)], [leyah])
    assert result.results[0].outcome is Outcome.DONE
    assert len(world.grants.connects) == 4
    assert len(world.grants.grants) == 1


def test_quarantine_after_three_failures(tmp_path: Path) -> None:
    """The third consecutive failure quarantines the account; success would reset it."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.secrets.put(leyah.secret_path, {"refresh_token": "revoked-token"})
    for run in range(1, 4):
        world.apply([change(leyah)], [leyah])
        entry = world.state.read().entries["leyah"]
        assert entry.failures == run
        assert entry.quarantined is (run == 3)
        assert entry.vault_version_failed == 1
    world.mailbox(leyah)  # version 2, a working token
    world.apply([change(leyah, version=2)], [leyah])
    entry = world.state.read().entries["leyah"]
    assert (entry.failures, entry.quarantined, entry.grant_id != "") == (0, False, True)


def test_delete_forget_and_adopt(tmp_path: Path) -> None:
    """Delete revokes, a gone grant still counts as done, forget and adopt touch only state."""
    world = World(tmp_path)
    keep, gone, drop, found = account("keep"), account("gone"), account("drop"), account("found")
    grant = world.grants.add_grant("microsoft", drop.email)
    adopted = world.grants.add_grant("microsoft", found.email)
    for item in (keep, gone):
        world.mailbox(item)
    world.apply([change(keep), change(gone)], [keep, gone])
    entries = world.state.read().entries
    world.grants.grants.pop(entries["gone"].grant_id)
    changes = [
        change(keep, Action.FORGET, version=None, grant_id=entries["keep"].grant_id),
        change(gone, Action.DELETE, version=None, grant_id=entries["gone"].grant_id),
        change(drop, Action.DELETE, version=None, grant_id=grant.id),
        change(found, Action.ADOPT, version=7, grant_id=adopted.id),
    ]
    result = world.apply(changes, [found])
    assert [r.outcome for r in result.results] == [Outcome.DONE] * 4
    assert grant.id not in world.grants.grants
    entries = world.state.read().entries
    assert sorted(entries) == ["found"]
    assert entries["found"].grant_id == adopted.id
    assert entries["found"].vault_version_sent == 7


def test_result_lines_name_action_once(tmp_path: Path) -> None:
    """Each apply result line names its action and outcome once, then only the detail."""
    world = World(tmp_path)
    keep, gone, found, bad = account("keep"), account("gone"), account("found"), account("bad")
    adopted = world.grants.add_grant("microsoft", found.email)
    for item in (keep, gone):
        world.mailbox(item)
    world.secrets.put(bad.secret_path, {"refresh_token": "revoked-token"})
    world.apply([change(keep), change(gone)], [keep, gone])
    entries = world.state.read().entries
    changes = [
        change(keep, Action.FORGET, version=None, grant_id=entries["keep"].grant_id),
        change(gone, Action.DELETE, version=None, grant_id=entries["gone"].grant_id),
        change(found, Action.ADOPT, version=1, grant_id=adopted.id),
        change(bad),
    ]
    result = world.apply(changes, [found, bad])
    lines = render_apply_text(result).splitlines()[: len(changes)]
    for item, line in zip(result.results, lines, strict=True):
        head = f"{item.account}: {item.action.value} {item.outcome.value}: "
        assert head in line, line
        detail = line.split(head, 1)[1]
        assert not detail.startswith((item.action.value, "forgotten", "done", "failed")), line
        assert f"for account {item.account!r}" not in line, line


def test_finish_event_after_state_write(tmp_path: Path) -> None:
    """Every finish event comes after the inventory holds that change."""
    world = World(tmp_path)
    accounts = [account(f"user{i}") for i in range(6)]
    for item in accounts:
        world.mailbox(item)
    seen: list[tuple[str, bool]] = []

    def on_event(event: dict[str, object]) -> None:
        if event["event"] == "finish":
            stored = world.state.read().entries
            seen.append((str(event["account"]), str(event["account"]) in stored))

    world.apply([change(a) for a in accounts], accounts, ApplyOptions(on_event=on_event))
    assert len(seen) == 6
    assert all(stored for _, stored in seen), seen


def test_stop_event_leaves_rest_not_attempted(tmp_path: Path) -> None:
    """After stop is set, changes in flight finish and the rest are not attempted."""
    world = World(tmp_path)
    world.grants.latency_s = 0.05
    accounts = [account(f"user{i:02d}") for i in range(20)]
    for item in accounts:
        world.mailbox(item)
    stop = threading.Event()

    def on_event(event: dict[str, object]) -> None:
        if event["event"] == "finish":
            stop.set()

    options = ApplyOptions(parallelism=2, stop=stop, on_event=on_event)
    result = world.apply([change(a) for a in accounts], accounts, options)
    done = result.count(Outcome.DONE)
    assert result.interrupted
    assert 1 <= done <= 4
    assert result.count(Outcome.NOT_ATTEMPTED) == 20 - done
    assert len(world.state.read().entries) == done


@pytest.mark.parametrize(
    ("reason", "grant_id", "expected"),
    [
        (Reason.REMOVED_KEEP_GRANT, "g-1", "the grant is kept but no longer managed"),
        (Reason.GRANT_DELETED_OUTSIDE, "g-1", "because grant g-1 no longer exists"),
        (Reason.GRANT_DELETED_OUTSIDE, "", "because the account never had a grant"),
    ],
    ids=["kept", "gone", "never"],
)
def test_forget_message_by_case(reason: Reason, grant_id: str, expected: str) -> None:
    """A forget's result message names whether the grant is kept, gone, or never existed."""
    forget = change(account("erin"), Action.FORGET, version=None, reason=reason, grant_id=grant_id)
    assert expected in _forget_message(forget)
