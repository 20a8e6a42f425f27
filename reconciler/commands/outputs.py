"""Check every output path a command writes (--out, --events, --json-out, --metrics-file).

A typo such as `--out grants.yaml` or `--out .grantctl/state.json` would replace the manifest
or the inventory, and a lost inventory leaves grants that no run manages any more. So an
output may not resolve (symlinks followed) to the manifest, to the plan file being applied,
to the local state file or the files beside it, or to another output of the same command.
`plan --out` also keeps any existing file that is not a grantctl plan file. Commands call
`check_output_paths` before they read or write anything else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.workflow_clients import load_checked_manifest

# Files the local state backend keeps beside its state file (see reconciler.state.local).
STATE_SIDE_FILES = (".lock.json", ".lock", ".backup")


def check_output_paths(
    outputs: Mapping[str, str | None],
    *,
    manifest_path: str | None,
    inputs: Mapping[str, str] | None = None,
    plan_out_flag: str | None = None,
) -> None:
    """Raise `ConfigError` when an output path would overwrite a file the command needs.

    `outputs` maps each flag (`--events`) to its path, or None when not given. `inputs` maps
    descriptions of other files the command reads (`the plan file`) to their paths.
    `plan_out_flag` names the output that receives a saved plan: an existing file there must be
    a grantctl plan file.
    """
    requested = {flag: path for flag, path in outputs.items() if path is not None}
    if not requested:
        return
    protected = _protected_files(manifest_path, inputs or {})
    seen: dict[str, str] = {}
    for flag, path in requested.items():
        real = os.path.realpath(path)
        if real in protected:
            raise ConfigError(
                f"{flag} {path} would overwrite {protected[real]} ({real})",
                hint=f"pass {flag} a path of its own, such as a new file in another directory",
            )
        if real in seen:
            raise ConfigError(
                f"{flag} {path} and {seen[real]} name the same file ({real})",
                hint="give each output flag its own path",
            )
        seen[real] = f"{flag} {path}"
        if flag == plan_out_flag:
            _check_replaces_plan_file(flag, path)


def _protected_files(manifest_path: str | None, inputs: Mapping[str, str]) -> dict[str, str]:
    """Return the real paths that no output may overwrite, each with what it is."""
    protected = {os.path.realpath(path): what for what, path in inputs.items()}
    if manifest_path is None:
        return protected
    protected[os.path.realpath(manifest_path)] = f"the manifest {manifest_path}"
    try:
        manifest = load_checked_manifest(manifest_path)
    except (ReconcilerError, OSError):
        # The command itself reports an unreadable or invalid manifest, so only the manifest
        # file is known to need protection here.
        return protected
    if manifest.state.backend == "local":
        state = manifest.state.path
        protected[os.path.realpath(state)] = f"the state file {state}"
        for suffix in STATE_SIDE_FILES:
            protected[os.path.realpath(state + suffix)] = f"the state file's {suffix} file"
    return protected


def _check_replaces_plan_file(flag: str, path: str) -> None:
    target = Path(path)
    if not target.exists():
        return
    if not _is_plan_document(target):
        raise ConfigError(
            f"{flag} {path} exists and is not a grantctl plan file, so it was left unchanged",
            hint=f"pass {flag} a new file name, or delete {path} first if it may go",
        )


def _is_plan_document(path: Path) -> bool:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and {"format_version", "plan_id", "changes"} <= set(document)
