"""Fixture: Nylas emulator instances on free loopback ports (placeholder until built)."""
