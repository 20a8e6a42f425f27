"""`grantctl validate` and `grantctl fmt` on several manifest files, as pre-commit calls them.

pre-commit passes every matching file to one call of a hook's entry. Each file must be
checked and reported on its own, and one bad file must fail the call without hiding the
others.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from reconciler.fmt import format_manifest
from tests.support.cli import VALID_MANIFEST, invoke

HOOKS_FILE = Path(__file__).parents[1] / ".pre-commit-hooks.yaml"
# Valid, but `accounts` comes before `version`, so fmt reorders it.
UNORDERED_MANIFEST = """\
accounts:
  - name: ceo
    email: ceo@example.com
    provider: google
    secret: ceo
version: 1
nylas: {region: us}
vault: {mount: secret, path_prefix: nylas/test}
"""
INVALID_MANIFEST = "version: 1\naccounts:\n  - name: x\n"


def write(directory: Path, name: str, text: str) -> Path:
    """Write `text` to `directory/name/grants.yaml` and return the path."""
    path = directory / name / "grants.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def formatted_text() -> str:
    """VALID_MANIFEST in canonical form."""
    return format_manifest(VALID_MANIFEST)


def test_validate_reports_each_file(tmp_path: Path) -> None:
    """Two valid manifests get one line each on stdout and exit 0."""
    first = write(tmp_path, "prod", VALID_MANIFEST)
    second = write(tmp_path, "staging", UNORDERED_MANIFEST)

    result = invoke(["validate", str(first), str(second)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{first} is valid: 1 account (1 present, 0 absent), 0 removed.",
        f"{second} is valid: 1 account (1 present, 0 absent), 0 removed.",
    ]
    assert result.stderr == ""


def test_validate_one_invalid_file(tmp_path: Path) -> None:
    """An invalid manifest between two valid ones exits 1; the valid ones are still reported."""
    first = write(tmp_path, "a", VALID_MANIFEST)
    bad = write(tmp_path, "b", INVALID_MANIFEST)
    last = write(tmp_path, "c", VALID_MANIFEST)

    result = invoke(["validate", str(first), str(bad), str(last)])

    assert result.exit_code == 1
    assert f"{first} is valid" in result.stdout
    assert f"{last} is valid" in result.stdout
    assert str(bad) not in result.stdout
    assert result.stderr.startswith("Error: manifest is invalid")
    assert f"{bad}:3:5" in result.stderr
    assert result.stderr.rstrip().endswith("1 of 3 manifests failed validation.")


def test_validate_one_file_has_no_count(tmp_path: Path) -> None:
    """With one invalid file the output is the error alone, without a count line."""
    bad = write(tmp_path, "b", INVALID_MANIFEST)

    result = invoke(["validate", str(bad)])

    assert result.exit_code == 1
    assert "manifests failed" not in result.stderr


def test_validate_needs_a_file() -> None:
    """validate without a file is a usage error."""
    result = invoke(["validate"])

    assert result.exit_code == 1
    assert "Missing argument" in result.stderr


def test_fmt_check_reports_each_file(tmp_path: Path, formatted_text: str) -> None:
    """fmt --check names only the unformatted file, rewrites nothing, and exits 1."""
    clean = write(tmp_path, "a", formatted_text)
    unordered = write(tmp_path, "b", UNORDERED_MANIFEST)

    result = invoke(["fmt", "--check", str(clean), str(unordered)])

    assert result.exit_code == 1
    assert f"{unordered} is not formatted; run `grantctl fmt {unordered}`." in result.stderr
    assert str(clean) not in result.stderr
    assert "1 of 2 manifests failed the format check." in result.stderr
    assert unordered.read_text(encoding="utf-8") == UNORDERED_MANIFEST


def test_fmt_check_all_formatted(tmp_path: Path, formatted_text: str) -> None:
    """fmt --check on formatted files prints nothing and exits 0."""
    paths = [str(write(tmp_path, name, formatted_text)) for name in ("a", "b")]

    result = invoke(["fmt", "--check", *paths])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_fmt_rewrites_each_file(tmp_path: Path, formatted_text: str) -> None:
    """fmt rewrites every unformatted file, reports each, and leaves formatted ones alone."""
    clean = write(tmp_path, "a", formatted_text)
    unordered = write(tmp_path, "b", UNORDERED_MANIFEST)
    also_unordered = write(tmp_path, "c", UNORDERED_MANIFEST)

    result = invoke(["fmt", str(clean), str(unordered), str(also_unordered)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [f"formatted {unordered}", f"formatted {also_unordered}"]
    for path in (unordered, also_unordered):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("version: 1\n"), text
        assert format_manifest(text) == text
    assert clean.read_text(encoding="utf-8") == formatted_text


def test_fmt_continues_after_bad_yaml(tmp_path: Path) -> None:
    """A file that is not YAML fails with its name; the next file is still formatted."""
    broken = write(tmp_path, "a", "accounts: [\n")
    unordered = write(tmp_path, "b", UNORDERED_MANIFEST)

    result = invoke(["fmt", str(broken), str(unordered)])

    assert result.exit_code == 1
    assert str(broken) in result.stderr
    assert f"formatted {unordered}" in result.stdout
    assert "1 of 2 manifests failed formatting." in result.stderr


@pytest.mark.parametrize("hook_id", ["grantctl-validate", "grantctl-fmt"])
def test_hook_entry_takes_several_files(tmp_path: Path, formatted_text: str, hook_id: str) -> None:
    """Each hook's entry, called with two good files as pre-commit does, exits 0."""
    hooks = {hook["id"]: hook for hook in yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))}
    program, *arguments = shlex.split(hooks[hook_id]["entry"])
    paths = [str(write(tmp_path, name, formatted_text)) for name in ("a", "b")]

    result = invoke([*arguments, *paths])

    assert program == "grantctl"
    assert result.exit_code == 0, result.stderr
