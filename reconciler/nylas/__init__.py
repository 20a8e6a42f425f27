"""The Nylas v3 API client: grants, Bring Your Own Authentication, errors, retries, rate limit.

`NylasClient` implements `reconciler.protocols.GrantsAPI`. The CLI builds one with
`api_key_from_environment()` (or a Vault-backed key source), `api_base_url(manifest.region)`
and `ClientSettings.from_environment()`, and shares it between all executor workers.
"""

from reconciler.nylas.client import NylasClient
from reconciler.nylas.ratelimit import TokenBucket
from reconciler.nylas.retry import RequestStats, StatsSnapshot
from reconciler.nylas.sender import USER_AGENT
from reconciler.nylas.settings import (
    ClientSettings,
    api_base_url,
    api_key_from_environment,
    validate_base_url,
)

__all__ = [
    "USER_AGENT",
    "ClientSettings",
    "NylasClient",
    "RequestStats",
    "StatsSnapshot",
    "TokenBucket",
    "api_base_url",
    "api_key_from_environment",
    "validate_base_url",
]
