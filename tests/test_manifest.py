"""Manifest loading: the model built from valid files, and one diagnostic per broken rule."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, Diagnostic, ManifestError
from reconciler.manifest import (
    allowed_prefixes_from_environment,
    load_manifest,
    load_manifest_text,
)
from reconciler.model import Ensure, Provider, Region
from reconciler.workflow_clients import load_checked_manifest
from tests.support.cli import invoke

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "grants.yaml"
FIXTURES = Path(__file__).resolve().parent / "manifests"

# Lines 8-11 hold the one account; cases below append to this text or replace parts of it.
BASE = """\
version: 1
nylas:
  region: us
vault:
  mount: secret
  path_prefix: nylas/prod
accounts:
  - name: leyah
    email: leyah@example.com
    provider: microsoft
    secret: leyah
"""


def diagnostics_of(text: str, **kwargs: object) -> tuple[Diagnostic, ...]:
    """Load `text` and return the diagnostics it raises; fail if it loads."""
    with pytest.raises(ManifestError) as raised:
        load_manifest_text(text, filename="grants.yaml", **kwargs)  # type: ignore[arg-type]
    return raised.value.diagnostics


def account(name: str, email: str, secret: str, extra: str = "") -> str:
    """Return an account entry for appending to BASE (five lines, plus `extra`)."""
    lines = f"  - name: {name}\n    email: {email}\n    provider: google\n    secret: {secret}\n"
    return lines + textwrap.indent(textwrap.dedent(extra), "    ")


def test_example_loads() -> None:
    manifest = load_manifest(EXAMPLE)
    assert manifest.region is Region.US
    assert manifest.vault.mount == "secret"
    assert manifest.vault.path_prefix == "nylas/demo"
    assert len(manifest.accounts) >= 6
    assert {a.provider for a in manifest.accounts} >= {
        Provider.MICROSOFT,
        Provider.GOOGLE,
        Provider.IMAP,
    }
    assert any(a.ensure is Ensure.ABSENT for a in manifest.accounts)
    assert any(a.protect for a in manifest.accounts)
    assert [r.destroy for r in manifest.removed] == [False]


def test_example_secret_names_equal_account_names() -> None:
    manifest = load_manifest(EXAMPLE)
    for entry in manifest.accounts:
        assert entry.secret_path == f"nylas/demo/{entry.name}"


def test_example_state_path_is_relative_to_its_directory() -> None:
    manifest = load_manifest(EXAMPLE)
    assert manifest.state.backend == "local"
    assert Path(manifest.state.path) == EXAMPLE.parent / ".grantctl" / "demo-state.json"


def test_example_passes_allowlist() -> None:
    manifest = load_manifest(EXAMPLE, allowed_prefixes=["secret/nylas/demo"])
    assert manifest.accounts


def test_manifest_path_and_digest() -> None:
    manifest = load_manifest(str(EXAMPLE))
    assert manifest.path == str(EXAMPLE)
    assert manifest.digest == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


def test_account_fields_and_defaults() -> None:
    manifest = load_manifest_text(BASE, filename="grants.yaml")
    (leyah,) = manifest.accounts
    assert leyah.name == "leyah"
    assert leyah.provider is Provider.MICROSOFT
    assert leyah.secret_path == "nylas/prod/leyah"
    assert leyah.scopes == ()
    assert leyah.ensure is Ensure.PRESENT
    assert leyah.protect is False
    assert leyah.credential_id is None
    assert leyah.line == 8
    assert manifest.policy.max_deletes == 5
    assert manifest.vault.kv_version == 2
    assert manifest.state.path == ".grantctl/state.json"


def test_minimal_fixture_uses_defaults() -> None:
    manifest = load_manifest(FIXTURES / "good" / "minimal.yaml")
    assert manifest.region is Region.EU
    assert manifest.vault.mount == "secret"
    assert manifest.vault.path_prefix == ""
    assert manifest.accounts[0].secret_path == "solo"


def test_vault_state_fixture() -> None:
    manifest = load_manifest(FIXTURES / "good" / "vault-state.yaml")
    assert manifest.state.backend == "vault"
    assert manifest.state.path == "grantctl/state/prod"
    assert manifest.vault.path_prefix == "nylas/prod"
    assert manifest.vault.kv_version == 1
    assert manifest.policy.max_deletes == 0
    room1, room2 = manifest.accounts
    assert room1.provider is Provider.EWS
    assert room1.scopes == ("ews.messages", "ews.calendars")
    assert room2.scopes == ()
    assert room2.secret_path == "nylas/prod/data/room-2"
    assert manifest.removed[0].destroy is True


def test_defaults_provider_applies() -> None:
    text = BASE.replace("    provider: microsoft\n", "") + "defaults:\n  provider: yahoo\n"
    manifest = load_manifest_text(text, filename="grants.yaml")
    assert manifest.accounts[0].provider is Provider.YAHOO


def test_missing_file_is_manifest_error() -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifest(FIXTURES / "does-not-exist.yaml")
    assert "cannot read the manifest" in raised.value.diagnostics[0].message


# (id, text, line, message fragment, account or None)
BAD_CASES = [
    ("version", BASE.replace("version: 1", "version: 2"), 1, "version: must be 1", None),
    (
        "version float",
        BASE.replace("version: 1", "version: 1.0"),
        1,
        "version: must be the integer 1, found 1.0",
        None,
    ),
    (
        "version quoted",
        BASE.replace("version: 1", "version: '1'"),
        1,
        "found the quoted string '1'; drop the quotes to write the integer 1",
        None,
    ),
    (
        "kv version quoted",
        BASE.replace("  mount: secret\n", "  mount: secret\n  kv_version: '2'\n"),
        6,
        "drop the quotes to write the integer 2",
        None,
    ),
    (
        "kv version float",
        BASE.replace("  mount: secret\n", "  mount: secret\n  kv_version: 2.0\n"),
        6,
        "2.0 is not a valid kv_version",
        None,
    ),
    (
        "max deletes float",
        BASE + "policy:\n  max_deletes: 3.0\n",
        13,
        "expected an integer, found 3.0",
        None,
    ),
    (
        "version missing",
        BASE.replace("version: 1\n", ""),
        1,
        "missing required key 'version'",
        None,
    ),
    ("region", BASE.replace("region: us", "region: useast"), 3, "not a valid region", None),
    (
        "region did you mean",
        BASE.replace("region: us", "region: eu1"),
        3,
        "did you mean 'eu'",
        None,
    ),
    (
        "nylas api uri",
        BASE.replace("  region: us\n", "  region: us\n  api_uri: http://127.0.0.1:1\n"),
        4,
        "set the environment variable GRANTCTL_NYLAS_API_URI",
        None,
    ),
    (
        "vault address",
        BASE.replace("  mount: secret\n", "  mount: secret\n  address: http://127.0.0.1:1\n"),
        6,
        "set the environment variable VAULT_ADDR",
        None,
    ),
    (
        "vault token",
        BASE.replace("  mount: secret\n", "  mount: secret\n  token: abc\n"),
        6,
        "VAULT_TOKEN",
        None,
    ),
    ("top-level typo", BASE + "polcy:\n  max_deletes: 3\n", 12, "did you mean 'policy'", None),
    ("account typo", BASE + "    ensur: absent\n", 12, "unknown key 'ensur'", "leyah"),
    ("bad name", BASE.replace("name: leyah", "name: Leyah"), 8, "lowercase letters", "Leyah"),
    ("missing email", BASE.replace("    email: leyah@example.com\n", ""), 8, "'email'", "leyah"),
    ("bad email", BASE.replace("leyah@example.com", "leyah.example.com"), 9, "email", "leyah"),
    ("provider", BASE.replace("provider: microsoft", "provider: gmail"), 10, "gmail", "leyah"),
    (
        "no provider",
        BASE.replace("    provider: microsoft\n", ""),
        8,
        "has no provider",
        "leyah",
    ),
    (
        "credential_id on imap",
        BASE.replace("provider: microsoft", "provider: imap")
        + "    credential_id: 7d3c9a4e-2b1f-4c8d-9e6a-5f0b1c2d3e4f\n",
        12,
        "not used by the imap provider",
        "leyah",
    ),
    ("credential_id form", BASE + "    credential_id: abc\n", 12, "UUID", "leyah"),
    ("ensure", BASE + "    ensure: gone\n", 12, "not a valid ensure", "leyah"),
    ("protect type", BASE + "    protect: 'yes'\n", 12, "expected true or false", "leyah"),
    (
        "protect quoted",
        BASE + '    protect: "true"\n',
        12,
        "expected true or false, found the quoted string 'true'; drop the quotes",
        "leyah",
    ),
    (
        "max deletes quoted",
        BASE + "policy:\n  max_deletes: '3'\n",
        13,
        "expected an integer, found the quoted string '3'; drop the quotes",
        None,
    ),
    ("scopes repeat", BASE + "    scopes: [a, a]\n", 12, "same value more than once", "leyah"),
    ("max_deletes", BASE + "policy:\n  max_deletes: -1\n", 13, "at least 0", None),
    (
        "duplicate name",
        BASE + account("leyah", "other@example.com", "other"),
        12,
        "duplicate account name 'leyah'",
        "leyah",
    ),
    (
        "duplicate email",
        BASE + account("other", "LEYAH@example.com", "other"),
        13,
        "on line 9 uses it too (emails are compared case-insensitively)",
        "other",
    ),
    (
        "shared secret",
        BASE + account("other", "other@example.com", "leyah"),
        15,
        "each mailbox needs its own secret",
        "other",
    ),
    (
        "removed and listed",
        BASE + "removed:\n  - name: leyah\n",
        13,
        "both under accounts (line 8) and under removed",
        "leyah",
    ),
    ("removed destroy", BASE + "removed:\n  - name: x\n    destroy: 1\n", 14, "true or false", "x"),
    ("leading slash", BASE.replace("secret: leyah", "secret: /leyah"), 11, "leading '/'", "leyah"),
    ("dot dot", BASE.replace("secret: leyah", "secret: a/../b"), 11, "'..'", "leyah"),
    ("data prefix", BASE.replace("secret: leyah", "secret: data/leyah"), 11, "KV v2", "leyah"),
    ("metadata", BASE.replace("secret: leyah", "secret: metadata/leyah"), 11, "KV v2", "leyah"),
    ("mount prefix", BASE.replace("secret: leyah", "secret: secret/x"), 11, "mount name", "leyah"),
    (
        "double path prefix",
        BASE.replace("secret: leyah", "secret: nylas/prod/leyah"),
        11,
        "write it relative to the prefix: 'leyah'",
        "leyah",
    ),
    ("empty segment", BASE.replace("secret: leyah", "secret: a//b"), 11, "empty segment", "leyah"),
    ("odd character", BASE.replace("secret: leyah", "secret: a?b"), 11, "character", "leyah"),
    (
        "prefix with mount",
        BASE.replace("path_prefix: nylas/prod", "path_prefix: secret/data/nylas"),
        6,
        "vault.path_prefix 'secret/data/nylas' starts with the mount name",
        None,
    ),
    (
        "kv version",
        BASE.replace("  mount: secret\n", "  mount: secret\n  kv_version: 3\n"),
        6,
        "1, 2",
        None,
    ),
    ("state backend", BASE + "state:\n  backend: consul\n", 13, "not a valid backend", None),
    (
        "vault state without path",
        BASE + "state:\n  backend: vault\n",
        13,
        "state.path is required",
        None,
    ),
    ("vault state path", BASE + "state:\n  backend: vault\n  path: /x\n", 14, "leading '/'", None),
    (
        "local state absolute",
        BASE + "state:\n  backend: local\n  path: /tmp/state.json\n",
        14,
        "relative to the manifest's directory",
        None,
    ),
    ("local state directory", BASE + "state:\n  path: .\n", 13, "must name a file", None),
    ("local state nul", BASE + 'state:\n  path: "x\\0y"\n', 13, "not printable", None),
    (
        "local state above",
        BASE + "state:\n  path: state/../../state.json\n",
        13,
        "without '..' segments",
        None,
    ),
    (
        "accounts not list",
        BASE.split("accounts:", maxsplit=1)[0] + "accounts: leyah\n",
        7,
        "expected a list",
        None,
    ),
    (
        "account not mapping",
        BASE.split("accounts:", maxsplit=1)[0] + "accounts:\n  - leyah\n",
        8,
        "a mapping",
        None,
    ),
    ("top level list", "- version: 1\n", 1, "must be a mapping", None),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment", "account_name"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_manifest(text: str, line: int, fragment: str, account_name: str | None) -> None:
    diagnostics = diagnostics_of(text)
    matching = [d for d in diagnostics if fragment in d.message]
    assert matching, f"no diagnostic contains {fragment!r}: {[str(d) for d in diagnostics]}"
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    assert matching[0].line == line
    assert matching[0].column > 0
    assert matching[0].account == account_name
    assert matching[0].file == "grants.yaml"


def test_problem_in_plain_yaml_has_exact_column() -> None:
    # A plain manifest is first read without value positions. A problem must still be
    # reported where its value or key starts, so the loader reads the text again.
    text = BASE.replace("provider: microsoft", "provider: microsoft\n    scopes: [Mail.Read, 7]")
    text += "    colour: blue\n"
    diagnostics = diagnostics_of(text)
    assert [(d.line, d.column) for d in diagnostics] == [(11, 25), (13, 5)], diagnostics


def test_every_error_is_collected() -> None:
    text = BASE.replace("region: us", "region: mars").replace("secret: leyah", "secret: /leyah")
    text += "    protect: maybe\n"
    diagnostics = diagnostics_of(text)
    assert [d.line for d in diagnostics] == [3, 11, 12]


def test_diagnostics_are_sorted_by_line() -> None:
    text = BASE + account("leyah", "leyah@example.com", "leyah") + "polcy: {}\n"
    lines = [d.line for d in diagnostics_of(text)]
    assert lines == sorted(lines)
    assert len(lines) == 4


def test_error_message_lists_every_diagnostic() -> None:
    text = BASE.replace("region: us", "region: mars") + "    protect: maybe\n"
    with pytest.raises(ManifestError) as raised:
        load_manifest_text(text, filename="grants.yaml")
    assert "(2 errors)" in str(raised.value)
    assert "grants.yaml:3:11" in str(raised.value)
    assert "grants.yaml:12:14 (account 'leyah')" in str(raised.value)


def test_allowlist_rejects_outside_path() -> None:
    diagnostics = diagnostics_of(BASE, allowed_prefixes=["secret/nylas/staging"])
    (diagnostic,) = diagnostics
    assert diagnostic.account == "leyah"
    assert diagnostic.line == 11
    assert "'secret/nylas/prod/leyah' is outside" in diagnostic.message
    assert "secret/nylas/staging" in diagnostic.message


def test_allowlist_matches_segment_boundary() -> None:
    diagnostics = diagnostics_of(BASE, allowed_prefixes=["secret/nylas/pro"])
    assert len(diagnostics) == 1


@pytest.mark.parametrize(
    "prefix", ["secret", "secret/nylas", "secret/nylas/prod/", " secret/nylas/prod/leyah "]
)
def test_allowlist_accepts_prefix(prefix: str) -> None:
    manifest = load_manifest_text(BASE, filename="grants.yaml", allowed_prefixes=[prefix])
    assert manifest.accounts


def test_allowlist_checks_vault_state_path() -> None:
    text = BASE + "state:\n  backend: vault\n  path: grantctl/state\n"
    (diagnostic,) = diagnostics_of(text, allowed_prefixes=["secret/nylas"])
    assert diagnostic.line == 14
    assert "state path 'secret/grantctl/state' is outside" in diagnostic.message


def test_allowed_prefixes_from_environment() -> None:
    environ = {"GRANTCTL_VAULT_ALLOWED_PREFIXES": " secret/nylas/prod/ ,, kv/team "}
    assert allowed_prefixes_from_environment(environ) == ("secret/nylas/prod", "kv/team")


def test_allowed_prefixes_unset() -> None:
    assert allowed_prefixes_from_environment({}) == ()


def test_kv1_accepts_data_segment() -> None:
    text = BASE.replace("  mount: secret\n", "  mount: secret\n  kv_version: 1\n")
    text = text.replace("secret: leyah", "secret: data/leyah")
    manifest = load_manifest_text(text, filename="grants.yaml")
    assert manifest.accounts[0].secret_path == "nylas/prod/data/leyah"


def test_scopes_fall_back_to_defaults() -> None:
    text = BASE + "  - name: b\n    email: b@example.com\n    secret: b\n    provider: imap\n"
    text += "    scopes: []\ndefaults:\n  scopes: [Mail.Read]\n"
    first, second = load_manifest_text(text, filename="grants.yaml").accounts
    assert first.scopes == ("Mail.Read",)
    assert second.scopes == ()


@pytest.mark.parametrize("value", ["[]", "{a: b}", "[microsoft]"])
def test_unhashable_provider_is_diagnostic(value: str) -> None:
    """A list or mapping as the provider is reported at its line, not raised as TypeError."""
    text = BASE.replace("provider: microsoft", f"provider: {value}")
    diagnostics = diagnostics_of(text)
    assert any(item.line == 10 and item.account == "leyah" for item in diagnostics), diagnostics


def test_state_link_out_rejected(tmp_path: Path) -> None:
    """A directory link beside the manifest cannot lead the local state out of its directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "escape").symlink_to(outside, target_is_directory=True)
    (repository / "inside").mkdir()
    manifest = repository / "grants.yaml"
    manifest.write_text(BASE + "state:\n  path: escape/state.json\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="outside the manifest's directory") as caught:
        load_checked_manifest(str(manifest), environ={})
    assert str(outside) in caught.value.message
    validated = invoke(["validate", str(manifest)])
    assert validated.exit_code == 1
    assert "outside the manifest's directory" in validated.stderr

    manifest.write_text(BASE + "state:\n  path: inside/state.json\n", encoding="utf-8")
    assert load_checked_manifest(str(manifest), environ={}).state.backend == "local"
    assert list(outside.iterdir()) == []
