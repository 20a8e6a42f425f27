"""Secrets canary: no credential grantctl handles ever appears in anything it writes.

Each test seeds unique canary values: refresh tokens, IMAP passwords, the Nylas API key and the
Vault token. It runs grantctl against a real OpenBao and the emulator, failing runs included.
Then it searches stdout, stderr (at `--log-level debug`, so every log line is there) and every
file under the test's directory (plan, state, backup, lock, event, metrics files) for each
canary.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.model import VaultSettings
from reconciler.secrets import MASK, REDACTOR, Secret
from reconciler.state.local import LocalStateBackend
from reconciler.state.lockrecord import new_lock_record
from reconciler.vault import VaultSecretStore
from reconciler.vault.auth import AuthConfig
from reconciler.vault.session import connect_vault
from tests.support.cli import Scenario, invoke_isolated
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow


class CanaryScenario(Scenario):
    """A `Scenario` whose every credential is a unique canary value, and its own Vault token."""

    vault_token: str = ""

    def canaries(self) -> dict[str, str]:
        """Return every secret value of this world, keyed by a label for failure messages."""
        values = {"nylas api key": self.emulator.api_key, "vault token": self.vault_token}
        for name, data in self.credentials.items():
            for key in ("refresh_token", "imap_password", "smtp_password"):
                if key in data:
                    values[f"{name}.{key}"] = str(data[key])
        return values

    def env(self) -> dict[str, str]:
        """Return the scenario's environment with the canary Vault token."""
        environment = super().env()
        environment["VAULT_TOKEN"] = environment["BAO_TOKEN"] = self.vault_token
        return environment

    def credential_marker(self, name: str) -> str:
        """Return a canary: a value that must never appear in any output or file."""
        return "canary-" + secrets.token_hex(10)


def canary_token(openbao: OpenBaoServer, policies: list[str]) -> str:
    """Create a Vault token whose id is itself a canary value, with `policies`."""
    token_id = "vault-canary-" + secrets.token_hex(12)
    openbao.api("POST", "auth/token/create", {"id": token_id, "policies": policies, "ttl": "1h"})
    return token_id


