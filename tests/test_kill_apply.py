"""SIGKILL during `grantctl apply`: the next plan and apply converge without duplicates.

A subprocess applies 200 accounts against the emulator (with latency) and is killed with
SIGKILL at several points. Then a full apply must succeed, a plan must show no changes, every
mailbox must hold exactly one grant, and the inventory must record each of those grants.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.model import Inventory
from reconciler.state import LocalStateBackend, VaultStateBackend
from tests.support.cli import MICROSOFT_SCOPES, Scenario
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow

ACCOUNTS = 200
# Grants in the emulator at which the running apply is killed.
KILL_POINTS = (15, 70, 140)


def build_scenario(
    openbao: OpenBaoServer, emulator: EmulatorServer, workdir: Path, backend: str
) -> Scenario:
    """Write 200 Microsoft accounts, their Vault secrets and a manifest for `backend`."""
    scenario = Scenario(openbao, emulator, workdir)
    client = openbao.client()
    for index in range(ACCOUNTS):
        name = f"user{index:03d}"
        token = f"rt-{name}-{secrets.token_hex(6)}"
        email = f"{name}@example.com"
        emulator.add_identity(
            provider="microsoft", refresh_token=token, email=email, scopes=MICROSOFT_SCOPES
        )
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{scenario.prefix}/{name}", secret={"refresh_token": token}
        )
        scenario.accounts.append({"name": name, "email": email, "secret": name})
    path = "state.json" if backend == "local" else f"{scenario.prefix}-state/inventory"
    scenario.write_manifest(state={"backend": backend, "path": path})
    return scenario


def start_apply(scenario: Scenario) -> subprocess.Popen[bytes]:
    """Start `grantctl apply --auto-approve` as a subprocess; stderr goes to apply.log."""
    with (scenario.workdir / "apply.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "grants.yaml", "--auto-approve"],
            cwd=scenario.workdir,
            env=scenario.env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def kill_when(
    process: subprocess.Popen[bytes], emulator: EmulatorServer, grants: int, log: Path
) -> None:
    """SIGKILL `process` once the emulator holds at least `grants` grants."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(emulator.grants()) >= grants:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        assert process.stderr is not None
        pytest.fail(
            f"apply exited ({process.returncode}) before the kill: {process.stderr.read()!r}"
        )
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def stored_inventory(scenario: Scenario, backend: str) -> Inventory:
    """Read the inventory the way grantctl does."""
    if backend == "local":
        return LocalStateBackend(scenario.workdir / "state.json").read()
    path = f"{scenario.prefix}-state/inventory"
    return VaultStateBackend(scenario.openbao.session(), "secret", path).read()


@pytest.mark.parametrize("backend", ["local", "vault"])
def test_killed_apply_converges(
    backend: str,
    openbao: OpenBaoServer,
    emulator_factory: Callable[..., EmulatorServer],
    tmp_path: Path,
) -> None:
    """Applies killed at three points leave no duplicate grant and no forgotten grant."""
    emulator = emulator_factory({"api_keys": ["nyk_kill_key"]}, latency_ms=25)
    scenario = build_scenario(openbao, emulator, tmp_path, backend)
    for point in KILL_POINTS:
        kill_when(start_apply(scenario), emulator, point, tmp_path / "apply.log")

    final = scenario.grantctl("apply", "grants.yaml", "--auto-approve")
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    replan = scenario.grantctl("plan", "grants.yaml", "--detailed-exitcode")
    assert replan.returncode == 0, replan.stdout[-2000:] + replan.stderr[-2000:]

    grants: list[dict[str, Any]] = emulator.grants()
    emails = [str(grant["email"]).casefold() for grant in grants]
    assert len(emails) == len(set(emails)), "a mailbox holds more than one grant"
    assert len(grants) == ACCOUNTS
    inventory = stored_inventory(scenario, backend)
    by_email = {str(grant["email"]).casefold(): grant["id"] for grant in grants}
    recorded = {entry.email.casefold(): entry.grant_id for entry in inventory.entries.values()}
    assert recorded == by_email
