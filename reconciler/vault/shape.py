"""Check a secret's keys against its provider and build the connect request's settings.

Apply calls `connect_settings` right after `VaultSecretStore.read_secret`. Errors name the
account, the path and the keys at fault, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.errors import SecretShapeError
from reconciler.grammar import article
from reconciler.model import (
    INTEGER_SECRET_KEYS,
    OPTIONAL_SECRET_KEYS,
    REQUIRED_SECRET_KEYS,
    Provider,
)
from reconciler.secrets import Secret

MAX_PORT = 65535


def connect_settings(
    provider: Provider,
    data: Mapping[str, Secret],
    *,
    account: str,
    path: str,
    credential_id: str | None,
) -> dict[str, Secret | str | int]:
    """Return the `settings` object of `POST /v3/connect/custom` for `provider`.

    Required keys must be present and non-empty. Port keys become `int` and must be whole
    numbers from 1 to 65535. Keys the provider does not accept raise an error, because Nylas
    rejects unknown settings keys. `credential_id` is added for OAuth providers and ignored
    for the others, whose connect request has no such setting. Every other value stays a
    `Secret`.
    """
    required = REQUIRED_SECRET_KEYS[provider]
    allowed = set(required) | set(OPTIONAL_SECRET_KEYS[provider])
    missing = [key for key in required if key not in data]
    empty = [key for key in data if key in allowed and not data[key].reveal().strip()]
    unknown = sorted(key for key in data if key not in allowed)
    bad_ports = [
        key
        for key in data
        if key in allowed and key in INTEGER_SECRET_KEYS and key not in empty
        if _port(data[key]) is None
    ]
    problems = _describe(missing=missing, empty=empty, unknown=unknown, bad_ports=bad_ports)
    if problems:
        raise SecretShapeError(
            f"secret {path} of account {account!r} ({provider.value}) is invalid: "
            + "; ".join(problems),
            path=path,
            hint=_hint(provider, required, allowed),
        )

    settings: dict[str, Secret | str | int] = {}
    for key, value in data.items():
        if key in INTEGER_SECRET_KEYS:
            settings[key] = int(value.reveal().strip())
        else:
            settings[key] = value
    if credential_id and provider.uses_refresh_token:
        settings["credential_id"] = credential_id
    return settings


def _port(value: Secret) -> int | None:
    text = value.reveal().strip()
    if not text.isdigit() or not text.isascii():
        return None
    number = int(text)
    return number if 1 <= number <= MAX_PORT else None


def _describe(
    *, missing: list[str], empty: list[str], unknown: list[str], bad_ports: list[str]
) -> list[str]:
    problems = []
    if missing:
        problems.append(_keys("missing", missing))
    if empty:
        problems.append(_keys("empty", empty))
    if bad_ports:
        number = "a port number" if len(bad_ports) == 1 else "port numbers"
        problems.append(f"{_and_names(bad_ports)} must be {number} from 1 to {MAX_PORT}")
    if unknown:
        problems.append(_keys("unknown", unknown))
    return problems


def _keys(adjective: str, keys: list[str]) -> str:
    return f"{adjective} {'key' if len(keys) == 1 else 'keys'} {_names(keys)}"


def _and_names(keys: list[str]) -> str:
    quoted = [repr(key) for key in keys]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _names(keys: list[str]) -> str:
    return ", ".join(repr(key) for key in keys)


def _hint(provider: Provider, required: tuple[str, ...], allowed: set[str]) -> str:
    optional = sorted(allowed - set(required))
    hint = f"{article(provider.value)} secret needs {_names(list(required))}"
    if optional:
        hint += f" and may hold {_names(optional)}"
    return hint + "; fix the secret in Vault and run plan again"
