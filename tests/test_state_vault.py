"""Vault state backend against a real OpenBao dev server: cas, lock documents, size."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.errors import LockError, StateConflictError, StateError
from reconciler.model import Inventory, InventoryEntry
from reconciler.secrets import Secret
from reconciler.state import VaultStateBackend
from reconciler.state.lockrecord import new_lock_record
from reconciler.vault import AuthConfig, AuthMethod, connect_vault
from tests.support.jsonserver import JSONHandler, serving


def backend_pair(openbao: Any) -> tuple[VaultStateBackend, VaultStateBackend]:
    """Return two backends on one fresh state path, as two processes would have."""
    path = openbao.unique("grantctl/state/test")
    return (
        VaultStateBackend(openbao.session(), "secret", path, who="ana@ci-1"),
        VaultStateBackend(openbao.session(), "secret", path, who="bo@ci-2"),
    )


def entry(name: str, **extra: Any) -> InventoryEntry:
    """Return an inventory entry for `name`."""
    return InventoryEntry(
        name, str(uuid.uuid4()), "google", f"{name}@example.com", f"p/{name}", **extra
    )


def test_round_trip(openbao: Any) -> None:
    """A written inventory reads back equal from another backend."""
    first, second = backend_pair(openbao)
    empty = first.read()
    stored = first.write(Inventory(empty.lineage, 0, {"leyah": entry("leyah", failures=2)}))
    assert second.read() == stored


def test_concurrent_write_conflicts(openbao: Any) -> None:
    """Of two writers starting from one serial, the second gets StateConflictError."""
    first, second = backend_pair(openbao)
    empty = first.read()
    base = first.write(Inventory(empty.lineage, 0, {}))
    seen = second.read()
    first.write(Inventory(base.lineage, base.serial, {"a": entry("a")}))
    with pytest.raises(StateConflictError, match="check-and-set on version 1 failed"):
        second.write(Inventory(seen.lineage, seen.serial, {"b": entry("b")}))


def test_lock_created_with_cas_zero(openbao: Any) -> None:
    """The first lock is version 1 of the lock document; a second taker is refused."""
    first, second = backend_pair(openbao)
    with first.lock("apply") as info:
        stored = openbao.client().secrets.kv.v2.read_secret_version(
            path=first.lock_path, raise_on_deleted_version=True
        )
        assert stored["data"]["metadata"]["version"] == 1
        assert stored["data"]["data"]["id"] == info.id
        with pytest.raises(LockError) as caught, second.lock("plan"):
            pass
    assert "ana@ci-1" in str(caught.value)
    assert f"force-unlock {info.id}" in str(caught.value)
    assert first.current_lock() is None
    with second.lock("apply") as again:
        assert again.who == "bo@ci-2"


def test_expired_lock_taken_over(openbao: Any) -> None:
    """A lock whose holder stopped renewing is taken over with cas on its version."""
    first, second = backend_pair(openbao)
    record = new_lock_record("apply", who="gone@runner", ttl_s=-1)
    record["host"] = "another-host"
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path=first.lock_path, secret=record, cas=0
    )
    with second.lock("apply") as info:
        assert info.id != record["id"]


def test_force_unlock_fences_old_holder(openbao: Any) -> None:
    """After force-unlock the old holder's writes fail and a new lock can be taken."""
    first, second = backend_pair(openbao)
    inventory = first.read()
    with first.lock("apply") as info:
        with pytest.raises(LockError, match="does not match"):
            second.force_unlock("nope")
        second.force_unlock(info.id)
        with pytest.raises(LockError, match="force-unlocked"):
            first.write(inventory)
        with second.lock("apply"):
            pass


def test_deleted_state_is_error(openbao: Any) -> None:
    """A soft-deleted state document is an error with the undelete command."""
    first, _ = backend_pair(openbao)
    empty = first.read()
    first.write(Inventory(empty.lineage, 0, {"a": entry("a")}))
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path=first.path)
    with pytest.raises(StateError, match="undelete"):
        first.read()


