"""State backends: where the inventory and the apply lock live.

`LocalStateBackend` keeps a JSON file for laptops, demos and tests; `VaultStateBackend` keeps a
KV v2 document for CI, where runners are ephemeral. Both implement
`reconciler.protocols.StateBackend`; `open_state_backend` picks one from the manifest's
`state:` settings.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.model import StateSettings
from reconciler.protocols import StateBackend
from reconciler.state.local import LocalStateBackend
from reconciler.state.lockrecord import DEFAULT_LOCK_TTL_S
from reconciler.state.vault import VaultStateBackend
from reconciler.vault.session import VaultSession

__all__ = [
    "DEFAULT_LOCK_TTL_S",
    "LocalStateBackend",
    "VaultStateBackend",
    "open_state_backend",
]


def open_state_backend(
    settings: StateSettings,
    *,
    vault_session: VaultSession | None = None,
    vault_mount: str = "secret",
    lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
) -> StateBackend:
    """Return the backend that `settings` names.

    A local path is used as given: `load_manifest` has already resolved a relative one
    against the manifest's directory. The vault backend needs `vault_session`, an
    authenticated `VaultSession`, and stores the document at `settings.path` in KV v2 mount
    `vault_mount`.
    """
    if settings.backend == "local":
        return LocalStateBackend(Path(settings.path), lock_ttl_s=lock_ttl_s)
    if settings.backend == "vault":
        if vault_session is None:
            raise ConfigError(
                f"the vault state backend (path {settings.path!r}) needs a Vault connection",
                hint="set VAULT_ADDR and a Vault login, or use `state: {backend: local}`",
            )
        return VaultStateBackend(vault_session, vault_mount, settings.path, lock_ttl_s=lock_ttl_s)
    raise ConfigError(
        f"unknown state backend {settings.backend!r}",
        hint="use `local` or `vault` under `state.backend` in the manifest",
    )
