"""Which apply failures count towards an account's quarantine, and which stop the apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import (
    LockError,
    NylasAuthenticationError,
    NylasConnectionError,
    NylasCredentialsRejectedError,
    NylasInvalidRequestError,
    NylasRateLimitError,
    NylasServerError,
    NylasTimeoutError,
    ReconcilerError,
    SecretShapeError,
    VaultAuthError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnavailableError,
)
from reconciler.executor import ApplyOptions
from reconciler.model import InventoryEntry, Outcome
from tests.executor_support import World, account, change

OUTAGES = [
    NylasServerError("connect failed: Nylas returned 503", status=503),
    NylasTimeoutError("connect timed out"),
    NylasConnectionError("connect failed: connection reset"),
    NylasRateLimitError("connect failed: the rate limit is still exceeded", status=429),
    LockError("the state lock was taken over"),
]
VAULT_OUTAGES = [
    VaultUnavailableError("Vault at http://127.0.0.1:8200 could not be reached"),
    VaultSealedError("Vault at http://127.0.0.1:8200 is sealed"),
]
ACCOUNT_FAULTS = [
    NylasInvalidRequestError("the provider rejected the credentials", status=400),
    NylasCredentialsRejectedError("the provider rejected the credentials", status=401),
]


def _seed_failures(world: World, name: str, failures: int) -> None:
    """Store an inventory entry for `name` that has already failed `failures` times."""
    target = account(name)
    entry = InventoryEntry(
        name=name,
        grant_id="",
        provider=target.provider.value,
        email=target.email,
        vault_path=target.secret_path,
        failures=failures,
        last_error="earlier failure",
    )
    with world.state.lock("seed"):
        inventory = world.state.read()
        world.state.write(type(inventory)(inventory.lineage, inventory.serial, {name: entry}))


@pytest.mark.parametrize("error", OUTAGES, ids=lambda error: type(error).__name__)
def test_nylas_outage_not_counted(tmp_path: Path, error: ReconcilerError) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.connect_errors[token] = error
    _seed_failures(world, "leyah", 2)

    result = world.apply([change(leyah)], [leyah])

    assert result.results[0].outcome is Outcome.FAILED
    entry = world.state.read().entries["leyah"]
    assert entry.failures == 2
    assert entry.quarantined is False
    assert entry.last_error == result.results[0].message


@pytest.mark.parametrize("error", VAULT_OUTAGES, ids=lambda error: type(error).__name__)
def test_vault_outage_not_counted(tmp_path: Path, error: ReconcilerError) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah)
    world.secrets.read_error = error
    _seed_failures(world, "leyah", 2)

    world.apply([change(leyah)], [leyah])

    entry = world.state.read().entries["leyah"]
    assert entry.failures == 2
    assert entry.quarantined is False


def test_outage_creates_no_entry(tmp_path: Path) -> None:
    """An account without an entry gets none from an outage, so nothing is quarantined."""
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.connect_errors[token] = NylasServerError("connect failed", status=502)

    world.apply([change(leyah)], [leyah])

    assert "leyah" not in world.state.read().entries


def test_unknown_outcome_exhausted_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.verify._resend_delay_s", lambda attempt: 0.0)
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.unknown_before.extend([token] * 10)
    _seed_failures(world, "leyah", 2)

    result = world.apply([change(leyah)], [leyah])

    assert result.results[0].outcome is Outcome.FAILED
    assert world.state.read().entries["leyah"].failures == 2


@pytest.mark.parametrize("error", ACCOUNT_FAULTS, ids=lambda error: type(error).__name__)
def test_rejected_credentials_counted(tmp_path: Path, error: ReconcilerError) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    token = world.mailbox(leyah)
    world.grants.connect_errors[token] = error
    _seed_failures(world, "leyah", 2)

    world.apply([change(leyah)], [leyah])

    entry = world.state.read().entries["leyah"]
    assert entry.failures == 3
    assert entry.quarantined is True


def test_malformed_secret_counted(tmp_path: Path) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah)
    world.secrets.read_error = SecretShapeError("secret nylas/leyah lacks refresh_token")

    world.apply([change(leyah)], [leyah])

    assert world.state.read().entries["leyah"].failures == 1


def test_denied_secret_read_not_counted(tmp_path: Path) -> None:
    """A policy that denies the read is the operator's to fix: it never quarantines."""
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah)
    _seed_failures(world, "leyah", 2)
    denied = "permission denied: the Vault token may not read nylas/leyah"
    world.secrets.read_error = VaultPermissionError(denied)

    result = world.apply([change(leyah)], [leyah])

    assert result.results[0].outcome is Outcome.FAILED
    entry = world.state.read().entries["leyah"]
    assert (entry.failures, entry.quarantined) == (2, False)
    assert entry.last_error is not None and "permission denied" in entry.last_error


def test_missing_secret_version_counted(tmp_path: Path) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah)

    world.apply([change(leyah, version=7)], [leyah])

    assert world.state.read().entries["leyah"].failures == 1


def test_wrong_mailbox_counted(tmp_path: Path) -> None:
    world = World(tmp_path)
    leyah = account("leyah")
    world.mailbox(leyah, email="someone-else@example.com")

    world.apply([change(leyah)], [leyah])

    assert world.state.read().entries["leyah"].failures == 1


@pytest.mark.parametrize(
    "error",
    [
        *VAULT_OUTAGES,
        VaultAuthError("Vault rejected the token on secret/data/nylas/user00"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_vault_outage_stops_apply(tmp_path: Path, error: ReconcilerError) -> None:
    world = World(tmp_path)
    accounts = [account(f"user{i:02d}") for i in range(10)]
    for item in accounts:
        world.mailbox(item)
    world.secrets.read_error = error

    result = world.apply([change(a) for a in accounts], accounts, ApplyOptions(parallelism=1))

    assert result.count(Outcome.FAILED) == 1
    assert result.count(Outcome.NOT_ATTEMPTED) == 9
    assert len(world.secrets.reads) == 1
    assert not result.interrupted
    skipped = [item for item in result.results if item.outcome is Outcome.NOT_ATTEMPTED]
    assert len({item.message for item in skipped}) == 1
    assert "affects every account" in skipped[0].message
    assert error.message in skipped[0].message


def test_bad_api_key_stops_apply(tmp_path: Path) -> None:
    world = World(tmp_path)
    accounts = [account(f"user{i:02d}") for i in range(5)]
    for item in accounts:
        token = world.mailbox(item)
        world.grants.connect_errors[token] = NylasAuthenticationError(
            "Nylas rejected the API key", status=401
        )

    result = world.apply([change(a) for a in accounts], accounts, ApplyOptions(parallelism=1))

    assert len(world.grants.connects) == 1
    assert result.count(Outcome.NOT_ATTEMPTED) == 4


def test_rejected_credentials_do_not_stop_apply(tmp_path: Path) -> None:
    """A provider's 401 to one account's credentials leaves the other accounts running."""
    world = World(tmp_path)
    bad, good = account("bad"), account("good")
    token = world.mailbox(bad)
    world.mailbox(good)
    world.grants.connect_errors[token] = NylasCredentialsRejectedError(
        "the provider rejected the credentials", status=401
    )

    result = world.apply([change(bad), change(good)], [bad, good], ApplyOptions(parallelism=1))

    assert [item.outcome for item in result.results] == [Outcome.FAILED, Outcome.DONE]
