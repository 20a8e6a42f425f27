"""Saved plan files: round trip, schema, checksum, damaged files and stale-plan refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.errors import ReconcilerError, StalePlanError
from reconciler.model import (
    Action,
    ErrorCode,
    Grant,
    GrantStatus,
    Inventory,
    InventoryEntry,
    Reason,
    SecretState,
    SecretVersion,
)
from reconciler.planfile import (
    PlanFileError,
    check_plan_is_current,
    document_checksum,
    document_to_plan,
    plan_to_document,
    read_plan_file,
    write_plan_file,
)
from tests.test_planner import (
    CASE_FILES,
    CASES_DIR,
    build_grant,
    build_inventory,
    build_manifest,
    build_secrets,
    load_case,
    plan_case,
)

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "reconciler" / "schemas" / "plan.schema.json").read_text()
)
CASE = load_case(CASES_DIR / "representative.yaml")


def make_document() -> dict[str, Any]:
    """Return the representative case's plan as a document."""
    return plan_to_document(
        plan_case(CASE),
        plan_id="plan-0001",
        created_at="2026-01-02T03:04:05Z",
        tool_version="0.1.0",
        manifest_path="grants.yaml",
    )


def current_world() -> dict[str, Any]:
    """Return the check_plan_is_current arguments for a world that did not move."""
    manifest = build_manifest(CASE)
    return {
        "manifest_digest": manifest.digest,
        "inventory": build_inventory(CASE),
        "secrets": build_secrets(CASE, manifest),
        "grants": [
            Grant(
                id=g["id"],
                provider=g.get("provider", "google"),
                email=g["email"],
                status=GrantStatus(g.get("status", "valid")),
                scopes=tuple(g.get("scopes", ())),
                updated_at=g.get("updated_at"),
            )
            for g in CASE["grants"]
        ],
        "manifest_accounts": {account.name for account in manifest.accounts},
    }


def test_document_matches_schema() -> None:
    """A plan document validates against the published schema."""
    jsonschema.Draft202012Validator(SCHEMA).validate(make_document())


def test_document_round_trip() -> None:
    """document_to_plan rebuilds the plan the document was made from."""
    plan = plan_case(CASE)
    assert document_to_plan(make_document()) == plan


def test_document_holds_no_secret_fields() -> None:
    """No key in the document names a secret value."""
    text = json.dumps(make_document())
    for word in ("refresh_token", "password", "imap_password"):
        assert word not in text, f"{word} appears in the plan document"


def test_document_diff_lists_changed_attributes() -> None:
    """A rotated reconnect's diff names the Vault version only."""
    change = next(c for c in make_document()["changes"] if c["account"] == "rotated")
    assert change["diff"] == [{"path": "vault_version", "before": 3, "after": 4}]


def test_document_diff_of_connect_lists_every_new_attribute() -> None:
    """A connect has no before, so every non-null after attribute is in the diff."""
    change = next(c for c in make_document()["changes"] if c["account"] == "connect-new")
    paths = [item["path"] for item in change["diff"]]
    assert paths == sorted(paths), "diff not sorted"
    assert "email" in paths, "email missing from the diff"


def test_document_summary_counts() -> None:
    """The summary counts each action, the errors and the unmanaged grants."""
    summary = make_document()["summary"]
    assert summary["connect"] == 2
    assert summary["delete"] == 2
    assert summary["errors"] == 12
    assert summary["unmanaged"] == 2


def test_write_then_read(tmp_path: Path) -> None:
    """A written plan file reads back equal, with sorted keys."""
    path = tmp_path / "plan.json"
    write_plan_file(path, make_document())
    assert read_plan_file(path) == make_document()
    text = path.read_text()
    assert text == json.dumps(make_document(), sort_keys=True, indent=2) + "\n"
    assert not list(tmp_path.glob(".plan.json.*")), "temporary file left behind"


def test_read_truncated_file(tmp_path: Path) -> None:
    """A truncated file is reported as invalid JSON, not a traceback."""
    path = tmp_path / "plan.json"
    write_plan_file(path, make_document())
    path.write_text(path.read_text()[:200])
    with pytest.raises(PlanFileError, match=r"is not valid JSON .* truncated"):
        read_plan_file(path)


def test_read_missing_file(tmp_path: Path) -> None:
    """A missing file names the path."""
    with pytest.raises(PlanFileError, match="cannot read plan file"):
        read_plan_file(tmp_path / "absent.json")


def test_read_tampered_file(tmp_path: Path) -> None:
    """An edit that keeps the schema valid is caught by the checksum."""
    document = make_document()
    document["changes"][0]["vault_version"] = 99
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="modified after it was written"):
        read_plan_file(path)


