"""Local state backend: atomic writes, corrupt files, check-and-set and the lock."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import LockError, StateConflictError, StateError
from reconciler.model import Inventory, InventoryEntry
from reconciler.state import LocalStateBackend, atomic
from reconciler.state.lockrecord import ci_run_url, new_lock_record


def entry(name: str) -> InventoryEntry:
    """Return an inventory entry for `name`."""
    return InventoryEntry(name, f"grant-{name}", "google", f"{name}@example.com", f"nylas/{name}")


def add(backend: LocalStateBackend, name: str) -> Inventory:
    """Read, add an entry, write; return the stored inventory."""
    current = backend.read()
    entries = {**current.entries, name: entry(name)}
    return backend.write(Inventory(current.lineage, current.serial, entries))


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    """No state file means an empty inventory at serial 0."""
    inventory = LocalStateBackend(tmp_path / "state.json").read()
    assert inventory.serial == 0
    assert inventory.is_empty


def test_write_round_trip(tmp_path: Path) -> None:
    """A written inventory reads back equal, with the serial incremented."""
    backend = LocalStateBackend(tmp_path / "sub" / "state.json")
    stored = add(backend, "leyah")
    assert stored.serial == 1
    assert backend.read() == stored
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["state.json", "state.json.lock"]


def test_full_disk_keeps_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails mid-way leaves the previous file and no temporary file."""
    backend = LocalStateBackend(tmp_path / "state.json")
    add(backend, "leyah")
    before = (tmp_path / "state.json").read_bytes()

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_fsync", full)
    with pytest.raises(StateError) as caught:
        add(backend, "bob")
    assert str(tmp_path / "state.json") in str(caught.value)
    assert "No space left" in str(caught.value)
    assert (tmp_path / "state.json").read_bytes() == before
    assert not list(tmp_path.glob(".state.json.*.tmp"))


def test_read_only_directory_keeps_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that rejects new files gives a StateError and the old state."""
    backend = LocalStateBackend(tmp_path / "state.json")
    add(backend, "leyah")
    before = (tmp_path / "state.json").read_bytes()

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    # root ignores directory permissions, so the failing call is simulated.
    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(StateError) as caught:
        add(backend, "bob")
    assert "Read-only file system" in str(caught.value)
    assert "previous file is unchanged" in str(caught.value)
    assert (tmp_path / "state.json").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"format_version": 1, "lineage": "x", "serial": -1, "entries": {}}', "serial"),
        ('{"format_version": 1, "lineage": "x", "serial": 1, "entries": {"a": {}}}', "entries/a"),
        ('{"format_version": 9, "lineage": "x", "serial": 1, "entries": {}}', "format_version 9"),
    ],
    ids=["garbage", "empty", "negative-serial", "bad-entry", "future-format"],
)
def test_corrupt_file_is_error(tmp_path: Path, content: str, detail: str) -> None:
    """A damaged state file is an error naming the file, never an empty inventory."""
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError) as caught:
        LocalStateBackend(path).read()
    assert str(path) in str(caught.value)
    assert detail in str(caught.value)


def test_stale_serial_conflicts(tmp_path: Path) -> None:
    """Writing an inventory read before another write raises StateConflictError."""
    backend = LocalStateBackend(tmp_path / "state.json")
    add(backend, "leyah")
    old = backend.read()
    add(backend, "bob")
    with pytest.raises(StateConflictError, match="is at serial 2, but this run read serial 1"):
        backend.write(old)


def test_first_write_keeps_backup(tmp_path: Path) -> None:
    """The state before this process's first write is kept as state.json.backup."""
    add(LocalStateBackend(tmp_path / "state.json"), "leyah")
    first = (tmp_path / "state.json").read_bytes()
    add(LocalStateBackend(tmp_path / "state.json"), "bob")
    assert (tmp_path / "state.json.backup").read_bytes() == first


def test_busy_lock_names_holder(tmp_path: Path) -> None:
    """A second lock fails at once with the holder's identity and the unlock command."""
    holder = LocalStateBackend(tmp_path / "state.json", who="ana@ci-7")
    other = LocalStateBackend(tmp_path / "state.json")
    with holder.lock("apply") as info, pytest.raises(LockError) as caught, other.lock("apply"):
        pass
    message = str(caught.value)
    assert "ana@ci-7" in message
    assert "'apply'" in message
    assert f"grantctl force-unlock {info.id}" in message


