"""`grantctl validate` and `grantctl fmt`: checks on the manifest file alone, no network."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reconciler.commands.options import LOG_LEVEL_OPTION, MANIFEST_ARGUMENT, emit
from reconciler.errors import EXIT_ERROR, EXIT_OK, ConfigError
from reconciler.fmt import format_manifest
from reconciler.manifest import allowed_prefixes_from_environment, load_manifest


@click.command("validate")
@LOG_LEVEL_OPTION
@MANIFEST_ARGUMENT
def validate_command(*, manifest: str) -> int:
    """Check MANIFEST against the schema and the Vault path allowlist; no network."""
    prefixes = allowed_prefixes_from_environment(os.environ)
    loaded = load_manifest(manifest, allowed_prefixes=prefixes)
    present = sum(1 for account in loaded.accounts if account.ensure.value == "present")
    emit(
        f"{manifest} is valid: {len(loaded.accounts)} accounts "
        f"({present} present, {len(loaded.accounts) - present} absent), "
        f"{len(loaded.removed)} removed."
    )
    return EXIT_OK


@click.command("fmt")
@LOG_LEVEL_OPTION
@click.option(
    "--check",
    is_flag=True,
    default=False,
    help="Do not rewrite the file; exit 1 if it is not in canonical form.",
)
@MANIFEST_ARGUMENT
def fmt_command(*, manifest: str, check: bool) -> int:
    """Rewrite MANIFEST in canonical order and style, keeping comments."""
    path = Path(manifest)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot read {manifest}: {error}",
            hint=f"check that {manifest} is a UTF-8 file that this user may read",
        ) from error

    formatted = format_manifest(text)
    if formatted == text:
        return EXIT_OK
    if check:
        click.echo(f"{manifest} is not formatted; run `grantctl fmt {manifest}`.", err=True)
        return EXIT_ERROR

    _replace_file(path, formatted)
    emit(f"formatted {manifest}")
    return EXIT_OK


def _replace_file(path: Path, text: str) -> None:
    """Write `text` next to `path` and rename it over, so a crash leaves one whole file."""
    temporary = path.with_name(f".{path.name}.grantctl-fmt")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write {path}: {error}",
            hint=f"make {path.parent} writable, or run `grantctl fmt --check` to only check",
        ) from error
