"""The one exception tree of grantctl.

Every error a user can meet is a `ReconcilerError`: it carries the message (what failed, on
which account, path or value), the next step, and the process exit code. Foreign exceptions
(httpx, hvac, jsonschema, yaml) are translated into this tree at one boundary per client with
`raise ... from`. The CLI catches `ReconcilerError` once and prints it; any other exception is a
bug and is reported as one, without a secret.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # plan --detailed-exitcode with changes; audit with drift
EXIT_PARTIAL = 3  # apply finished with some changes failed


class ReconcilerError(Exception):
    """Base of every expected failure; `hint` is the next step for the user."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  next step: {self.hint}"
        return self.message


class ConfigError(ReconcilerError):
    """Invalid flags, environment variables or settings files."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in an input file, with its position (1-based line and column, 0 if unknown)."""

    file: str
    line: int
    column: int
    message: str
    account: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        subject = f" (account {self.account!r})" if self.account else ""
        return f"{where}{subject}: {self.message}"


class ManifestError(ReconcilerError):
    """A manifest that cannot be loaded or is invalid; contains every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic], *, hint: str = "") -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        noun = "error" if count == 1 else "errors"
        lines = [f"manifest is invalid ({count} {noun}):"]
        lines += [f"  {diagnostic}" for diagnostic in self.diagnostics]
        super().__init__("\n".join(lines), hint=hint or _validate_hint(self.diagnostics))


def _validate_hint(diagnostics: Sequence[Diagnostic]) -> str:
    files = sorted({diagnostic.file for diagnostic in diagnostics})
    target = shlex.quote(files[0]) if len(files) == 1 else "MANIFEST"
    return f"fix the manifest and run `grantctl validate {target}`"


class VaultError(ReconcilerError):
    """A Vault or OpenBao request failed; `path` is the API path involved, when known."""

    def __init__(self, message: str, *, path: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.path = path


class VaultAuthError(VaultError):
    """Login failed, or the token expired and could not be renewed or re-obtained."""


class VaultPermissionError(VaultError):
    """Vault returned 403 for a path; `capability` is what the policy must grant."""

    def __init__(
        self, message: str, *, path: str = "", capability: str = "read", hint: str = ""
    ) -> None:
        super().__init__(message, path=path, hint=hint)
        self.capability = capability


class VaultSealedError(VaultError):
    """Vault is sealed (503)."""


class VaultUnavailableError(VaultError):
    """Vault could not be reached, or returned 5xx after retries."""


class VaultSecretNotFoundError(VaultError):
    """The secret (or the pinned version of it) is missing, deleted or destroyed."""


class SecretShapeError(VaultError):
    """A secret lacks keys its provider needs, or contains values of the wrong type."""


class NylasError(ReconcilerError):
    """A Nylas API request failed.

    `status` is the HTTP status (0 for network errors), `request_id` Nylas' request id,
    `error_type` and `error_message` the `error` object's fields, `provider_error` the
    provider's own error object when Nylas passed it on. `detail` is the message without
    the operation and account it starts with, for views that name both already.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        request_id: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        provider_error: object = None,
        hint: str = "",
        detail: str = "",
    ) -> None:
        detail = detail or message
        if request_id:
            message = f"{message} (request id {request_id})"
            detail = f"{detail} (request id {request_id})"
        super().__init__(message, hint=hint)
        self.detail = detail
        self.status = status
        self.request_id = request_id
        self.error_type = error_type
        self.error_message = error_message
        self.provider_error = provider_error


class NylasAuthenticationError(NylasError):
    """401: a bad API key, the wrong region, or an expired grant."""


class NylasCredentialsRejectedError(NylasAuthenticationError):
    """401 to a connect that blames the provider: the account's credentials were rejected."""


class NylasPermissionError(NylasError):
    """403: missing scopes."""


class NylasNotFoundError(NylasError):
    """404: unknown grant or route."""


class NylasInvalidRequestError(NylasError):
    """400: an invalid request, or the provider rejected the credentials."""


class NylasRateLimitError(NylasError):
    """429 after the retry budget or the `Retry-After` cap was exhausted."""


class NylasServerError(NylasError):
    """5xx after retries; 504 is a provider timeout."""


class NylasTimeoutError(NylasError):
    """The request timed out."""


class NylasConnectionError(NylasError):
    """The connection failed or dropped."""


class NylasOutcomeUnknownError(NylasError):
    """A connect may have reached Nylas but no response arrived, so re-list before re-sending."""


class StateError(ReconcilerError):
    """The inventory could not be read or written."""


class StateConflictError(StateError):
    """Another writer changed the inventory (check-and-set failed)."""


class LockError(StateError):
    """The state lock is held by someone else, or could not be taken or released."""


class StalePlanError(ReconcilerError):
    """A saved plan no longer matches the world; the message names what moved."""


class ApprovalError(ReconcilerError):
    """Apply needs approval and none can be asked for (no terminal, no --auto-approve)."""


# Apply failures caused by the account's own data, which a new secret version can fix: the
# provider rejected its credentials, or its secret is missing or malformed. Only these count
# towards quarantine. Outages and a Vault policy that denies the read do not, because the
# operator fixes those and a new secret version would not lift the quarantine. A connect
# whose grant fails verification also counts, and `verify` records that fault itself.
ACCOUNT_FAULT_ERRORS: tuple[type[ReconcilerError], ...] = (
    NylasInvalidRequestError,
    NylasCredentialsRejectedError,
    VaultSecretNotFoundError,
    SecretShapeError,
)


def is_account_fault(error: BaseException) -> bool:
    """Return True when `error` was caused by the account's data, not by an outage or a bug."""
    return isinstance(error, ACCOUNT_FAULT_ERRORS)


def stops_apply(error: BaseException) -> bool:
    """Return True when `error` will make every further change fail as well.

    Vault unreachable, sealed or refusing the login, and Nylas rejecting the API key, affect
    every account, so an apply stops starting changes after one of them.
    """
    if isinstance(error, NylasCredentialsRejectedError):
        return False
    return isinstance(
        error, (VaultUnavailableError, VaultSealedError, VaultAuthError, NylasAuthenticationError)
    )


class InterruptedRunError(ReconcilerError):
    """SIGINT or SIGTERM stopped the run."""

    exit_code = 130