def test_read_schema_violations_listed(tmp_path: Path) -> None:
    """Every schema problem is listed, each with its location."""
    document = make_document()
    document["changes"][0]["action"] = "explode"
    del document["summary"]
    document["checksum"] = document_checksum(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="2 problems") as caught:
        read_plan_file(path)
    assert "changes/0/action" in str(caught.value)


def test_read_newer_format(tmp_path: Path) -> None:
    """A newer format_version is rejected with the version that wrote it."""
    document = make_document()
    document["format_version"] = 2
    document["checksum"] = document_checksum(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="format_version 2"):
        read_plan_file(path)


def test_read_not_an_object(tmp_path: Path) -> None:
    """A JSON array is not a plan."""
    path = tmp_path / "plan.json"
    path.write_text("[]")
    with pytest.raises(ReconcilerError, match="not a JSON object"):
        read_plan_file(path)


def test_current_plan_passes() -> None:
    """An unchanged world raises nothing."""
    check_plan_is_current(make_document(), **current_world())


def stale_message(**changes: Any) -> str:
    """Return the StalePlanError message for the current world with `changes` applied."""
    world = {**current_world(), **changes}
    with pytest.raises(StalePlanError) as caught:
        check_plan_is_current(make_document(), **world)
    return str(caught.value)


def test_stale_manifest_changed() -> None:
    """A different manifest digest is named."""
    assert "the manifest 'grants.yaml' changed" in stale_message(manifest_digest="sha256:beef")


def test_stale_names_manifest_read() -> None:
    """With --manifest, the message names the file apply read and the plan's own."""
    message = stale_message(manifest_digest="sha256:beef", manifest_path="other.yaml")

    assert "the manifest 'other.yaml' differs from 'grants.yaml'" in message
    assert "`grantctl plan other.yaml --out plan.json`" in stale_message(
        manifest_digest="sha256:beef", manifest_path="other.yaml", plan_path="plan.json"
    )


def test_stale_manifest_any_byte() -> None:
    """The message says that a comment alone makes a saved plan stale."""
    message = stale_message(manifest_digest="sha256:beef")

    assert "any edit, a comment or a blank line included, makes a saved plan stale" in message


def test_stale_inventory_serial_moved() -> None:
    """A moved serial warns that the plan may already have been applied."""
    inventory = replace(current_world()["inventory"], serial=43)
    message = stale_message(inventory=inventory)
    assert "serial 42 -> 43" in message
    assert "may already have been applied" in message


def test_stale_inventory_replaced() -> None:
    """A different lineage reports that the inventory was replaced."""
    inventory = replace(current_world()["inventory"], lineage="other")
    assert "the inventory was replaced" in stale_message(inventory=inventory)


def test_stale_empty_inventory_filled() -> None:
    """A plan made against an empty inventory is stale once it contains accounts."""
    document = make_document()
    document["inventory"] = {"lineage": "L", "serial": 0, "empty": True}
    entry = InventoryEntry("a", "g", "google", "a@example.com", "nylas/a")
    world = {**current_world(), "inventory": Inventory("L", 1, {"a": entry})}
    with pytest.raises(StalePlanError, match="made against an empty inventory"):
        check_plan_is_current(document, **world)


def test_unwritten_inventory_is_current() -> None:
    """Two reads of an unwritten state match although each has its own lineage."""
    document = make_document()
    document["inventory"] = {"lineage": "read-at-plan", "serial": 0, "empty": True}
    world = {**current_world(), "inventory": Inventory("read-at-apply", 0)}
    check_plan_is_current(document, **world)


@pytest.mark.parametrize(
    ("serial", "entries"),
    [(1, {}), (1, {"a": InventoryEntry("a", "g", "google", "a@example.com", "nylas/a")})],
    ids=["written-empty", "written-with-entries"],
)
def test_stale_unwritten_inventory_written(serial: int, entries: dict[str, Any]) -> None:
    """A plan made against an unwritten state is stale once any write happened."""
    document = make_document()
    document["inventory"] = {"lineage": "read-at-plan", "serial": 0, "empty": True}
    world = {**current_world(), "inventory": Inventory("written", serial, entries)}
    with pytest.raises(StalePlanError) as caught:
        check_plan_is_current(document, **world)
    message = str(caught.value)
    assert "made against an empty inventory" in message
    assert f"now at serial {serial}" in message


