"""Vault connection and auth method settings, read from the environment and CLI flags.

`AuthConfig.from_environment` is where every `VAULT_*` and `GRANTCTL_VAULT_*` variable is read.
`login_request` builds the body of an auth method's login call. Credentials named by a `*_FILE`
variable are read at each login, so a rotated file (a Kubernetes service account token, a
refreshed CI identity token) is picked up when grantctl logs in again.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ConfigError
from reconciler.secrets import Secret

logger = logging.getLogger(__name__)

DEFAULT_KUBERNETES_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105  # a path
DEFAULT_TIMEOUT_S = 10.0


class AuthMethod(str, enum.Enum):
    """The auth method grantctl uses to obtain its Vault token."""

    TOKEN = "token"  # noqa: S105  # a method name, not a credential
    APPROLE = "approle"
    KUBERNETES = "kubernetes"
    JWT = "jwt"


@dataclass(frozen=True)
class AuthConfig:
    """Vault's address, TLS settings and auth method settings.

    `mount` is the auth method's mount path (default: the method's name). Credentials given
    as values are `Secret`s; the `*_file` fields name files read at each login.
    `tls_skip_verify` is only ever set by an explicit CLI flag, never from the environment.
    """

    addr: str
    method: AuthMethod = AuthMethod.TOKEN
    namespace: str | None = None
    cacert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_skip_verify: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    token: Secret | None = None
    mount: str | None = None
    role: str | None = None
    role_id: Secret | None = None
    role_id_file: str | None = None
    secret_id: Secret | None = None
    secret_id_file: str | None = None
    jwt: Secret | None = None
    jwt_file: str | None = None
    kubernetes_token_file: str = DEFAULT_KUBERNETES_TOKEN_FILE

    def __post_init__(self) -> None:
        _check_addr(self.addr)
        if self.timeout_s <= 0:
            raise ConfigError(
                f"GRANTCTL_VAULT_TIMEOUT must be positive, got {self.timeout_s}",
                hint="set GRANTCTL_VAULT_TIMEOUT to a number of seconds such as 30, or unset it",
            )
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigError(
                "only one of VAULT_CLIENT_CERT and VAULT_CLIENT_KEY is set",
                hint="set both VAULT_CLIENT_CERT and VAULT_CLIENT_KEY, or neither",
            )
        # requests raises a bare OSError for a missing CA bundle or client certificate, so
        # the paths are checked here, where the message can name the variable.
        _check_exists(self.cacert, "VAULT_CACERT")
        _check_exists(self.client_cert, "VAULT_CLIENT_CERT")
        _check_exists(self.client_key, "VAULT_CLIENT_KEY")
        _check_method_settings(self)

    @property
    def auth_mount(self) -> str:
        """The mount path of the auth method, without slashes."""
        return (self.mount or self.method.value).strip("/")

    @property
    def can_login(self) -> bool:
        """Whether a new token can be obtained (every method except `token`)."""
        return self.method is not AuthMethod.TOKEN

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **overrides: Any) -> AuthConfig:
        """Build the settings from `environ`; `overrides` (CLI flags) win unless None.

        Raises `ConfigError` naming the variable when a required setting is missing or invalid.
        """
        values = _read_environment(environ)
        known = {field.name for field in fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"unknown AuthConfig field: {name}")
            if value is not None:
                values[name] = value
        if "addr" not in values:
            raise ConfigError(
                "VAULT_ADDR is not set",
                hint="set VAULT_ADDR to Vault's URL, e.g. https://vault:8200",
            )
        for name in ("token", "role_id", "secret_id", "jwt"):
            if isinstance(values.get(name), str):
                values[name] = Secret(values[name])
        if isinstance(values.get("method"), str):
            values["method"] = _parse_method(values["method"])
        return cls(**values)

    def with_overrides(self, **changes: Any) -> AuthConfig:
        """Return a copy with `changes` applied and checked again."""
        return replace(self, **changes)


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    # OpenBao's CLI reads BAO_* names; the VAULT_* names are accepted by both, so they win.
    candidates: dict[str, tuple[str, ...]] = {
        "addr": ("VAULT_ADDR", "BAO_ADDR"),
        "token": ("VAULT_TOKEN", "BAO_TOKEN"),
        "namespace": ("VAULT_NAMESPACE", "BAO_NAMESPACE"),
        "cacert": ("VAULT_CACERT", "BAO_CACERT"),
        "client_cert": ("VAULT_CLIENT_CERT", "BAO_CLIENT_CERT"),
        "client_key": ("VAULT_CLIENT_KEY", "BAO_CLIENT_KEY"),
        "method": ("GRANTCTL_VAULT_AUTH",),
        "mount": ("GRANTCTL_VAULT_AUTH_MOUNT",),
        "role": ("GRANTCTL_VAULT_ROLE",),
        "role_id": ("GRANTCTL_VAULT_ROLE_ID", "VAULT_ROLE_ID"),
        "role_id_file": ("GRANTCTL_VAULT_ROLE_ID_FILE",),
        "secret_id": ("GRANTCTL_VAULT_SECRET_ID", "VAULT_SECRET_ID"),
        "secret_id_file": ("GRANTCTL_VAULT_SECRET_ID_FILE",),
        "jwt": ("GRANTCTL_VAULT_JWT",),
        "jwt_file": ("GRANTCTL_VAULT_JWT_FILE",),
        "kubernetes_token_file": ("GRANTCTL_VAULT_KUBERNETES_TOKEN_FILE",),
    }
    values: dict[str, Any] = {}
    for name, variables in candidates.items():
        value = _first(environ, *variables)
        if value is not None:
            values[name] = value
    timeout = _first(environ, "GRANTCTL_VAULT_TIMEOUT")
    if timeout is not None:
        try:
            values["timeout_s"] = float(timeout)
        except ValueError:
            raise ConfigError(
                f"GRANTCTL_VAULT_TIMEOUT must be a number of seconds, got {timeout!r}",
                hint="set GRANTCTL_VAULT_TIMEOUT to a number of seconds such as 30, or unset it",
            ) from None
    if _first(environ, "VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"):
        # Turning TLS verification off must be a visible decision in the command line.
        logger.warning("VAULT_SKIP_VERIFY is ignored; pass --tls-skip-verify to skip verification")
    return values


def _parse_method(value: str) -> AuthMethod:
    try:
        return AuthMethod(value.strip().lower())
    except ValueError:
        choices = ", ".join(method.value for method in AuthMethod)
        raise ConfigError(
            f"GRANTCTL_VAULT_AUTH is {value!r}, which is not an auth method grantctl supports",
            hint=f"use one of: {choices}",
        ) from None


def _check_addr(addr: str) -> None:
    parts = urlsplit(addr)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"VAULT_ADDR {addr!r} is not an http:// or https:// URL",
            hint="set VAULT_ADDR to Vault's URL, e.g. https://vault.example.com:8200",
        )


def _check_exists(path: str | None, variable: str) -> None:
    if path is not None and not Path(path).exists():
        raise ConfigError(
            f"{variable} names {path}, which does not exist",
            hint=f"set {variable} to an existing PEM file",
        )


def _check_method_settings(config: AuthConfig) -> None:
    method = config.method
    if method is AuthMethod.TOKEN and config.token is None:
        raise ConfigError(
            "VAULT_TOKEN is not set, and the auth method is token",
            hint="set VAULT_TOKEN, or choose another method with GRANTCTL_VAULT_AUTH",
        )
    if method is AuthMethod.APPROLE:
        if config.role_id is None and config.role_id_file is None:
            raise ConfigError(
                "the AppRole role id is not set",
                hint="set GRANTCTL_VAULT_ROLE_ID (or VAULT_ROLE_ID) or GRANTCTL_VAULT_ROLE_ID_FILE",
            )
        if config.secret_id is None and config.secret_id_file is None:
            raise ConfigError(
                "the AppRole secret id is not set",
                hint="set GRANTCTL_VAULT_SECRET_ID (or VAULT_SECRET_ID) "
                "or GRANTCTL_VAULT_SECRET_ID_FILE",
            )
    if method is AuthMethod.KUBERNETES and not config.role:
        raise ConfigError(
            "GRANTCTL_VAULT_ROLE is not set, and the Kubernetes auth method needs a role",
            hint="set GRANTCTL_VAULT_ROLE to the role configured at auth/<mount>/role/<name>",
        )
    if method is AuthMethod.JWT and config.jwt is None and config.jwt_file is None:
        raise ConfigError(
            "neither GRANTCTL_VAULT_JWT nor GRANTCTL_VAULT_JWT_FILE is set, "
            "and the jwt auth method needs a token",
            hint="set GRANTCTL_VAULT_JWT_FILE to a file holding the identity token",
        )


def read_credential_file(path: str, variable: str) -> Secret:
    """Read a credential from `path`, named by `variable` in errors; the value is stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {variable} file {path}: {exc.strerror or type(exc).__name__}",
            hint=f"check that {path} exists and is readable by this process",
        ) from None
    if not text:
        raise ConfigError(
            f"{variable} file {path} is empty",
            hint=f"write the credential into {path}, or point {variable} at the right file",
        )
    return Secret(text)


