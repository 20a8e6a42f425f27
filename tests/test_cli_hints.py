"""Every `grantctl ...` command that a message names exists and can be copied as written.

The commands are taken from the string literals of `reconciler/` (docstrings and comments
left out), with each f-string field read as a placeholder value. Each must name a real
subcommand, only options that subcommand accepts, and every required argument.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from reconciler.cli import subcommand
from reconciler.commands.tools import force_unlock_command

SOURCE = Path(__file__).parents[1] / "reconciler"
COMMAND = re.compile(r"`grantctl ([^`]*)`")
PLACEHOLDER = "VALUE"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(PLACEHOLDER)
        return "".join(parts)
    return None


def message_commands() -> list[tuple[str, str]]:
    """Return (file:line, command line after `grantctl `) for every command in a message."""
    commands = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _docstrings(tree) | _pieces_of_fstrings(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            text = _literal_text(node)
            if text is None:
                continue
            where = f"{path.relative_to(SOURCE.parent)}:{node.lineno}"
            commands += [(where, match) for match in COMMAND.findall(text)]
    return commands


def _pieces_of_fstrings(tree: ast.AST) -> set[int]:
    """Return the constant parts of f-strings, which are read with their f-string."""
    return {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for value in node.values
    }


COMMANDS = message_commands()


def test_messages_name_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("where", "command_line"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_message_command_runnable(where: str, command_line: str) -> None:
    name, *words = command_line.split()
    command = subcommand(name)
    assert command is not None, f"{where}: no subcommand {name!r}"
    options = {
        option: parameter
        for parameter in command.params
        if isinstance(parameter, click.Option)
        for option in parameter.opts
    }

    positionals = []
    remaining = iter(words)
    for word in remaining:
        if not word.startswith("-"):
            positionals.append(word)
            continue
        assert word in options, f"{where}: `grantctl {name}` has no option {word}"
        if not options[word].is_flag:
            assert next(remaining, None) is not None, f"{where}: {word} needs a value"

    required = [
        parameter
        for parameter in command.params
        if isinstance(parameter, click.Argument) and parameter.required
    ]
    assert len(positionals) >= len(required), (
        f"{where}: `grantctl {command_line}` lacks "
        f"{', '.join(p.human_readable_name for p in required[len(positionals) :])}"
    )


def test_force_unlock_only_used_options() -> None:
    """force-unlock reads no API key, so it has no option to find one."""
    options = {option for parameter in force_unlock_command.params for option in parameter.opts}

    assert "--api-key-vault-path" not in options
    assert {"--vault-auth", "--vault-role", "--tls-skip-verify"} <= options
