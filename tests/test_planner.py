"""Table-driven planner tests: each file in tests/planner_cases/ is one rule, as data.

A case lists the manifest accounts, `removed:` entries, policy, inventory entries, Vault
metadata, grants and plan options, then the changes and errors the plan must hold. Defaults
keep cases short: provider `google`, email `<name>@example.com`, secret path `nylas/<name>`,
and Vault metadata `present` at version 1 for every account the case does not list.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.model import (
    Account,
    Ensure,
    ErrorCode,
    Grant,
    GrantStatus,
    Inventory,
    InventoryEntry,
    Manifest,
    Plan,
    Policy,
    Provider,
    Reason,
    Region,
    RemovedAccount,
    SecretState,
    SecretVersion,
    StateSettings,
    VaultSettings,
)
from reconciler.planner import PlanOptions, make_plan

CASES_DIR = Path(__file__).parent / "planner_cases"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))


def load_case(path: Path) -> dict[str, Any]:
    """Return one case file's data."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: a case is a mapping"
    return data


def build_account(item: dict[str, Any]) -> Account:
    """Return an Account from case data, filling the defaults."""
    name = item["name"]
    return Account(
        name=name,
        email=item.get("email", f"{name}@example.com"),
        provider=Provider(item.get("provider", "google")),
        secret_path=item.get("secret", f"nylas/{name}"),
        scopes=tuple(item.get("scopes", ())),
        ensure=Ensure(item.get("ensure", "present")),
        protect=item.get("protect", False),
        credential_id=item.get("credential_id"),
    )


def build_manifest(case: dict[str, Any]) -> Manifest:
    """Return a Manifest built directly from case data, without the manifest loader."""
    manifest = case.get("manifest", {})
    return Manifest(
        path="grants.yaml",
        digest=manifest.get("digest", "sha256:case"),
        version=1,
        region=Region.US,
        vault=VaultSettings(mount="secret", path_prefix="nylas"),
        state=StateSettings(),
        policy=Policy(**manifest.get("policy", {})),
        accounts=tuple(build_account(item) for item in manifest.get("accounts", [])),
        removed=tuple(RemovedAccount(**item) for item in manifest.get("removed", [])),
    )


def build_entry(item: dict[str, Any]) -> InventoryEntry:
    """Return an InventoryEntry from case data, filling the defaults."""
    name = item["name"]
    fields = {
        "provider": "google",
        "email": f"{name}@example.com",
        "vault_path": f"nylas/{name}",
        "vault_version_sent": 1,
        **item,
    }
    fields["scopes"] = tuple(fields.get("scopes", ()))
    return InventoryEntry(**fields)


def build_inventory(case: dict[str, Any]) -> Inventory:
    """Return the case's inventory; its entries are inserted in reverse to test ordering."""
    data = case.get("inventory", {})
    entries = [build_entry(item) for item in data.get("entries", [])]
    return Inventory(
        lineage=data.get("lineage", "lineage-1"),
        serial=data.get("serial", len(entries)),
        entries={entry.name: entry for entry in reversed(entries)},
    )


def build_secrets(case: dict[str, Any], manifest: Manifest) -> dict[str, SecretVersion]:
    """Return Vault metadata per account: the case's, else `present` at version 1."""
    given = case.get("secrets", {})
    secrets: dict[str, SecretVersion] = {}
    for account in manifest.accounts:
        item = given.get(account.name, {})
        if item == "absent":
            continue
        state = SecretState(item.get("state", "present"))
        secrets[account.name] = SecretVersion(
            path=account.secret_path,
            state=state,
            version=item.get("version", 1 if state is SecretState.PRESENT else None),
        )
    return secrets


def build_grant(item: dict[str, Any]) -> Grant:
    """Return a Grant from case data; `email` defaults to the id's account name."""
    return Grant(
        id=item["id"],
        provider=item.get("provider", "google"),
        email=item["email"],
        status=GrantStatus(item.get("status", "valid")),
        scopes=tuple(item.get("scopes", ())),
        updated_at=item.get("updated_at"),
        state=item.get("state"),
    )


def build_options(case: dict[str, Any]) -> PlanOptions:
    """Return the case's plan options."""
    data = case.get("options", {})
    return PlanOptions(
        replace=frozenset(data.get("replace", ())),
        targets=tuple(data.get("targets", ())),
        excludes=tuple(data.get("excludes", ())),
        allow_deletes=data.get("allow_deletes"),
        retry_quarantined=data.get("retry_quarantined", False),
    )


