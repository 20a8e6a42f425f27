"""The saved plan: a versioned JSON document (`schemas/plan.schema.json`) written by
`grantctl plan --out` and read back by `grantctl apply PLAN`.

It sits between the planner and the executor. The document contains the changes and everything
apply needs to detect that the world moved (see `check_plan_is_current`), a `checksum` over
the rest of the document so that edits are detected, and never a secret value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.grammar import plural
from reconciler.model import (
    Action,
    Change,
    ErrorCode,
    Grant,
    GrantStatus,
    Observation,
    Plan,
    PlanError,
    Reason,
)
from reconciler.planfile_check import check_plan_is_current

__all__ = [
    "FORMAT_VERSION",
    "PlanFileError",
    "changes_and_errors",
    "check_plan_is_current",
    "document_checksum",
    "document_to_plan",
    "plan_to_document",
    "read_plan_file",
    "validate_plan_document",
    "write_plan_file",
]

FORMAT_VERSION = 1
_RERUN = "run `grantctl plan MANIFEST --out PLAN` again and apply the new file"


class PlanFileError(ReconcilerError):
    """A plan file that cannot be read: unreadable, not JSON, invalid, edited or too new."""


def plan_to_document(
    plan: Plan,
    *,
    plan_id: str,
    created_at: str,
    tool_version: str,
    manifest_path: str,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Serialize `plan` as a saved-plan document, checksum included.

    `options` are the plan flags it was made with (see `plan.schema.json`). Apply plans
    again with them and compares the changes.
    """
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "plan_id": plan_id,
        "tool_version": tool_version,
        "created_at": created_at,
        "manifest": {"path": manifest_path, "digest": plan.manifest_digest},
        "inventory": {
            "lineage": _recorded_lineage(plan),
            "serial": plan.inventory_serial,
            "empty": plan.inventory_empty,
        },
        "applyable": plan.applyable,
        "errored": not plan.applyable,
        "partial": plan.partial,
        "warnings": list(plan.warnings),
        "observations": [_observation_to_dict(item) for item in plan.observations],
        "changes": [_change_to_dict(change) for change in plan.changes],
        "errors": [_error_to_dict(error) for error in plan.errors],
        "unmanaged": [_grant_to_dict(grant) for grant in plan.unmanaged],
        "summary": summarize(plan),
    }
    if options is not None:
        document["options"] = dict(options)
    document["checksum"] = document_checksum(document)
    return document


def changes_and_errors(plan: Plan) -> dict[str, Any]:
    """Return the changes and errors of `plan` as a saved-plan document records them."""
    return {
        "changes": [_change_to_dict(change) for change in plan.changes],
        "errors": [_error_to_dict(error) for error in plan.errors],
    }


def summarize(plan: Plan) -> dict[str, int]:
    """Return the number of changes per action, and of errors and unmanaged grants."""
    summary = {action.value: plan.count(action) for action in Action}
    summary["errors"] = len(plan.errors)
    summary["unmanaged"] = len(plan.unmanaged)
    return summary


def _recorded_lineage(plan: Plan) -> str:
    # An unwritten state has no lineage yet: backends make up a new one on every read, so
    # recording it would make two plans of the same world differ. The staleness check
    # compares unwritten states by serial and emptiness only.
    if plan.inventory_serial == 0 and plan.inventory_empty:
        return ""
    return plan.inventory_lineage


