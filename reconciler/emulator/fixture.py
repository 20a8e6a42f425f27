"""Fixture loading and validation for the Nylas emulator.

A fixture is a YAML file or a dict with `api_keys`, `rate_limit`, `connectors`, `identities`
(credentials the fake providers accept) and `grants` (grants that exist before the run).
Validation collects every problem, names the file and entry, and never prints a value of a
credential field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import yaml

from reconciler.emulator.store import (
    OAUTH_PROVIDERS,
    PROVIDERS,
    GrantRecord,
    Identity,
    new_grant_id,
    scopes_tuple,
)
from reconciler.errors import ConfigError

DEFAULT_API_KEY = "nyk_emulator_key"

# Per provider: the credential key, the password key (None for OAuth), and whether the
# identity's email defaults to the credential (it does for IMAP and iCloud usernames).
_IDENTITY_CREDENTIALS: dict[str, tuple[str, str | None, bool]] = {
    **dict.fromkeys(OAUTH_PROVIDERS, ("refresh_token", None, False)),
    "imap": ("imap_username", "imap_password", True),
    "icloud": ("username", "password", True),
    "ews": ("ews_username", "ews_password", False),
}
_IDENTITY_COMMON = {"provider", "email", "scopes", "valid", "name"}
_GRANT_STRINGS = (
    "id",
    "name",
    "ip",
    "user_agent",
    "state",
    "credential_id",
    "workspace_id",
    "account_id",
)
_GRANT_KEYS = {
    "provider",
    "email",
    "status",
    "scopes",
    "created_at",
    "updated_at",
    "blocked",
    "settings",
    *_GRANT_STRINGS,
}
_TOP_LEVEL_KEYS = {"api_keys", "rate_limit", "connectors", "identities", "grants"}


class FixtureError(ConfigError):
    """Invalid emulator fixture, identity or grant, with every problem listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        lines = ["invalid emulator fixture:", *(f"  {problem}" for problem in self.problems)]
        super().__init__(
            "\n".join(lines), hint="fix the entries listed and start the emulator again"
        )


@dataclass
class Fixture:
    """A validated fixture. `connectors` None means every provider has a connector."""

    api_keys: list[str] = field(default_factory=lambda: [DEFAULT_API_KEY])
    rate_limit: int | None = None
    connectors: tuple[str, ...] | None = None
    identities: list[Identity] = field(default_factory=list)
    grants: list[GrantRecord] = field(default_factory=list)


def load_fixture(source: Mapping[str, object] | str | Path | None, *, now: int) -> Fixture:
    """Read and validate a fixture from a dict, a YAML file path or None (an empty fixture).

    `now` is the creation time given to fixture grants without `created_at`.
    """
    if source is None:
        return Fixture()
    if isinstance(source, Mapping):
        return parse_fixture(source, origin="fixture", now=now)
    path = Path(source)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise FixtureError([f"{path}: cannot be read: {error.strerror}"]) from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise FixtureError([f"{where}: not valid YAML"]) from error
    if document is None:
        return Fixture()
    if not isinstance(document, Mapping):
        raise FixtureError([f"{path}: the top level must be a mapping"])
    return parse_fixture(document, origin=str(path), now=now)


def parse_fixture(document: Mapping[str, object], *, origin: str, now: int) -> Fixture:
    """Validate a fixture document and raise FixtureError listing every problem."""
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    problems = [f"{origin}: unknown key {key!r}" for key in unknown]
    fixture = Fixture()
    _parse_application(document, origin, fixture, problems)
    for index, entry in enumerate(_entries(document, "identities", origin, problems)):
        identity = parse_identity(entry, f"{origin}: identities[{index}]", problems)
        if identity is not None:
            fixture.identities.append(identity)
    for index, entry in enumerate(_entries(document, "grants", origin, problems)):
        grant = parse_grant(entry, f"{origin}: grants[{index}]", problems, now=now)
        if grant is not None:
            fixture.grants.append(grant)
    if problems:
        raise FixtureError(problems)
    return fixture


def _parse_application(
    document: Mapping[str, object], origin: str, fixture: Fixture, problems: list[str]
) -> None:
    """Read the application-wide keys: api_keys, rate_limit and connectors."""
    if "api_keys" in document:
        keys = document["api_keys"]
        if _is_string_list(keys) and keys:
            fixture.api_keys = list(keys)
        else:
            problems.append(f"{origin}: api_keys must be a non-empty list of strings")
    rate_limit = document.get("rate_limit")
    if rate_limit is not None:
        if isinstance(rate_limit, int) and not isinstance(rate_limit, bool) and rate_limit >= 0:
            fixture.rate_limit = rate_limit
        else:
            problems.append(f"{origin}: rate_limit must be an integer >= 0 (0 disables it)")
    connectors = document.get("connectors")
    if connectors is not None:
        if _is_string_list(connectors) and set(connectors) <= set(PROVIDERS):
            fixture.connectors = tuple(connectors)
        else:
            providers = ", ".join(PROVIDERS)
            problems.append(f"{origin}: connectors must be a list of providers from {providers}")


