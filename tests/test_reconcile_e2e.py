"""`grantctl reconcile` against a real OpenBao and the Nylas emulator.

The --once cases run in-process through click's CliRunner. The loop cases run the command as
a subprocess, so that SIGTERM reaches real signal handlers.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from reconciler.cli import grantctl
from reconciler.emulator import EmulatorServer
from tests.support.cli import Scenario
from tests.support.openbao import OpenBaoServer, free_port

pytestmark = pytest.mark.slow

WAIT_TIMEOUT_S = 60.0


@pytest.fixture
def scenario(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """A world with two Microsoft accounts and one IMAP account, manifest written."""
    world = Scenario(openbao, emulator_factory({"api_keys": ["nyk_reconcile_key"]}), tmp_path)
    world.add_account("leyah")
    world.add_account("ceo")
    world.add_account("support", provider="imap", scopes=[])
    world.write_manifest()
    return world


def reconcile_once(scenario: Scenario, *flags: str, env: dict[str, str] | None = None) -> Result:
    """Run `grantctl reconcile --once` in-process through the real command group."""
    arguments = ["reconcile", "--once", str(scenario.manifest), *flags]
    runner = CliRunner()
    return runner.invoke(grantctl, arguments, env=env or scenario.env(), catch_exceptions=False)


def metric_values(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_once_connects_all(scenario: Scenario) -> None:
    """One round connects every account and exits 0; a second round changes nothing."""
    metrics = scenario.workdir / "grantctl.prom"

    first = reconcile_once(scenario, "--metrics-file", str(metrics))
    assert first.exit_code == 0, first.output

    assert scenario.grant_emails() == {
        "leyah@example.com",
        "ceo@example.com",
        "support@example.com",
    }
    values = metric_values(metrics)
    assert values[("grantctl_reconcile_rounds_total", ())] == 1
    assert values[("grantctl_changes_applied_total", (("action", "connect"),))] == 3
    # Health is read again after the apply, so the new grants already count as healthy.
    assert values[("grantctl_accounts", (("status", "healthy"),))] == 3
    assert values[("grantctl_accounts", (("status", "missing"),))] == 0

    second = reconcile_once(scenario, "--metrics-file", str(metrics))
    assert second.exit_code == 0, second.output
    assert "no changes; exiting (--once)" in second.stderr
    values = metric_values(metrics)
    assert values[("grantctl_changes_applied_total", (("action", "connect"),))] == 0


def test_errored_account_does_not_block(scenario: Scenario) -> None:
    """An account whose secret is missing is left out; the others connect; exit 3."""
    scenario.accounts.append(
        {"name": "ghost", "email": "ghost@example.com", "provider": "microsoft", "secret": "ghost"}
    )
    scenario.write_manifest()

    result = reconcile_once(scenario)

    assert result.exit_code == 3, result.output
    assert "'ghost' left out of this round" in result.stderr
    assert "applied 3 connect, 1 plan error;" in result.stderr
    assert "ghost@example.com" not in scenario.grant_emails()
    assert "leyah@example.com" in scenario.grant_emails()


def test_once_unreachable_vault(scenario: Scenario) -> None:
    """With Vault down, --once runs one round, does not retry, and exits 1."""
    env = {**scenario.env(), "VAULT_ADDR": f"http://127.0.0.1:{free_port()}"}

    started = time.monotonic()
    result = reconcile_once(scenario, env=env)

    assert result.exit_code == 1, result.output
    assert "reconcile round 1 failed" in result.stderr
    assert "(VaultUnavailableError, 1 in a row); exiting (--once)" in result.stderr
    assert time.monotonic() - started < 30


def test_invalid_interval_rejected(scenario: Scenario) -> None:
    """A malformed --interval is a configuration error before any round."""
    runner = CliRunner()
    arguments = ["reconcile", "--interval", "soon", str(scenario.manifest)]
    result = runner.invoke(grantctl, arguments, env=scenario.env())

    assert result.exit_code == 1
    assert "invalid interval 'soon'" in result.stderr
    assert scenario.grant_emails() == set()


class LoopProcess:
    """A running `grantctl reconcile` whose stderr goes to a file that tests poll."""

    def __init__(self, scenario: Scenario, *flags: str, env: dict[str, str]) -> None:
        self.stderr_path = scenario.workdir / "reconcile-stderr.log"
        arguments = ["--log-level", "info", "reconcile", str(scenario.manifest), *flags]
        with self.stderr_path.open("w", encoding="utf-8") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=scenario.workdir,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def wait_for(self, text: str) -> None:
        """Wait until `text` is logged; fail if the process exits or time runs out first."""
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while text not in self.stderr():
            assert self.process.poll() is None, f"exited early:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.stderr()}"
            time.sleep(0.1)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` and return the exit code."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=WAIT_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture
def loops() -> Iterator[list[LoopProcess]]:
    """Processes started by a test, killed at teardown if still running."""
    started: list[LoopProcess] = []
    yield started
    for loop in started:
        if loop.process.poll() is None:
            loop.process.kill()
            loop.process.wait()


def test_sigterm_stops_between_rounds(scenario: Scenario, loops: list[LoopProcess]) -> None:
    """SIGTERM during the wait between rounds ends the process at once with exit 0."""
    loop = LoopProcess(scenario, "--interval", "1h", env=scenario.env())
    loops.append(loop)
    loop.wait_for("reconcile round 1 finished")

    started = time.monotonic()
    code = loop.stop(signal.SIGTERM)

    assert code == 0, loop.stderr()
    assert time.monotonic() - started < 10
    assert "received SIGTERM" in loop.stderr()
    assert "reconcile stopped after 1 rounds" in loop.stderr()
    assert len(scenario.grant_emails()) == 3


def test_vault_outage_backs_off(scenario: Scenario, loops: list[LoopProcess]) -> None:
    """With Vault down the loop keeps running and retries with backoff; SIGINT ends it."""
    env = {**scenario.env(), "VAULT_ADDR": f"http://127.0.0.1:{free_port()}"}
    loop = LoopProcess(scenario, "--interval", "1h", "--jitter", "0", env=env)
    loops.append(loop)
    loop.wait_for("retrying in 5.0s")
    loop.wait_for("reconcile round 2 failed")

    code = loop.stop(signal.SIGINT)

    assert code == 0, loop.stderr()
    assert "retrying in 10.0s" in loop.stderr()


def rounds_finished(loop: LoopProcess) -> int:
    """Return how many rounds the loop has logged as finished."""
    return len(re.findall(r"reconcile round \d+ finished", loop.stderr()))


def test_loop_repairs_expired_grant(scenario: Scenario, loops: list[LoopProcess]) -> None:
    """A grant expired in Nylas is valid again within two 2s rounds; SIGTERM then exits 0."""
    loop = LoopProcess(scenario, "--interval", "2s", "--jitter", "0", env=scenario.env())
    loops.append(loop)
    loop.wait_for("reconcile round 1 finished")
    expired = scenario.emulator.expire_grant(email="leyah@example.com")
    assert [grant["grant_status"] for grant in expired] == ["invalid"]
    finished_at_expiry = rounds_finished(loop)

    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        # Count before reading the status, so every counted round finished before the read.
        finished = rounds_finished(loop)
        if leyah_status(scenario) == "valid":
            break
        assert finished < finished_at_expiry + 2, f"not repaired in two rounds:\n{loop.stderr()}"
        assert loop.process.poll() is None, f"exited early:\n{loop.stderr()}"
        assert time.monotonic() < deadline, f"not repaired in time:\n{loop.stderr()}"
        time.sleep(0.1)
    code = loop.stop(signal.SIGTERM)

    assert code == 0, loop.stderr()
    assert "applied 1 reconnect" in loop.stderr()
    assert leyah_status(scenario) == "valid"


def leyah_status(scenario: Scenario) -> str:
    """Return the emulator's `grant_status` of leyah's only grant."""
    grants = [
        grant for grant in scenario.emulator.grants() if grant["email"] == "leyah@example.com"
    ]
    assert len(grants) == 1, grants
    return str(grants[0]["grant_status"])
