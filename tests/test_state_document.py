"""The state document's fast checks never accept what its JSON Schema rejects."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from reconciler.errors import StateError
from reconciler.state.document import document_to_inventory

SCHEMA = json.loads(resources.files("reconciler").joinpath("schemas/state.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

ENTRY = {
    "grant_id": "g-1",
    "provider": "microsoft",
    "email": "leyah@example.com",
    "vault_path": "nylas/leyah",
    "vault_version_sent": 2,
    "scopes": ["Mail.Read"],
}


def document(**changes: Any) -> dict[str, Any]:
    """Return a valid document with one entry, with top-level keys changed or removed."""
    base: dict[str, Any] = {
        "format_version": 1,
        "lineage": "lineage-1",
        "serial": 3,
        "tool_version": "0.1.0",
        "written_at": "2026-12-04T00:00:00Z",
        "entries": {"leyah": dict(ENTRY)},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return base


def with_entry(**changes: Any) -> dict[str, Any]:
    """Return a valid document whose one entry has keys changed or removed."""
    entry = dict(ENTRY)
    for key, value in changes.items():
        if value is None:
            entry.pop(key)
        else:
            entry[key] = value
    return document(entries={"leyah": entry})


DOCUMENTS = {
    "valid": document(),
    "format version true": document(format_version=True),
    "format version 1.0": document(format_version=1.0),
    "serial true": document(serial=True),
    "serial 3.0": document(serial=3.0),
    "negative serial": document(serial=-1),
    "empty lineage": document(lineage=""),
    "missing lineage": document(lineage=None),
    "unknown top-level key": document(extra="x"),
    "entries a list": document(entries=[]),
    "entry version true": with_entry(vault_version_sent=True),
    "entry version 2.0": with_entry(vault_version_sent=2.0),
    "entry version negative": with_entry(vault_version_sent=-2),
    "entry version null": with_entry(vault_version_sent=[]),
    "entry protect 1": with_entry(protect=1),
    "entry scope number": with_entry(scopes=["Mail.Read", 7]),
    "entry empty provider": with_entry(provider=""),
    "entry unknown key": with_entry(colour="blue"),
    "entry without grant id": with_entry(grant_id=None),
    "entry failures": with_entry(failures=2, quarantined=True, last_error="x"),
}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_read_agrees_with_schema(name: str) -> None:
    candidate = DOCUMENTS[name]
    schema_valid = VALIDATOR.is_valid(candidate)
    try:
        document_to_inventory(candidate, source="state.json")
    except StateError:
        read_ok = False
    else:
        read_ok = True
    assert read_ok == schema_valid, f"read accepted: {read_ok}, schema accepts: {schema_valid}"


def test_integral_floats_read_as_integers() -> None:
    candidate = document(serial=3.0)
    candidate["entries"]["leyah"]["failures"] = 2.0
    inventory = document_to_inventory(candidate, source="state.json")
    assert type(inventory.serial) is int
    assert inventory.serial == 3
    assert type(inventory.entries["leyah"].failures) is int
