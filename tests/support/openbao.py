"""Fixture: a real OpenBao dev server on a free loopback port (placeholder until built)."""
