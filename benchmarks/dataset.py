"""Generate N accounts: the manifest, the emulator fixture, and the secrets to seed in Vault.

Every account is a Microsoft mailbox except every tenth, which is IMAP, so both secret
shapes are on the measured path. Tokens and passwords are generated values, not secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import hvac

API_KEY = "nyk_benchmark_key"
MOUNT = "secret"
PREFIX = "nylas/bench"
SCOPES = ["Mail.Read", "User.Read", "offline_access"]


@dataclass(frozen=True)
class BenchAccount:
    """One generated account."""

    name: str
    email: str
    provider: str

    @property
    def secret_path(self) -> str:
        return f"{PREFIX}/{self.name}"

    def secret_data(self) -> dict[str, object]:
        if self.provider == "imap":
            return {
                "imap_username": self.email,
                "imap_password": f"pw-{self.name}",
                "imap_host": "imap.example.com",
                "imap_port": 993,
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
            }
        return {"refresh_token": f"rt-{self.name}-v1"}

    def identity(self) -> dict[str, object]:
        identity: dict[str, object] = {"provider": self.provider, "email": self.email}
        if self.provider == "imap":
            identity |= {"imap_username": self.email, "imap_password": f"pw-{self.name}"}
            identity["scopes"] = ["imap"]
        else:
            identity |= {"refresh_token": f"rt-{self.name}-v1", "scopes": SCOPES}
        return identity


def generate_accounts(count: int) -> list[BenchAccount]:
    """Return `count` accounts with stable names."""
    return [
        BenchAccount(
            name=f"acct-{index:06d}",
            email=f"user{index:06d}@example.com",
            provider="imap" if index % 10 == 0 else "microsoft",
        )
        for index in range(count)
    ]


def _manifest_lines(accounts: list[BenchAccount], state_path: str) -> Iterator[str]:
    yield "version: 1"
    yield "nylas:\n  region: us"
    yield f"vault:\n  mount: {MOUNT}\n  path_prefix: {PREFIX}"
    yield f"state:\n  backend: local\n  path: {state_path}"
    yield "defaults:\n  provider: microsoft"
    yield f"policy:\n  max_deletes: {len(accounts)}"
    yield "accounts:"
    for account in accounts:
        yield f"  - name: {account.name}\n    email: {account.email}"
        yield f"    provider: {account.provider}\n    secret: {account.name}"
        scopes = "[imap]" if account.provider == "imap" else "[" + ", ".join(SCOPES) + "]"
        yield f"    scopes: {scopes}"


def write_manifest(accounts: list[BenchAccount], directory: Path) -> Path:
    """Write the manifest (local state beside it) and return its path."""
    path = directory / "grants.yaml"
    path.write_text("\n".join(_manifest_lines(accounts, "state.json")) + "\n")
    return path


def write_fixture(accounts: list[BenchAccount], directory: Path, rate_limit: int) -> Path:
    """Write the emulator fixture (JSON is valid YAML) and return its path."""
    fixture = {
        "api_keys": [API_KEY],
        "rate_limit": rate_limit,
        "identities": [account.identity() for account in accounts],
    }
    path = directory / "fixture.json"
    path.write_text(json.dumps(fixture))
    return path


def seed_vault(client: hvac.Client, accounts: list[BenchAccount]) -> None:
    """Write every account's secret into KV v2, eight requests at a time."""

    def put(account: BenchAccount) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=account.secret_path, secret=account.secret_data(), mount_point=MOUNT
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, accounts))
