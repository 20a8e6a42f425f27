"""`collector_paused` turns the cyclic collector off inside and restores its previous state,
and `plan` and `audit` keep it off until their output is rendered."""

from __future__ import annotations

import gc
import importlib
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.gc_pause import collector_paused
from tests.support.cli import Scenario
from tests.support.openbao import OpenBaoServer


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


def test_pause_leaves_no_young_objects() -> None:
    """The first collection after a pause would otherwise scan all it allocated."""
    generations: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    gc.callbacks.append(record)
    try:
        with collector_paused():
            allocated = [[index] for index in range(50_000)]
        after = [[index] for index in range(100)]
    finally:
        gc.callbacks.remove(record)
    assert generations == [], f"collections of generations {generations} ran after the pause"
    assert gc.get_freeze_count() == 0, "objects were left frozen"
    assert len(allocated) + len(after) == 50_100


def test_pause_keeps_a_callers_freeze() -> None:
    """Objects a caller froze, for example before a fork, stay frozen after a pause."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            allocated = [[index] for index in range(1_000)]
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()
    assert len(allocated) == 1_000


def test_interrupt_while_promoting_leaves_nothing_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt right after the freeze still unfreezes and turns the collector on."""
    freeze = gc.freeze

    def freeze_then_interrupt() -> None:
        freeze()
        raise KeyboardInterrupt

    monkeypatch.setattr(gc, "freeze", freeze_then_interrupt)
    with pytest.raises(KeyboardInterrupt), collector_paused():
        pass
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_pause_still_collects_cycles() -> None:
    """Objects moved to the oldest generation are still freed by a full collection."""

    class Node:
        partner: Node

    with collector_paused():
        first, second = Node(), Node()
        first.partner, second.partner = second, first
        probe = weakref.ref(first)
        del first, second
    assert probe() is not None, "the cycle was freed before any collection"
    gc.collect()
    assert probe() is None, "a full collection left the cycle alive"


def test_pause_restores_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("planning failed")
    assert gc.isenabled()


@pytest.mark.parametrize(
    "renderer",
    ["reconciler.commands.plan.render_plan", "reconciler.commands.audit.render_audit_text"],
)
def test_command_renders_with_collector_paused(
    openbao: OpenBaoServer,
    emulator_factory: Callable[..., EmulatorServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    renderer: str,
) -> None:
    """Re-enabling the collector before rendering let it scan every object the plan made."""
    module, _, name = renderer.rpartition(".")
    command = module.rpartition(".")[2]
    scenario = Scenario(openbao, emulator_factory({"api_keys": ["nyk_gc_pause"]}), tmp_path)
    scenario.add_account("leyah")
    scenario.write_manifest()
    original = getattr(importlib.import_module(module), name)
    enabled_while_rendering: list[bool] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        enabled_while_rendering.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(renderer, recording)
    completed = scenario.grantctl(command, "grants.yaml")

    assert "Traceback" not in completed.stderr, completed.stderr
    assert enabled_while_rendering == [False]
    assert gc.isenabled()
