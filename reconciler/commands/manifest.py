"""`grantctl validate` and `grantctl fmt`: checks on manifest files alone, no network.

Both take several files, because pre-commit passes every matching file in one call. Each
file is checked and reported on its own, and the command exits 1 when any file fails.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from reconciler.commands.options import LOG_LEVEL_OPTION, emit
from reconciler.errors import EXIT_ERROR, EXIT_OK, ConfigError, ReconcilerError
from reconciler.grammar import plural
from reconciler.secrets import REDACTOR
from reconciler.workflow_clients import load_checked_manifest

MANIFESTS_ARGUMENT = click.argument(
    "manifests",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True),
)


@click.command("validate")
@LOG_LEVEL_OPTION
@MANIFESTS_ARGUMENT
def validate_command(*, manifests: tuple[str, ...]) -> int:
    """Check each MANIFEST against the schema and the Vault path allowlist; no network."""

    def validate(manifest: str) -> bool:
        # The loader that plan and apply use, so that validate rejects what they reject.
        loaded = load_checked_manifest(manifest)
        present = sum(1 for account in loaded.accounts if account.ensure.value == "present")
        emit(
            f"{manifest} is valid: {plural(len(loaded.accounts), 'account')} "
            f"({present} present, {len(loaded.accounts) - present} absent), "
            f"{len(loaded.removed)} removed."
        )
        return True

    return _check_each(manifests, validate, check_name="validation")


@click.command("fmt")
@LOG_LEVEL_OPTION
@click.option(
    "--check",
    is_flag=True,
    default=False,
    help="Do not rewrite the files; exit 1 if any is not in canonical form.",
)
@MANIFESTS_ARGUMENT
def fmt_command(*, manifests: tuple[str, ...], check: bool) -> int:
    """Rewrite each MANIFEST in canonical order and style, keeping comments."""

    def format_one(manifest: str) -> bool:
        return _format_file(manifest, check=check)

    check_name = "the format check" if check else "formatting"
    return _check_each(manifests, format_one, check_name=check_name)


def _check_each(manifests: Sequence[str], check: Callable[[str], bool], *, check_name: str) -> int:
    """Run `check` on every manifest, report each failure, and return the exit code.

        `check` returns False for a failure it has reported itself; a `ReconcilerError` is
        reported here. With several files a last line on stderr counts the files that failed
    `check_name`.
    """
    failed = 0
    for manifest in manifests:
        try:
            passed = check(manifest)
        except ReconcilerError as error:
            click.echo(f"Error: {REDACTOR.redact(str(error))}", err=True)
            passed = False
        failed += 0 if passed else 1

    if failed and len(manifests) > 1:
        click.echo(f"{failed} of {len(manifests)} manifests failed {check_name}.", err=True)
    return EXIT_ERROR if failed else EXIT_OK


def _format_file(manifest: str, *, check: bool) -> bool:
    """Format one manifest, or with `check` only compare; return False when it is not
    formatted and `check` is set."""
    path = Path(manifest)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot read {manifest}: {error}",
            hint=f"check that {manifest} is a UTF-8 file that this user may read",
        ) from error

    # Imported here because ruamel.yaml adds about 0.06 s to every other command's start.
    from reconciler.fmt import format_manifest  # noqa: PLC0415  # deferred, see above

    formatted = format_manifest(text, filename=manifest)
    if formatted == text:
        return True
    if check:
        click.echo(
            f"{manifest} is not formatted; run `grantctl fmt {shlex.quote(manifest)}`.", err=True
        )
        return False

    _replace_file(path, formatted)
    emit(f"formatted {manifest}")
    return True


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
            hint=(
                f"make {path.parent} writable, or run "
                f"`grantctl fmt --check {shlex.quote(str(path))}` to only check"
            ),
        ) from error