@pytest.fixture
def world(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> CanaryScenario:
    """Two Microsoft accounts and one IMAP account with canary credentials."""
    api_key = "nyk_canary_" + secrets.token_hex(12)
    scenario = CanaryScenario(openbao, emulator_factory({"api_keys": [api_key]}), tmp_path)
    scenario.vault_token = canary_token(openbao, ["root"])
    scenario.add_account("leyah")
    scenario.add_account("ceo")
    scenario.add_account("support", provider="imap", scopes=[])
    scenario.write_manifest()
    return scenario


def assert_no_canary(world: CanaryScenario, outputs: list[tuple[str, str]]) -> None:
    """Fail naming the canary and where it appeared: in `outputs` or any file of the world."""
    texts = list(outputs)
    for path in sorted(world.workdir.rglob("*")):
        if path.is_file():
            texts.append((str(path.relative_to(world.workdir)), path.read_text(errors="replace")))
    for label, value in world.canaries().items():
        for where, text in texts:
            assert value not in text, f"canary {label} appeared in {where}"


def run(world: CanaryScenario, *arguments: str) -> list[tuple[str, str]]:
    """Run grantctl in-process with `--log-level debug`; return labelled stdout and stderr."""
    completed = world.grantctl("--log-level", "debug", *arguments)
    name = " ".join(arguments)
    return [(f"stdout of {name}", completed.stdout), (f"stderr of {name}", completed.stderr)]


def test_every_command_hides_canaries(world: CanaryScenario) -> None:
    """validate, fmt, plan (3 formats), apply (manifest, plan file), audit (3 formats)."""
    outputs: list[tuple[str, str]] = []
    outputs += run(world, "validate", "grants.yaml")
    outputs += run(world, "fmt", "--check", "grants.yaml")
    for output_format in ("text", "json", "markdown"):
        outputs += run(world, "plan", "grants.yaml", "--format", output_format, "--out", "p.json")
    outputs += run(world, "apply", "p.json")
    world.rotate("leyah")
    outputs += run(world, "apply", "grants.yaml", "--auto-approve", "--events", "events.jsonl")
    outputs += run(world, "apply", "grants.yaml", "--auto-approve", "--format", "json")
    for output_format in ("text", "json", "markdown"):
        outputs += run(
            world,
            "audit",
            "grants.yaml",
            "--format",
            output_format,
            "--metrics-file",
            f"audit-{output_format}.prom",
            "--metrics-include-emails",
        )
    assert len(world.emulator.grants()) == 3
    metrics = (world.workdir / "audit-json.prom").read_text(encoding="utf-8")
    assert 'email="support@example.com"' in metrics
    assert_no_canary(world, outputs)


def test_subprocess_debug_hides_canaries(world: CanaryScenario) -> None:
    """A real process at debug level: logging goes through the process's own handlers."""
    completed = world.subprocess("--log-level", "debug", "apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 0, completed.stderr
    assert_no_canary(world, [("stdout", completed.stdout), ("stderr", completed.stderr)])


def test_force_unlock_hides_canaries(world: CanaryScenario) -> None:
    """force-unlock with a wrong id, then with the right one."""
    backend = LocalStateBackend(world.workdir / "state.json")
    record = new_lock_record("apply", who="someone@elsewhere", ttl_s=3600)
    record["pid"] = 0  # no process: the lock must still be live, so keep a far expiry
    assert backend.try_acquire(record) is None
    outputs = run(world, "force-unlock", "not-the-id", "grants.yaml")
    outputs += run(world, "force-unlock", record["id"], "grants.yaml")
    assert backend.current_lock() is None
    assert_no_canary(world, outputs)


def test_vault_denied_hides_canaries(world: CanaryScenario, openbao: OpenBaoServer) -> None:
    """A token that may read metadata but not data: plan passes, apply fails on every read."""
    policy = OpenBaoServer.unique("metadata-only")
    openbao.write_policy(
        policy,
        f'path "secret/metadata/{world.prefix}/*" {{ capabilities = ["read", "list"] }}\n',
    )
    world.vault_token = canary_token(openbao, [policy])
    outputs = run(world, "plan", "grants.yaml", "--out", "p.json")
    completed = world.grantctl("--log-level", "debug", "apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    outputs += [("stdout", completed.stdout), ("stderr", completed.stderr)]
    assert world.emulator.grants() == []
    assert_no_canary(world, outputs)
    # A denied read is the policy's fault, not the account's: it must not lead to quarantine.
    entries = LocalStateBackend(world.workdir / "state.json").read().entries
    assert all(entry.failures == 0 for entry in entries.values()), entries


def test_revoked_token_hides_canaries(world: CanaryScenario) -> None:
    """The emulator rejects a revoked refresh token with 400 invalid_grant."""
    world.emulator.revoke_token(world.credentials["leyah"]["refresh_token"])
    completed = world.grantctl("--log-level", "debug", "apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert "leyah" in completed.stdout + completed.stderr
    assert_no_canary(world, [("stdout", completed.stdout), ("stderr", completed.stderr)])


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """A Nylas stand-in that lists no grants and rejects every connect, echoing its body."""

    def do_GET(self) -> None:
        self._send(200, {"request_id": "echo-1", "data": [], "limit": 200, "offset": 0})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        key = self.headers.get("Authorization", "")
        echoed = {
            "request_id": "echo-2",
            "error": {
                "type": "invalid_request_error",
                "message": f"bad request {body} with {key}",
                "provider_error": {"error": "invalid_grant", "request": json.loads(body)},
            },
        }
        self._send(400, echoed, extra={"X-Echo": key})

    def _send(
        self, status: int, document: Mapping[str, Any], extra: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
        return


@pytest.fixture
def echo_server() -> Iterator[str]:
    """Serve `EchoHandler` on a free loopback port; yield its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_echoed_request_hides_canaries(world: CanaryScenario, echo_server: str) -> None:
    """A 400 whose message, provider_error and headers echo the request and the API key."""
    environment = world.env()
    environment["GRANTCTL_NYLAS_API_URI"] = echo_server
    completed = invoke_isolated(
        ["--log-level", "debug", "apply", "grants.yaml", "--auto-approve", "--events", "ev.jsonl"],
        env=environment,
        cwd=world.workdir,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "bad request" in completed.stdout + completed.stderr
    assert_no_canary(world, [("stdout", completed.stdout), ("stderr", completed.stderr)])


def test_worker_exception_hides_canaries(
    world: CanaryScenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside an apply worker whose exception message holds the secret value."""
    from reconciler.vault import shape

    def explode(provider: object, data: Mapping[str, Secret], **_: object) -> None:
        values = ", ".join(value.reveal() for value in data.values())
        raise RuntimeError(f"unexpected secret shape: {values}")

    monkeypatch.setattr(shape, "connect_settings", explode)
    completed = world.grantctl(
        "--log-level", "debug", "apply", "grants.yaml", "--auto-approve", "--events", "ev.jsonl"
    )
    assert completed.returncode in (1, 3), completed.stdout + completed.stderr
    assert "RuntimeError" in completed.stdout + completed.stderr
    assert_no_canary(world, [("stdout", completed.stdout), ("stderr", completed.stderr)])


def test_imap_username_is_not_masked(world: CanaryScenario) -> None:
    """The IMAP username equals the email, which is not secret and must stay readable."""
    # Commands run in this process, and earlier tests may have wrapped this very address
    # in a Secret on purpose. Start from an empty redaction set, as a real process does.
    REDACTOR.clear()
    completed = world.grantctl("apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 0, completed.stderr
    assert MASK not in completed.stdout
    assert "support@example.com" in completed.stdout
    audit = world.grantctl("audit", "grants.yaml", "--format", "json")
    assert MASK not in audit.stdout
    assert "support@example.com" in audit.stdout


def test_read_secret_registers_credentials_only(openbao: OpenBaoServer) -> None:
    """read_secret wraps every value, but only passwords join the redaction filter."""
    marker = secrets.token_hex(8)
    data = {
        "imap_username": f"user-{marker}@example.com",
        "imap_password": f"pw-{marker}",
        "imap_host": f"imap-{marker}.example.com",
        "imap_port": 10993,
        "smtp_host": f"smtp-{marker}.example.com",
        "smtp_port": 10587,
        "smtp_password": f"smtp-pw-{marker}",
        "unexpected_key": f"other-{marker}",
    }
    path = OpenBaoServer.unique("canary") + "/support"
    openbao.kv_put(path, data)
    config = AuthConfig(addr=openbao.addr, token=Secret(openbao.root_token))
    store = VaultSecretStore(connect_vault(config), VaultSettings(mount="secret"))
    read = store.read_secret(path, None)
    assert all(isinstance(value, Secret) for value in read.values())
    assert read["imap_password"].reveal() == data["imap_password"]
    for key in ("imap_username", "imap_host", "imap_port", "smtp_host", "smtp_port"):
        value = str(data[key])
        assert REDACTOR.redact(value) == value, f"{key} is masked but is not a secret"
    for key in ("imap_password", "smtp_password", "unexpected_key"):
        assert REDACTOR.redact(str(data[key])) == MASK, f"{key} is not masked"
