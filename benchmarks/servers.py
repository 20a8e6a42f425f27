"""The servers a benchmark run talks to, all started here and all on loopback.

OpenBao runs as a `bao server -dev` process (`reconciler.demo_fixture.DemoOpenBao`). The Nylas
emulator runs as its own `grantctl emulator` process, so its CPU time is not charged to the
measured grantctl process, as with a real API.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.demo_fixture import DemoOpenBao, free_loopback_port

STARTUP_TIMEOUT_S = 60.0


@contextlib.contextmanager
def running_openbao(workdir: Path) -> Iterator[DemoOpenBao]:
    """Start an in-memory OpenBao dev server in `workdir` and stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = DemoOpenBao(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class EmulatorSettings:
    """The emulator's added latency per request and its rate limit (requests/s)."""

    latency_ms: float
    rate_limit: int


@contextlib.contextmanager
def running_emulator(fixture: Path, settings: EmulatorSettings, log_path: Path) -> Iterator[str]:
    """Start `grantctl emulator` with `fixture`; yield its base URL and stop it on exit."""
    port = free_loopback_port()
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--fixture",
        str(fixture),
        "--latency-ms",
        str(settings.latency_ms),
        "--rate-limit",
        str(settings.rate_limit),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited early; its log is {log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the emulator did not listen within {STARTUP_TIMEOUT_S:.0f} seconds")
