"""The Vault layer: auth methods, KV v1/v2 reads, metadata-only reads, secret shape checks.

Plan and audit use `VaultSecretStore.read_metadata_many`, which never reads secret data.
Apply uses `VaultSecretStore.read_secret` and `connect_settings`. The state backend uses
`VaultSession.call` and `VaultSession.request`, so its errors are translated the same way.
"""

from reconciler.vault.apikey import KeyReference, read_api_key_from_vault
from reconciler.vault.auth import AuthConfig, AuthMethod
from reconciler.vault.kv import VaultSecretStore
from reconciler.vault.session import VaultResponse, VaultSession, connect_vault
from reconciler.vault.shape import connect_settings

__all__ = [
    "AuthConfig",
    "AuthMethod",
    "KeyReference",
    "VaultResponse",
    "VaultSecretStore",
    "VaultSession",
    "connect_settings",
    "connect_vault",
    "read_api_key_from_vault",
]
