"""Builders shared by the executor tests: manifests, plans and a wired-up apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.executor import ApplyOptions, apply_plan
from reconciler.model import (
    Account,
    Action,
    ApplyResult,
    Change,
    Manifest,
    Observation,
    Plan,
    Policy,
    Provider,
    Reason,
    Region,
    StateSettings,
    VaultSettings,
)
from reconciler.state import LocalStateBackend
from tests.fakes import FakeGrants, FakeSecrets, Identity

SCOPES = ("Mail.Read", "User.Read", "offline_access")


def account(name: str, **extra: object) -> Account:
    """Return a Microsoft account `name` with the email `name@example.com`."""
    values: dict[str, object] = {
        "name": name,
        "email": f"{name}@example.com",
        "provider": Provider.MICROSOFT,
        "secret_path": f"nylas/{name}",
        "scopes": SCOPES,
    }
    values.update(extra)
    return Account(**values)  # type: ignore[arg-type]


def manifest(accounts: Sequence[Account]) -> Manifest:
    """Return a manifest holding `accounts`."""
    return Manifest(
        path="grants.yaml",
        digest="0" * 64,
        version=1,
        region=Region.US,
        vault=VaultSettings(),
        state=StateSettings(),
        policy=Policy(),
        accounts=tuple(accounts),
    )


def change(
    target: Account, action: Action = Action.CONNECT, *, version: int | None = 1, **extra: object
) -> Change:
    """Return a change of `action` for `target`, pinning Vault `version`."""
    values: dict[str, object] = {
        "account": target.name,
        "action": action,
        "reason": Reason.NOT_CONNECTED,
        "message": "test change",
        "provider": target.provider.value,
        "email": target.email,
        "vault_path": target.secret_path,
        "vault_version": version,
    }
    values.update(extra)
    return Change(**values)  # type: ignore[arg-type]


@dataclass
class World:
    """Fake Nylas and Vault plus a local state file, for one test."""

    tmp: Path
    grants: FakeGrants = field(default_factory=FakeGrants)
    secrets: FakeSecrets = field(default_factory=FakeSecrets)

    def __post_init__(self) -> None:
        self.state = LocalStateBackend(self.tmp / "state.json")

    def mailbox(self, target: Account, token: str | None = None, **identity: object) -> str:
        """Store a token for `target` in Vault and map it to an identity; return the token."""
        token = token or f"token-of-{target.name}"
        self.secrets.put(target.secret_path, {"refresh_token": token})
        email = str(identity.pop("email", target.email))
        self.grants.identities[token] = Identity(email, **identity)  # type: ignore[arg-type]
        return token

    def apply(
        self,
        changes: Sequence[Change],
        accounts: Sequence[Account],
        options: ApplyOptions | None = None,
        observations: Sequence[Observation] = (),
    ) -> ApplyResult:
        """Apply a plan of `changes` under the state lock."""
        plan = Plan(changes=tuple(changes), observations=tuple(observations))
        with self.state.lock("apply"):
            return apply_plan(
                plan,
                manifest(accounts),
                self.grants,
                self.secrets,
                self.state,
                options or ApplyOptions(),
            )
