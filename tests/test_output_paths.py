"""Output flags must never overwrite the manifest, the state files or each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.commands.outputs import check_output_paths
from reconciler.errors import ConfigError
from tests.support.cli import VALID_MANIFEST, invoke

MANIFEST = VALID_MANIFEST
STATE = '{"serial": 4, "entries": {}}\n'
# Points every client at a closed loopback port, so a run that got past the check fails.
OFFLINE = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": "t", "NYLAS_API_KEY": "k"}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A directory with a manifest and its local state file at the default path."""
    (tmp_path / "grants.yaml").write_text(MANIFEST, encoding="utf-8")
    state_dir = tmp_path / ".grantctl"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(STATE, encoding="utf-8")
    return tmp_path


def _run(arguments: list[str]) -> tuple[int, str]:
    result = invoke(arguments, env=OFFLINE)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "target",
    [
        "grants.yaml",
        ".grantctl/state.json",
        ".grantctl/state.json.lock.json",
        ".grantctl/state.json.lock",
        ".grantctl/state.json.backup",
    ],
)
def test_plan_out_protected_file(world: Path, target: str) -> None:
    before = {path: path.read_bytes() for path in world.rglob("*") if path.is_file()}

    code, stderr = _run(["plan", str(world / "grants.yaml"), "--out", str(world / target)])

    assert code == 1
    assert f"--out {world / target} would overwrite" in stderr
    assert "next step:" in stderr
    after = {path: path.read_bytes() for path in world.rglob("*") if path.is_file()}
    assert after == before


def test_plan_out_symlink_to_state(world: Path) -> None:
    link = world / "plan.json"
    link.symlink_to(world / ".grantctl" / "state.json")

    code, stderr = _run(["plan", str(world / "grants.yaml"), "--out", str(link)])

    assert code == 1
    assert "the state file" in stderr
    assert (world / ".grantctl" / "state.json").read_text(encoding="utf-8") == STATE


def test_plan_out_keeps_foreign_file(world: Path) -> None:
    notes = world / "notes.json"
    notes.write_text('{"todo": 1}\n', encoding="utf-8")

    code, stderr = _run(["plan", str(world / "grants.yaml"), "--out", str(notes)])

    assert code == 1
    assert "is not a grantctl plan file" in stderr
    assert notes.read_text(encoding="utf-8") == '{"todo": 1}\n'


def test_plan_file_may_be_replaced(tmp_path: Path) -> None:
    old_plan = tmp_path / "plan.json"
    old_plan.write_text(json.dumps({"format_version": 1, "plan_id": "p", "changes": []}))

    check_output_paths({"--out": str(old_plan)}, manifest_path=None, plan_out_flag="--out")


def test_apply_events_onto_manifest(world: Path) -> None:
    manifest = str(world / "grants.yaml")

    code, stderr = _run(["apply", manifest, "--auto-approve", "--events", manifest])

    assert code == 1
    assert "would overwrite the manifest" in stderr
    assert (world / "grants.yaml").read_text(encoding="utf-8") == MANIFEST


def test_apply_events_onto_plan_file(world: Path) -> None:
    plan = world / "plan.json"
    document = {"format_version": 1, "plan_id": "p", "changes": []}
    document["manifest"] = {"path": str(world / "grants.yaml")}
    plan.write_text(json.dumps(document), encoding="utf-8")

    code, stderr = _run(["apply", str(plan), "--events", str(world / ".grantctl/state.json")])

    assert code == 1
    assert "the state file" in stderr
    code, stderr = _run(["apply", str(plan), "--events", str(plan)])
    assert code == 1
    assert "the plan file" in stderr


def test_audit_outputs_same_file(world: Path) -> None:
    out = str(world / "audit.out")
    manifest = str(world / "grants.yaml")

    code, stderr = _run(["audit", manifest, "--json-out", out, "--metrics-file", out])

    assert code == 1
    assert "name the same file" in stderr


def test_audit_metrics_onto_state(world: Path) -> None:
    state = str(world / ".grantctl" / "state.json")

    code, stderr = _run(["audit", str(world / "grants.yaml"), "--metrics-file", state])

    assert code == 1
    assert "--metrics-file" in stderr
    assert "the state file" in stderr


def test_reconcile_metrics_onto_manifest(world: Path) -> None:
    manifest = str(world / "grants.yaml")

    code, stderr = _run(["reconcile", manifest, "--once", "--metrics-file", manifest])

    assert code == 1
    assert "would overwrite the manifest" in stderr


def test_distinct_outputs_allowed(tmp_path: Path) -> None:
    outputs = {"--json-out": str(tmp_path / "a.json"), "--metrics-file": str(tmp_path / "a.prom")}

    with pytest.raises(ConfigError):
        check_output_paths({"--a": "x", "--b": "./x"}, manifest_path=None)
    check_output_paths(outputs, manifest_path=None)
