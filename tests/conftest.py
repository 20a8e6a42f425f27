"""Shared pytest configuration: real OpenBao and emulator fixtures live in tests/support."""

pytest_plugins = [
    "tests.support.openbao",
    "tests.support.emulator",
]
