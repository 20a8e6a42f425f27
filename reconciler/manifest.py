"""Load and validate a manifest file into a `model.Manifest`: the first stage of the pipeline.

Loading runs in three passes and reports everything it finds in one `ManifestError`:
strict YAML parsing (`yamlstrict`), the JSON Schema (`manifest_schema`), and the checks a
schema cannot express (`manifest_rules`). Only a document that passes all three becomes a
`Manifest`; nothing here reads Vault or calls Nylas.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import Diagnostic, ManifestError
from reconciler.manifest_rules import (
    check_rules,
    entries_at,
    join_secret_path,
    mapping_at,
    path_prefix,
    resolve_provider,
    vault_mount,
)
from reconciler.manifest_schema import Reporter, check_schema, describe_path
from reconciler.model import (
    Account,
    Ensure,
    Manifest,
    Policy,
    Provider,
    Region,
    RemovedAccount,
    StateSettings,
    VaultSettings,
)
from reconciler.yamlfast import read_plain_yaml
from reconciler.yamlstrict import LoadedYaml, load_strict_yaml, position_of_offset

# Far above any real manifest, since a thousand accounts take about 200 KB. The limit keeps
# a mistaken or hostile file from tying up the pure-Python YAML parser.
MAX_MANIFEST_BYTES = 5 * 1024 * 1024
ALLOWED_PREFIXES_VARIABLE = "GRANTCTL_VAULT_ALLOWED_PREFIXES"
DEFAULT_STATE_PATH = ".grantctl/state.json"
_READ_CHUNK_BYTES = 64 * 1024


def load_manifest(path: str | Path, *, allowed_prefixes: Sequence[str] = ()) -> Manifest:
    """Read, validate and return the manifest at `path`.

    `allowed_prefixes` lists `mount/prefix` entries (e.g. `secret/nylas/prod`); when it is not
    empty, every account's secret and a Vault state path must lie under one of them.
    Raises `ManifestError` holding every problem found.
    """
    filename = str(path)
    try:
        content = _read_limited(Path(path))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ManifestError(
            [Diagnostic(filename, 0, 0, f"cannot read the manifest: {reason}")]
        ) from None
    return load_manifest_text(content, filename=filename, allowed_prefixes=allowed_prefixes)


def load_manifest_text(
    text: str | bytes, *, filename: str, allowed_prefixes: Sequence[str] = ()
) -> Manifest:
    """Validate manifest content and return it as a `Manifest` whose `path` is `filename`.

    `str` content is hashed as UTF-8. Relative local state paths are resolved against the
    directory of `filename`. Raises `ManifestError` holding every problem found.
    """
    content = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(content) > MAX_MANIFEST_BYTES:
        message = f"the manifest is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB"
        raise ManifestError([Diagnostic(filename, 0, 0, message)])
    decoded = _decode(content, filename)
    prefixes = normalize_prefixes(allowed_prefixes)

    # The fast reader handles plain block YAML and returns None for anything else. It first
    # records only what a valid manifest needs, and reads again to position any problem.
    loaded = read_plain_yaml(decoded, all_positions=False)
    if loaded is None:
        loaded = load_strict_yaml(decoded, filename=filename)
    reporter = _check(loaded, filename, prefixes)
    if reporter.diagnostics and not loaded.all_positions:
        loaded = read_plain_yaml(decoded) or load_strict_yaml(decoded, filename=filename)
        reporter = _check(loaded, filename, prefixes)
    diagnostics = _unique_sorted(reporter.diagnostics)
    if diagnostics:
        raise ManifestError(diagnostics)
    return _build_manifest(loaded.data, reporter, filename, hashlib.sha256(content).hexdigest())


def _check(loaded: LoadedYaml, filename: str, prefixes: Sequence[str]) -> Reporter:
    """Return a reporter holding every problem of the loaded document, or none."""
    reporter = Reporter(loaded, filename)
    if loaded.data is None:
        reporter.diagnostics.append(Diagnostic(filename, 1, 1, "manifest is empty"))
        return reporter
    if not isinstance(loaded.data, dict):
        reporter.add(
            (), "the manifest must be a mapping with keys such as version, nylas and accounts"
        )
        return reporter
    check_schema(loaded.data, reporter)
    check_rules(loaded.data, reporter, prefixes)
    for path, (line, column), message in loaded.problems:
        where = f"{describe_path(path)}: " if path else ""
        reporter.diagnostics.append(
            Diagnostic(filename, line, column, where + message, reporter.account_name(path))
        )
    return reporter


def allowed_prefixes_from_environment(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Return the `mount/prefix` entries of `GRANTCTL_VAULT_ALLOWED_PREFIXES` (comma-separated)."""
    return normalize_prefixes(environ.get(ALLOWED_PREFIXES_VARIABLE, "").split(","))


