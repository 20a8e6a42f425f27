"""JSON Schema validation of a parsed manifest, with messages rewritten for people.

The schema (`schemas/manifest.schema.json`) is the single description of the format that
editors also use. This module collects every error `Draft202012Validator` finds and places
each at the YAML line and column of the offending key or value, with the account it belongs
to. It replaces jsonschema's raw wording where it does not help: "Additional properties are
not allowed" becomes "unknown key 'x'; did you mean 'y'?".
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastjsonschema

from reconciler.errors import Diagnostic
from reconciler.yamlstrict import LoadedYaml, Position, YamlPath

if TYPE_CHECKING:
    import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies

# Keys that hold environment-specific settings, per section, and the variable that sets each
# one instead. A manifest comes from a pull request, so it must not choose where the API key
# or the Vault token is sent.
_ENVIRONMENT_KEYS: Mapping[str, Mapping[str, str]] = {
    "nylas": {
        "api_uri": "GRANTCTL_NYLAS_API_URI",
        "api_url": "GRANTCTL_NYLAS_API_URI",
        "api_base_url": "GRANTCTL_NYLAS_API_URI",
        "base_url": "GRANTCTL_NYLAS_API_URI",
        "url": "GRANTCTL_NYLAS_API_URI",
        "uri": "GRANTCTL_NYLAS_API_URI",
        "host": "GRANTCTL_NYLAS_API_URI",
        "endpoint": "GRANTCTL_NYLAS_API_URI",
        "api_key": "NYLAS_API_KEY",
        "key": "NYLAS_API_KEY",
        "token": "NYLAS_API_KEY",
        "api_key_vault_path": "GRANTCTL_NYLAS_API_KEY_VAULT_PATH",
    },
    "vault": {
        "address": "VAULT_ADDR",
        "addr": "VAULT_ADDR",
        "url": "VAULT_ADDR",
        "uri": "VAULT_ADDR",
        "host": "VAULT_ADDR",
        "token": "VAULT_TOKEN",
        "namespace": "VAULT_NAMESPACE",
        "cacert": "VAULT_CACERT",
        "ca_cert": "VAULT_CACERT",
        "auth": "GRANTCTL_VAULT_AUTH",
        "auth_method": "GRANTCTL_VAULT_AUTH",
        "role": "GRANTCTL_VAULT_AUTH",
        "role_id": "GRANTCTL_VAULT_AUTH",
        "secret_id": "GRANTCTL_VAULT_AUTH",
        "allowed_prefixes": "GRANTCTL_VAULT_ALLOWED_PREFIXES",
    },
    "": {
        "api_key": "NYLAS_API_KEY",
        "nylas_api_key": "NYLAS_API_KEY",
        "api_uri": "GRANTCTL_NYLAS_API_URI",
        "vault_addr": "VAULT_ADDR",
        "vault_address": "VAULT_ADDR",
        "vault_token": "VAULT_TOKEN",
    },
}

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

# A description of the values each field's `pattern` accepts, by the field's key.
_PATTERN_HINTS = {
    "name": "1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
    "credential_id": "a UUID such as 3f2b6c1e-9a4d-4e8b-8f3a-2c1d5e7f9a0b",
    "mount": "a KV mount path such as 'secret' or 'kv/team', without slashes at either end",
}


@functools.lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """Return the manifest's JSON Schema, read once from the package data."""
    text = resources.files("reconciler").joinpath("schemas/manifest.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# A quoted string that would be an integer without its quotes (YAML 1.2, no leading zero).
# The length limit keeps `int()` away from Python's 4300-digit conversion limit.
_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,19})")


