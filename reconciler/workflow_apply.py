"""Apply under the state lock: from a manifest (plan, confirm, apply) or from a saved plan.

SIGINT and SIGTERM during an apply set the executor's stop event: changes in flight finish
and are recorded in the inventory, the rest are reported as not attempted, the lock is
released, and the run ends with `InterruptedRunError`. A second signal stops at once.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import ConfigError, InterruptedRunError, ReconcilerError
from reconciler.executor import ApplyOptions, apply_plan
from reconciler.model import ApplyResult, ChangeResult, Inventory, Manifest, Plan
from reconciler.planfile import changes_and_errors, document_to_plan, read_plan_file
from reconciler.planfile_check import check_plan_is_current, check_plan_matches
from reconciler.signals import stop_on_signals
from reconciler.workflow import gather_inputs, options_to_flags, plan_from_inputs
from reconciler.workflow_clients import Clients, load_checked_manifest, open_clients
from reconciler.workflow_settings import PlanFlags, RunSettings

# The start of a JSON object with a first key, which a YAML manifest never has in practice.
_JSON_OBJECT_START = re.compile(r'\A\s*\{\s*"')

logger = logging.getLogger("reconciler.workflow")


class ApplyUI(Protocol):
    """The display and confirmation steps of an apply, implemented by the CLI."""

    def show_plan(self, plan: Plan) -> None:
        """Show the plan about to be applied."""

    def confirm(self, plan: Plan) -> None:
        """Return when the plan is approved; raise `ApprovalError` otherwise."""

    def start(self, total: int) -> None:
        """Announce that `total` changes are about to run."""

    def finished(self, result: ChangeResult) -> None:
        """Report one finished change."""

    def record(self, event: dict[str, Any]) -> None:
        """Record one executor event (a JSON-ready dict without secrets)."""

    def show_result(self, result: ApplyResult) -> None:
        """Show the result of the whole apply."""


def is_plan_file(path: str) -> bool:
    """Return True when `path` is a saved plan, not a YAML manifest.

    A JSON object is a plan. So is a file that fails to parse as JSON but looks like one
    (a `.json` name, or a `{"` start), so that a truncated plan is reported as a damaged plan
    file instead of as a manifest with a YAML syntax error.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return False
    try:
        document = json.loads(text)
    except ValueError:
        return path.endswith(".json") or _JSON_OBJECT_START.match(text) is not None
    return isinstance(document, dict)


def apply_manifest(manifest_path: str, settings: RunSettings, ui: ApplyUI) -> ApplyResult | None:
    """Plan `manifest_path`, show the plan, ask for approval and apply it, under the lock.

    Returns None when the plan has no changes.
    """
    manifest = load_checked_manifest(manifest_path)
    with (
        open_clients(manifest, settings.vault, settings.client) as clients,
        clients.state.lock("apply", timeout_s=settings.lock_timeout_s),
    ):
        inputs = gather_inputs(manifest, clients.state, clients.grants_api, clients.secret_store)
        plan = plan_from_inputs(manifest, inputs, settings.plan)
        ui.show_plan(plan)
        _require_applyable(plan)
        if not plan.has_changes:
            return None
        ui.confirm(plan)
        return _execute(plan, manifest, clients, inputs.inventory, ui)


def apply_saved_plan(
    plan_path: str, settings: RunSettings, ui: ApplyUI, *, manifest_path: str | None = None
) -> ApplyResult | None:
    """Apply exactly the plan saved in `plan_path`, after checking it is still current.

    A saved plan was reviewed when it was made, so no confirmation is asked, as with
    `terraform apply PLANFILE`. Raises `StalePlanError` when the world moved since.
    """
    if settings.plan != PlanFlags():
        manifest_argument = shlex.quote(manifest_path) if manifest_path else "MANIFEST"
        raise ConfigError(
            "plan flags such as --target, --replace or --allow-deletes cannot be used with a "
            "plan file",
            hint=(
                f"pass them to `grantctl plan {manifest_argument} --out {shlex.quote(plan_path)}` "
                "instead, then apply that file"
            ),
        )
    document = read_plan_file(plan_path)
    manifest = load_checked_manifest(manifest_path or document["manifest"]["path"])
    with (
        open_clients(manifest, settings.vault, settings.client) as clients,
        clients.state.lock("apply", timeout_s=settings.lock_timeout_s),
    ):
        inputs = gather_inputs(manifest, clients.state, clients.grants_api, clients.secret_store)
        check_plan_is_current(
            document,
            manifest_digest=manifest.digest,
            inventory=inputs.inventory,
            secrets=inputs.secrets,
            grants=inputs.grants,
            manifest_accounts={account.name for account in manifest.accounts},
            manifest_path=manifest.path,
            plan_path=plan_path,
        )
        # Anyone can compute the checksum again, so it does not show that the file is the one
        # reviewed. The saved changes must be those planned now, with the plan's own flags.
        fresh = plan_from_inputs(manifest, inputs, options_to_flags(document.get("options")))
        check_plan_matches(
            document,
            json.loads(json.dumps(changes_and_errors(fresh))),
            manifest_path=manifest.path,
            plan_path=plan_path,
        )
        plan = document_to_plan(document)
        ui.show_plan(plan)
        _require_applyable(plan)
        if not plan.has_changes:
            return None
        return _execute(plan, manifest, clients, inputs.inventory, ui)


def _require_applyable(plan: Plan) -> None:
    if not plan.applyable:
        count = len(plan.errors)
        raise ReconcilerError(
            f"the plan has {count} error{'s' if count != 1 else ''} and cannot be applied",
            hint="fix the errors listed with the plan, then run apply again",
        )


def _execute(
    plan: Plan, manifest: Manifest, clients: Clients, inventory: Inventory, ui: ApplyUI
) -> ApplyResult:
    stop = threading.Event()
    options = ApplyOptions(
        parallelism=clients.parallelism, stop=stop, on_result=ui.finished, on_event=ui.record
    )
    ui.start(sum(1 for change in plan.changes if change.will_change))
    with stop_on_signals(stop, logger=logger, finishing="the changes in flight"):
        result = apply_plan(
            plan,
            manifest,
            clients.grants_api,
            clients.secret_store,
            clients.state,
            options,
            inventory=inventory,
        )
    ui.show_result(result)
    if result.interrupted:
        raise InterruptedRunError(
            "apply was interrupted: changes in flight finished and were recorded, the rest "
            "were not attempted",
            hint=(
                f"run `grantctl plan {shlex.quote(manifest.path)}` to see what remains, then "
                "apply again"
            ),
        )
    return result