def test_ten_thousand_entries_fit(openbao: Any) -> None:
    """10,000 accounts are stored in one document under 512 KiB and read back equal."""
    first, second = backend_pair(openbao)
    rng = random.Random(7)  # noqa: S311  # reproducible test data, not cryptography
    names = ["anna", "bob", "carla", "dmitri", "eve", "farah", "georg", "hana", "ivan"]
    entries = {}
    for index in range(10_000):
        name = f"{rng.choice(names)}-{rng.choice(names)}-{index}"
        entries[name] = entry(
            name,
            vault_version_sent=rng.randint(1, 40),
            scopes=("Mail.Read", "User.Read", "offline_access"),
            updated_at=f"2026-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
        )
    empty = first.read()
    stored = first.write(Inventory(empty.lineage, 0, entries))
    raw = openbao.client().secrets.kv.v2.read_secret_version(
        path=first.path, raise_on_deleted_version=True
    )["data"]["data"]
    assert len(raw["payload"]) < 512 * 1024
    assert second.read() == stored


def test_revoked_token_logs_in_again(openbao: Any) -> None:
    """A state write after the login token was revoked logs in again and succeeds."""
    path = openbao.unique("grantctl/state/relogin")
    policy = openbao.unique("state")
    openbao.write_policy(
        policy, f'path "secret/data/{path}*" {{ capabilities = ["create", "read", "update"] }}'
    )
    auth_mount = openbao.unique("approle")
    role_id, secret_id = openbao.approle("state", [policy], mount=auth_mount)
    config = AuthConfig(
        addr=openbao.addr,
        method=AuthMethod.APPROLE,
        mount=auth_mount,
        role_id=Secret(role_id),
        secret_id=Secret(secret_id),
    )
    session = connect_vault(config)
    backend = VaultStateBackend(session, "secret", path)
    first_token = session.hvac.token
    openbao.client().auth.token.revoke(first_token)

    stored = backend.write(Inventory(backend.read().lineage, 0, {"a": entry("a")}))

    assert session.hvac.token != first_token
    assert VaultStateBackend(openbao.session(), "secret", path).read() == stored


def test_repeated_write_counts_as_done(openbao: Any) -> None:
    """A cas write sent twice (a retry after a lost response) returns the stored version."""
    first, _ = backend_pair(openbao)
    record = new_lock_record("apply", who="ana@ci-1", ttl_s=60)
    assert first._kv_write(first.lock_path, record, 0) == 1
    assert first._kv_write(first.lock_path, record, 0) == 1
    assert first._kv_write(first.lock_path, {**record, "id": "other"}, 0) is None


class FlakyKV(JSONHandler):
    """A KV v2 mount that returns 502 to the first `failures` GETs and POSTs each."""

    failures = 0
    gets = 0
    posts = 0

    def do_GET(self) -> None:  # noqa: N802  # the name http.server dispatches to
        if self.reply_token_lookup():
            return
        type(self).gets += 1
        if type(self).gets <= type(self).failures:
            self.reply(502, {"errors": ["upstream connect error"]})
            return
        self.reply(404, {"errors": []})

    def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).posts += 1
        if type(self).posts <= type(self).failures:
            self.reply(502, {"errors": ["upstream connect error"]})
            return
        self.reply(200, {"data": {"version": 1}})


@pytest.fixture
def flaky_kv() -> Iterator[tuple[str, type[FlakyKV]]]:
    handler = type("Handler", (FlakyKV,), {"failures": 2, "gets": 0, "posts": 0})
    with serving(handler) as addr:
        yield addr, handler


def test_5xx_retried_on_read_and_write(flaky_kv: tuple[str, type[FlakyKV]]) -> None:
    """Reads and cas writes of the state are retried after 502 responses."""
    addr, handler = flaky_kv
    delays: list[float] = []
    session = connect_vault(AuthConfig(addr=addr, token=Secret("t-flaky")), sleep=delays.append)
    backend = VaultStateBackend(session, "secret", "grantctl/state")

    empty = backend.read()
    written = backend.write(Inventory(empty.lineage, 0, {"a": entry("a")}))

    assert written.serial == 1
    # Three attempts of the read, then one more read that finds the version to cas on.
    assert handler.gets == 4
    assert handler.posts == 3
    assert len(delays) == 4
