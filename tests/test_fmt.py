"""`grantctl fmt`'s engine: canonical order, two-space indentation, comments kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.fmt import check_formatted, format_manifest
from reconciler.manifest import load_manifest_text

EXAMPLE_TEXT = (Path(__file__).resolve().parent.parent / "examples" / "grants.yaml").read_text()

UNORDERED = """\
# yaml-language-server: $schema=../schemas/manifest.schema.json
accounts:
    -   email: b@example.com   # the second mailbox
        name: bravo
        # B's token lives here
        secret: bravo
        provider: google
    -   name: alpha
        secret: alpha
        email: a@example.com
        protect: true
        provider: imap
removed:
-   destroy: false
    name: gone
vault:
    path_prefix: nylas/prod
    mount: secret
nylas:
    region: eu
version: 1
"""

EXPECTED = """\
# yaml-language-server: $schema=../schemas/manifest.schema.json
version: 1
nylas:
  region: eu
vault:
  mount: secret
  path_prefix: nylas/prod
accounts:
  - name: bravo
    email: b@example.com       # the second mailbox
    provider: google
    # B's token lives here
    secret: bravo
  - name: alpha
    email: a@example.com
    provider: imap
    secret: alpha
    protect: true
removed:
  - name: gone
    destroy: false
"""


def test_example_is_formatted() -> None:
    assert check_formatted(EXAMPLE_TEXT)


def test_canonical_order_and_indentation() -> None:
    assert format_manifest(UNORDERED) == EXPECTED


def test_format_is_idempotent() -> None:
    formatted = format_manifest(UNORDERED)
    assert format_manifest(formatted) == formatted


def test_accounts_keep_file_order() -> None:
    formatted = format_manifest(UNORDERED)
    assert formatted.index("name: bravo") < formatted.index("name: alpha")


def test_comments_preserved() -> None:
    formatted = format_manifest(UNORDERED)
    for comment in ("# yaml-language-server", "# the second mailbox", "# B's token lives here"):
        assert comment in formatted


def test_every_comment_of_example_kept_when_reordered() -> None:
    # Swap the order of every account's first two keys and check that no comment is lost.
    swapped = EXAMPLE_TEXT.replace("version: 1\n", "").replace("nylas:\n", "version: 1\nnylas:\n")
    formatted = format_manifest(swapped)
    comments = [line.strip() for line in EXAMPLE_TEXT.splitlines() if line.strip().startswith("#")]
    for comment in comments:
        assert comment in formatted


def test_formatted_manifest_loads_the_same() -> None:
    before = load_manifest_text(UNORDERED, filename="grants.yaml")
    after = load_manifest_text(format_manifest(UNORDERED), filename="grants.yaml")
    assert [a.name for a in after.accounts] == [a.name for a in before.accounts]
    # Only the lines move: every other field of every account is unchanged.
    assert [replace(a, line=0) for a in after.accounts] == [
        replace(a, line=0) for a in before.accounts
    ]


def test_unknown_keys_kept_after_known_ones() -> None:
    formatted = format_manifest("zeta: 1\nversion: 1\nalpha: 2\n")
    assert formatted == "version: 1\nzeta: 1\nalpha: 2\n"


def test_quotes_and_flow_lists_kept() -> None:
    text = "version: 1\naccounts:\n  - name: 'a'\n    scopes: [\"x\", y]\n"
    assert format_manifest(text) == text


def test_explicit_document_start_kept() -> None:
    text = "---\nversion: 1\n"
    assert format_manifest(text) == text


def test_empty_text_unchanged() -> None:
    assert format_manifest("") == ""


def test_check_formatted_detects_order() -> None:
    assert not check_formatted("nylas:\n  region: us\nversion: 1\n")


@pytest.mark.parametrize(
    ("text", "line"),
    [("version: 1\nversion: 2\n", 2), ("a: [\n", 2), ("a: 1\n---\nb: 2\n", 2)],
    ids=["duplicate key", "unclosed list", "two documents"],
)
def test_invalid_yaml_raises(text: str, line: int) -> None:
    with pytest.raises(ManifestError) as raised:
        format_manifest(text, filename="grants.yaml")
    assert raised.value.diagnostics[0].file == "grants.yaml"
    assert raised.value.diagnostics[0].line == line


def test_two_documents_message() -> None:
    with pytest.raises(ManifestError) as raised:
        format_manifest("a: 1\n---\nb: 2\n")
    assert "more than one YAML document" in raised.value.diagnostics[0].message


def test_mapping_as_key_is_manifest_error() -> None:
    """A mapping used as a key is reported as invalid YAML, never raised as TypeError."""
    with pytest.raises(ManifestError, match="mapping key must be a plain value"):
        format_manifest("version: 1\n? {a: [1]}\n: c\n")


def test_syntax_error_names_tokens_plainly() -> None:
    with pytest.raises(ManifestError) as raised:
        format_manifest("# c\n  ---\n" + EXAMPLE_TEXT)
    message = raised.value.diagnostics[0].message
    assert "but found '<block mapping start>'" in message
    assert "('" not in message


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nnylas:\n\tregion: us\n",
        'version: 1\naccounts:\n  - name: a\n    scopes: [Mail.Read, "x]\n',
    ],
    ids=["tab indentation", "unclosed quote"],
)
def test_syntax_error_matches_validate(text: str) -> None:
    with pytest.raises(ManifestError) as formatted:
        format_manifest(text, filename="grants.yaml")
    with pytest.raises(ManifestError) as validated:
        load_manifest_text(text, filename="grants.yaml")

    assert formatted.value.diagnostics == validated.value.diagnostics