def plan_case(case: dict[str, Any]) -> Plan:
    """Run the planner on a case's inputs."""
    manifest = build_manifest(case)
    grants = [build_grant(item) for item in case.get("grants", [])]
    return make_plan(
        manifest,
        build_inventory(case),
        build_secrets(case, manifest),
        grants,
        build_options(case),
    )


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_planner_case(path: Path) -> None:
    """The plan contains exactly the case's expected changes, errors and unmanaged grants."""
    case = load_case(path)
    expect = case["expect"]
    plan = plan_case(case)

    changes = [
        {"account": c.account, "action": c.action.value, "reason": c.reason.value}
        for c in plan.changes
    ]
    assert changes == expect.get("changes", []), "changes differ"
    errors = [{"code": e.code.value, "account": e.account} for e in plan.errors]
    assert errors == expect.get("errors", []), "errors differ"
    assert plan.applyable is (not expect.get("errors")), "applyable must follow the errors"
    unmanaged = [grant.id for grant in plan.unmanaged]
    assert unmanaged == expect.get("unmanaged", []), "unmanaged grants differ"
    observed = [item.account for item in plan.observations]
    assert observed == sorted(observed), "observations are not in account name order"
    assert plan.partial is expect.get("partial", False), "partial flag differs"
    for text in expect.get("warnings_contain", []):
        assert any(text in warning for warning in plan.warnings), f"no warning with {text!r}"
    for account, text in expect.get("messages_contain", {}).items():
        message = next(c.message for c in plan.changes if c.account == account)
        assert text in message, f"{account}: {text!r} not in {message!r}"
    for account, text in expect.get("errors_contain", {}).items():
        message = next(f"{e.message} {e.next_step}" for e in plan.errors if e.account == account)
        assert text in message, f"{account}: {text!r} not in error {message!r}"
    for account, attributes in expect.get("after", {}).items():
        after = next(c.after for c in plan.changes if c.account == account)
        assert after is not None, f"{account}: no after"
        for key, value in attributes.items():
            assert after[key] == value, f"{account}: after[{key!r}] is {after[key]!r}"


def all_cases() -> list[dict[str, Any]]:
    """Return every case's data."""
    return [load_case(path) for path in CASE_FILES]


def test_cases_cover_every_reason() -> None:
    """Some case expects each Reason."""
    seen = {c["reason"] for case in all_cases() for c in case["expect"].get("changes", [])}
    missing = {reason.value for reason in Reason} - seen
    assert not missing, f"no case for reasons {sorted(missing)}"


def test_cases_cover_every_error() -> None:
    """Some case expects each ErrorCode."""
    seen = {e["code"] for case in all_cases() for e in case["expect"].get("errors", [])}
    missing = {code.value for code in ErrorCode} - seen
    assert not missing, f"no case for error codes {sorted(missing)}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_planner_deterministic(path: Path) -> None:
    """Shuffling the order of grants, accounts and inventory entries gives the same plan."""
    case = load_case(path)
    expected = plan_case(case)
    shuffler = random.Random(path.stem)  # noqa: S311 - a seeded shuffle for tests, not a secret
    for _ in range(5):
        shuffled = dict(case)
        shuffled["grants"] = shuffler.sample(case.get("grants", []), len(case.get("grants", [])))
        manifest = dict(case.get("manifest", {}))
        accounts = manifest.get("accounts", [])
        manifest["accounts"] = shuffler.sample(accounts, len(accounts))
        shuffled["manifest"] = manifest
        inventory = dict(case.get("inventory", {}))
        entries = inventory.get("entries", [])
        inventory["entries"] = shuffler.sample(entries, len(entries))
        shuffled["inventory"] = inventory
        assert plan_case(shuffled) == expected, "plan depends on input order"


@pytest.mark.parametrize(
    "accounts",
    [
        [{"name": "ann"}, {"name": "ann", "email": "other@example.com"}],
        [{"name": "ann", "email": "x@example.com"}, {"name": "bob", "email": "X@Example.com"}],
    ],
    ids=["names", "emails"],
)
def test_manifest_rejects_duplicates(accounts: list[dict[str, Any]]) -> None:
    """The planner relies on unique names and emails, so a Manifest cannot contain duplicates."""
    with pytest.raises(ValueError, match="unique names and unique emails"):
        build_manifest({"manifest": {"accounts": accounts}})
