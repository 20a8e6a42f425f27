"""`collector_paused` turns the cyclic collector off inside and restores its previous state."""

from __future__ import annotations

import gc

import pytest

from reconciler.gc_pause import collector_paused


def test_pause_disables_then_restores() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pause_keeps_outer_pause() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_restores_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("planning failed")
    assert gc.isenabled()
