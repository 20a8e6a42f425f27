"""A Nylas v3 API emulator for tests, demos and offline runs of grantctl.

It serves `POST /v3/connect/custom` and the grant endpoints from memory on loopback, with
Nylas' envelopes, errors, paging, re-authentication rules and rate limit, plus fault
injection and an admin API under `/_emulator/`. `EmulatorServer` runs it in-process;
`serve` runs it in the foreground for `grantctl emulator`.
"""

from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.faults import DEFAULT_RATE_LIMIT, FaultSettings
from reconciler.emulator.fixture import DEFAULT_API_KEY, FixtureError, load_fixture
from reconciler.emulator.server import DEFAULT_HOST, DEFAULT_PORT, EmulatorServer, check_host, serve

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_RATE_LIMIT",
    "EmulatorCore",
    "EmulatorServer",
    "FaultSettings",
    "FixtureError",
    "check_host",
    "load_fixture",
    "serve",
]
