"""Apply's connect step: send a secret to `POST /v3/connect/custom` and check the grant.

A connect reads the secret at the version the plan pinned, sends it once, and drops it. The
grant that comes back must be the manifest's mailbox and carry the required scopes. When the
outcome is unknown (the request went out but no answer came back), the account's grants are
listed to see whether the connect took effect; only when it clearly did not is the request
sent again, up to `MAX_CONNECT_ATTEMPTS` attempts in all.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from reconciler.errors import NylasError, NylasOutcomeUnknownError, ReconcilerError
from reconciler.journal import JournalRecord
from reconciler.model import (
    Account,
    Action,
    Change,
    ChangeResult,
    Grant,
    InventoryEntry,
    Observation,
    Outcome,
)
from reconciler.protocols import GrantsAPI, SecretStore
from reconciler.secrets import Secret

LOGGER = logging.getLogger(__name__)

# A connect is re-sent only after listing showed that the previous attempt changed nothing,
# so each re-send is safe. The cap bounds how long one account can keep a worker busy.
MAX_CONNECT_ATTEMPTS = 5
RESEND_BACKOFF_BASE_S = 0.5
RESEND_BACKOFF_CAP_S = 4.0


@dataclass(frozen=True)
class ConnectContext:
    """What every connect of one apply shares.

    `known_grant_ids` holds every grant id the plan observed, so a grant id outside it was
    created by this apply. `clock_skew_s` is how far Nylas' clock may trail ours when an
    unknown outcome is settled by comparing a grant's `updated_at` with the send time.
    `owner_state` is sent as every connect's `state`, so the grant names the inventory that
    manages it (`model.owner_state`); None sends no `state`.
    """

    grants_api: GrantsAPI
    secret_store: SecretStore
    known_grant_ids: Collection[str]
    clock: Callable[[], float]
    clock_skew_s: float
    now_iso: Callable[[], str]
    owner_state: str | None = None


@dataclass(frozen=True)
class _Sent:
    grant: Grant
    request_id: str | None
    created: bool  # this apply created the grant (it did not exist before)


class ConnectFailedError(ReconcilerError):
    """A connect failed after it may have changed Nylas; carries the request id."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def run_connect(
    change: Change, account: Account, context: ConnectContext, observed: Observation | None
) -> JournalRecord:
    """Connect or re-authenticate `account` as `change` says, and verify the grant."""
    path = change.vault_path or account.secret_path
    settings = _read_settings(account, path, change.vault_version, context.secret_store)
    try:
        sent = _send(change, account, settings, context, observed)
    finally:
        # Drop the secret values as soon as the request is made.
        settings.clear()
    return _verify(change, account, sent, context)


def _read_settings(
    account: Account, path: str, version: int | None, secret_store: SecretStore
) -> dict[str, Secret | str | int]:
    data = secret_store.read_secret(path, version)
    from reconciler.vault.shape import connect_settings  # noqa: PLC0415  (keeps vault optional)

    return connect_settings(
        account.provider,
        data,
        account=account.name,
        path=path,
        credential_id=account.credential_id,
    )


def _send(
    change: Change,
    account: Account,
    settings: Mapping[str, Secret | str | int],
    context: ConnectContext,
    observed: Observation | None,
) -> _Sent:
    unknown: NylasOutcomeUnknownError | None = None
    for attempt in range(1, MAX_CONNECT_ATTEMPTS + 1):
        if unknown is not None:
            LOGGER.warning(
                "account %s: the connect did not take effect; sending it again (attempt %d of %d)",
                account.name,
                attempt,
                MAX_CONNECT_ATTEMPTS,
            )
            time.sleep(_resend_delay_s(attempt))
        result = _attempt(change, account, settings, context, observed)
        if isinstance(result, _Sent):
            return result
        unknown = result
    assert unknown is not None  # the loop runs at least once
    raise ConnectFailedError(
        f"the outcome was unknown {MAX_CONNECT_ATTEMPTS} times, and no grant for "
        f"{account.email} changed: {unknown.detail}. Run `grantctl plan MANIFEST` to see the "
        "account's state",
        request_id=unknown.request_id,
    ) from unknown


def _resend_delay_s(attempt: int) -> float:
    """Return a full-jitter exponential delay before re-sending attempt `attempt` (2 or more).

    Jitter spreads the re-sends of many workers that failed in the same server fault.
    """
    ceiling = min(RESEND_BACKOFF_CAP_S, RESEND_BACKOFF_BASE_S * 2 ** (attempt - 2))
    return random.uniform(0, ceiling)  # noqa: S311  (jitter, not cryptography)


