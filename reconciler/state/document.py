"""The state document: how an `Inventory` is stored, by every backend, as JSON.

The document is `{format_version, lineage, serial, tool_version, written_at, entries}` with
`entries` keyed by account name (`schemas/state.schema.json`). Entry fields equal to their
default are left out, which keeps a 10,000-account inventory small enough for one Vault entry.
"""

from __future__ import annotations

import base64
import functools
import json
import lzma
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from reconciler import __version__
from reconciler.errors import StateError
from reconciler.model import Inventory, InventoryEntry

FORMAT_VERSION = 1
COMPRESSED_ENCODING = "xz+base64+columns"

_ENTRY_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in fields(InventoryEntry) if field.name != "name"
}


def utc_now_iso() -> str:
    """Return the current UTC time as ISO 8601 with a `Z` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def inventory_to_document(inventory: Inventory) -> dict[str, Any]:
    """Build the state document of `inventory`."""
    entries = {name: _entry_to_document(entry) for name, entry in sorted(inventory.entries.items())}
    return {
        "format_version": FORMAT_VERSION,
        "lineage": inventory.lineage,
        "serial": inventory.serial,
        "tool_version": __version__,
        "written_at": utc_now_iso(),
        "entries": entries,
    }


def _entry_to_document(entry: InventoryEntry) -> dict[str, Any]:
    # The name is the key of the entries object, so it is not repeated inside.
    document: dict[str, Any] = {}
    for key in _ENTRY_TYPES:
        value = getattr(entry, key)
        if key == "scopes":
            value = list(value)
        if key in _REQUIRED_ENTRY_FIELDS or value != _default_of(key):
            document[key] = value
    return document


def _default_of(key: str) -> Any:
    default = _ENTRY_DEFAULTS[key]
    return [] if key == "scopes" else default


def document_to_inventory(document: Any, *, source: str) -> Inventory:
    """Validate a state document and build its `Inventory`; `source` names it in errors.

    Raises `StateError` for anything that is not a valid version-1 document.
    """
    _check_format_version(document, source=source)
    # The schema validates the envelope; entries are checked by `_entry_from_document`,
    # because jsonschema needs seconds for 10,000 entries and an apply re-reads often.
    if not _envelope_is_valid(document):
        envelope = document
        if isinstance(document, dict) and isinstance(document.get("entries"), dict):
            envelope = {**document, "entries": {}}
        _raise_first_error(_validator().iter_errors(envelope), source=source)
    entries = {
        name: _entry_from_document(name, values, source=source)
        for name, values in document["entries"].items()
    }
    # JSON Schema counts 2.0 as an integer; keep it as one, so it is written back as 2.
    serial = int(document["serial"])
    return Inventory(lineage=document["lineage"], serial=serial, entries=entries)


def _entry_from_document(name: str, values: Any, *, source: str) -> InventoryEntry:
    if not _entry_is_valid(values):
        entry_schema = _validator().schema["$defs"]["entry"]
        errors = _validator().evolve(schema=entry_schema).iter_errors(values)
        _raise_first_error(errors, source=source, prefix=f"entries/{name}")
    arguments = dict(values)
    arguments["scopes"] = tuple(values.get("scopes", ()))
    for key in ("vault_version_sent", "failures", "vault_version_failed"):
        if isinstance(arguments.get(key), float):
            arguments[key] = int(arguments[key])
    return InventoryEntry(name=name, **arguments)


# The fast checks below accept a subset of what the schema accepts: exact JSON types only, as
# `json.loads` returns them. Anything else goes to jsonschema, which decides and words errors.
# Allowed types of each entry field, mirroring `$defs/entry` in schemas/state.schema.json.
_ENTRY_TYPES: dict[str, frozenset[type]] = {
    "grant_id": frozenset({str}),
    "provider": frozenset({str}),
    "email": frozenset({str}),
    "vault_path": frozenset({str}),
    "vault_version_sent": frozenset({int, type(None)}),
    "protect": frozenset({bool}),
    "credential_id": frozenset({str, type(None)}),
    "scopes": frozenset({list}),
    "updated_at": frozenset({str}),
    "failures": frozenset({int}),
    "quarantined": frozenset({bool}),
    "last_error": frozenset({str}),
    "vault_version_failed": frozenset({int, type(None)}),
}
_REQUIRED_ENTRY_FIELDS = ("grant_id", "provider", "email", "vault_path")
_ENVELOPE_TYPES: dict[str, type] = {
    "format_version": int,
    "lineage": str,
    "serial": int,
    "tool_version": str,
    "written_at": str,
    "entries": dict,
}


def _envelope_is_valid(document: Any) -> bool:
    """Return True only if the document's top level is valid, apart from its entries."""
    if type(document) is not dict or any(
        _ENVELOPE_TYPES.get(key) is not type(value) for key, value in document.items()
    ):
        return False
    required = ("format_version", "lineage", "serial", "entries")
    return (
        all(key in document for key in required)
        and document["format_version"] == FORMAT_VERSION
        and bool(document["lineage"])
        and document["serial"] >= 0
    )


