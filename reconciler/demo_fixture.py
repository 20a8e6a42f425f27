"""The demo's throwaway servers and fake mailboxes: an OpenBao dev server and credentials.

`grantctl demo` starts OpenBao through `reconciler.devserver`, on a free loopback port with a
random root token, and keeps all its data in memory. Every credential made here is random
and fake; the demo registers with the emulator the identity each one opens.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.devserver import OpenBaoDevServer, free_loopback_port, require_bao
from reconciler.model import Account, Manifest, Provider

__all__ = [
    "DemoOpenBao",
    "fake_credentials",
    "find_bao",
    "free_loopback_port",
    "identity_for",
]

_IDENTITY_CREDENTIAL_KEYS = {
    Provider.IMAP: ("imap_username", "imap_password"),
    Provider.ICLOUD: ("username", "password"),
    Provider.EWS: ("ews_username", "ews_password"),
}


def find_bao() -> str:
    """Return the `bao` binary the demo runs; raise `ConfigError` when it is not installed."""
    return require_bao()


class DemoOpenBao(OpenBaoDevServer):
    """A `bao server -dev` process: in memory, unsealed, KV v2 mounted at `secret/`."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, token_prefix="demo-root-")  # noqa: S106  # a label, not a secret

    def prepare_mount(self, manifest: Manifest) -> None:
        """Mount the manifest's KV engine unless it is the dev server's own `secret/`."""
        mount = manifest.vault.mount
        client = self.client()
        if f"{mount}/" in client.sys.list_mounted_secrets_engines()["data"]:
            return
        options = {"version": str(manifest.vault.kv_version)}
        client.sys.enable_secrets_engine("kv", path=mount, options=options)

    def put_secret(self, manifest: Manifest, path: str, data: Mapping[str, Any]) -> int | None:
        """Write `data` at `path` of the manifest's mount; return the new KV v2 version."""
        client = self.client()
        if manifest.vault.kv_version == 1:
            client.secrets.kv.v1.create_or_update_secret(
                path=path, secret=dict(data), mount_point=manifest.vault.mount
            )
            return None
        response = client.secrets.kv.v2.create_or_update_secret(
            path=path, secret=dict(data), mount_point=manifest.vault.mount
        )
        return int(response["data"]["version"])


def fake_credentials(account: Account) -> dict[str, Any]:
    """Return random credentials of the shape `account`'s provider needs."""
    password = secrets.token_urlsafe(18)
    if account.provider.uses_refresh_token:
        return {"refresh_token": f"demo-rt-{account.name}-{secrets.token_hex(12)}"}
    if account.provider is Provider.IMAP:
        return {
            "imap_username": account.email,
            "imap_password": password,
            "imap_host": "imap.example.com",
            "imap_port": 993,
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
        }
    if account.provider is Provider.ICLOUD:
        return {"username": account.email, "password": password}
    return {"email": account.email, "ews_username": account.email, "ews_password": password}


def identity_for(account: Account, credentials: Mapping[str, Any]) -> dict[str, Any]:
    """Return the emulator identity that accepts `credentials` as `account`'s mailbox.

    The identity carries the manifest's scopes, plus the three Google requires, so every
    connect passes the scope check.
    """
    scopes = list(account.scopes)
    if account.provider is Provider.GOOGLE:
        scopes += [scope for scope in ("openid", "email", "profile") if scope not in scopes]
    identity: dict[str, Any] = {
        "provider": account.provider.value,
        "email": account.email,
        "scopes": scopes,
    }
    if account.provider.uses_refresh_token:
        identity["refresh_token"] = credentials["refresh_token"]
        return identity
    credential_key, password_key = _IDENTITY_CREDENTIAL_KEYS[account.provider]
    identity[credential_key] = credentials[credential_key]
    identity[password_key] = credentials[password_key]
    return identity
