"""The orchestration layer: gather the planner's inputs, plan, audit, and run applies.

The command line calls these functions; they know nothing of click. They open the clients
(`reconciler.workflow_clients`), read the inventory, every grant and the Vault metadata
concurrently, call the pure planner, and hand the plan to the executor under the state lock
(`reconciler.workflow_apply`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from reconciler import __version__
from reconciler.audit import AuditReport, make_audit
from reconciler.gc_pause import collector_paused
from reconciler.model import Grant, Inventory, Manifest, Plan, SecretVersion
from reconciler.planfile import document_checksum, plan_to_document
from reconciler.planner import PlanOptions, make_plan
from reconciler.protocols import GrantsAPI, LockInfo, SecretStore, StateBackend
from reconciler.threads import call_in_thread, stop_running
from reconciler.workflow_clients import load_checked_manifest, open_clients, open_state
from reconciler.workflow_settings import PlanFlags, RunSettings, VaultFlags

logger = logging.getLogger("reconciler.workflow")


@dataclass(frozen=True)
class PlanInputs:
    """The planner's inputs: the inventory, every grant, and Vault metadata by account."""

    inventory: Inventory
    grants: tuple[Grant, ...]
    secrets: Mapping[str, SecretVersion]


def plan_options(flags: PlanFlags) -> PlanOptions:
    """Translate the command line's plan flags into the planner's options."""
    return PlanOptions(
        replace=frozenset(flags.replace),
        targets=flags.targets,
        excludes=flags.excludes,
        allow_deletes=flags.allow_deletes,
        retry_quarantined=flags.retry_quarantined,
    )


def gather_inputs(
    manifest: Manifest, state: StateBackend, grants_api: GrantsAPI, secret_store: SecretStore
) -> PlanInputs:
    """Read the inventory, every grant and each account's Vault metadata, concurrently.

    Metadata is read for every manifest account and for every inventory entry that the
    manifest no longer names, because the planner reports on both.
    """
    paths = {account.name: account.secret_path for account in manifest.accounts}
    unique_paths = sorted(set(paths.values()))
    inventory_future = call_in_thread(state.read, name="gather-inventory")
    grants_future = call_in_thread(grants_api.list_grants, name="gather-grants")
    metadata_future = call_in_thread(
        lambda: secret_store.read_metadata_many(unique_paths), name="gather-metadata"
    )
    try:
        inventory = inventory_future.result()
        grants = grants_future.result()
        metadata = dict(metadata_future.result())
    except BaseException:
        # Ctrl-C or a failed read: the metadata reads still queued would otherwise all run
        # before the command could exit, 10,000 of them for a large manifest.
        stop_running()
        raise

    # Inventory-only entries are known only once the inventory is read.
    extra = {
        name: entry.vault_path
        for name, entry in inventory.entries.items()
        if name not in paths and entry.vault_path
    }
    missing_paths = sorted(set(extra.values()) - set(metadata))
    if missing_paths:
        metadata.update(secret_store.read_metadata_many(missing_paths))
    paths.update(extra)

    secrets = {name: metadata[path] for name, path in paths.items() if path in metadata}
    logger.info(
        "read %d inventory entries, %d grants, %d secret metadata records",
        len(inventory.entries),
        len(grants),
        len(secrets),
    )
    return PlanInputs(inventory=inventory, grants=tuple(grants), secrets=secrets)


def plan_from_inputs(manifest: Manifest, inputs: PlanInputs, flags: PlanFlags) -> Plan:
    """Run the pure planner on gathered inputs."""
    return make_plan(manifest, inputs.inventory, inputs.secrets, inputs.grants, plan_options(flags))


