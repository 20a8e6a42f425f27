"""`gather_inputs` stops the metadata reads still queued when another input fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.errors import NylasError
from reconciler.model import Grant, SecretState, SecretVersion
from reconciler.state import LocalStateBackend
from reconciler.threads import map_in_threads
from reconciler.workflow import gather_inputs
from tests.executor_support import account, manifest


class SlowSecrets:
    """A secret store whose every metadata read takes 20 ms, on two threads."""

    def __init__(self) -> None:
        self.started = 0
        self._lock = threading.Lock()

    def read_metadata(self, path: str) -> SecretVersion:
        with self._lock:
            self.started += 1
        time.sleep(0.02)
        return SecretVersion(path=path, state=SecretState.PRESENT, version=1)

    def read_metadata_many(self, paths: Sequence[str]) -> dict[str, SecretVersion]:
        versions = map_in_threads(self.read_metadata, paths, 2, name="slow-metadata")
        return dict(zip(paths, versions, strict=True))


class FailingGrants:
    """A grant listing that fails after 50 ms, as a Nylas outage would."""

    def list_grants(self) -> list[Grant]:
        time.sleep(0.05)
        raise NylasError("Nylas is down", hint="retry later")


def test_failed_listing_stops_queued_reads(tmp_path: Path) -> None:
    # 1,000 reads at 20 ms on two threads would take 10 s to drain.
    accounts = [account(f"a{index:04d}") for index in range(1000)]
    secrets = SlowSecrets()
    state = LocalStateBackend(tmp_path / "state.json")
    started = time.monotonic()

    with pytest.raises(NylasError, match="Nylas is down"):
        gather_inputs(manifest(accounts), state, FailingGrants(), secrets)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    # The reads in flight when the listing failed may finish; no others may start. Without
    # the stop, 50 more would start in this half second and all 1,000 before the process
    # could exit.
    time.sleep(0.5)

    assert elapsed < 2.0
    assert secrets.started < 20
