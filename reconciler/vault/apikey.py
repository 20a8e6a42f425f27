"""The Nylas API key read from a Vault KV v2 field instead of `NYLAS_API_KEY`.

The reference has the form `mount/path#field`, e.g. `secret/nylas/api#api_key`, and comes from
`GRANTCTL_NYLAS_API_KEY_VAULT_PATH` or the CLI's `--api-key-vault-path`. The first path segment
is the mount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.errors import ConfigError, VaultError
from reconciler.secrets import Secret
from reconciler.vault.kv import check_path
from reconciler.vault.session import VaultSession

API_KEY_VARIABLE = "GRANTCTL_NYLAS_API_KEY_VAULT_PATH"


@dataclass(frozen=True)
class KeyReference:
    """A parsed `mount/path#field` reference to one field of a KV v2 secret."""

    mount: str
    path: str
    field: str

    @property
    def data_path(self) -> str:
        """The API path that reads the secret's current version."""
        return f"{self.mount}/data/{self.path}"

    @classmethod
    def parse(cls, reference: str) -> KeyReference:
        """Parse `mount/path#field`; raise `ConfigError` naming the expected form."""
        location, separator, field = reference.strip().partition("#")
        mount, slash, path = location.strip("/").partition("/")
        if not separator or not field or not slash or not mount or not path:
            raise ConfigError(
                f"{API_KEY_VARIABLE} {reference!r} is not of the form mount/path#field",
                hint="e.g. secret/nylas/api#api_key for field api_key of secret/nylas/api",
            )
        try:
            return cls(check_path(mount, what="mount"), check_path(path), field)
        except VaultError as exc:
            raise ConfigError(
                f"{API_KEY_VARIABLE}: {exc.message}",
                hint="e.g. secret/nylas/api#api_key for field api_key of secret/nylas/api",
            ) from None


def read_api_key_from_vault(session: VaultSession, ref: str) -> Callable[[], Secret]:
    """Return a function that reads the API key at `ref` from Vault on each call.

    The reference is checked now. The key is read at every call so that the Nylas client,
    which calls again after a 401, picks up a key rotated in Vault during the run.
    """
    reference = KeyReference.parse(ref)

    def read_key() -> Secret:
        api_path = reference.data_path
        response = session.request("GET", api_path, capability="read")
        data = (response.body.get("data") or {}).get("data") if response.status == 200 else None
        if not isinstance(data, dict):
            raise VaultError(
                f"the Nylas API key secret {api_path} was not found",
                path=api_path,
                hint=f"write the key to it, or fix {API_KEY_VARIABLE}",
            )
        value = data.get(reference.field)
        if not isinstance(value, str) or not value.strip():
            raise VaultError(
                f"the Nylas API key secret {api_path} has no non-empty field {reference.field!r}",
                path=api_path,
                hint=f"write the key to field {reference.field!r}, or fix {API_KEY_VARIABLE}",
            )
        return Secret(value.strip())

    return read_key
