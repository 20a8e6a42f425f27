"""A fast reader for the plain block-style YAML that large manifests are written in.

`read_plain_yaml` returns exactly what `yamlstrict.load_strict_yaml` returns, positions
included, for documents made only of:

- block mappings whose keys are plain words, and block sequences (also unindented under a key);
- one-line flow sequences of plain words, such as `scopes: [Mail.Read, User.Read]`;
- plain scalars that read the same in YAML 1.1 and 1.2, and quoted strings without escapes;
- comments and blank lines.

On anything else it returns None, and the caller runs the strict loader, so every diagnostic
still comes from one place. It never reports a problem itself: a document with a duplicate
key or a YAML 1.1 trap goes to the strict loader too. The strict loader builds a PyYAML node
for every value before checking it. For a 10,000-account manifest on the 2-core benchmark
machine that costs about 3 s of CPU time, and this reader takes about 0.65 s, or 0.42 s
when it records only the starts of blocks.
`tests/test_yamlfast.py` compares both readers on generated documents.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from reconciler.yamlstrict import (
    MAX_INTEGER_DIGITS,
    LoadedYaml,
    Position,
    YamlPath,
    yaml11_trap,
)

# Tabs, carriage returns, the characters YAML 1.1 reads as line breaks, and byte order marks.
# The strict loader handles a document that contains any of them.
_UNUSUAL_CHARACTERS = re.compile("[\t\r\x85\u2028\u2029\ufeff]")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# A mapping entry: the key, its colon, and either nothing or spaces and the value.
_ENTRY = re.compile(rf"({_KEY.pattern}):(?:( +)(.+))?")
# A plain scalar: words of safe characters separated by single spaces. A colon may only sit
# between two other characters, since `a:` or `a: b` would start a mapping.
_PLAIN_WORD = r"[A-Za-z0-9_./@+-]+(?::[A-Za-z0-9_./@+-]+)*"
_PLAIN_SCALAR = re.compile(rf"(?=[A-Za-z0-9_./]){_PLAIN_WORD}(?: {_PLAIN_WORD})*")
# Inside a flow sequence, where a colon has further meanings.
_FLOW_ITEM = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./@+-]*")
_DECIMAL_INTEGER = re.compile(rf"0|[1-9][0-9]{{0,{MAX_INTEGER_DIGITS - 1}}}")

# Far below the strict loader's MAX_DEPTH, which counts scalars and flow items too, so every
# document near that limit gets the strict loader's diagnostic. Manifests nest about 4 levels deep.
_MAX_DEPTH = 16

_TAG_PREFIX = "tag:yaml.org,2002:"
_RESOLVER = yaml.resolver.Resolver()


class _OutsideSubsetError(Exception):
    """The document uses something outside the subset this reader handles."""


# One content line: 1-based line number, indentation, and the text after it.
_Line = tuple[int, int, str]


def read_plain_yaml(text: str, *, all_positions: bool = True) -> LoadedYaml | None:
    """Return the parsed document, or None when it uses YAML this reader leaves to PyYAML.

    With `all_positions` False, only the start of each block mapping and sequence is
    recorded. That is all a valid manifest needs (each account's line), and it saves about a
    third of the time. The result's `all_positions` field records the choice, so a caller
    with a problem to report can read the document again with every position.
    """
    if _UNUSUAL_CHARACTERS.search(text) or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None
    try:
        lines = _content_lines(text)
        if not lines:
            return None
        reader = _PlainReader(lines, all_positions=all_positions)
        data = reader.read_block(lines[0][1], (), 0)
        if reader.index != len(lines):
            return None
    except _OutsideSubsetError:
        return None
    # `_plain_value` returns no floats, so the schema check can skip looking for them.
    return LoadedYaml(
        data=data,
        value_positions=reader.value_positions,
        key_positions=reader.key_positions,
        may_hold_floats=False,
        all_positions=all_positions,
    )


def _content_lines(text: str) -> list[_Line]:
    """Return the content lines, without comments and trailing spaces."""
    lines: list[_Line] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(stripped)
        if "#" in stripped:
            stripped = _without_comment(stripped)
        content = stripped.rstrip(" ")
        if content.startswith(("%", "---", "...")):
            # Only a `---` in column 1 starts the document. Indented, it is content.
            if content == "---" and indent == 0 and not lines:
                continue
            raise _OutsideSubsetError
        lines.append((number, indent, content))
    return lines


def _without_comment(text: str) -> str:
    """Return `text` without a trailing comment. A `#` after a space starts one."""
    start = text.find(" #")
    content = text if start < 0 else text[:start]
    # Inside quotes, " #" would be text, so a quote before it leaves the line to PyYAML.
    if "'" in content or '"' in content:
        raise _OutsideSubsetError
    return content


class _PlainReader:
    """A reader of block nodes from the content lines that records where values and keys start."""

    def __init__(self, lines: list[_Line], *, all_positions: bool) -> None:
        self.lines = lines
        self.index = 0
        self.all_positions = all_positions
        self.value_positions: dict[YamlPath, Position] = {}
        self.key_positions: dict[YamlPath, Position] = {}

    def read_block(self, indent: int, path: YamlPath, depth: int) -> Any:
        """Read the mapping or sequence whose first line is the current one, at `indent`."""
        if depth >= _MAX_DEPTH:
            raise _OutsideSubsetError
        number, _, text = self.lines[self.index]
        self.value_positions[path] = (number, indent + 1)
        if text.startswith("- "):
            return self._read_sequence(indent, path, depth)
        return self._read_mapping(indent, path, depth)

    def _read_mapping(self, indent: int, path: YamlPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.index < len(self.lines):
            number, line_indent, text = self.lines[self.index]
            if line_indent < indent:
                break
            if line_indent > indent:
                raise _OutsideSubsetError
            match = _ENTRY.fullmatch(text)
            if match is None:
                raise _OutsideSubsetError
            key, value = match.group(1, 3)
            if key in result or _plain_value(key) != key:
                raise _OutsideSubsetError
            self.index += 1
            if not self.all_positions:
                if value:
                    result[key] = self._read_inline(value, (number, 0), ())
                else:
                    result[key] = self._read_nested(indent, (*path, key), depth)
                continue
            child = (*path, key)
            self.key_positions[child] = (number, indent + 1)
            if value:
                column = indent + match.start(3) + 1
                result[key] = self._read_inline(value, (number, column), child)
            else:
                result[key] = self._read_nested(indent, child, depth)
        return result

    def _read_nested(self, indent: int, path: YamlPath, depth: int) -> Any:
        """Read the block under a key that ends its line, at a deeper indent or as `- ` items."""
        if self.index == len(self.lines):
            raise _OutsideSubsetError
        _, next_indent, text = self.lines[self.index]
        if next_indent > indent or (next_indent == indent and text.startswith("- ")):
            return self.read_block(next_indent, path, depth + 1)
        # An empty value is null, whose position PyYAML marks differently.
        raise _OutsideSubsetError

    def _read_sequence(self, indent: int, path: YamlPath, depth: int) -> list[Any]:
        items: list[Any] = []
        while self.index < len(self.lines):
            number, line_indent, text = self.lines[self.index]
            if line_indent != indent or not text.startswith("- "):
                if line_indent > indent or text == "-":
                    raise _OutsideSubsetError
                break
            item = text[2:].lstrip(" ")
            column = indent + len(text) - len(item)
            child = (*path, len(items))
            if item.startswith("- ") or _starts_mapping(item):
                # A nested block starting on the item's line: read it as if it began its own
                # line at the item's column.
                self.lines[self.index] = (number, column, item)
                items.append(self.read_block(column, child, depth + 1))
            else:
                self.index += 1
                items.append(self._read_inline(item, (number, column + 1), child))
        return items

    def _read_inline(self, text: str, position: Position, path: YamlPath) -> Any:
        """Read a value that sits on its key's or item's line."""
        if self.all_positions:
            self.value_positions[path] = position
        first = text[0]
        if first == "[":
            return self._read_flow_sequence(text, position, path)
        if first in "'\"":
            return _quoted(text)
        if _PLAIN_SCALAR.fullmatch(text) is None:
            raise _OutsideSubsetError
        return _plain_value(text)

    def _read_flow_sequence(self, text: str, position: Position, path: YamlPath) -> list[Any]:
        if not text.endswith("]"):
            raise _OutsideSubsetError
        inner = text[1:-1]
        if not inner.strip(" "):
            return []
        items: list[Any] = []
        line, column = position
        offset = 1
        for part in inner.split(","):
            item = part.strip(" ")
            if _FLOW_ITEM.fullmatch(item) is None:
                raise _OutsideSubsetError
            if self.all_positions:
                item_column = column + offset + len(part) - len(part.lstrip(" "))
                item_path = (*path, len(items))
                self.value_positions[item_path] = (line, item_column)
            items.append(_plain_value(item))
            offset += len(part) + 1
        return items


def _starts_mapping(text: str) -> bool:
    """Return whether `text` starts with a key and its colon, as in `name: x` or `name:`."""
    match = _KEY.match(text)
    return match is not None and text[match.end() : match.end() + 2] in (":", ": ")


def _quoted(text: str) -> str:
    """Return the content of a one-line quoted string that needs no unescaping."""
    quote = text[0]
    inner = text[1:-1]
    if len(text) < 2 or text[-1] != quote or quote in inner or "\\" in inner:
        raise _OutsideSubsetError
    return inner


@functools.lru_cache(maxsize=4096)
def _plain_value(text: str) -> Any:
    """Return the value of a plain scalar, or raise `_OutsideSubsetError` for other kinds."""
    if text[0] not in _RESOLVER.yaml_implicit_resolvers:
        # No implicit type starts with this character, so the scalar is a string. Every
        # YAML 1.1 trap starts with a character that does (y, n, o, digits, signs).
        return text
    # The same implicit resolution PyYAML's composer applies to a plain scalar.
    tag: str = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]  # types-PyYAML leaves it untyped
    if yaml11_trap(text, tag):
        raise _OutsideSubsetError
    kind = tag.removeprefix(_TAG_PREFIX)
    if kind in ("str", "timestamp"):
        return text
    if kind == "null":
        return None
    if kind == "bool":
        return text == "true"
    if kind == "int" and _DECIMAL_INTEGER.fullmatch(text):
        return int(text)
    raise _OutsideSubsetError
