"""Checks on a manifest that JSON Schema cannot express, collected with the schema errors.

The checks cover unique names, emails and secrets, provider rules, the form of Vault paths,
and the allowlist of Vault path prefixes. Each reads the parsed document defensively,
because a value may still have the wrong type (the schema check reports that). So every
problem in a file is found in one run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PureWindowsPath
from typing import Any

from reconciler.manifest_schema import Reporter, preview
from reconciler.model import OAUTH_PROVIDERS, Provider
from reconciler.yamlstrict import YamlPath

_PROVIDERS = frozenset(provider.value for provider in Provider)
_OAUTH_LIST = sorted(provider.value for provider in OAUTH_PROVIDERS)
_OAUTH_NAMES = ", ".join(_OAUTH_LIST[:-1]) + " and " + _OAUTH_LIST[-1]
# One address, a domain with a dot, no spaces: a sanity check, not RFC 5322.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_MAX_EMAIL_LENGTH = 254
# Characters allowed in one segment of a Vault path here. Anything else ('?', '#', '%',
# spaces) would have to be escaped in the request URL and is almost always a typo.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._@+=,:~-]+")
# Path segments the KV v2 HTTP API inserts after the mount; grantctl adds them itself.
_KV2_API_SEGMENTS = ("data", "metadata")


def mapping_at(data: Any, key: str) -> dict[str, Any]:
    """Return `data[key]` when it is a mapping, else an empty one."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def entries_at(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """Return (index, entry) for each mapping in the list `data[key]`."""
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    return [(index, entry) for index, entry in enumerate(value) if isinstance(entry, dict)]


def string_at(mapping: dict[str, Any], key: str, default: str = "") -> str:
    """Return `mapping[key]` when it is a string, else `default`."""
    value = mapping.get(key, default)
    return value if isinstance(value, str) else default


def resolve_provider(account: dict[str, Any], data: Any) -> str | None:
    """Return the account's provider, else `defaults.provider`; None if neither is valid."""
    if "provider" in account:
        return _known_provider(account["provider"])
    return _known_provider(mapping_at(data, "defaults").get("provider"))


def _known_provider(value: object) -> str | None:
    # A YAML list or mapping is unhashable, so test the type before the set lookup.
    return value if isinstance(value, str) and value in _PROVIDERS else None


def vault_mount(data: Any) -> str:
    """Return `vault.mount`, or the default mount."""
    return string_at(mapping_at(data, "vault"), "mount", "secret") or "secret"


def path_prefix(data: Any) -> str:
    """Return `vault.path_prefix` without slashes at either end."""
    return string_at(mapping_at(data, "vault"), "path_prefix").strip("/")


def join_secret_path(prefix: str, secret: str) -> str:
    """Return the mount-relative path of a secret: `prefix/secret` with no empty segment."""
    return "/".join(part for part in (prefix.strip("/"), secret) if part)


def check_rules(data: Any, reporter: Reporter, allowed_prefixes: Sequence[str]) -> None:
    """Report every semantic problem of `data` through `reporter`."""
    _check_accounts(data, reporter)
    _check_unique(data, reporter, "name", "account name", casefold=False)
    _check_unique(data, reporter, "email", "email", casefold=True)
    _check_unique_secrets(data, reporter)
    _check_removed(data, reporter)
    _check_vault_paths(data, reporter)
    _check_state(data, reporter)
    if allowed_prefixes:
        _check_allowlist(data, reporter, allowed_prefixes)


def _check_accounts(data: Any, reporter: Reporter) -> None:
    """Check each account's provider, provider-specific keys and email."""
    defaults_provider = mapping_at(data, "defaults").get("provider")
    for index, account in entries_at(data, "accounts"):
        path: YamlPath = ("accounts", index)
        provider = resolve_provider(account, data)
        if "provider" not in account and defaults_provider is None:
            reporter.add(
                path,
                f"{_label(account, index)} has no provider; set `provider` on the account "
                "or `defaults.provider`",
            )
        if (
            provider is not None
            and "credential_id" in account
            and Provider(provider) not in OAUTH_PROVIDERS
        ):
            reporter.add(
                (*path, "credential_id"),
                f"credential_id is not used by the {provider} provider; only {_OAUTH_NAMES} "
                f"accounts take one, and {provider} credentials come from the secret",
                at_key=True,
            )
        email = account.get("email")
        if isinstance(email, str) and (
            len(email) > _MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email)
        ):
            reporter.add((*path, "email"), f"{preview(email)} is not a valid email address")