def _entry_is_valid(values: Any) -> bool:
    """Return True only if `values` is a valid entry; it runs once per entry on every read."""
    if type(values) is not dict or not all(key in values for key in _REQUIRED_ENTRY_FIELDS):
        return False
    for key, value in values.items():
        allowed = _ENTRY_TYPES.get(key)
        if allowed is None or type(value) not in allowed:
            return False
        if type(value) is int and value < 0:
            return False
    scopes = values.get("scopes", ())
    return bool(values["provider"]) and all(type(scope) is str for scope in scopes)


def _check_format_version(document: Any, *, source: str) -> None:
    if isinstance(document, dict) and document.get("format_version") not in (None, FORMAT_VERSION):
        raise StateError(
            f"{source} has state format_version {document.get('format_version')!r}, "
            f"but this grantctl ({__version__}) reads only version {FORMAT_VERSION}",
            hint="upgrade grantctl to the version that wrote this state",
        )


def _raise_first_error(errors: Iterator[Any], *, source: str, prefix: str = "") -> None:
    import jsonschema  # type: ignore[import-untyped]  # noqa: PLC0415  # deferred, no stubs

    error = jsonschema.exceptions.best_match(errors)
    if error is None:
        return
    parts = [prefix] if prefix else []
    parts += [str(part) for part in error.absolute_path]
    where = "/".join(parts) or "(top level)"
    raise StateError(
        f"{source} is not a valid grantctl state document: at {where}: {error.message}",
        hint=corrupt_state_hint(source),
    )


def corrupt_state_hint(source: str) -> str:
    """Return the next step for a state document that cannot be read."""
    return (
        f"restore {source} from its backup or history; do not delete it, because an empty "
        "inventory would make grantctl adopt managed grants again and forget which ones it "
        "may delete"
    )


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    text = resources.files("reconciler").joinpath("schemas/state.schema.json").read_text()
    schema = json.loads(text)
    # Imported here so that a plan on an empty estate, which reads no state, skips the cost.
    import jsonschema  # noqa: PLC0415  # deferred, see above

    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema)


def dump_document(document: dict[str, Any], *, pretty: bool) -> bytes:
    """Serialize a document to UTF-8 JSON, indented for files people read."""
    if pretty:
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def compress_document(document: dict[str, Any]) -> str:
    """Return `document` in the compact form that `COMPRESSED_ENCODING` names.

    Entries are stored column by column (every grant id together, every email together)
    and the JSON is xz-compressed: grouping similar values lets the compressor find them, so
    10,000 entries take about 400 KB of base64 instead of 600 KB with row-wise zlib.
    """
    columnar = {key: value for key, value in document.items() if key != "entries"}
    columnar["entry_columns"] = _entries_to_columns(document["entries"])
    compressed = lzma.compress(dump_document(columnar, pretty=False), preset=6)
    return base64.b64encode(compressed).decode()


def _entries_to_columns(entries: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    names = sorted(entries)
    columns: dict[str, list[Any]] = {"name": names}
    for key in _ENTRY_TYPES:
        columns[key] = [entries[name].get(key, _default_of(key)) for name in names]
    return columns


def decompress_document(text: str, *, source: str) -> Any:
    """Reverse `compress_document`; raises `StateError` naming `source` on bad input."""
    try:
        columnar = json.loads(lzma.decompress(base64.b64decode(text, validate=True)))
        columns = columnar.pop("entry_columns")
        names = columns.pop("name")
        entries = {
            name: {key: values[index] for key, values in columns.items()}
            for index, name in enumerate(names)
        }
    except (ValueError, lzma.LZMAError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise StateError(
            f"{source} holds a compressed state that cannot be decoded: {error}",
            hint=corrupt_state_hint(source),
        ) from error
    return {**columnar, "entries": entries}
