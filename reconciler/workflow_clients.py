"""Build the clients a run needs from the environment and the command line's flags.

Environment-specific settings (Vault address and auth, the Nylas API key and base URL)
come only from here, never from the manifest, so a pull request cannot redirect them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.manifest import allowed_prefixes_from_environment, load_manifest
from reconciler.model import Manifest
from reconciler.nylas import ClientSettings, NylasClient, api_base_url, api_key_from_environment
from reconciler.protocols import GrantsAPI, SecretStore, StateBackend
from reconciler.secrets import Secret
from reconciler.state import open_state_backend
from reconciler.vault import (
    AuthConfig,
    VaultSecretStore,
    VaultSession,
    connect_vault,
    read_api_key_from_vault,
)
from reconciler.workflow_settings import ClientFlags, VaultFlags

logger = logging.getLogger("reconciler.workflow")

API_KEY_VAULT_PATH_VARIABLE = "GRANTCTL_NYLAS_API_KEY_VAULT_PATH"


@dataclass
class Clients:
    """The open clients of one run; closed when `open_clients`' block ends."""

    manifest: Manifest
    secret_store: SecretStore
    grants_api: GrantsAPI
    state: StateBackend
    parallelism: int


def load_checked_manifest(path: str, environ: Mapping[str, str] | None = None) -> Manifest:
    """Load the manifest, enforcing the environment's Vault allowlist and local state's place.

    Local state must stay below the manifest's directory, links resolved.
    """
    environ = os.environ if environ is None else environ
    manifest = load_manifest(path, allowed_prefixes=allowed_prefixes_from_environment(environ))
    if manifest.state.backend == "local":
        _check_local_state_inside(manifest)
    return manifest


def _check_local_state_inside(manifest: Manifest) -> None:
    """Raise ConfigError when a symbolic link leads the local state out of the manifest's directory.

    The manifest rules reject absolute paths and `..`, but a link committed in a pull request
    could still make its plan, and the apply after it, write files anywhere.
    """
    directory = Path(manifest.path).parent.resolve()
    target = Path(manifest.state.path).resolve()
    if target != directory and directory not in target.parents:
        raise ConfigError(
            f"the local state path {manifest.state.path} leads to {target}, outside the "
            f"manifest's directory {directory}",
            hint="keep the state file in the manifest's directory without a link out of it, "
            "or keep the state in Vault (state.backend: vault)",
        )


def client_settings(flags: ClientFlags, environ: Mapping[str, str]) -> ClientSettings:
    """Return the Nylas client settings: the environment's, then the flags on top."""
    settings = ClientSettings.from_environment(environ)
    if flags.parallelism is not None:
        settings = dataclasses.replace(settings, parallelism=flags.parallelism)
    if flags.timeout_s is not None:
        settings = dataclasses.replace(settings, timeout_read_s=flags.timeout_s)
    if flags.rate_limit is not None:
        settings = dataclasses.replace(settings, rate_limit_per_s=flags.rate_limit)
    return settings


@contextmanager
def open_clients(
    manifest: Manifest,
    vault_flags: VaultFlags,
    client_flags: ClientFlags,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Clients]:
    """Log in to Vault, open the Nylas client and the state backend; close them after."""
    environ = os.environ if environ is None else environ
    settings = client_settings(client_flags, environ)
    auth = _auth_config(vault_flags, environ)
    with ExitStack() as stack:
        session = connect_vault(auth)
        store = VaultSecretStore(session, manifest.vault, parallelism=settings.parallelism)
        api_key = _api_key_source(session, vault_flags, environ)
        nylas = NylasClient(api_key, api_base_url(manifest.region, environ), settings)
        stack.callback(nylas.close)
        state = open_state_backend(
            manifest.state,
            vault_session=session,
            vault_mount=manifest.vault.mount,
        )
        yield Clients(
            manifest=manifest,
            secret_store=store,
            grants_api=nylas,
            state=state,
            parallelism=settings.parallelism,
        )


def _api_key_source(
    session: VaultSession, flags: VaultFlags, environ: Mapping[str, str]
) -> Callable[[], Secret]:
    reference = flags.api_key_vault_path or environ.get(API_KEY_VAULT_PATH_VARIABLE, "").strip()
    if not reference:
        return api_key_from_environment(environ)
    logger.info("reading the Nylas API key from Vault path %s", reference)
    return read_api_key_from_vault(session, reference)


@contextmanager
def open_state(
    manifest: Manifest, vault_flags: VaultFlags, environ: Mapping[str, str] | None = None
) -> Iterator[StateBackend]:
    """Open only the state backend, logging in to Vault only when the state lives there."""
    environ = os.environ if environ is None else environ
    session = None
    if manifest.state.backend == "vault":
        session = connect_vault(_auth_config(vault_flags, environ))
    yield open_state_backend(
        manifest.state,
        vault_session=session,
        vault_mount=manifest.vault.mount,
    )


def _auth_config(flags: VaultFlags, environ: Mapping[str, str]) -> AuthConfig:
    return AuthConfig.from_environment(
        environ, method=flags.auth, role=flags.role, tls_skip_verify=flags.tls_skip_verify or None
    )