def _entries(
    document: Mapping[str, object], key: str, origin: str, problems: list[str]
) -> list[object]:
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{origin}: {key} must be a list")
        return []
    return value


def parse_identity(entry: object, where: str, problems: list[str]) -> Identity | None:
    """Validate one identity entry, appending problems and returning None when invalid."""
    if not isinstance(entry, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    provider = entry.get("provider")
    if provider not in _IDENTITY_CREDENTIALS:
        problems.append(
            f"{where}: provider must be one of {', '.join(PROVIDERS)}, got {provider!r}"
        )
        return None

    credential_key, password_key, email_defaults = _IDENTITY_CREDENTIALS[str(provider)]
    allowed = _IDENTITY_COMMON | {credential_key} | ({password_key} if password_key else set())
    before = len(problems)
    problems += [
        f"{where}: unknown key {key!r} for provider {provider}"
        for key in sorted(set(entry) - allowed)
    ]
    required = [credential_key] + ([password_key] if password_key else [])
    if not email_defaults:
        required.append("email")
    for key in required:
        if not isinstance(entry.get(key), str) or not entry[key]:
            problems.append(f"{where}: {key} is missing or not a non-empty string")
    _check_optional(entry, where, problems, name=str, email=str, valid=bool)
    scopes = entry.get("scopes", [])
    if not _is_string_list(scopes):
        problems.append(f"{where}: scopes must be a list of strings")
    if len(problems) > before:
        return None

    return Identity(
        provider=str(provider),
        credential=entry[credential_key],
        password=entry[password_key] if password_key else None,
        email=entry.get("email") or entry[credential_key],
        scopes=scopes_tuple(scopes),
        name=entry.get("name", ""),
        valid=entry.get("valid", True),
    )


def parse_grant(entry: object, where: str, problems: list[str], *, now: int) -> GrantRecord | None:
    """Validate one pre-existing grant entry, appending problems and returning None when invalid."""
    if not isinstance(entry, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    found = _grant_problems(entry, where)
    if found:
        problems += found
        return None

    created_at = entry.get("created_at", now)
    return GrantRecord(
        id=entry.get("id") or new_grant_id(),
        provider=entry["provider"],
        email=entry["email"],
        scope=list(scopes_tuple(entry.get("scopes", []))),
        created_at=created_at,
        updated_at=entry.get("updated_at", created_at),
        grant_status=entry.get("status", "valid"),
        blocked=entry.get("blocked", False),
        settings=dict(entry.get("settings", {})),
        **{name: entry.get(name, "") for name in _GRANT_STRINGS if name != "id"},
    )


def _grant_problems(entry: Mapping[str, object], where: str) -> list[str]:
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - _GRANT_KEYS)]
    if entry.get("provider") not in PROVIDERS:
        providers = ", ".join(PROVIDERS)
        problems.append(
            f"{where}: provider must be one of {providers}, got {entry.get('provider')!r}"
        )
    if not isinstance(entry.get("email"), str) or not entry["email"]:
        problems.append(f"{where}: email is missing or not a non-empty string")
    if entry.get("status", "valid") not in ("valid", "invalid"):
        problems.append(f"{where}: status must be valid or invalid, got {entry.get('status')!r}")
    if not _is_string_list(entry.get("scopes", [])):
        problems.append(f"{where}: scopes must be a list of strings")

    column_types = dict.fromkeys(_GRANT_STRINGS, str)
    _check_optional(
        entry,
        where,
        problems,
        created_at=int,
        updated_at=int,
        blocked=bool,
        settings=dict,
        **column_types,
    )
    return problems


def _check_optional(
    entry: Mapping[str, object], where: str, problems: list[str], **types: type
) -> None:
    for key, expected in types.items():
        if key not in entry:
            continue
        value = entry[key]
        # bool is a subclass of int, so integers must exclude it explicitly.
        wrong_bool = expected is int and isinstance(value, bool)
        if not isinstance(value, expected) or wrong_bool:
            problems.append(f"{where}: {key} must be of type {expected.__name__}")


def _is_string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
