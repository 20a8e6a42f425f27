"""Helpers that run `grantctl` the way users do: as a subprocess, and through CliRunner.

`Scenario` builds one isolated world per test: a unique path prefix in the shared OpenBao
server, an emulator of its own, and a manifest with local state in the test's temporary
directory. It writes each account's secret to OpenBao and teaches the emulator the identity
that the secret opens, so `grantctl apply` connects for real over loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from reconciler.cli import grantctl
from reconciler.emulator import EmulatorServer
from tests.support.openbao import OpenBaoServer

SUBPROCESS_TIMEOUT_S = 120
# A minimal valid manifest with one Microsoft account, for tests that need no servers.
VALID_MANIFEST = """\
version: 1
nylas: {region: us}
vault: {mount: secret, path_prefix: nylas/test}
accounts:
  - name: leyah
    email: leyah@example.com
    provider: microsoft
    secret: leyah
"""

MICROSOFT_SCOPES = ["Mail.Read", "User.Read", "offline_access"]
# Variables of the developer's own shell that would point grantctl elsewhere.
_FOREIGN_PREFIXES = ("VAULT_", "BAO_", "NYLAS_", "GRANTCTL_")


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return os.environ without Vault, Nylas and grantctl settings, plus `extra`."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(_FOREIGN_PREFIXES)
    }
    environment["NO_COLOR"] = "1"
    environment.update(extra or {})
    return environment


def run_grantctl(
    *arguments: str,
    env: Mapping[str, str],
    cwd: Path,
    stdin: str | None = None,
    timeout: float = SUBPROCESS_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reconciler ARGUMENTS` with exactly `env`; never raises on exit codes."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *arguments],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def invoke(arguments: Sequence[str], env: Mapping[str, str] | None = None) -> Result:
    """Run grantctl in-process with click's CliRunner; stdout and stderr stay apart.

    `env` is laid over the process environment for the call.
    """
    runner = CliRunner()
    return runner.invoke(grantctl, list(arguments), env=dict(env or {}), catch_exceptions=False)


def invoke_isolated(
    arguments: Sequence[str], env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run grantctl in-process with exactly `env` set for grantctl's variables, in `cwd`.

    Faster than a subprocess (no interpreter start), for the many end-to-end steps whose
    subject is not the process boundary itself.
    """
    overlay: dict[str, str | None] = dict.fromkeys(
        (key for key in os.environ if key.startswith(_FOREIGN_PREFIXES)), None
    )
    overlay.update(env)
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(grantctl, list(arguments), env=overlay, catch_exceptions=False)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(
        list(arguments), result.exit_code, result.stdout, result.stderr
    )


@dataclass
class Scenario:
    """One test's OpenBao prefix, emulator and manifest directory."""

    openbao: OpenBaoServer
    emulator: EmulatorServer
    workdir: Path
    prefix: str = field(default_factory=lambda: f"e2e-{secrets.token_hex(5)}")
    accounts: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        """The manifest path; `write_manifest` (re)writes it."""
        return self.workdir / "grants.yaml"

    def env(self) -> dict[str, str]:
        """Return the environment pointing grantctl at this scenario's servers."""
        return clean_environment(
            {
                **self.openbao.env(),
                "NYLAS_API_KEY": self.emulator.api_key,
                "GRANTCTL_NYLAS_API_URI": self.emulator.url,
            }
        )

    def add_account(self, name: str, provider: str = "microsoft", **entry: Any) -> None:
        """Add an account whose secret exists in OpenBao and opens a mailbox in the emulator."""
        email = entry.pop("email", f"{name}@example.com")
        self.accounts.append(
            {"name": name, "email": email, "provider": provider, "secret": name, **entry}
        )
        self.store_credentials(name, provider, email)

    def credential_marker(self, name: str) -> str:
        """Return the unique part of a new refresh token or password for account `name`."""
        return f"{name}-{secrets.token_hex(8)}"

    def store_credentials(self, name: str, provider: str, email: str) -> int | None:
        """Write new credentials for `name` (a new Vault version) and register the identity."""
        marker = self.credential_marker(name)
        if provider == "imap":
            data: dict[str, Any] = {
                "imap_username": email,
                "imap_password": f"pw-{marker}",
                "imap_host": "imap.example.com",
                "imap_port": 993,
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
            }
            identity = {
                "provider": "imap",
                "imap_username": email,
                "imap_password": data["imap_password"],
            }
        else:
            data = {"refresh_token": f"rt-{marker}"}
            identity = {
                "provider": provider,
                "refresh_token": data["refresh_token"],
                "email": email,
                "scopes": MICROSOFT_SCOPES,
            }
        self.emulator.add_identity(**identity)
        self.credentials[name] = data
        return self.openbao.kv_put(f"{self.prefix}/{name}", data)

    def rotate(self, name: str) -> int | None:
        """Store a new, valid credential for account `name`; return the new Vault version."""
        account = next(item for item in self.accounts if item["name"] == name)
        return self.store_credentials(name, account["provider"], account["email"])

    def write_manifest(self, **overrides: Any) -> Path:
        """Write the manifest from `accounts` and `removed`; `overrides` replace top-level keys."""
        document: dict[str, Any] = {
            "version": 1,
            "nylas": {"region": "us"},
            "vault": {"mount": "secret", "path_prefix": self.prefix},
            "state": {"backend": "local", "path": "state.json"},
            "defaults": {"provider": "microsoft", "scopes": MICROSOFT_SCOPES},
            "accounts": self.accounts,
        }
        if self.removed:
            document["removed"] = self.removed
        document.update(overrides)
        self.manifest.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return self.manifest

    def grantctl(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run grantctl in-process in the scenario's directory with its environment."""
        return invoke_isolated(arguments, env=self.env(), cwd=self.workdir)

    def subprocess(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run grantctl as a separate process, as a user or CI job does."""
        return run_grantctl(*arguments, env=self.env(), cwd=self.workdir)

    def plan_json(self, *flags: str) -> dict[str, Any]:
        """Run `grantctl plan --format json` and return the document."""
        completed = self.grantctl("plan", "grants.yaml", "--format", "json", *flags)
        assert completed.returncode in (0, 2), completed.stderr
        document: dict[str, Any] = json.loads(completed.stdout)
        return document

    def planned(self, *flags: str) -> dict[str, tuple[str, str]]:
        """Return (action, reason) by account for every change that is not a no-op."""
        return {
            change["account"]: (change["action"], change["reason"])
            for change in self.plan_json(*flags)["changes"]
            if change["action"] != "no-op"
        }

    def grant_emails(self) -> set[str]:
        """Return the emails of the emulator's live grants."""
        return {str(grant["email"]) for grant in self.emulator.grants()}