def _label(account: dict[str, Any], index: int) -> str:
    name = account.get("name")
    return f"account {name!r}" if isinstance(name, str) and name else f"accounts[{index}]"


def _check_unique(data: Any, reporter: Reporter, key: str, noun: str, *, casefold: bool) -> None:
    """Report every account whose `key` repeats an earlier account's value."""
    seen: dict[str, int] = {}
    for index, account in entries_at(data, "accounts"):
        value = account.get(key)
        if not isinstance(value, str) or not value:
            continue
        token = value.casefold() if casefold else value
        if token not in seen:
            seen[token] = index
            continue
        first = seen[token]
        first_line = reporter.position(("accounts", first, key))[0]
        compared = " (emails are compared case-insensitively)" if casefold else ""
        reporter.add(
            ("accounts", index, key),
            f"duplicate {noun} {value!r}: {_label(data['accounts'][first], first)} on line "
            f"{first_line} uses it too{compared}",
        )


def _check_unique_secrets(data: Any, reporter: Reporter) -> None:
    """Report accounts sharing one secret: a refresh token or password belongs to one mailbox."""
    prefix = path_prefix(data)
    seen: dict[str, int] = {}
    for index, account in entries_at(data, "accounts"):
        secret = account.get("secret")
        if not isinstance(secret, str) or not secret:
            continue
        full = join_secret_path(prefix, secret)
        if full not in seen:
            seen[full] = index
            continue
        first = seen[full]
        first_line = reporter.position(("accounts", first, "secret"))[0]
        reporter.add(
            ("accounts", index, "secret"),
            f"secret {secret!r} is also used by {_label(data['accounts'][first], first)} on line "
            f"{first_line}; each mailbox needs its own secret",
        )


def _check_removed(data: Any, reporter: Reporter) -> None:
    """Report removed entries that repeat, or that name an account still listed."""
    accounts = {
        account["name"]: index
        for index, account in entries_at(data, "accounts")
        if isinstance(account.get("name"), str)
    }
    seen: set[str] = set()
    for index, entry in entries_at(data, "removed"):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        path: YamlPath = ("removed", index, "name")
        if name in seen:
            reporter.add(path, f"{name!r} is listed under removed more than once")
        seen.add(name)
        if name in accounts:
            line = reporter.position(("accounts", accounts[name]))[0]
            reporter.add(
                path,
                f"{name!r} is listed both under accounts (line {line}) and under removed; "
                "keep it in accounts to manage it, or delete that entry to remove it",
            )


def _check_vault_paths(data: Any, reporter: Reporter) -> None:
    """Check the form of `vault.path_prefix` and of every account's `secret`."""
    vault = mapping_at(data, "vault")
    mount = vault_mount(data)
    kv_version = vault.get("kv_version", 2)
    prefix = vault.get("path_prefix")
    if isinstance(prefix, str) and prefix.strip("/"):
        # A trailing '/' on the prefix is harmless and common, so only the inner part is checked.
        problem = vault_path_problem(prefix.rstrip("/"), mount=mount, kv_version=kv_version)
        if problem:
            reporter.add(("vault", "path_prefix"), f"vault.path_prefix {preview(prefix)} {problem}")
    clean_prefix = path_prefix(data)
    for index, account in entries_at(data, "accounts"):
        secret = account.get("secret")
        if not isinstance(secret, str) or not secret:
            continue
        problem = vault_path_problem(secret, mount=mount, kv_version=kv_version)
        if not problem and clean_prefix and (secret + "/").startswith(clean_prefix + "/"):
            rest = secret[len(clean_prefix) :].lstrip("/") or "NAME"
            problem = (
                f"already starts with vault.path_prefix {clean_prefix!r}, which grantctl adds "
                f"itself; write it relative to the prefix: {rest!r}"
            )
        if problem:
            reporter.add(("accounts", index, "secret"), f"secret {preview(secret)} {problem}")


def vault_path_problem(path: str, *, mount: str, kv_version: object) -> str:
    """Return why `path` is not a clean KV path relative to `mount`, or '' when it is."""
    return _path_syntax_problem(path) or _reserved_start_problem(path, mount, kv_version)


