"""`grantctl apply` on a terminal: the confirmation prompt and the progress bar.

The command runs in a pseudo-terminal (stdin, stdout and stderr all on it), as a person at a
shell would run it, and the test answers the prompt by writing to the terminal.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer
from tests.support.cli import Scenario
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow

PROMPT = b"Apply these 2 changes? [y/N]"
TIMEOUT_S = 60.0


@pytest.fixture
def scenario(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """Two Microsoft accounts, manifest written, nothing applied."""
    world = Scenario(openbao, emulator_factory({"api_keys": ["nyk_tty_key"]}), tmp_path)
    world.add_account("leyah")
    world.add_account("ceo")
    world.write_manifest()
    return world


class Terminal:
    """A grantctl process whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(self, scenario: Scenario, *arguments: str) -> None:
        self.primary, secondary = pty.openpty()
        environment = scenario.env() | {"COLUMNS": "100"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *arguments],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=environment,
            cwd=scenario.workdir,
        )
        os.close(secondary)
        self.output = b""

    def read_until(self, marker: bytes) -> None:
        """Read terminal output until `marker` appears; fail after the timeout."""
        deadline = time.monotonic() + TIMEOUT_S
        while marker not in self.output:
            assert time.monotonic() < deadline, f"no {marker!r} in {self.output[-2000:]!r}"
            self._read_some()

    def type(self, text: str) -> None:
        os.write(self.primary, text.encode())

    def finish(self) -> int:
        """Read until the process exits and return its exit code."""
        deadline = time.monotonic() + TIMEOUT_S
        while self.process.poll() is None:
            assert time.monotonic() < deadline, "grantctl did not exit"
            self._read_some()
        # Whatever the process wrote just before exiting is still in the terminal buffer.
        while self._read_some():
            pass
        os.close(self.primary)
        return self.process.returncode

    def _read_some(self) -> bool:
        ready, _, _ = select.select([self.primary], [], [], 0.2)
        if not ready:
            return False
        try:
            chunk = os.read(self.primary, 65536)
        except OSError:  # the terminal closes when the process exits
            return False
        self.output += chunk
        return bool(chunk)


def test_prompt_declined_changes_nothing(scenario: Scenario) -> None:
    """Answering no at the prompt exits 1 and creates no grant."""
    terminal = Terminal(scenario, "apply", "grants.yaml")
    terminal.read_until(PROMPT)
    terminal.type("n\n")
    code = terminal.finish()
    assert code == 1, terminal.output[-2000:]
    assert b"not approved" in terminal.output
    assert scenario.grant_emails() == set()


def test_prompt_accepted_applies(scenario: Scenario) -> None:
    """Answering yes applies both connects and draws the progress bar on the terminal."""
    terminal = Terminal(scenario, "apply", "grants.yaml")
    terminal.read_until(PROMPT)
    terminal.type("y\n")
    code = terminal.finish()
    assert code == 0, terminal.output[-2000:]
    assert b"Applying" in terminal.output, "no progress bar on a terminal"
    assert scenario.grant_emails() == {"leyah@example.com", "ceo@example.com"}