def plan_document(plan: Plan, manifest_path: str, flags: PlanFlags | None = None) -> dict[str, Any]:
    """Return the saved-plan document of `plan`, stamped with the current time.

    The plan id is derived from the content, so the same inputs give the same document
    except for `created_at`, and a reviewer can tell two identical plans apart from two
    different ones by id alone. `manifest_path` is recorded as given, so `grantctl apply
    PLAN` run from the same directory finds the manifest again. `flags` are recorded, so
    that apply can plan again with them and compare. With None, no flags are recorded.
    """
    options = flags_to_options(flags) if flags is not None else None
    unstamped = plan_to_document(
        plan,
        plan_id="",
        created_at="",
        tool_version=__version__,
        manifest_path=manifest_path,
        options=options,
    )
    content_digest = document_checksum(unstamped).removeprefix("sha256:")
    return plan_to_document(
        plan,
        plan_id=str(uuid.UUID(content_digest[:32])),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__,
        manifest_path=manifest_path,
        options=options,
    )


def flags_to_options(flags: PlanFlags) -> dict[str, Any]:
    """Return the `options` record of a saved plan made with `flags`."""
    return {
        "targets": list(flags.targets),
        "excludes": list(flags.excludes),
        "replace": list(flags.replace),
        "allow_deletes": flags.allow_deletes,
        "retry_quarantined": flags.retry_quarantined,
    }


def options_to_flags(options: Mapping[str, Any] | None) -> PlanFlags:
    """Return the plan flags an `options` record names, or no flags when there is none."""
    if options is None:
        return PlanFlags()
    return PlanFlags(
        replace=tuple(options["replace"]),
        targets=tuple(options["targets"]),
        excludes=tuple(options["excludes"]),
        allow_deletes=options["allow_deletes"],
        retry_quarantined=options["retry_quarantined"],
    )


def audit_from_inputs(manifest: Manifest, inputs: PlanInputs) -> AuditReport:
    """Build the audit report: a plan with default options, read as health per account."""
    plan = make_plan(manifest, inputs.inventory, inputs.secrets, inputs.grants, PlanOptions())
    return make_audit(manifest, inputs.inventory, inputs.secrets, inputs.grants, plan)


@dataclass(frozen=True)
class PlanRun:
    """A plan and what it was made from."""

    manifest: Manifest
    inputs: PlanInputs
    plan: Plan


def run_plan(manifest_path: str, settings: RunSettings) -> PlanRun:
    """Load the manifest, gather the inputs and plan; lock-free and read-only."""
    with collector_paused():
        manifest = load_checked_manifest(manifest_path)
        with open_clients(manifest, settings.vault, settings.client) as clients:
            inputs = gather_inputs(
                manifest, clients.state, clients.grants_api, clients.secret_store
            )
        plan = plan_from_inputs(manifest, inputs, settings.plan)
    return PlanRun(manifest=manifest, inputs=inputs, plan=plan)


def run_audit(manifest_path: str, settings: RunSettings) -> AuditReport:
    """Load the manifest, gather the inputs and report each account's health; lock-free."""
    return run_audit_with_grants(manifest_path, settings)[0]


def run_audit_with_grants(
    manifest_path: str, settings: RunSettings
) -> tuple[AuditReport, tuple[Grant, ...]]:
    """Run `run_audit` and also return every grant it saw, which the metrics file counts."""
    with collector_paused():
        manifest = load_checked_manifest(manifest_path)
        with open_clients(manifest, settings.vault, settings.client) as clients:
            inputs = gather_inputs(
                manifest, clients.state, clients.grants_api, clients.secret_store
            )
        report = audit_from_inputs(manifest, inputs)
    return report, inputs.grants


def force_unlock(manifest_path: str, lock_id: str, vault_flags: VaultFlags) -> LockInfo | None:
    """Remove the state lock `lock_id` of the manifest's state backend.

    Returns the lock as it was recorded, or None when the state was not locked.
    """
    manifest = load_checked_manifest(manifest_path)
    # The backend logs the removed lock once; the command prints it on stdout.
    with open_state(manifest, vault_flags) as state:
        current = state.current_lock()
        state.force_unlock(lock_id)
    return current