def test_stale_vault_version_moved() -> None:
    """A changed Vault version names the account and both versions."""
    world = current_world()
    secrets = dict(world["secrets"])
    secrets["rotated"] = SecretVersion("nylas/rotated", SecretState.PRESENT, 5)
    message = stale_message(secrets=secrets)
    assert "'nylas/rotated' of account 'rotated' moved from version 4 to 5" in message


def test_stale_grant_changed() -> None:
    """A grant whose status and updated_at moved is named with both differences."""
    grants = [
        replace(g, status=GrantStatus.INVALID, updated_at=1) if g.id == "g-steady" else g
        for g in current_world()["grants"]
    ]
    message = stale_message(grants=grants)
    assert "grant g-steady of account 'steady' changed: status valid -> invalid" in message
    assert "updated_at 1764000000 -> 1" in message


def test_stale_grant_gone() -> None:
    """A grant that disappeared is named."""
    grants = [g for g in current_world()["grants"] if g.id != "g-steady"]
    assert "grant g-steady of account 'steady' no longer exists" in stale_message(grants=grants)


def test_stale_grant_appeared() -> None:
    """A grant created for an account that had none is named."""
    grants = [
        *current_world()["grants"],
        Grant("g-new", "microsoft", "CONNECT-NEW@example.com", GrantStatus.VALID),
    ]
    assert "a grant appeared for account 'connect-new': g-new" in stale_message(grants=grants)


def test_removed_entry_ignores_grant_for_its_email() -> None:
    """An entry gone from the manifest is matched by grant id only, so its planned forget
    stays current while another grant has its email, as at planning time."""
    case: dict[str, Any] = {
        "manifest": {"accounts": [{"name": "alice"}]},
        "inventory": {
            "entries": [{"name": "alice", "grant_id": "g-a"}, {"name": "dee", "grant_id": "g-dee"}]
        },
        "grants": [
            {"id": "g-a", "email": "alice@example.com"},
            {"id": "g09", "email": "Dee@example.com"},
        ],
    }
    plan = plan_case(case)
    assert [(c.account, c.action) for c in plan.changes if c.action is Action.FORGET] == [
        ("dee", Action.FORGET)
    ]
    document = plan_to_document(
        plan,
        plan_id="p",
        created_at="2026-01-02T03:04:05Z",
        tool_version="0.1.0",
        manifest_path="grants.yaml",
    )
    manifest = build_manifest(case)

    check_plan_is_current(
        document,
        manifest_digest=manifest.digest,
        inventory=build_inventory(case),
        secrets=build_secrets(case, manifest),
        grants=[
            Grant("g-a", "google", "alice@example.com", GrantStatus.VALID),
            Grant("g09", "google", "Dee@example.com", GrantStatus.VALID),
        ],
        manifest_accounts={"alice"},
    )


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_plan_current_against_own_inputs(path: Path) -> None:
    """Every planner case's plan is current in the world it was made from."""
    case = load_case(path)
    manifest = build_manifest(case)
    document = plan_to_document(
        plan_case(case),
        plan_id="p",
        created_at="2026-01-02T03:04:05Z",
        tool_version="0.1.0",
        manifest_path="grants.yaml",
    )

    check_plan_is_current(
        document,
        manifest_digest=manifest.digest,
        inventory=build_inventory(case),
        secrets=build_secrets(case, manifest),
        grants=[build_grant(item) for item in case.get("grants", [])],
        manifest_accounts={account.name for account in manifest.accounts},
    )


def test_stale_lists_every_difference() -> None:
    """Several moves are all listed, not just the first."""
    inventory = replace(current_world()["inventory"], serial=50)
    message = stale_message(manifest_digest="sha256:beef", inventory=inventory)
    assert "2 things changed" in message, message
    assert "re-run" not in message
    assert "grantctl plan" in message


def test_invalid_plan_counts_one_problem(tmp_path: Path) -> None:
    document = make_document()
    del document["summary"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(ReconcilerError) as caught:
        read_plan_file(path)

    assert "is not a valid grantctl plan (1 problem):" in caught.value.message


def test_schema_enums_match_model() -> None:
    """The plan schema lists exactly the model's actions, reasons and error codes."""
    definitions = json.loads(
        (Path(__file__).parents[1] / "reconciler" / "schemas" / "plan.schema.json").read_text()
    )["$defs"]
    change = definitions["change"]["properties"]
    assert set(change["action"]["enum"]) == {action.value for action in Action}
    assert set(change["reason"]["enum"]) == {reason.value for reason in Reason}
    codes = definitions["error"]["properties"]["code"]["enum"]
    assert set(codes) == {code.value for code in ErrorCode}
