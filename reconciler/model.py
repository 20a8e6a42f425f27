"""Frozen values shared by every stage: manifest accounts, observed facts, the plan.

The pipeline reads: manifest -> (accounts) ; Vault metadata -> (SecretVersion) ;
Nylas -> (Grant) ; state backend -> (Inventory) ; planner -> Plan ; executor -> ApplyResult.
Nothing in this module performs I/O, and no value here ever contains a secret.
"""

from __future__ import annotations

import collections
import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})


def _fold(email: str) -> str:
    """Return `email` case-folded, as the same object when folding changes nothing."""
    folded = email.casefold()
    # Most addresses are lower case already, so sharing the object saves a string per account.
    return email if folded == email else folded


class Provider(str, enum.Enum):
    """A Nylas provider that `POST /v3/connect/custom` accepts."""

    GOOGLE = "google"
    MICROSOFT = "microsoft"
    YAHOO = "yahoo"
    ZOOM = "zoom"
    IMAP = "imap"
    ICLOUD = "icloud"
    EWS = "ews"

    @property
    def uses_refresh_token(self) -> bool:
        return self in OAUTH_PROVIDERS


OAUTH_PROVIDERS = frozenset({Provider.GOOGLE, Provider.MICROSOFT, Provider.YAHOO, Provider.ZOOM})

# Keys each provider's Vault secret must hold (all non-empty), and keys it may hold.
# Source: the Nylas v3 `POST /v3/connect/custom` request variants per provider.
REQUIRED_SECRET_KEYS: Mapping[Provider, tuple[str, ...]] = MappingProxyType(
    {
        Provider.GOOGLE: ("refresh_token",),
        Provider.MICROSOFT: ("refresh_token",),
        Provider.YAHOO: ("refresh_token",),
        Provider.ZOOM: ("refresh_token",),
        Provider.IMAP: (
            "imap_username",
            "imap_password",
            "imap_host",
            "imap_port",
            "smtp_host",
            "smtp_port",
        ),
        Provider.ICLOUD: ("username", "password"),
        Provider.EWS: ("email", "ews_username", "ews_password"),
    }
)
OPTIONAL_SECRET_KEYS: Mapping[Provider, tuple[str, ...]] = MappingProxyType(
    {
        Provider.GOOGLE: (),
        Provider.MICROSOFT: (),
        Provider.YAHOO: (),
        Provider.ZOOM: (),
        Provider.IMAP: ("smtp_username", "smtp_password"),
        Provider.ICLOUD: (),
        Provider.EWS: ("ews_host", "ews_port"),
    }
)
# Settings keys whose values are integers in the connect request body.
INTEGER_SECRET_KEYS = frozenset({"imap_port", "smtp_port", "ews_port"})
# Keys of a Vault secret whose values are identifiers, not credentials: the redaction filter
# leaves them readable, because the IMAP username usually equals the account's email. Any key
# not listed here, including a key no provider accepts, is treated as a credential.
PLAIN_SECRET_KEYS = frozenset(
    {
        "imap_username",
        "imap_host",
        "imap_port",
        "smtp_username",
        "smtp_host",
        "smtp_port",
        "username",
        "email",
        "ews_username",
        "ews_host",
        "ews_port",
    }
)


class Ensure(str, enum.Enum):
    """Whether an account's grant must exist (`present`) or be revoked (`absent`)."""

    PRESENT = "present"
    ABSENT = "absent"


class Region(str, enum.Enum):
    """A Nylas data region; the only two a manifest may name."""

    US = "us"
    EU = "eu"


@dataclass(frozen=True, slots=True)
class Account:
    """One manifest entry: a mailbox that must (or must no longer) hold a grant.

    `secret_path` is relative to the KV mount with the manifest's `path_prefix` already
    applied, e.g. `nylas/prod/leyah`. `scopes` are the scopes the grant must carry; an
    empty tuple means "whatever the connector grants by default".
    """

    name: str
    email: str
    provider: Provider
    secret_path: str
    scopes: tuple[str, ...] = ()
    ensure: Ensure = Ensure.PRESENT
    protect: bool = False
    credential_id: str | None = None
    # 1-based line of the entry in the manifest file, for messages; 0 when unknown.
    line: int = 0
    # The case-folded email that grant matching uses, set from `email`. As a field it is in
    # `dataclasses.fields()`, but not in `__init__`, `repr` or comparisons.
    email_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once here: the planner compared it up to three times per account.
        object.__setattr__(self, "email_key", _fold(self.email))


@dataclass(frozen=True)
class RemovedAccount:
    """An entry under `removed:`: stop managing `name`, revoking its grant only if `destroy`."""

    name: str
    destroy: bool = False
    line: int = 0


@dataclass(frozen=True)
class VaultSettings:
    """The location of account secrets: a KV mount, its version, and a prefix for every path."""

    mount: str = "secret"
    path_prefix: str = ""
    kv_version: int = 2


