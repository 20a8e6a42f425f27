"""Translation of hvac and requests exceptions into grantctl's `VaultError` tree.

`VaultSession.call` is the only caller: every Vault request grantctl makes passes through it,
so this module is the one place where a foreign exception becomes a `VaultError`. hvac and
requests are imported inside the functions, because a plan that meets no error never loads
them (see `reconciler.vault.session`); by then the failed request has loaded both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import (
    VaultAuthError,
    VaultError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnavailableError,
)
from reconciler.secrets import REDACTOR

if TYPE_CHECKING:
    import requests


def is_sealed(exc: BaseException) -> bool:
    """Return True when `exc` is Vault's 503 response from a sealed server."""
    import hvac.exceptions  # noqa: PLC0415

    return isinstance(exc, hvac.exceptions.VaultDown) and "sealed" in vault_message(exc).lower()


def is_retryable(exc: BaseException) -> bool:
    """Return True when an idempotent request that raised `exc` may succeed if sent again."""
    import hvac.exceptions  # noqa: PLC0415
    import requests  # noqa: PLC0415

    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself between attempts
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    # Vault's 429, 500, 502, 503 (when not sealed) and any other status hvac does not name,
    # such as 504 from a load balancer.
    retryable = (
        hvac.exceptions.RateLimitExceeded,
        hvac.exceptions.InternalServerError,
        hvac.exceptions.BadGateway,
        hvac.exceptions.VaultDown,
        hvac.exceptions.UnexpectedError,
    )
    return isinstance(exc, retryable) and not is_sealed(exc)


def vault_message(exc: BaseException) -> str:
    """Return Vault's own error text from `exc`, with any registered secret masked."""
    import hvac.exceptions  # noqa: PLC0415

    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        text = "; ".join(" ".join(str(error).split()) for error in errors)
    elif isinstance(exc, hvac.exceptions.VaultError) and exc.args and exc.args[0]:
        text = " ".join(str(exc.args[0]).split())
    else:
        text = type(exc).__name__
    return REDACTOR.redact(text)


def permission_error(path: str, capability: str) -> VaultPermissionError:
    """Build the error for a 403 on `path` from a token that is still valid."""
    return VaultPermissionError(
        f"permission denied: the Vault token may not {capability} {path}",
        path=path,
        capability=capability,
        hint=f'grant the "{capability}" capability on path "{path}" in this identity\'s policy',
    )


def translate_error(exc: Exception, *, addr: str, path: str, capability: str) -> VaultError:
    """Return the `VaultError` for a failed request on `path`; the caller raises it `from exc`.

    A 403 reaching this function comes from a token already checked to be valid, so it is a
    policy denial.
    """
    import hvac.exceptions  # noqa: PLC0415
    import requests  # noqa: PLC0415

    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, requests.exceptions.RequestException):
        return _translate_network_error(exc, addr=addr, path=path)
    if isinstance(exc, hvac.exceptions.Forbidden):
        return permission_error(path, capability)
    if is_sealed(exc):
        return VaultSealedError(
            f"Vault at {addr} is sealed",
            path=path,
            hint="unseal Vault (bao operator unseal / vault operator unseal), then run again",
        )
    return _translate_status_error(exc, addr=addr, path=path)


def _translate_status_error(exc: Exception, *, addr: str, path: str) -> VaultError:
    import hvac.exceptions  # noqa: PLC0415

    # Vault's error bodies carry an `errors` list, empty for a plain 404. A 4xx without one
    # came from something else at VAULT_ADDR, such as another API or a gateway's own page.
    client_error = (
        hvac.exceptions.InvalidRequest,
        hvac.exceptions.Unauthorized,
        hvac.exceptions.InvalidPath,
        hvac.exceptions.PreconditionFailed,
        hvac.exceptions.UnexpectedError,
    )
    if isinstance(exc, client_error) and getattr(exc, "errors", None) is None:
        return VaultUnavailableError(
            f"the server at {addr} responded to {path} without Vault's error format "
            f"({type(exc).__name__})",
            path=path,
            hint="check that VAULT_ADDR points at Vault's API, such as "
            "https://vault.example.com:8200",
        )
    message = vault_message(exc)
    if isinstance(exc, hvac.exceptions.Unauthorized):
        return VaultAuthError(
            f"Vault rejected the token on {path}: {message}",
            path=path,
            hint="check the auth method settings",
        )
    if isinstance(exc, hvac.exceptions.InvalidPath):
        return VaultError(f"{path} was not found in Vault: {message}", path=path)
    if isinstance(exc, hvac.exceptions.InvalidRequest | hvac.exceptions.PreconditionFailed):
        return VaultError(f"Vault rejected the request on {path}: {message}", path=path)
    if isinstance(exc, hvac.exceptions.VaultNotInitialized):
        return VaultUnavailableError(
            f"Vault at {addr} is not initialized", path=path, hint="initialize and unseal Vault"
        )
    return VaultUnavailableError(
        f"Vault at {addr} failed on {path}: {message}",
        path=path,
        hint="check Vault's health (bao status) and run again",
    )


def _translate_network_error(
    exc: requests.exceptions.RequestException, *, addr: str, path: str
) -> VaultError:
    import requests  # noqa: PLC0415

    if isinstance(exc, requests.exceptions.SSLError):
        # OpenSSL 3.0 reports WRONG_VERSION_NUMBER when a plain HTTP server responds to the
        # TLS hello. NOTE: other OpenSSL versions may word it differently, and then the
        # general hint below applies.
        if "WRONG_VERSION_NUMBER" in str(exc):
            return VaultUnavailableError(
                f"Vault at {addr} does not respond with TLS",
                path=path,
                hint="if Vault serves plain HTTP there, use an http:// VAULT_ADDR",
            )
        return VaultUnavailableError(
            f"TLS verification of Vault at {addr} failed: {type(exc).__name__}",
            path=path,
            hint="set VAULT_CACERT to the CA bundle that signed Vault's certificate",
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return VaultUnavailableError(
            f"request to Vault at {addr} timed out on {path}",
            path=path,
            hint="check the network path to Vault, or raise GRANTCTL_VAULT_TIMEOUT",
        )
    return VaultUnavailableError(
        f"Vault at {addr} could not be reached: {type(exc).__name__}",
        path=path,
        hint="check VAULT_ADDR and that Vault is running and reachable from here",
    )
