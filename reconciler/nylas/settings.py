"""Settings of the Nylas client: timeouts, rate limit, retries, base URL and API key source.

The CLI builds a `ClientSettings` from the environment with `ClientSettings.from_environment`
and then applies its flags with `dataclasses.replace`. The base URL and the API key come only
from the environment (or a Vault path named by a flag), never from the manifest, so a pull
request cannot send the API key to another host.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.errors import ConfigError
from reconciler.model import Region
from reconciler.secrets import Secret

logger = logging.getLogger("reconciler.nylas")

API_KEY_VARIABLE = "NYLAS_API_KEY"
API_URI_VARIABLE = "GRANTCTL_NYLAS_API_URI"
READ_TIMEOUT_VARIABLE = "GRANTCTL_NYLAS_TIMEOUT"
CONNECT_TIMEOUT_VARIABLE = "GRANTCTL_NYLAS_CONNECT_TIMEOUT"
RATE_LIMIT_VARIABLE = "GRANTCTL_NYLAS_RATE_LIMIT"
PARALLELISM_VARIABLE = "GRANTCTL_PARALLELISM"

# The only two regions Nylas v3 serves.
REGION_BASE_URLS: Mapping[Region, str] = {
    Region.US: "https://api.us.nylas.com",
    Region.EU: "https://api.eu.nylas.com",
}
LOOPBACK_HOSTS = frozenset({"localhost"})


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts (seconds), the client-side rate limit and the retry policy of `NylasClient`.

    `rate_limit_per_s` defaults to 40 requests/s, below the 50 requests/s that Nylas allows
    per application on the grants and authentication endpoints, so a run leaves room for
    other users of the application. With a token bucket of `rate_burst` tokens, the client
    sends at most `rate_limit_per_s + rate_burst` requests in any 1-second window.
    """

    timeout_connect_s: float = 5.0
    timeout_read_s: float = 30.0
    parallelism: int = 10
    rate_limit_per_s: float = 40.0
    rate_burst: int = 5
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 10.0
    retry_after_cap_s: float = 30.0
    # Seconds one request may spend waiting out 429 answers before it fails.
    rate_limit_budget_s: float = 120.0

    def __post_init__(self) -> None:
        positive = {
            "timeout_connect_s": self.timeout_connect_s,
            "timeout_read_s": self.timeout_read_s,
            "rate_limit_per_s": self.rate_limit_per_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(
                    f"Nylas client setting {name} must be greater than 0, not {value}"
                )
        at_least_one = {"parallelism": self.parallelism, "rate_burst": self.rate_burst}
        for name, count in at_least_one.items():
            if count < 1:
                raise ConfigError(f"Nylas client setting {name} must be at least 1, not {count}")
        not_negative = {
            "max_retries": self.max_retries,
            "backoff_base_s": self.backoff_base_s,
            "backoff_cap_s": self.backoff_cap_s,
            "retry_after_cap_s": self.retry_after_cap_s,
            "rate_limit_budget_s": self.rate_limit_budget_s,
        }
        for name, amount in not_negative.items():
            if amount < 0:
                raise ConfigError(f"Nylas client setting {name} must not be negative, not {amount}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        """Build settings from `GRANTCTL_NYLAS_*` and `GRANTCTL_PARALLELISM`; unset or empty
        variables keep the defaults. Raises `ConfigError` naming the variable on a bad value."""
        environ = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            timeout_read_s=_read_seconds(environ, READ_TIMEOUT_VARIABLE, defaults.timeout_read_s),
            timeout_connect_s=_read_seconds(
                environ, CONNECT_TIMEOUT_VARIABLE, defaults.timeout_connect_s
            ),
            rate_limit_per_s=_read_seconds(
                environ, RATE_LIMIT_VARIABLE, defaults.rate_limit_per_s, unit="requests per second"
            ),
            parallelism=_read_count(environ, PARALLELISM_VARIABLE, defaults.parallelism),
        )


def _read_seconds(
    environ: Mapping[str, str], variable: str, default: float, *, unit: str = "seconds"
) -> float:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    # `not value > 0` also rejects NaN; infinity is rejected because it disables the limit.
    if not value > 0 or value == float("inf"):
        raise ConfigError(
            f"{variable}={text!r} is invalid: expected a number of {unit} greater than 0",
            hint=f"set {variable} to a positive number such as {default:g}, or unset it",
        )
    return value


def _read_count(environ: Mapping[str, str], variable: str, default: int) -> int:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{variable}={text!r} is invalid: expected a whole number of at least 1",
            hint=f"set {variable} to a whole number such as {default}, or unset it",
        )
    return value


def api_base_url(region: Region, environ: Mapping[str, str] | None = None) -> str:
    """Return the Nylas API base URL for `region`, or `GRANTCTL_NYLAS_API_URI` when set.

    Only the environment can override the region's URL (to reach the emulator or a proxy);
    the manifest never can. Raises `ConfigError` when the override is not an http(s) URL.
    """
    environ = os.environ if environ is None else environ
    override = environ.get(API_URI_VARIABLE, "").strip()
    if not override:
        return REGION_BASE_URLS[region]
    return validate_base_url(override, source=API_URI_VARIABLE)


def validate_base_url(url: str, *, source: str = "base URL") -> str:
    """Return `url` without a trailing slash after checking it is a plain http(s) URL.

    User info, a query or a fragment are rejected: credentials in a URL would leak into
    logs, and the client appends `/v3/...` paths to the base.
    """
    parts = urlsplit(url)
    problem = ""
    if parts.scheme not in ("http", "https"):
        problem = "the scheme must be http or https"
    elif not parts.hostname:
        problem = "the host is missing"
    elif parts.username is not None or parts.password is not None:
        problem = "it must not contain a user name or password"
    elif parts.query or parts.fragment:
        problem = "it must not contain a query or fragment"
    if problem:
        raise ConfigError(
            f"{source}={url!r} is not a valid Nylas API URL: {problem}",
            hint=f"set {source} to a URL such as https://api.us.nylas.com or http://127.0.0.1:8080",
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        # Allowed for an emulator on another container, but the API key then travels in clear.
        logger.warning("%s uses plain http to %s: the API key is sent unencrypted", source, url)
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_from_environment(environ: Mapping[str, str] | None = None) -> Callable[[], Secret]:
    """Return a source that reads `NYLAS_API_KEY` on every call.

    The client calls the source once at its first request and again after a 401, so a key
    rotated in the environment is picked up. The source raises `ConfigError` when unset.
    """
    source_environ = os.environ if environ is None else environ

    def read_api_key() -> Secret:
        value = source_environ.get(API_KEY_VARIABLE, "").strip()
        if not value:
            raise ConfigError(
                f"{API_KEY_VARIABLE} is not set",
                hint=(
                    f"export the Nylas application's API key as {API_KEY_VARIABLE}, or name a "
                    "Vault path holding it with GRANTCTL_NYLAS_API_KEY_VAULT_PATH"
                ),
            )
        return Secret(value)

    return read_api_key
