"""Property tests: no input makes manifest loading fail with anything but ManifestError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.fmt import format_manifest
from reconciler.manifest import load_manifest_text
from reconciler.model import Manifest

EXAMPLE_TEXT = (Path(__file__).resolve().parent.parent / "examples" / "grants.yaml").read_text()
EXAMPLE_LINES = EXAMPLE_TEXT.splitlines(keepends=True)
FILENAME = "fuzz.yaml"

# Characters that steer the YAML scanner into its less common paths.
YAML_ALPHABET = "abyesnoN01257:-_ .\n\t[]{},&*!#'\"|>?%@`~<=/\\\x00\x85\u2028\ufeff"
# Replacement values that exercise each strict rule and each schema type.
TOKENS = [
    "yes",
    "No",
    "0755",
    "1:30",
    "&a x",
    "*a",
    "!!python/object:os.system x",
    "!tag x",
    "''",
    "[]",
    "{}",
    "-1",
    "true",
    "null",
    "~",
    "x: y",
    "- z",
    "99999999999999999999999",
    "/secret/data/x",
    "LEYAH@EXAMPLE.COM",
    "gmail",
    "<<: {a: 1}",
    "\t",
    "? [a]",
]


def assert_loads_or_reports(text: str | bytes) -> Manifest | None:
    """Load `text`; a failure must be a ManifestError whose diagnostics all point somewhere."""
    try:
        return load_manifest_text(text, filename=FILENAME)
    except ManifestError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.file == FILENAME
            assert diagnostic.line >= 1 or diagnostic.account, str(diagnostic)
            assert diagnostic.message
        return None


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    """Return the example manifest with one to three line-level or character-level edits."""
    lines = list(EXAMPLE_LINES)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        operation = draw(
            st.sampled_from(["delete", "duplicate", "swap", "token", "char", "indent"])
        )
        line = lines[index]
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "swap":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[index], lines[other] = lines[other], line
        elif operation == "token":
            key, colon, _ = line.partition(":")
            value = draw(st.sampled_from(TOKENS))
            lines[index] = f"{key}: {value}\n" if colon else f"{line.rstrip()} {value}\n"
        elif operation == "char":
            position = draw(st.integers(min_value=0, max_value=len(line)))
            character = draw(st.sampled_from(YAML_ALPHABET))
            lines[index] = line[:position] + character + line[position:]
        else:
            lines[index] = " " * draw(st.integers(min_value=0, max_value=6)) + line.lstrip(" ")
        if not lines:
            break
    return "".join(lines)


PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    assert_loads_or_reports(text)


@PROPERTY_SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_loads_or_reports(data)


@PROPERTY_SETTINGS
@given(st.text(alphabet=YAML_ALPHABET, max_size=300))
def test_yaml_like_text(text: str) -> None:
    assert_loads_or_reports(text)


# Each example parses the whole example manifest in pure Python, so fewer of them.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_example())
def test_mutated_example(text: str) -> None:
    manifest = assert_loads_or_reports(text)
    if manifest is not None:
        assert len({account.name for account in manifest.accounts}) == len(manifest.accounts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_example())
def test_format_of_mutated_example_is_idempotent(text: str) -> None:
    try:
        formatted = format_manifest(text)
    except ManifestError:
        return
    assert format_manifest(formatted) == formatted