def _is_integer(_checker: Any, instance: Any) -> bool:
    """Return whether `instance` is an int: JSON Schema's own `integer` also accepts 1.0."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _same_value(value: Any, expected: Any) -> bool:
    """Return whether `value` equals `expected` with the same type, so 1.0 is not 1."""
    return type(value) is type(expected) and bool(value == expected)


def _const(validator: Any, expected: Any, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema  # noqa: PLC0415  # deferred: see _validator

    if not _same_value(instance, expected):
        yield jsonschema.ValidationError(f"{expected!r} was expected")


def _enum(validator: Any, choices: Any, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema  # noqa: PLC0415  # deferred: see _validator

    if not any(_same_value(instance, choice) for choice in choices):
        yield jsonschema.ValidationError(f"{instance!r} is not one of {choices!r}")


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    """Return Draft 2020-12 with a number's type mattering: `version: 1.0` is not 1.

    jsonschema is imported here, not at the top, because only an invalid manifest needs it
    and importing it adds about 0.13 s to every command.
    """
    import jsonschema  # noqa: PLC0415  # deferred: see _validator

    strict_class = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        validators={"const": _const, "enum": _enum},
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    return strict_class(manifest_schema())


@functools.lru_cache(maxsize=1)
def _compiled_check() -> Callable[[Any], Any]:
    """Return the schema compiled to Python by fastjsonschema, which raises on invalid data.

    It is the fast path for valid manifests: about 0.2 s instead of 2 s of CPU time for
    10,000 accounts. Only `_validator` reports errors, so messages keep their wording.
    fastjsonschema implements draft 7, which covers every keyword this schema uses. `format`
    is off as it is in `_validator`, and so is filling in `default` values, which would
    change the data the rules check. Unlike `_validator` it counts 1.0 as an integer equal
    to 1, so `is_valid_fast` only trusts it for data without floats.
    """
    return fastjsonschema.compile(manifest_schema(), use_formats=False, use_default=False)


def is_valid_fast(data: Any, *, may_hold_floats: bool = True) -> bool:
    """Return True only if `data` is valid; False means `_validator` has to decide.

    `may_hold_floats=False` skips the walk that looks for floats, for data whose reader
    rules them out.
    """
    if may_hold_floats and _contains_float(data):
        return False
    try:
        _compiled_check()(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _contains_float(data: Any) -> bool:
    if isinstance(data, float):
        return True
    if isinstance(data, dict):
        return any(_contains_float(value) for value in data.values())
    if isinstance(data, list):
        return any(_contains_float(item) for item in data)
    return False


def describe_path(path: YamlPath) -> str:
    """Return `path` as it reads in messages, e.g. `accounts[2].provider`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text or "the manifest"