def _attempt(
    change: Change,
    account: Account,
    settings: Mapping[str, Secret | str | int],
    context: ConnectContext,
    observed: Observation | None,
) -> _Sent | NylasOutcomeUnknownError:
    """Send the connect once; on an unknown outcome, return the grant it changed or the error."""
    sent_at = context.clock()
    try:
        return _connect_once(account, settings, context)
    except NylasOutcomeUnknownError as unknown:
        LOGGER.warning(
            "account %s: connect outcome unknown (%s); listing its grants to decide",
            account.name,
            unknown.message,
        )
        settled = _find_sent_grant(change, account, context, observed, sent_at)
        return unknown if settled is None else settled


def _connect_once(
    account: Account, settings: Mapping[str, Secret | str | int], context: ConnectContext
) -> _Sent:
    result = context.grants_api.connect(
        account.provider.value,
        settings,
        account.scopes,
        account=account.name,
        state=context.owner_state,
    )
    created = result.created and result.grant.id not in context.known_grant_ids
    return _Sent(result.grant, result.request_id, created)


def _find_sent_grant(
    change: Change,
    account: Account,
    context: ConnectContext,
    observed: Observation | None,
    sent_at: float,
) -> _Sent | None:
    """Return the account's grant if the connect sent at `sent_at` changed it, else None."""
    try:
        grants = context.grants_api.find_grants(account.email)
    except NylasError as error:
        raise ConnectFailedError(
            f"the outcome was unknown, and listing the grants of {account.email} to decide "
            f"failed: {error.detail}. Run `grantctl plan MANIFEST` to see the account's state",
            request_id=error.request_id,
        ) from error
    observed_updated_at = observed.grant_updated_at if observed else None
    for grant in grants:
        if grant.provider != account.provider.value or grant.email_key != account.email_key:
            continue
        is_new = grant.id not in context.known_grant_ids
        if change.action is Action.CONNECT and is_new:
            return _Sent(grant, None, created=True)
        updated = grant.updated_at
        if updated is None or updated < sent_at - context.clock_skew_s:
            continue
        if observed_updated_at is None or updated > observed_updated_at:
            return _Sent(grant, None, created=is_new)
    return None


def _verify(
    change: Change, account: Account, sent: _Sent, context: ConnectContext
) -> JournalRecord:
    grant = sent.grant
    if grant.email_key != account.email_key:
        message = _wrong_mailbox_message(change, account, sent, context)
        return _failure(change, account, message, sent, entry=None)
    entry = _entry_for(change, account, grant, context.now_iso())
    missing = _missing_scopes(account.scopes, grant.scopes)
    if missing:
        message = (
            f"grant {grant.id} lacks the required scopes {', '.join(missing)}: the token at "
            f"Vault path {entry.vault_path} was not issued with them. Issue a token with every "
            "scope in the manifest and store it at that path"
        )
        return _failure(change, account, message, sent, entry=entry)
    result = ChangeResult(
        account=account.name,
        action=change.action,
        outcome=Outcome.DONE,
        message=f"grant {grant.id} is valid for {grant.email}",
        grant_id=grant.id,
        request_id=sent.request_id,
    )
    return JournalRecord(result=result, entry=entry)


def _wrong_mailbox_message(
    change: Change, account: Account, sent: _Sent, context: ConnectContext
) -> str:
    grant = sent.grant
    path = change.vault_path or account.secret_path
    message = (
        f"the secret at Vault path {path} belongs to {grant.email}, not {account.email}: "
        f"Nylas returned grant {grant.id} for {grant.email}. Store {account.email}'s "
        "credentials at that path"
    )
    if not sent.created:
        return f"{message}. Grant {grant.id} existed before this apply and was left alone"
    try:
        context.grants_api.delete_grant(grant.id, account=account.name)
    except NylasError as error:
        return (
            f"{message}. Deleting grant {grant.id}, which this apply created, failed: "
            f"{error.message}; delete it in the Nylas dashboard"
        )
    return f"{message}. Grant {grant.id}, which this apply created, was deleted again"


def _missing_scopes(required: Collection[str], granted: Collection[str]) -> list[str]:
    # Nylas and the providers treat scope names case-insensitively.
    have = {scope.casefold() for scope in granted}
    return [scope for scope in required if scope.casefold() not in have]


def _entry_for(change: Change, account: Account, grant: Grant, now: str) -> InventoryEntry:
    return InventoryEntry(
        name=account.name,
        grant_id=grant.id,
        provider=account.provider.value,
        email=account.email,
        vault_path=change.vault_path or account.secret_path,
        vault_version_sent=change.vault_version,
        protect=account.protect,
        credential_id=account.credential_id,
        scopes=account.scopes,
        updated_at=now,
    )


def _failure(
    change: Change, account: Account, message: str, sent: _Sent, *, entry: InventoryEntry | None
) -> JournalRecord:
    result = ChangeResult(
        account=account.name,
        action=change.action,
        outcome=Outcome.FAILED,
        message=message,
        grant_id=sent.grant.id,
        request_id=sent.request_id,
    )
    return JournalRecord(
        result=result,
        entry=entry,
        failed=True,
        account_fault=True,
        failed_version=change.vault_version,
    )