def _path_syntax_problem(path: str) -> str:
    if path.startswith("/"):
        return f"must be relative to the mount, without a leading '/': write {path.lstrip('/')!r}"
    if path.endswith("/"):
        return "must name a secret, not end with '/'"
    segments = path.split("/")
    if "" in segments:
        return "contains an empty segment ('//')"
    if any(segment in (".", "..") for segment in segments):
        return "must not contain '.' or '..' segments"
    bad = next((segment for segment in segments if not _PATH_SEGMENT.fullmatch(segment)), None)
    if bad is not None:
        return f"contains a character outside letters, digits and . _ @ + = , : ~ - (in {bad!r})"
    return ""


def _reserved_start_problem(path: str, mount: str, kv_version: object) -> str:
    """Return why `path` repeats a part grantctl adds itself (the mount, data/), or ''."""
    if path == mount or path.startswith(mount + "/"):
        rest = path[len(mount) :].lstrip("/") or "NAME"
        return (
            f"starts with the mount name {mount!r}, which grantctl adds itself; "
            f"write it relative to the mount: {rest!r}"
        )
    first, _, rest = path.partition("/")
    # On KV v1 `data/` is an ordinary path, so only v2 mounts reject it.
    if kv_version != 1 and first in _KV2_API_SEGMENTS:
        return (
            f"starts with '{first}/', a segment of the KV v2 HTTP API that grantctl "
            f"adds itself; write {rest or 'NAME'!r}"
        )
    return ""


def _check_state(data: Any, reporter: Reporter) -> None:
    """Check that the state path is a clean KV path (vault) or a file below the manifest (local)."""
    state = mapping_at(data, "state")
    if state.get("backend", "local") == "local":
        path = state.get("path")
        problem = _local_state_problem(path) if isinstance(path, str) else ""
        if problem:
            reporter.add(("state", "path"), f"state.path {preview(path)} {problem}")
        return
    if state.get("backend") != "vault":
        return
    path = state.get("path")
    if "path" not in state:
        reporter.add(
            ("state",),
            "state.path is required when state.backend is vault: a KV path relative to the "
            "mount, such as 'grantctl/state/prod'",
        )
    elif isinstance(path, str) and path:
        kv_version = mapping_at(data, "vault").get("kv_version", 2)
        problem = vault_path_problem(path, mount=vault_mount(data), kv_version=kv_version)
        if problem:
            reporter.add(("state", "path"), f"state.path {preview(path)} {problem}")


def _local_state_problem(path: str) -> str:
    """Return why a local state `path` cannot name a file below the manifest, or ''."""
    if not path.isprintable():
        return "contains a character that is not printable"
    # Windows path rules accept both separators and detect every root and drive, POSIX ones too.
    windows = PureWindowsPath(path)
    if windows.anchor or ".." in windows.parts:
        # A pull request's manifest would otherwise make a CI plan create lock files, and a
        # later apply write the state, wherever the runner may write.
        return (
            "must be a path relative to the manifest's directory without '..' segments; "
            "keep the state file there, or keep the state in Vault (state.backend: vault)"
        )
    if re.split(r"[\\/]", path)[-1] in {"", "."}:
        return "must name a file, not a directory, such as '.grantctl/state.json'"
    return ""


def _check_allowlist(data: Any, reporter: Reporter, allowed: Sequence[str]) -> None:
    """Report every Vault path outside the allowed `mount/prefix` list."""
    mount = vault_mount(data)
    prefix = path_prefix(data)
    listed = ", ".join(allowed)
    for index, account in entries_at(data, "accounts"):
        secret = account.get("secret")
        if not isinstance(secret, str) or not secret:
            continue
        full = f"{mount}/{join_secret_path(prefix, secret)}"
        if not is_allowed(full, allowed):
            reporter.add(
                ("accounts", index, "secret"),
                f"the secret path {full!r} is outside the allowed Vault prefixes ({listed}); "
                "move the secret, or ask the operators to extend GRANTCTL_VAULT_ALLOWED_PREFIXES",
            )
    state = mapping_at(data, "state")
    state_path = state.get("path")
    if state.get("backend") == "vault" and isinstance(state_path, str) and state_path:
        full = f"{mount}/{state_path.strip('/')}"
        if not is_allowed(full, allowed):
            reporter.add(
                ("state", "path"),
                f"the state path {full!r} is outside the allowed Vault prefixes ({listed})",
            )


def is_allowed(full_path: str, allowed: Sequence[str]) -> bool:
    """Return whether `mount/path` lies under one of `allowed` at a path-segment boundary."""
    return any(full_path == prefix or full_path.startswith(prefix + "/") for prefix in allowed)