def document_checksum(document: Mapping[str, Any]) -> str:
    """Return `sha256:<hex>` over the canonical JSON of every field but `checksum`."""
    rest = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def attribute_diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Return the top-level attributes that differ between `before` and `after`, sorted."""
    # A missing side counts as every attribute null: DeepDiff would otherwise report the
    # whole mapping as one replaced value instead of attribute by attribute.
    keys = set(before or {}) | set(after or {})
    old = {key: (before or {}).get(key) for key in keys}
    new = {key: (after or {}).get(key) for key in keys}
    changed = [key for key in keys if _differs(old[key], new[key])]
    return [
        {"path": key, "before": old.get(key), "after": new.get(key)}
        for key in sorted(str(key) for key in changed)
    ]


def _differs(old: Any, new: Any) -> bool:
    """Return whether DeepDiff with `ignore_order=True` reports a difference between values.

    Attribute values are almost always None, a string, a number, a boolean or a list of
    strings, which are compared here directly. DeepDiff, at about 1 ms per call, decides
    every other case: it made rendering a 10,000-account plan take over ten seconds.
    """
    if old is None or new is None:
        return old is not new
    if type(old) is type(new) and isinstance(old, (str, int, bool)):
        return bool(old != new)
    if (
        isinstance(old, (list, tuple))
        and isinstance(new, (list, tuple))
        and all(isinstance(item, str) for item in (*old, *new))
    ):
        # Order and repetition do not count, as in DeepDiff's `ignore_order=True`.
        return set(old) != set(new)
    # Imported here because the other cases are rare and the import takes about 0.07 s.
    from deepdiff import DeepDiff  # noqa: PLC0415  # deferred, see above

    return bool(DeepDiff(old, new, ignore_order=True))


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if attributes is None:
        return None
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in attributes.items()
    }


def _change_to_dict(change: Change) -> dict[str, Any]:
    before, after = _plain(change.before), _plain(change.after)
    return {
        "account": change.account,
        "action": change.action.value,
        "reason": change.reason.value,
        "message": change.message,
        "provider": change.provider,
        "email": change.email,
        "grant_id": change.grant_id,
        "vault_path": change.vault_path,
        "vault_version": change.vault_version,
        "before": before,
        "after": after,
        "diff": attribute_diff(before, after),
    }


def _error_to_dict(error: PlanError) -> dict[str, Any]:
    return {
        "code": error.code.value,
        "account": error.account,
        "message": error.message,
        "next_step": error.next_step,
    }


def _grant_to_dict(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "provider": grant.provider,
        "email": grant.email,
        "status": grant.status.value,
        "scopes": list(grant.scopes),
        "created_at": grant.created_at,
        "updated_at": grant.updated_at,
        "credential_id": grant.credential_id,
    }


def _observation_to_dict(item: Observation) -> dict[str, Any]:
    return {
        "account": item.account,
        "provider": item.provider,
        "email": item.email,
        "vault_path": item.vault_path,
        "vault_version": item.vault_version,
        "grant_id": item.grant_id,
        "grant_status": item.grant_status,
        "grant_updated_at": item.grant_updated_at,
    }


def document_to_plan(document: Mapping[str, Any]) -> Plan:
    """Rebuild the `Plan` a document was made from, after validating it."""
    validate_plan_document(document)
    return Plan(
        changes=tuple(_change_from_dict(item) for item in document["changes"]),
        errors=tuple(
            PlanError(ErrorCode(e["code"]), e["account"], e["message"], e["next_step"])
            for e in document["errors"]
        ),
        warnings=tuple(document["warnings"]),
        unmanaged=tuple(_grant_from_dict(item) for item in document["unmanaged"]),
        observations=tuple(Observation(**item) for item in document["observations"]),
        manifest_digest=document["manifest"]["digest"],
        inventory_lineage=document["inventory"]["lineage"],
        inventory_serial=document["inventory"]["serial"],
        inventory_empty=document["inventory"]["empty"],
        partial=document["partial"],
    )


def _change_from_dict(item: Mapping[str, Any]) -> Change:
    fields = {key: value for key, value in item.items() if key != "diff"}
    fields["action"] = Action(item["action"])
    fields["reason"] = Reason(item["reason"])
    fields["before"] = _unplain(item["before"])
    fields["after"] = _unplain(item["after"])
    return Change(**fields)


def _unplain(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Undo `_plain`: the planner keeps scopes as tuples."""
    if attributes is None:
        return None
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in attributes.items()
    }


def _grant_from_dict(item: Mapping[str, Any]) -> Grant:
    return Grant(
        id=item["id"],
        provider=item["provider"],
        email=item["email"],
        status=GrantStatus(item["status"]),
        scopes=tuple(item["scopes"]),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        credential_id=item.get("credential_id"),
    )


@cache
def _validator() -> Any:
    # Imported here so that commands which never read a saved plan skip its import cost.
    import jsonschema  # type: ignore[import-untyped]  # noqa: PLC0415  # deferred, no stubs

    text = resources.files("reconciler").joinpath("schemas/plan.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def validate_plan_document(document: object, *, source: str = "plan") -> None:
    """Raise `PlanFileError` unless `document` is a plan this version can apply unchanged.

    Checks, in order: the format version (a newer one is rejected before the schema, which
    would only report "not 1"), every schema error, and the checksum.
    """
    if not isinstance(document, dict):
        raise PlanFileError(
            f"{source} is not a JSON object, so it is not a grantctl plan.", hint=_RERUN
        )
    version = document.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise PlanFileError(
            f"{source} has format_version {version}, written by grantctl "
            f"{document.get('tool_version', 'unknown')}; this grantctl reads only version "
            f"{FORMAT_VERSION}.",
            hint="apply it with the grantctl version that made it, or make a new plan",
        )
    problems = sorted(_validator().iter_errors(document), key=lambda error: list(error.path))
    if problems:
        lines = [
            f"  {'/'.join(map(str, error.path)) or '(top)'}: {error.message}" for error in problems
        ]
        raise PlanFileError(
            f"{source} is not a valid grantctl plan ({plural(len(problems), 'problem')}):\n"
            + "\n".join(lines),
            hint=_RERUN,
        )
    if document["checksum"] != document_checksum(document):
        raise PlanFileError(
            f"{source} was modified after it was written: its checksum does not match its content.",
            hint=_RERUN,
        )


def write_plan_file(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """Write `document` to `path` atomically: a temporary file, fsync, then rename."""
    target = Path(path)
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as error:
        raise _unwritable(target, error) from error
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        if isinstance(error, OSError):
            raise _unwritable(target, error) from error
        raise


def _unwritable(target: Path, error: OSError) -> PlanFileError:
    return PlanFileError(
        f"cannot write plan file {str(target)!r}: {error.strerror or error}",
        hint="pass --out a file path in an existing directory that this user may write",
    )


def read_plan_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a saved plan; raise `PlanFileError` for any unusable file."""
    source = f"plan file {os.fspath(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanFileError(f"cannot read {source}: {error}", hint=_RERUN) from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanFileError(
            f"{source} is not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}); it may be truncated or damaged.",
            hint=_RERUN,
        ) from error
    validate_plan_document(document, source=source)
    return dict(document)
