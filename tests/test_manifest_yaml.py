"""Strict YAML parsing of manifests: YAML 1.1 traps, unsafe input and malformed files."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from reconciler.errors import Diagnostic, ManifestError
from reconciler.manifest import MAX_MANIFEST_BYTES, load_manifest, load_manifest_text

FIXTURES = Path(__file__).resolve().parent / "manifests"

VALID = """\
version: 1
nylas:
  region: us
accounts:
  - name: leyah
    email: leyah@example.com
    provider: microsoft
    secret: leyah
"""


def diagnostics_of(text: str | bytes) -> tuple[Diagnostic, ...]:
    """Load `text` and return the diagnostics it raises; fail if it loads."""
    with pytest.raises(ManifestError) as raised:
        load_manifest_text(text, filename="grants.yaml")
    return raised.value.diagnostics


def only(text: str | bytes) -> Diagnostic:
    """Return the single diagnostic of `text`; fail if there is not exactly one."""
    diagnostics = diagnostics_of(text)
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    return diagnostics[0]


@pytest.mark.parametrize(
    "word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "oFF", "Y"]
)
def test_yaml11_boolean_rejected(word: str) -> None:
    diagnostic = only(VALID + f"    protect: {word}\n")
    assert (diagnostic.line, diagnostic.column) == (9, 14)
    assert "boolean in YAML 1.1" in diagnostic.message
    assert f"quote it ('{word}')" in diagnostic.message
    assert diagnostic.account == "leyah"


@pytest.mark.parametrize("word", ["True", "FALSE"])
def test_capitalized_boolean_rejected(word: str) -> None:
    diagnostic = only(VALID + f"    protect: {word}\n")
    assert "lowercase true or false" in diagnostic.message


def test_yaml11_boolean_in_list() -> None:
    diagnostic = only(VALID + "    scopes: [Mail.Read, no]\n")
    assert (diagnostic.line, diagnostic.column) == (9, 25)
    assert diagnostic.message.startswith("accounts[0].scopes[1]: 'no' is a boolean")


def test_yaml11_boolean_as_key() -> None:
    diagnostic = only(VALID + "on: true\n")
    assert (diagnostic.line, diagnostic.column) == (9, 1)


def test_quoted_words_accepted() -> None:
    manifest = load_manifest_text(
        VALID + "    scopes: ['no', \"on\", 'y']\n", filename="grants.yaml"
    )
    assert manifest.accounts[0].scopes == ("no", "on", "y")


def test_sexagesimal_rejected() -> None:
    diagnostic = only(VALID.replace("name: leyah", "name: 1:30"))
    assert (diagnostic.line, diagnostic.column) == (5, 11)
    assert "base-60" in diagnostic.message


def test_octal_looking_number_rejected() -> None:
    diagnostic = only(VALID.replace("secret: leyah", "secret: 0755"))
    assert (diagnostic.line, diagnostic.column) == (8, 13)
    assert "leading zero" in diagnostic.message


def test_duplicate_key_rejected() -> None:
    diagnostic = only(VALID + "    provider: google\n")
    assert diagnostic.line == 9
    assert "duplicate key 'provider' (first defined on line 7)" in diagnostic.message
    assert diagnostic.account == "leyah"


def test_duplicate_top_level_key_rejected() -> None:
    diagnostic = only(VALID + "version: 1\n")
    assert (diagnostic.line, diagnostic.column) == (9, 1)


def test_alias_rejected() -> None:
    diagnostic = only(VALID + "  - &x {name: b}\n  - *x\n")
    assert diagnostic.line == 10
    assert "aliases" in diagnostic.message


def test_billion_laughs_fails_fast() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ManifestError) as raised:
        load_manifest(FIXTURES / "bad" / "billion-laughs.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 2 * 1024 * 1024
    assert raised.value.diagnostics[0].line == 5
    assert "aliases (*a)" in raised.value.diagnostics[0].message


def test_python_tag_rejected() -> None:
    diagnostics = load_error(FIXTURES / "bad" / "python-tag.yaml")
    assert diagnostics[0].line == 3
    assert "!!python/object/apply:os.system is not allowed" in diagnostics[0].message


@pytest.mark.parametrize("tag", ["!custom", "!!binary", "!!set", "!!timestamp"])
def test_other_tags_rejected(tag: str) -> None:
    diagnostic = only(VALID.replace("secret: leyah", f"secret: {tag} leyah"))
    assert diagnostic.line == 8
    assert "is not allowed" in diagnostic.message


def test_explicit_str_tag_accepted() -> None:
    manifest = load_manifest_text(
        VALID.replace("secret: leyah", "secret: !!str 0755"), filename="g"
    )
    assert manifest.accounts[0].secret_path == "0755"


def test_merge_key_rejected() -> None:
    diagnostic = only(VALID + "    <<: {protect: true}\n")
    assert "merge keys" in diagnostic.message


def test_non_string_key_rejected() -> None:
    diagnostic = only(VALID + "    1: x\n")
    assert "not a string" in diagnostic.message


def test_tab_indentation() -> None:
    diagnostics = load_error(FIXTURES / "bad" / "tab-indent.yaml")
    assert diagnostics[0].line == 3
    assert "tab" in diagnostics[0].message


def test_non_utf8_bytes() -> None:
    diagnostics = load_error(FIXTURES / "bad" / "latin1.yaml")
    assert (diagnostics[0].line, diagnostics[0].column) == (5, 14)
    assert "not valid UTF-8" in diagnostics[0].message


def test_byte_order_mark_accepted() -> None:
    manifest = load_manifest_text(b"\xef\xbb\xbf" + VALID.encode(), filename="grants.yaml")
    assert manifest.accounts[0].name == "leyah"


def test_control_character_rejected() -> None:
    diagnostic = only(VALID.replace("leyah@", "le\x07yah@"))
    assert diagnostic.line == 6
    assert "U+0007" in diagnostic.message


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_control_character_position_with_cr(line_end: str) -> None:
    diagnostic = only(VALID.replace("leyah@", "le\x07yah@").replace("\n", line_end))
    assert (diagnostic.line, diagnostic.column) == (6, 14)


@pytest.mark.parametrize("character", ["\u2028", "\u2029", "\x85"])
def test_hidden_line_break_rejected(character: str) -> None:
    diagnostic = only("# a comment" + character + "that continues\n" + VALID)
    assert (diagnostic.line, diagnostic.column) == (1, 12)
    assert f"U+{ord(character):04X}" in diagnostic.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_manifest(text: str) -> None:
    diagnostic = only(text)
    assert diagnostic.message == "manifest is empty"
    assert diagnostic.line == 1


def test_multiple_documents_rejected() -> None:
    diagnostic = only(VALID + "---\nversion: 1\n")
    assert diagnostic.line == 9
    assert "more than one YAML document" in diagnostic.message


def test_syntax_error_has_position() -> None:
    diagnostic = only(VALID + "  - name: [unclosed\n")
    assert diagnostic.line >= 9
    assert diagnostic.message.startswith("invalid YAML")


def test_unclosed_quote_placed_at_the_quote() -> None:
    text = 'version: 1\naccounts:\n  - name: a\n    scopes: [Mail.Read, "x]\n'

    diagnostic = only(text)

    assert (diagnostic.line, diagnostic.column) == (4, 25)
    assert "quoted scalar" in diagnostic.message


def test_oversized_manifest_rejected_before_parsing() -> None:
    text = VALID + "#" * MAX_MANIFEST_BYTES
    started = time.perf_counter()
    diagnostic = only(text)
    assert time.perf_counter() - started < 0.5
    assert "larger than 5 MiB" in diagnostic.message


def test_deep_nesting_rejected() -> None:
    diagnostic = only("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nesting is deeper" in diagnostic.message


def test_huge_integer_rejected() -> None:
    diagnostic = only(VALID.replace("version: 1", "version: " + "9" * 5000))
    assert diagnostic.line == 1
    assert "too long" in diagnostic.message


def test_date_is_a_string() -> None:
    manifest = load_manifest_text(VALID.replace("name: leyah", "name: 2024-01-01"), filename="g")
    assert manifest.accounts[0].name == "2024-01-01"


def load_error(path: Path) -> tuple[Diagnostic, ...]:
    """Load the manifest file at `path` and return its diagnostics; fail if it loads."""
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    return raised.value.diagnostics


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_rejected() -> None:
    diagnostics = load_error(Path("/dev/zero"))
    assert "larger than 5 MiB" in diagnostics[0].message
