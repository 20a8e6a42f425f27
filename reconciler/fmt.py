"""The engine of `grantctl fmt`: rewrite a manifest in canonical order and style.

Formatting round-trips the text through ruamel.yaml, so comments, quoting and flow lists
survive. Keys are put in a canonical order at the top level and inside each section,
account and removed entry. Accounts keep their file order because it carries meaning for
readers. Unknown
keys keep their relative order after the known ones, so formatting an invalid manifest loses
nothing. Indentation becomes two spaces, with list dashes indented under their key.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.tokens import CommentToken

from reconciler.errors import Diagnostic, ManifestError
from reconciler.manifest import MAX_MANIFEST_BYTES
from reconciler.yamlstrict import syntax_diagnostic

TOP_LEVEL_ORDER = (
    "version",
    "nylas",
    "vault",
    "state",
    "defaults",
    "policy",
    "accounts",
    "removed",
)
SECTION_ORDER = {
    "nylas": ("region",),
    "vault": ("mount", "path_prefix", "kv_version"),
    "state": ("backend", "path"),
    "defaults": ("provider", "scopes"),
    "policy": ("max_deletes",),
}
ACCOUNT_ORDER = (
    "name",
    "email",
    "provider",
    "secret",
    "scopes",
    "credential_id",
    "ensure",
    "protect",
)
REMOVED_ORDER = ("name", "destroy")
# Wide enough that ruamel.yaml never folds a long scalar onto a second line.
_LINE_WIDTH = 4096


def format_manifest(text: str, *, filename: str = "<manifest>") -> str:
    """Return `text` in canonical key order and indentation, comments kept.

    Raises `ManifestError` when `text` is not one valid YAML document. An empty document is
    returned unchanged.
    """
    if len(text.encode("utf-8")) > MAX_MANIFEST_BYTES:
        message = f"the manifest is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB"
        raise ManifestError([Diagnostic(filename, 0, 0, message)])
    yaml = _round_trip_yaml()
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        raise _syntax_error(filename, error) from None
    except YAMLError as error:
        raise ManifestError([Diagnostic(filename, 1, 1, f"invalid YAML: {error}")]) from None
    except TypeError as error:
        # ruamel.yaml raises TypeError for a list or mapping used as a mapping key.
        message = f"invalid YAML: a mapping key must be a plain value ({error})"
        raise ManifestError([Diagnostic(filename, 1, 1, message)]) from None
    if document is None:
        return text
    if isinstance(document, CommentedMap):
        _reorder_manifest(document)
    yaml.explicit_start = _has_explicit_start(text)
    output = io.StringIO()
    yaml.dump(document, output)
    return output.getvalue()


def check_formatted(text: str, *, filename: str = "<manifest>") -> bool:
    """Return whether `text` is already formatted, as `grantctl fmt --check` reports it."""
    return format_manifest(text, filename=filename) == text


def _round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = _LINE_WIDTH
    # mapping 2 and sequence 4 with offset 2 give "key:\n  - item" with the item's keys
    # aligned two spaces after the dash.
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _has_explicit_start(text: str) -> bool:
    """Return whether the first line that is not blank or a comment is `---`."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped == "---" or stripped.startswith("--- ")
    return False


def _syntax_error(filename: str, error: MarkedYAMLError) -> ManifestError:
    # The same wording and position as `validate` gives for the same mistake.
    return ManifestError([syntax_diagnostic(filename, error)])


def _reorder_manifest(document: CommentedMap) -> None:
    _reorder(document, TOP_LEVEL_ORDER, column=0)
    for section, order in SECTION_ORDER.items():
        value = document.get(section)
        if isinstance(value, CommentedMap):
            _reorder(value, order, column=2)
    for section, order in (("accounts", ACCOUNT_ORDER), ("removed", REMOVED_ORDER)):
        entries = document.get(section)
        if isinstance(entries, CommentedSeq):
            for entry in entries:
                if isinstance(entry, CommentedMap):
                    _reorder(entry, order, column=4)


def _reorder(mapping: CommentedMap, order: Sequence[str], *, column: int) -> None:
    """Move the keys of `mapping` into `order` in place; other keys follow in file order.

    `column` is where the mapping's keys start once formatted; comment lines between keys
    are moved there.
    """
    rank = {key: index for index, key in enumerate(order)}
    keys: list[Any] = list(mapping.keys())
    wanted = sorted(keys, key=lambda key: (rank.get(key, len(order)), keys.index(key)))
    if wanted == keys:
        return
    _move_comments(mapping, keys, wanted, column)
    for key in wanted:
        mapping.move_to_end(key)


def _move_comments(mapping: CommentedMap, keys: list[Any], wanted: list[Any], column: int) -> None:
    """Re-attach full-line comments so each stays above the key it was written above.

    ruamel.yaml stores a key's end-of-line comment together with the comment lines that
    follow it, which describe the next key. This splits them and rebuilds the tokens for
    the new order; the lines after the last key (they precede the next entry) stay last.
    """
    end_of_line: dict[Any, str] = {}
    above: dict[Any, list[str]] = {}
    trailer: list[str] = []
    for index, key in enumerate(keys):
        token = _comment_token(_tail_slot(mapping, key))
        text = token.value if token is not None else "\n"
        first, newline, rest = text.partition("\n")
        end_of_line[key] = first + newline
        lines = rest.splitlines(keepends=True)
        if index + 1 < len(keys):
            above[keys[index + 1]] = [_indent_comment(line, column) for line in lines]
        else:
            trailer = lines
    # Comments above the old first key sit outside this mapping, so they stay above the new
    # first key. The new first key's own comment lines go below it, the closest place left.
    orphaned = above.pop(wanted[0], [])
    for index, key in enumerate(wanted):
        following = above.get(wanted[index + 1], []) if index + 1 < len(wanted) else trailer
        if index == 0:
            following = orphaned + following
        _set_comment(_tail_slot(mapping, key), end_of_line[key] + "".join(following))


# The location of a comment token: the container, the key or index in it, and the position
# in `ca.items[key]` (2 for a mapping value, 0 for a list item).
_Slot = tuple[Any, Any, int]


def _tail_slot(container: Any, key: Any) -> _Slot:
    """Return the slot of the comment that follows `container[key]` in the file.

    For a block list or mapping, ruamel.yaml stores that comment on its last item.
    NOTE: after a flow mapping that ends a block list, ruamel.yaml keeps the comment in the
    list's `ca.end` instead, which this does not follow, so such a comment stays in place.
    """
    value = container[key]
    is_block = isinstance(value, (CommentedMap, CommentedSeq)) and not value.fa.flow_style()
    if is_block and isinstance(value, CommentedMap) and value:
        return _tail_slot(value, list(value.keys())[-1])
    if is_block and isinstance(value, CommentedSeq) and value:
        return _tail_slot(value, len(value) - 1)
    return container, key, 0 if isinstance(container, CommentedSeq) else 2


def _comment_token(slot: _Slot) -> CommentToken | None:
    container, key, index = slot
    entry = container.ca.items.get(key)
    if entry and isinstance(entry[index], CommentToken):
        return entry[index]  # type: ignore[no-any-return]  # ruamel.yaml is untyped
    return None


def _set_comment(slot: _Slot, text: str) -> None:
    token = _comment_token(slot)
    if token is not None:
        token.value = text
        return
    if text == "\n":
        return
    container, key, index = slot
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    entry[index] = CommentToken(text, CommentMark(0), None)


def _indent_comment(line: str, column: int) -> str:
    stripped = line.lstrip(" ")
    return " " * column + stripped if stripped.startswith("#") else line