def preview(value: Any) -> str:
    """Return a short description of a value for messages; never more than about 60 chars."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 48 else repr(value[:45] + "...")
    if isinstance(value, (int, float)):
        return str(value)
    return "a list" if isinstance(value, list) else "a mapping"


class Reporter:
    """Builds diagnostics positioned at a path of the loaded document, naming the account."""

    def __init__(self, loaded: LoadedYaml, filename: str) -> None:
        self.loaded = loaded
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []

    def position(self, path: YamlPath, *, at_key: bool = False) -> Position:
        """Return where `path` starts; falls back to the nearest ancestor that exists."""
        if at_key and path in self.loaded.key_positions:
            return self.loaded.key_positions[path]
        for end in range(len(path), -1, -1):
            found = self.loaded.value_positions.get(path[:end])
            if found is not None:
                return found
        return 1, 1

    def account_name(self, path: YamlPath) -> str | None:
        """Return the name of the account (or removed entry) that `path` lies in, if any."""
        if len(path) < 2 or path[0] not in ("accounts", "removed") or not isinstance(path[1], int):
            return None
        section = self.loaded.data.get(path[0]) if isinstance(self.loaded.data, dict) else None
        if not isinstance(section, list) or path[1] >= len(section):
            return None
        entry = section[path[1]]
        name = entry.get("name") if isinstance(entry, dict) else None
        return name if isinstance(name, str) and name else None

    def add(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        """Record a diagnostic about the value at `path` (or its key when `at_key`)."""
        line, column = self.position(path, at_key=at_key)
        self.diagnostics.append(
            Diagnostic(self.filename, line, column, message, self.account_name(path))
        )


def check_schema(data: Any, reporter: Reporter) -> None:
    """Report every schema error of `data`, skipping values the YAML loader already flagged."""
    if is_valid_fast(data, may_hold_floats=reporter.loaded.may_hold_floats):
        return
    for error in _validator().iter_errors(data):
        path: YamlPath = tuple(error.absolute_path)
        if path in reporter.loaded.flagged:
            continue
        for at_key, message_path, message in _rewrite(error, path):
            reporter.add(message_path, message, at_key=at_key)


def _rewrite(
    error: jsonschema.ValidationError, path: YamlPath
) -> Iterator[tuple[bool, YamlPath, str]]:
    """Yield (at_key, path, message) for one jsonschema error."""
    where = describe_path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties", {}))
        for key in error.instance:
            if key not in known:
                yield True, (*path, key), _unknown_key_message(path, key, known)
    elif error.validator == "required" and isinstance(error.instance, dict):
        for key in error.validator_value:
            if key not in error.instance:
                yield False, path, f"{where}: missing required key {key!r}"
    else:
        yield False, path, f"{where}: {_plain_message(error, path)}"


def _unknown_key_message(section: YamlPath, key: str, known: Sequence[str]) -> str:
    where = describe_path((*section, key))
    section_name = section[0] if len(section) == 1 and isinstance(section[0], str) else ""
    variable = (
        _ENVIRONMENT_KEYS.get(section_name, {}).get(key.lower()) if len(section) <= 1 else None
    )
    if variable:
        return (
            f"{where} is not accepted in a manifest: environment-specific settings never come "
            f"from the manifest, so that a change to it cannot redirect credentials; "
            f"set the environment variable {variable} instead"
        )
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} in {describe_path(section)}; did you mean {close[0]!r}?"
    return f"unknown key {key!r} in {describe_path(section)}; expected one of: {', '.join(known)}"


def _plain_message(error: jsonschema.ValidationError, path: YamlPath) -> str:
    """Return a plain sentence for a value-level schema error."""
    field = path[-1] if path and isinstance(path[-1], str) else ""
    rewrite = _REWRITES.get(error.validator)
    if rewrite is None:
        return str(error.message)[:200]
    return rewrite(error.instance, error.validator_value, field)


def _unquoted(value: Any) -> bool | int | None:
    """Return the boolean or integer that the string `value` spells, or None."""
    if not isinstance(value, str):
        return None
    if value in ("true", "false"):
        return value == "true"
    if _INTEGER_TEXT.fullmatch(value):
        return int(value)
    return None


def _quoted_hint(value: Any, fits: Callable[[bool | int], bool]) -> str:
    """Return advice to drop the quotes when `value` is a quoted boolean or integer that
    `fits` the field, or ''."""
    unquoted = _unquoted(value)
    if unquoted is None or not fits(unquoted):
        return ""
    kind = "boolean" if isinstance(unquoted, bool) else "integer"
    return f"; drop the quotes to write the {kind} {value}"


def _found(value: Any, hint: str) -> str:
    """Describe `value` for a "found ..." clause, naming it a quoted string when `hint` is set."""
    return f"the quoted string {preview(value)}" if hint else preview(value)


def _json_types(value: bool | int) -> set[str]:
    return {"boolean"} if isinstance(value, bool) else {"integer", "number"}


def _type_message(value: Any, expected: Any, field: str) -> str:
    names = expected if isinstance(expected, list) else [expected]
    wanted = " or ".join(_TYPE_NAMES.get(str(name), str(name)) for name in names)
    hint = _quoted_hint(value, lambda unquoted: bool(_json_types(unquoted) & set(names)))
    return f"expected {wanted}, found {_found(value, hint)}{hint}"


def _const_message(value: Any, expected: Any, field: str) -> str:
    if isinstance(value, float) and value == expected:
        return f"must be the integer {json.dumps(expected)}, found {preview(value)}"
    hint = _quoted_hint(value, lambda unquoted: _same_value(unquoted, expected))
    return f"must be {json.dumps(expected)}, found {_found(value, hint)}{hint}"


def _enum_message(value: Any, choices: Any, field: str) -> str:
    names = [str(choice) for choice in choices]
    message = (
        f"{preview(value)} is not a valid {field or 'value'}; expected one of: {', '.join(names)}"
    )
    hint = _quoted_hint(value, lambda unquoted: any(_same_value(unquoted, c) for c in choices))
    if hint or not isinstance(value, str):
        return message + hint
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _pattern_message(value: Any, pattern: Any, field: str) -> str:
    hint = _PATTERN_HINTS.get(field, f"a string matching {pattern}")
    return f"{preview(value)} is invalid; expected {hint}"


_REWRITES: Mapping[str, Callable[[Any, Any, str], str]] = {
    "type": _type_message,
    "enum": _enum_message,
    "pattern": _pattern_message,
    "const": _const_message,
    "minimum": lambda value, minimum, _: f"must be at least {minimum}, found {preview(value)}",
    "minLength": lambda value, minimum, _: "must not be empty",
    "uniqueItems": lambda value, unique, _: "lists the same value more than once",
}