def login_request(config: AuthConfig) -> dict[str, str]:
    """Return the body of `POST auth/<mount>/login` for the configured method.

    This is the one place where login credentials are revealed; the dict must go straight
    into the request.
    """
    method = config.method
    if method is AuthMethod.APPROLE:
        role_id = config.role_id or read_credential_file(
            str(config.role_id_file), "GRANTCTL_VAULT_ROLE_ID_FILE"
        )
        secret_id = config.secret_id or read_credential_file(
            str(config.secret_id_file), "GRANTCTL_VAULT_SECRET_ID_FILE"
        )
        return {"role_id": role_id.reveal(), "secret_id": secret_id.reveal()}
    if method is AuthMethod.KUBERNETES:
        token = read_credential_file(
            config.kubernetes_token_file, "GRANTCTL_VAULT_KUBERNETES_TOKEN_FILE"
        )
        return {"role": str(config.role), "jwt": token.reveal()}
    if method is AuthMethod.JWT:
        jwt = config.jwt or read_credential_file(str(config.jwt_file), "GRANTCTL_VAULT_JWT_FILE")
        body = {"jwt": jwt.reveal()}
        if config.role:
            body["role"] = config.role  # without it Vault uses the mount's default_role
        return body
    raise ValueError("the token auth method has no login request")
