"""Every `grantctl` command line in the README's and docs' `sh` blocks parses with the real CLI.

Only parsing is checked: arguments, option names and option values (choices, numbers). Files
the commands name are created empty in a temporary directory, so `exists=True` checks pass.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from reconciler.cli import grantctl as cli

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SH_BLOCK = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".prom")


def documented_commands() -> list[tuple[str, str]]:
    """Return (document name, command line) for every `grantctl` line of every `sh` block."""
    commands: list[tuple[str, str]] = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in _SH_BLOCK.findall(text):
            joined = block.replace("\\\n", " ")
            for line in joined.splitlines():
                if line.strip().startswith("grantctl "):
                    commands.append((document.name, line.strip()))
    return commands


COMMANDS = documented_commands()


def test_docs_contain_commands() -> None:
    """The scan finds commands, so an empty list cannot pass silently."""
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("document", "line"), COMMANDS, ids=[line for _, line in COMMANDS])
def test_documented_command_parses(
    document: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line parses: the subcommand exists and its flags and arguments are valid."""
    arguments = shlex.split(line, comments=True)[1:]
    monkeypatch.chdir(tmp_path)
    for argument in arguments:
        if argument.endswith(_FILE_SUFFIXES) and not argument.startswith(("-", "/")):
            (tmp_path / argument).touch()

    try:
        with cli.make_context("grantctl", list(arguments)) as group_context:
            words = [*group_context._protected_args, *group_context.args]
            name, command, rest = cli.resolve_command(group_context, words)
            assert command is not None, f"{document}: no command {name!r}"
            with command.make_context(name, rest, parent=group_context):
                pass
    except click.UsageError as error:
        pytest.fail(f"{document}: `{line}` does not parse: {error.format_message()}")
