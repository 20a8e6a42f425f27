"""An authenticated Vault connection: login, token recovery, retries and error translation.

Every Vault request grantctl makes goes through `VaultSession.call`, which is the one place
where hvac and requests exceptions become `VaultError`s. Vault returns 403 "permission denied"
both for a policy denial and for an expired or revoked token. So on a 403 the session calls
`auth/token/lookup-self` to check whether the token still works. When it does not, the session
logs in again once through the configured auth method and repeats the request.

hvac and requests are imported when a request first needs them. A plan with a token checks
it and reads every metadata document through `FastReader`, so it never imports them, which
saves about 0.16 s of a command's start.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote

from reconciler.errors import VaultAuthError
from reconciler.secrets import Secret
from reconciler.vault.auth import AuthConfig, login_request
from reconciler.vault.errors import (
    is_retryable,
    permission_error,
    translate_error,
    vault_message,
)
from reconciler.vault.fastread import FastReader

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
# A login token is replaced this long before Vault would expire it, capped at a quarter of
# its TTL so that very short TTLs still leave the token some use.
EXPIRY_MARGIN_S = 10.0


class VaultResponse(NamedTuple):
    """The status and JSON body of a Vault HTTP response; `body` is {} when there is none.

    A named tuple, built in one C call, because a plan makes one per account.
    """

    status: int
    body: Mapping[str, Any]


class VaultSession:
    """An hvac client with a token, and the request wrapper every Vault call goes through.

    Safe to share between threads: concurrent calls that find the token invalid trigger a
    single new login.
    """

    def __init__(
        self,
        client: Any | None,
        config: AuthConfig,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The hvac client is built on first use when None. `_token` is the token it sends.
        self._client = client
        self._client_lock = threading.Lock()
        self._token = config.token.reveal() if config.token is not None else ""
        self.config = config
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._auth_lock = threading.Lock()
        self._generation = 0  # grows by one each time the token is replaced
        self._expires_at: float | None = None  # time.monotonic() deadline; None: no expiry
        self._renewable = False
        self._fast = FastReader(config)

    @property
    def hvac(self) -> Any:
        """The underlying `hvac.Client`; wrap every use in `call` so errors are translated."""
        return self._hvac_client()

    def _hvac_client(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = build_client(self.config)
                    self._client.token = self._token
                client = self._client
        return client

    @property
    def addr(self) -> str:
        """Vault's base URL."""
        return self.config.addr

    def fast_get(self, path: str, params: Mapping[str, str] | None = None) -> VaultResponse | None:
        """Return a 200 or 404 response to `GET /v1/<path>` through the light path, else None.

        For the many secret and metadata reads of a plan or an apply. On None the caller
        repeats the read with `request`, which retries, recovers the token and translates
        errors.
        """
        self._refresh_if_expiring()
        token = self._token
        if not token:
            return None
        answer = self._fast.get(path, token, params)
        return None if answer is None else VaultResponse(*answer)

    def authenticate(self) -> None:
        """Log in through the configured method, or check the given token for the token method."""
        with self._auth_lock:
            if self.config.can_login:
                self._login()
            else:
                self._check_token()

    def call(
        self,
        operation: Callable[[Any], T],
        *,
        path: str,
        capability: str = "read",
        idempotent: bool = True,
    ) -> T:
        """Run `operation(hvac_client)` for API `path` and translate any failure.

        `path` (e.g. `secret/data/nylas/prod/leyah`) and `capability` name what a policy must
        grant if Vault denies the request. An idempotent operation is retried with capped
        backoff on network errors, 429 and 5xx (except sealed). An invalid token leads to one
        new login and one more attempt.
        """
        import hvac.exceptions  # noqa: PLC0415  # loaded on first use, see the module's note
        import requests  # noqa: PLC0415

        attempt = 0
        recovered = False
        while True:
            self._refresh_if_expiring()
            generation = self._generation
            try:
                return operation(self._hvac_client())
            except hvac.exceptions.Forbidden as exc:
                if self._token_is_valid(path):
                    raise permission_error(path, capability) from exc
                if recovered:
                    raise VaultAuthError(
                        f"the Vault token was invalid again right after a new login (on {path})",
                        path=path,
                        hint="check the token TTL of the auth method's role",
                    ) from exc
                self._recover_token(generation, path)
                recovered = True
            except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
                self._wait_to_retry(
                    exc, attempt, path=path, capability=capability, idempotent=idempotent
                )
                attempt += 1

    def _wait_to_retry(
        self, exc: Exception, attempt: int, *, path: str, capability: str, idempotent: bool
    ) -> None:
        """Sleep before attempt `attempt + 1` of a failed request, or raise its error.

        Only idempotent requests that met a network error, 429 or 5xx (not sealed) are
        retried, `max_retries` times at most.
        """
        if not (idempotent and is_retryable(exc) and attempt < self.max_retries):
            raise translate_error(exc, addr=self.addr, path=path, capability=capability) from exc
        delay = self._backoff(attempt)
        logger.warning(
            "Vault request on %s failed (%s); retrying in %.2fs (attempt %d of %d)",
            path,
            vault_message(exc),
            delay,
            attempt + 1,
            self.max_retries,
        )
        self._sleep(delay)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        capability: str = "read",
        idempotent: bool | None = None,
        expected_statuses: Collection[int] = (404,),
    ) -> VaultResponse:
        """Send `method` to `/v1/<path>` and return the response.

        A status in `expected_statuses` is returned, as 404 is by default. Any other status
        of 400 or more raises a `VaultError` through `call`. `idempotent` defaults to True for
        GET and LIST only, so other requests are not retried.
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "LIST", "HEAD")
        url = "/v1/" + quote(path.strip("/"), safe="/")
        options: dict[str, Any] = {"raise_exception": False}
        if params:
            options["params"] = dict(params)
        if body is not None:
            options["json"] = dict(body)

        def send(client: Any) -> VaultResponse:
            import hvac.exceptions  # noqa: PLC0415

            # hvac's JSONAdapter returns the decoded body for a 200 and the Response otherwise.
            result = client.adapter.request(method, url, **options)
            if isinstance(result, dict):
                return VaultResponse(200, result)
            response: requests.Response = result
            decoded = _json_body(response)
            if response.status_code >= 400 and response.status_code not in expected_statuses:
                errors = decoded.get("errors")
                raise hvac.exceptions.VaultError.from_status(
                    response.status_code,
                    None if errors else response.text,
                    errors=errors,
                    method=method,
                    url=url,
                    json=decoded,
                )
            return VaultResponse(response.status_code, decoded)

        return self.call(send, path=path, capability=capability, idempotent=idempotent)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * 2.0**attempt)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311  # jitter, not cryptography

    def _token_is_valid(self, path: str) -> bool:
        import hvac.exceptions  # noqa: PLC0415
        import requests  # noqa: PLC0415

        try:
            self._hvac_client().auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            raise translate_error(
                exc, addr=self.addr, path="auth/token/lookup-self", capability="read"
            ) from exc
        return True

    def _recover_token(self, generation: int, path: str) -> None:
        with self._auth_lock:
            if self._generation != generation:
                return  # another thread already obtained a new token
            if not self.config.can_login:
                raise VaultAuthError(
                    f"the Vault token is invalid or expired (found on {path})",
                    path=path,
                    hint="the token auth method cannot log in again: set a fresh VAULT_TOKEN, "
                    "or use approle, kubernetes or jwt auth so grantctl can obtain new tokens",
                )
            logger.info("Vault token is invalid or expired; logging in again (%s)", self._who())
            self._login()

    def _refresh_if_expiring(self) -> None:
        deadline = self._expires_at
        if deadline is None or time.monotonic() < deadline:
            return
        generation = self._generation
        with self._auth_lock:
            if self._generation != generation:
                return
            if self.config.can_login:
                logger.info("Vault token is about to expire; logging in again (%s)", self._who())
                self._login()
            elif self._renewable:
                self._renew_self()
            else:
                self._expires_at = None  # nothing to do now; a 403 later reports it

    def _login(self) -> None:
        mount = self.config.auth_mount
        path = f"auth/{mount}/login"
        body = login_request(self.config)
        try:
            result = self._send_login(path, body)
        finally:
            body.clear()
        auth = result.get("auth") if isinstance(result, dict) else None
        if not isinstance(auth, dict) or not auth.get("client_token"):
            raise VaultAuthError(f"Vault returned no token from {path}", path=path)
        self._install_token(Secret(str(auth["client_token"])), auth)
        logger.info("logged in to Vault (%s)", self._who())

    def _send_login(self, path: str, body: Mapping[str, str]) -> Any:
        import hvac.exceptions  # noqa: PLC0415
        import requests  # noqa: PLC0415

        attempt = 0
        while True:
            try:
                return self._hvac_client().adapter.post(f"/v1/{path}", json=dict(body))
            except hvac.exceptions.VaultError as exc:
                if isinstance(exc, hvac.exceptions.InvalidRequest | hvac.exceptions.Forbidden):
                    raise self._login_error(path, exc) from exc
                if not is_retryable(exc) or attempt >= self.max_retries:
                    raise translate_error(
                        exc, addr=self.addr, path=path, capability="update"
                    ) from exc
            except requests.exceptions.RequestException as exc:
                if not is_retryable(exc) or attempt >= self.max_retries:
                    raise translate_error(
                        exc, addr=self.addr, path=path, capability="update"
                    ) from exc
            self._sleep(self._backoff(attempt))
            attempt += 1

    def _check_token(self) -> None:
        path = "auth/token/lookup-self"
        answer = self._fast.get(path, self._token) if self._token else None
        if answer is not None and answer[0] == 200:
            self._use_token_lookup(answer[1])
            return
        import hvac.exceptions  # noqa: PLC0415  # any other answer: the full client words it
        import requests  # noqa: PLC0415

        # Retried as every read is, so a Vault that is restarting when the run begins is
        # waited for instead of failing the run at once.
        attempt = 0
        while True:
            try:
                result = self._hvac_client().auth.token.lookup_self()
                break
            except hvac.exceptions.Forbidden as exc:
                raise VaultAuthError(
                    "the Vault token is invalid or expired, or it may not look itself up",
                    path=path,
                    hint="set a valid VAULT_TOKEN; its policies need the default policy's "
                    '"read" on auth/token/lookup-self',
                ) from exc
            except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
                self._wait_to_retry(exc, attempt, path=path, capability="read", idempotent=True)
                attempt += 1
        self._use_token_lookup(result)

    def _use_token_lookup(self, result: Mapping[str, Any]) -> None:
        data = result.get("data") or {}
        ttl = int(data.get("ttl") or 0)
        self._renewable = bool(data.get("renewable"))
        self._set_expiry(ttl)

    def _renew_self(self) -> None:
        import hvac.exceptions  # noqa: PLC0415
        import requests  # noqa: PLC0415

        try:
            result = self._hvac_client().auth.token.renew_self()
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            # The token may still work until its TTL ends; a later 403 reports the failure.
            logger.warning("renewing the Vault token failed: %s", vault_message(exc))
            self._expires_at = None
            return
        auth = result.get("auth") or {}
        self._renewable = bool(auth.get("renewable"))
        self._set_expiry(int(auth.get("lease_duration") or 0))
        logger.info("renewed the Vault token (%s)", self._who())

    def _install_token(self, token: Secret, auth: Mapping[str, Any]) -> None:
        self._token = token.reveal()
        if self._client is not None:
            self._client.token = self._token
        self._renewable = bool(auth.get("renewable"))
        self._set_expiry(int(auth.get("lease_duration") or 0))
        self._generation += 1

    def _set_expiry(self, ttl_s: int) -> None:
        if ttl_s <= 0:
            self._expires_at = None  # root and periodic-less tokens without a TTL never expire
            return
        margin = min(EXPIRY_MARGIN_S, ttl_s / 4)
        self._expires_at = time.monotonic() + ttl_s - margin

    def _login_error(self, path: str, exc: Exception) -> VaultAuthError:
        method = self.config.method.value
        return VaultAuthError(
            f"Vault login with the {method} auth method at {path} failed: {vault_message(exc)}",
            path=path,
            hint=f"check the {method} credentials, the role, and GRANTCTL_VAULT_AUTH_MOUNT",
        )

    def _who(self) -> str:
        namespace = f", namespace {self.config.namespace}" if self.config.namespace else ""
        return f"method {self.config.method.value} at auth/{self.config.auth_mount}{namespace}"


def _json_body(response: requests.Response) -> Mapping[str, Any]:
    if not response.content:
        return {}
    try:
        decoded = response.json()
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def build_client(config: AuthConfig) -> Any:
    """Return an `hvac.Client` for `config`, sending the namespace header on every request."""
    import hvac  # noqa: PLC0415  # loaded on first use, see the module's note
    import requests  # noqa: PLC0415

    verify: bool | str = True
    if config.tls_skip_verify:
        logger.warning("TLS certificate verification of Vault at %s is off", config.addr)
        verify = False
    elif config.cacert:
        verify = config.cacert
    cert = (config.client_cert, config.client_key) if config.client_cert else None
    token = config.token.reveal() if config.token is not None else ""
    if verify is True:
        # The CA bundle variables that requests would otherwise read on every request.
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    # With `trust_env` on, requests walks os.environ for proxy variables and looks for a
    # ~/.netrc on every request, about a fifth of the CPU time of a metadata read. Proxies
    # are resolved here once for Vault's address instead, and Vault ignores netrc logins.
    session = requests.Session()
    session.trust_env = False
    # hvac prefers a given session's truthy verify to its own argument, so both are set.
    session.verify = verify
    proxies = dict(requests.utils.get_environ_proxies(config.addr))
    # An explicit token ("" for login methods) stops hvac from reading VAULT_TOKEN or
    # ~/.vault-token behind grantctl's back.
    return hvac.Client(
        url=config.addr,
        token=token,
        namespace=config.namespace or None,
        verify=verify,
        cert=cert,
        timeout=config.timeout_s,
        proxies=proxies or None,
        session=session,
    )


def connect_vault(config: AuthConfig, **session_options: Any) -> VaultSession:
    """Return a session logged in to Vault (or holding a checked token) per `config`.

    Raises `VaultAuthError` when login fails or the token is invalid, and
    `VaultUnavailableError`/`VaultSealedError` when Vault cannot serve the request.
    """
    session = VaultSession(None, config, **session_options)
    session.authenticate()
    return session