def test_lock_waits_for_release(tmp_path: Path) -> None:
    """A lock request with a timeout gets the lock once the holder releases it."""
    holder = LocalStateBackend(tmp_path / "state.json")
    waiter = LocalStateBackend(tmp_path / "state.json")
    released = threading.Event()

    def hold() -> None:
        with holder.lock("apply"):
            time.sleep(0.6)
        released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with waiter.lock("apply", timeout_s=5) as info:
        assert released.is_set()
        assert waiter.current_lock() == info
    thread.join()
    assert waiter.current_lock() is None


def test_lock_timeout_expires(tmp_path: Path) -> None:
    """A lock held past the timeout raises LockError after about the timeout."""
    holder = LocalStateBackend(tmp_path / "state.json")
    waiter = LocalStateBackend(tmp_path / "state.json")
    with holder.lock("apply"):
        started = time.monotonic()
        with (
            pytest.raises(LockError, match=r"after waiting 0\.5 s"),
            waiter.lock("apply", timeout_s=0.5),
        ):
            pass
        assert 0.4 < time.monotonic() - started < 2


def test_expired_lock_taken_over(tmp_path: Path) -> None:
    """A lock record past its expiry (holder stopped renewing) is taken over."""
    record = new_lock_record("apply", who="gone@elsewhere", ttl_s=-5)
    record["host"] = "another-host"
    (tmp_path / "state.json.lock.json").write_text(json.dumps(record))
    backend = LocalStateBackend(tmp_path / "state.json")
    with backend.lock("apply") as info:
        assert info.id != record["id"]


def test_dead_holder_taken_over(tmp_path: Path) -> None:
    """A live-looking lock whose process has exited on this host is taken over at once."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = new_lock_record("apply", who="killed@here", ttl_s=600)
    record["pid"] = int(child.stdout)
    (tmp_path / "state.json.lock.json").write_text(json.dumps(record))
    with LocalStateBackend(tmp_path / "state.json").lock("apply") as info:
        assert info.id != record["id"]


def test_heartbeat_renews_expiry(tmp_path: Path) -> None:
    """While held, the lock's expiry keeps moving forward."""
    backend = LocalStateBackend(tmp_path / "state.json", lock_ttl_s=1.5)
    with backend.lock("apply") as info:
        time.sleep(1.2)
        current = backend.current_lock()
        assert current is not None
        assert current.expires > info.expires


def test_force_unlock(tmp_path: Path) -> None:
    """force-unlock needs the right id; afterwards the old holder may not write."""
    holder = LocalStateBackend(tmp_path / "state.json")
    admin = LocalStateBackend(tmp_path / "state.json")
    with holder.lock("apply") as info:
        with pytest.raises(LockError, match="does not match"):
            admin.force_unlock("wrong-id")
        admin.force_unlock(info.id)
        assert admin.current_lock() is None
        with pytest.raises(LockError, match="taken over or force-unlocked"):
            add(holder, "leyah")
    with pytest.raises(LockError, match="not locked"):
        admin.force_unlock(info.id)


def test_ci_run_url() -> None:
    """GitHub Actions variables make a run URL; GitLab's CI_JOB_URL is the fallback."""
    github = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/mail",
        "GITHUB_RUN_ID": "42",
        "CI_JOB_URL": "https://gitlab.example/job/1",
    }
    assert ci_run_url(github) == "https://github.com/acme/mail/actions/runs/42"
    assert ci_run_url({"CI_JOB_URL": "https://gitlab.example/job/1"}) == (
        "https://gitlab.example/job/1"
    )
    assert ci_run_url({}) == ""


CONTENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconciler.model import Inventory, InventoryEntry
    from reconciler.state import LocalStateBackend

    backend = LocalStateBackend(Path(sys.argv[1]))
    for round in range(5):
        with backend.lock("apply", timeout_s=60):
            current = backend.read()
            name = f"{sys.argv[2]}-{round}"
            entry = InventoryEntry(name, "g-" + name, "google", name + "@x.com", "p/" + name)
            entries = {**current.entries, name: entry}
            backend.write(Inventory(current.lineage, current.serial, entries))
    """
)


def test_processes_contending(tmp_path: Path) -> None:
    """Four processes taking the lock in turn lose no write."""
    path = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [
        subprocess.Popen([sys.executable, "-c", CONTENDER, str(path), f"p{i}"], env=env)
        for i in range(4)
    ]
    assert [process.wait(timeout=60) for process in processes] == [0, 0, 0, 0]
    inventory = LocalStateBackend(path).read()
    assert len(inventory.entries) == 20
    assert inventory.serial == 20


def test_read_creates_nothing(tmp_path: Path) -> None:
    """A read-only plan leaves no lock file or directory behind, even where none existed."""
    backend = LocalStateBackend(tmp_path / "not-yet" / "state.json")

    inventory = backend.read()

    assert inventory.entries == {}
    assert list(tmp_path.iterdir()) == []
