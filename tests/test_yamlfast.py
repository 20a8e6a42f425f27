"""The fast YAML reader returns exactly what the strict loader returns, or leaves the text to it.

The property that matters: whenever `read_plain_yaml` accepts a document, the strict loader
accepts it too, with the same values, the same positions and no problems. Hypothesis checks
that on mutated copies of the example manifest (200 examples).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from reconciler.errors import ManifestError
from reconciler.yamlfast import read_plain_yaml
from reconciler.yamlstrict import LoadedYaml, load_strict_yaml
from tests.test_manifest_properties import mutated_example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "grants.yaml"

# Twenty mappings, each nested in the one before, then a value.
DEEP_NESTING = "".join(f"{'  ' * level}k{level}:\n" for level in range(20)) + " " * 40 + "v: w\n"

ACCEPTED = {
    "nested mappings": "a:\n  b:\n    c: d\n  e: f\n",
    "indented sequence": "a:\n  - p\n  - q\nb: z\n",
    "unindented sequence": "a:\n- p\n- q\nb: z\n",
    "mappings in a sequence": "a:\n  - k: 1\n    m: two\n  - k: 3\n",
    "sequence in a sequence item": "a:\n  - - p\n    - q\n",
    "unindented sequence in an item": "a:\n  - k: 1\n    s:\n    - p\n",
    "flow sequence": "s: [Mail.Read,  User.Read , offline_access]\n",
    "empty flow sequence": "s: []\n",
    "quoted strings": "a: 'yes'\nb: \"0755\"\nc: ''\n",
    "comments": "# top\na: b # after a value\n\n  # indented\nc:   d\n",
    "document start": "# c\n---\na: b\n",
    "integers and booleans": "a: 0\nb: 42\nc: true\nd: false\n",
    "null": "a: null\nb: Null\n",
    "url scalar": "s:\n  - https://www.googleapis.com/auth/gmail.readonly\n",
    "spaces inside a scalar": "a: two words here\n",
    "date stays text": "a: 2024-01-02\n",
    "indented root": "  a: b\n  c: d\n",
    "trailing spaces": "a: b   \nc:   \n  - d  \n",
    "root sequence": "- a\n- b\n",
}

LEFT_TO_PYYAML = {
    "tab": "a:\tb\n",
    "carriage return": "a: b\r\n",
    "anchor": "a: &x b\n",
    "alias": "a: *x\n",
    "tag": "a: !!str b\n",
    "literal block": "a: |\n  b\n",
    "folded block": "a: >\n  b\n",
    "flow mapping": "a: {b: c}\n",
    "nested flow sequence": "a: [b, [c]]\n",
    "flow sequence over lines": "a: [b,\n  c]\n",
    "duplicate key": "a: b\na: c\n",
    "yaml 1.1 boolean": "a: yes\n",
    "yaml 1.1 boolean key": "on: b\n",
    "octal-looking number": "a: 0755\n",
    "base-60 number": "a: 1:30\n",
    "float": "a: 1.5\n",
    "hexadecimal": "a: 0x1f\n",
    "negative number": "a: -1\n",
    "empty value": "a:\nb: c\n",
    "multi-line plain scalar": "a: b\n  c\n",
    "escape in double quotes": 'a: "b\\n"\n',
    "quote inside single quotes": "a: 'it''s'\n",
    "quote before a comment": "a: 'b' # c\n",
    "comment marker inside quotes": "a: 'b # c'\n",
    "one-letter yaml 1.1 boolean": "a:\n  - y\n",
    "tilde null": "a: ~\n",
    "second document": "a: b\n---\nc: d\n",
    "document end": "a: b\n...\n",
    "directive": "%YAML 1.1\n---\na: b\n",
    "complex key": "? a\n: b\n",
    "quoted key": "'a': b\n",
    "key without space": "a:b\n",
    "bare dash": "a:\n  -\n  - b\n",
    "dedent into nothing": "a:\n    b: c\n  d: e\n",
    "misaligned item": "a:\n  - b\n   - c\n",
    "line separator": "a: b\u2028c: d\n",
    "byte order mark inside": "a: b\n\ufeffc: d\n",
    "merge key": "<<: a\n",
    "only comments": "# nothing\n",
    "scalar root": "just text\n",
    "null byte": "a: b\x00\n",
    "indented document start": "# c\n  ---\na: b\n",
    "deep nesting": DEEP_NESTING,
}


def assert_same_as_strict(text: str) -> None:
    """Assert that the fast reader accepted `text` with the strict loader's exact result."""
    fast = read_plain_yaml(text)
    assert fast is not None, "the fast reader left the text to PyYAML"
    strict = load_strict_yaml(text, filename="test.yaml")
    assert strict.problems == [], "the strict loader found problems the fast reader missed"
    assert fast.data == strict.data
    assert fast.value_positions == strict.value_positions
    assert fast.key_positions == strict.key_positions
    assert_lean_read_agrees(text, strict)


def assert_lean_read_agrees(text: str, strict: LoadedYaml) -> None:
    """Assert that a read without every position has the same data and the block starts."""
    lean = read_plain_yaml(text, all_positions=False)
    assert lean is not None
    assert lean.all_positions is False
    assert lean.data == strict.data
    assert lean.key_positions == {}
    for path, position in lean.value_positions.items():
        assert strict.value_positions[path] == position
    # Each account's line comes from the start of its mapping, so those must all be there.
    for section in ("accounts", "removed"):
        entries = strict.data.get(section) if isinstance(strict.data, dict) else None
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                path = (section, index)
                assert lean.value_positions[path] == strict.value_positions[path]


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_document(text: str) -> None:
    assert_same_as_strict(text)


@pytest.mark.parametrize("text", LEFT_TO_PYYAML.values(), ids=LEFT_TO_PYYAML.keys())
def test_document_left_to_pyyaml(text: str) -> None:
    assert read_plain_yaml(text) is None


def test_example_manifest_takes_fast_path() -> None:
    assert_same_as_strict(EXAMPLE.read_text())


def test_large_generated_manifest_takes_fast_path(tmp_path: Path) -> None:
    from benchmarks import dataset

    manifest = dataset.write_manifest(dataset.generate_accounts(300), tmp_path)
    assert_same_as_strict(manifest.read_text())


def test_types_of_values() -> None:
    loaded = read_plain_yaml("a: 7\nb: true\nc: null\nd: '7'\ne: 2024-01-02\n")
    assert loaded is not None
    assert loaded.data == {"a": 7, "b": True, "c": None, "d": "7", "e": "2024-01-02"}
    assert type(loaded.data["a"]) is int
    assert loaded.may_hold_floats is False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_example())
def test_mutated_example_matches_strict(text: str) -> None:
    fast = read_plain_yaml(text)
    if fast is None:
        return
    try:
        strict = load_strict_yaml(text, filename="fuzz.yaml")
    except ManifestError as error:
        pytest.fail(f"the fast reader accepted text the strict loader rejects: {error}")
    assert strict.problems == []
    assert fast.data == strict.data
    assert fast.value_positions == strict.value_positions
    assert fast.key_positions == strict.key_positions
    assert_lean_read_agrees(text, strict)