@dataclass(frozen=True)
class StateSettings:
    """The state backend that stores the inventory and lock, and its location.

    `path` is a KV path for the vault backend. For the local backend it is a file path,
    which `load_manifest` resolves against the manifest's directory when relative.
    """

    backend: str = "local"  # "local" | "vault"
    path: str = ".grantctl/state.json"


@dataclass(frozen=True)
class Policy:
    """Safety limits a plan must respect."""

    max_deletes: int = 5


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated manifest; `digest` is the SHA-256 of the file's bytes."""

    path: str
    digest: str
    version: int
    region: Region
    vault: VaultSettings
    state: StateSettings
    policy: Policy
    accounts: tuple[Account, ...]
    removed: tuple[RemovedAccount, ...] = ()

    def __post_init__(self) -> None:
        # The loader reports duplicates with their lines before building a Manifest. This
        # check covers manifests built in code, because the planner relies on both rules.
        for kind, values in (
            ("name", [account.name for account in self.accounts]),
            ("email", [account.email_key for account in self.accounts]),
        ):
            if len(set(values)) < len(values):
                counts = collections.Counter(values)
                repeated = sorted(value for value, count in counts.items() if count > 1)
                raise ValueError(
                    f"duplicate account {kind} {repeated[0]!r}: manifest accounts must have "
                    "unique names and unique emails"
                )

    def account(self, name: str) -> Account | None:
        """Return the account called `name`, or None."""
        return self._accounts_by_name.get(name)

    @functools.cached_property
    def _accounts_by_name(self) -> Mapping[str, Account]:
        # Built on first use because audit and apply look up every account by name, which a
        # scan of `accounts` made quadratic: 8.4 s of a 10,000-account audit.
        index: dict[str, Account] = {}
        for account in self.accounts:
            index.setdefault(account.name, account)
        return index


class SecretState(str, enum.Enum):
    """The state of an account's secret path, as Vault metadata reports it."""

    PRESENT = "present"
    MISSING = "missing"  # the path never existed, or its metadata was deleted
    DELETED = "deleted"  # the current version is soft-deleted
    DESTROYED = "destroyed"  # the current version is destroyed
    DENIED = "denied"  # the identity may not read the metadata (403)


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """Vault metadata for one secret path: no value, only its current version and state.

    `version` is the KV v2 current version; KV v1 has no versions, so it is None there and
    rotation is not detectable from metadata.
    """

    path: str
    state: SecretState
    version: int | None = None
    updated_time: str | None = None
    detail: str = ""


class GrantStatus(str, enum.Enum):
    """`grant_status` of a Nylas grant; `invalid` means expired until re-authenticated."""

    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Grant:
    """A Nylas grant as listed by `GET /v3/grants`, reduced to what planning uses."""

    id: str
    provider: str
    email: str
    status: GrantStatus
    scopes: tuple[str, ...] = ()
    created_at: int = 0
    updated_at: int | None = None
    credential_id: str | None = None
    # The opaque `state` string of the connect that created or last re-authenticated the
    # grant; grantctl sends `owner_state(lineage)` there to mark the inventory that owns it.
    state: str | None = None
    # The case-folded email that grant matching uses, set from `email`.
    email_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "email_key", _fold(self.email))

    @property
    def owner_lineage(self) -> str | None:
        """Return the inventory lineage named by a grantctl `state`, or None for any other."""
        if self.state is None or not self.state.startswith(OWNER_STATE_PREFIX):
            return None
        return self.state[len(OWNER_STATE_PREFIX) :] or None


# Prefix of the `state` grantctl sends on every connect, followed by the inventory's lineage.
OWNER_STATE_PREFIX = "grantctl:"


def owner_state(lineage: str) -> str:
    """Return the connect `state` that marks a grant as owned by the inventory `lineage`."""
    return OWNER_STATE_PREFIX + lineage


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """What grantctl remembers about an account it manages.

    `vault_version_sent` is the secret version last sent successfully in a connect. An adopt
    sends nothing and records the version current when it was planned, so that a later
    rotation is detected; None when the secret had no version then. `failures` counts
    consecutive failed applies; `quarantined` is set when it reaches the quarantine threshold.
    `vault_version_failed` is the secret version of the last failed connect, so a quarantine
    can be lifted when a newer version appears. `grant_id` is "" for an account that has
    failed to connect and has no grant yet: the entry exists only to count its failures.
    """

    name: str
    grant_id: str
    provider: str
    email: str
    vault_path: str
    vault_version_sent: int | None = None
    protect: bool = False
    credential_id: str | None = None
    scopes: tuple[str, ...] = ()
    updated_at: str = ""  # ISO 8601 UTC time of the last change recorded
    failures: int = 0
    quarantined: bool = False
    last_error: str = ""
    vault_version_failed: int | None = None


@dataclass(frozen=True)
class Inventory:
    """The set of managed accounts, versioned like Terraform state.

    `lineage` is a random id fixed when the inventory is first written; `serial` grows by
    one on every write. A plan records both so apply can reject a stale plan. An unwritten
    state reads as serial 0 with no entries and a new lineage on every read, which the
    first write keeps.
    """

    lineage: str
    serial: int
    entries: Mapping[str, InventoryEntry] = field(default_factory=lambda: EMPTY_MAPPING)

    @property
    def is_empty(self) -> bool:
        return not self.entries


