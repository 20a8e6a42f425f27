"""`POST /v3/connect/custom` of the Nylas emulator: validation, credential check, re-auth.

The request is checked against each provider's settings keys, the credential is looked up
among the fixture identities, and the grant for (provider, email) is created or
re-authenticated in place, as Nylas does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.emulator.envelope import ApiError, invalid_request
from reconciler.emulator.store import (
    OAUTH_PROVIDERS,
    PROVIDERS,
    GrantRecord,
    GrantStore,
    Identity,
    new_grant_id,
)

# Settings keys per provider: (required, optional). Ports are integers, the rest strings.
_OAUTH_KEYS = (("refresh_token",), ("credential_id",))
SETTINGS_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **dict.fromkeys(OAUTH_PROVIDERS, _OAUTH_KEYS),
    "imap": (
        ("imap_username", "imap_password", "imap_host", "imap_port", "smtp_host", "smtp_port"),
        ("smtp_username", "smtp_password"),
    ),
    "icloud": (("username", "password"), ()),
    "ews": (("email", "ews_username", "ews_password"), ("ews_host", "ews_port")),
}
_INTEGER_KEYS = {"imap_port", "smtp_port", "ews_port"}
# Keys whose values are secrets: they are never stored on the grant or echoed.
SECRET_KEYS = {"refresh_token", "imap_password", "smtp_password", "password", "ews_password"}
# The credential and password key used to find the identity, per provider.
_CREDENTIAL_KEYS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(OAUTH_PROVIDERS, ("refresh_token", None)),
    "imap": ("imap_username", "imap_password"),
    "icloud": ("username", "password"),
    "ews": ("ews_username", "ews_password"),
}
# Google rejects tokens without these scopes. Each entry lists the accepted spellings.
GOOGLE_REQUIRED_SCOPES = (
    ("openid",),
    ("userinfo.email", "email", "https://www.googleapis.com/auth/userinfo.email"),
    ("userinfo.profile", "profile", "https://www.googleapis.com/auth/userinfo.profile"),
)


@dataclass(frozen=True)
class ConnectRequest:
    """A validated connect body."""

    provider: str
    settings: dict[str, object]
    scope: tuple[str, ...] | None
    state: str


@dataclass(frozen=True)
class ConnectOutcome:
    """The grant after a connect and whether it was created (201) or re-authenticated (200)."""

    grant: GrantRecord
    created: bool


def parse_connect(body: object, connectors: tuple[str, ...] | None) -> ConnectRequest:
    """Validate a connect body and raise ApiError 400 naming the first invalid field."""
    if not isinstance(body, Mapping):
        raise invalid_request("the request body must be a JSON object")
    unknown = sorted(set(body) - {"provider", "settings", "scope", "state"})
    if unknown:
        raise invalid_request(f"unknown field {unknown[0]!r} in the request body")

    provider = body.get("provider")
    if not provider:
        raise ApiError(400, "grant.provider_required", "provider is required")
    if provider not in PROVIDERS:
        raise invalid_request(
            f"unsupported provider {provider!r}; use one of {', '.join(PROVIDERS)}"
        )
    if connectors is not None and provider not in connectors:
        raise invalid_request(f"no connector exists for provider {provider!r} in this application")

    settings = body.get("settings")
    if not isinstance(settings, Mapping):
        raise invalid_request("settings is required and must be a JSON object")
    _check_settings(str(provider), settings)

    scope = body.get("scope")
    if scope is not None and (
        not isinstance(scope, list) or not all(isinstance(s, str) for s in scope)
    ):
        raise invalid_request("scope must be an array of strings")
    state = body.get("state", "")
    if not isinstance(state, str):
        raise invalid_request("state must be a string")
    return ConnectRequest(
        str(provider), dict(settings), None if scope is None else tuple(scope), state
    )


def _check_settings(provider: str, settings: Mapping[str, object]) -> None:
    required, optional = SETTINGS_KEYS[provider]
    unknown = [key for key in sorted(settings) if key not in required and key not in optional]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise invalid_request(f"unknown settings key(s) {names} for provider {provider}")
    for key in required:
        if key not in settings:
            raise invalid_request(f"settings.{key} is required for provider {provider}")
    for key, value in settings.items():
        if key in _INTEGER_KEYS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise invalid_request(f"settings.{key} must be an integer port number")
        elif not isinstance(value, str) or not value:
            raise invalid_request(f"settings.{key} must be a non-empty string")


def authenticate(store: GrantStore, request: ConnectRequest) -> Identity:
    """Return the identity behind the request's credential, or raise ApiError 400."""
    credential_key, password_key = _CREDENTIAL_KEYS[request.provider]
    identity = store.find_identity(request.provider, str(request.settings[credential_key]))
    password_ok = identity is not None and (
        password_key is None or identity.password == request.settings[password_key]
    )
    if identity is None or not identity.valid or not password_ok:
        raise ApiError(
            400,
            "invalid_request_error",
            "the provider rejected the credentials: "
            "the token or password is invalid, expired or revoked",
            provider_error={
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            },
        )
    if request.provider == "google":
        granted = set(identity.scopes)
        missing = [names[0] for names in GOOGLE_REQUIRED_SCOPES if granted.isdisjoint(names)]
        if missing:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Authentication failed: the Google token lacks the scopes {', '.join(missing)}",
            )
    return identity


def connect(
    store: GrantStore, request: ConnectRequest, identity: Identity, *, user_agent: str, ip: str
) -> ConnectOutcome:
    """Create the grant for the identity's (provider, email) or re-authenticate the live one."""
    public_settings = {
        key: value
        for key, value in request.settings.items()
        if key not in SECRET_KEYS and key != "credential_id"
    }
    credential_id = str(request.settings.get("credential_id", ""))
    with store.lock:
        now = store.now()
        grant = store.find_by_key(request.provider, identity.email)
        if grant is not None:
            # Re-authentication keeps the id and created_at and changes only what a login sets.
            grant.grant_status = "valid"
            grant.updated_at = now
            grant.scope = list(identity.scopes)
            grant.settings = public_settings
            grant.credential_id = credential_id
            grant.state = request.state or grant.state
            store.touch(grant)
            return ConnectOutcome(grant, created=False)
        grant = GrantRecord(
            id=new_grant_id(),
            provider=request.provider,
            email=identity.email,
            scope=list(identity.scopes),
            created_at=now,
            updated_at=now,
            name=identity.name,
            provider_user_id=identity.provider_user_id,
            ip=ip,
            user_agent=user_agent,
            state=request.state,
            settings=public_settings,
            credential_id=credential_id,
        )
        return ConnectOutcome(store.insert(grant), created=True)