def normalize_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """Return the non-empty prefixes without surrounding spaces or slashes."""
    cleaned = (prefix.strip().strip("/") for prefix in prefixes)
    return tuple(prefix for prefix in cleaned if prefix)


def _read_limited(path: Path) -> bytes:
    """Return the file's bytes, stopping one byte past the size limit.

    Reading in chunks avoids both a limit-sized buffer for every small file and an endless
    read from a device or pipe that reports no size.
    """
    chunks: list[bytes] = []
    total = 0
    with path.open("rb") as file:
        while total <= MAX_MANIFEST_BYTES:
            chunk = file.read(_READ_CHUNK_BYTES)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    return b"".join(chunks)


def _decode(content: bytes, filename: str) -> str:
    try:
        # utf-8-sig drops a byte-order mark that some Windows editors write.
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        prefix = content[: error.start].decode("utf-8", errors="replace")
        line, column = position_of_offset(prefix, len(prefix))
        message = (
            f"the manifest is not valid UTF-8 (byte 0x{content[error.start]:02x}); save it as UTF-8"
        )
        raise ManifestError([Diagnostic(filename, line, column, message)]) from None


def _unique_sorted(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop repeated diagnostics and order them by position, file-wide ones first."""
    unique = list(dict.fromkeys(diagnostics))
    return sorted(unique, key=lambda diagnostic: (diagnostic.line, diagnostic.column))


def _build_manifest(
    data: dict[str, Any], reporter: Reporter, filename: str, digest: str
) -> Manifest:
    """Turn a validated document into the model; every value here has passed validation."""
    vault = mapping_at(data, "vault")
    state = mapping_at(data, "state")
    backend = state.get("backend", "local")
    state_path = state.get("path", DEFAULT_STATE_PATH)
    if backend == "local" and not Path(state_path).is_absolute():
        state_path = str(Path(filename).parent / state_path)
    return Manifest(
        path=filename,
        digest=digest,
        version=int(data["version"]),
        region=Region(data["nylas"]["region"]),
        vault=VaultSettings(
            mount=vault_mount(data),
            path_prefix=path_prefix(data),
            kv_version=int(vault.get("kv_version", 2)),
        ),
        state=StateSettings(backend=backend, path=state_path),
        policy=Policy(max_deletes=int(mapping_at(data, "policy").get("max_deletes", 5))),
        accounts=tuple(
            _build_account(data, index, entry, reporter)
            for index, entry in entries_at(data, "accounts")
        ),
        removed=tuple(
            RemovedAccount(
                name=entry["name"],
                destroy=bool(entry.get("destroy", False)),
                line=reporter.position(("removed", index))[0],
            )
            for index, entry in entries_at(data, "removed")
        ),
    )


def _build_account(
    data: dict[str, Any], index: int, entry: dict[str, Any], reporter: Reporter
) -> Account:
    provider = resolve_provider(entry, data)
    # Validation has reported an account without a valid provider, so this cannot be None.
    assert provider is not None
    scopes = entry.get("scopes", mapping_at(data, "defaults").get("scopes", []))
    return Account(
        name=entry["name"],
        email=entry["email"],
        provider=Provider(provider),
        secret_path=join_secret_path(path_prefix(data), entry["secret"]),
        scopes=tuple(scopes),
        ensure=Ensure(entry.get("ensure", "present")),
        protect=bool(entry.get("protect", False)),
        credential_id=entry.get("credential_id"),
        line=reporter.position(("accounts", index))[0],
    )