class Action(str, enum.Enum):
    """The closed vocabulary of changes a plan can hold."""

    CONNECT = "connect"
    RECONNECT = "reconnect"
    ADOPT = "adopt"
    DELETE = "delete"
    FORGET = "forget"
    NOOP = "no-op"


class Reason(str, enum.Enum):
    """Stable machine codes for why a change was planned."""

    NOT_CONNECTED = "not_connected"
    GRANT_DELETED_OUTSIDE = "grant_deleted_outside"
    GRANT_INVALID = "grant_invalid"
    SECRET_ROTATED = "secret_rotated"
    SETTINGS_CHANGED = "settings_changed"
    REPLACE_REQUESTED = "replace_requested"
    GRANT_NOT_IN_INVENTORY = "grant_not_in_inventory"
    ENSURE_ABSENT = "ensure_absent"
    REMOVED_FROM_MANIFEST = "removed_from_manifest"
    REMOVED_DESTROY = "removed_destroy"
    REMOVED_KEEP_GRANT = "removed_keep_grant"
    IN_SYNC = "in_sync"
    QUARANTINED = "quarantined"
    # The grant lacks required scopes and the token that made it is unknown (an adopted
    # grant), so sending the current Vault token may fix it.
    SCOPES_MISSING = "scopes_missing"


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change to one account.

    `before` and `after` hold the non-secret attributes of the grant/inventory entry
    before and after the change (None when the object does not exist on that side).
    `vault_version` is the secret version apply must read; None when no secret is sent.
    """

    account: str
    action: Action
    reason: Reason
    message: str
    provider: str
    email: str
    grant_id: str | None = None
    vault_path: str | None = None
    vault_version: int | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None

    @property
    def will_change(self) -> bool:
        return self.action is not Action.NOOP


class ErrorCode(str, enum.Enum):
    """Stable machine codes for problems that apply cannot fix."""

    SECRET_MISSING = "secret_missing"
    SECRET_DELETED = "secret_deleted"
    SECRET_DESTROYED = "secret_destroyed"
    SECRET_DENIED = "secret_denied"
    SCOPES_MISSING = "scopes_missing"
    PROTECTED_DELETE = "protected_delete"
    TOO_MANY_DELETES = "too_many_deletes"
    DELETES_EVERYTHING = "deletes_everything"
    DUPLICATE_GRANTS = "duplicate_grants"
    PROVIDER_CHANGED = "provider_changed"
    UNKNOWN_ACCOUNT = "unknown_account"
    EMAIL_CHANGED = "email_changed"
    UNMANAGED_DELETE = "unmanaged_delete"
    OWNED_ELSEWHERE = "owned_elsewhere"


@dataclass(frozen=True)
class PlanError:
    """A problem that makes a plan non-applyable; `account` is None for plan-wide errors."""

    code: ErrorCode
    account: str | None
    message: str
    next_step: str


@dataclass(frozen=True, slots=True)
class Observation:
    """The facts planning observed for one account, so apply can detect that the world moved."""

    account: str
    vault_path: str | None
    vault_version: int | None
    grant_id: str | None
    grant_status: str | None
    grant_updated_at: int | None
    # The provider and email the account was matched by, so a later check can tell
    # whether a grant appeared for it.
    provider: str = ""
    email: str = ""


@dataclass(frozen=True)
class Plan:
    """The planner's output: pure data, serialized to JSON and rendered to text from the same
    structure. `changes` contains one entry per account considered, no-ops included, sorted by
    account name; `unmanaged` contains grants that match no account and no inventory entry.
    """

    changes: tuple[Change, ...]
    errors: tuple[PlanError, ...] = ()
    warnings: tuple[str, ...] = ()
    unmanaged: tuple[Grant, ...] = ()
    observations: tuple[Observation, ...] = ()
    manifest_digest: str = ""
    inventory_lineage: str = ""
    inventory_serial: int = 0
    inventory_empty: bool = True
    partial: bool = False

    @property
    def applyable(self) -> bool:
        return not self.errors

    @property
    def has_changes(self) -> bool:
        return any(change.will_change for change in self.changes)

    def count(self, action: Action) -> int:
        """Return how many changes carry `action`."""
        return sum(1 for change in self.changes if change.action is action)


class Outcome(str, enum.Enum):
    """The outcome of one change during apply."""

    DONE = "done"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True)
class ChangeResult:
    """The result of applying one change; `request_id` is Nylas' id of the failing call."""

    account: str
    action: Action
    outcome: Outcome
    message: str = ""
    grant_id: str | None = None
    request_id: str | None = None
    duration_s: float = 0.0

    @property
    def did_change(self) -> bool:
        return self.outcome is Outcome.DONE and self.action is not Action.NOOP


@dataclass(frozen=True)
class ApplyResult:
    """Every change's result, in plan order."""

    results: tuple[ChangeResult, ...]
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.results if result.outcome is outcome)
