"""Settings the command line hands to the workflow: plain values, no click and no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VaultFlags:
    """Vault flags given on the command line; None means "take it from the environment"."""

    auth: str | None = None
    role: str | None = None
    api_key_vault_path: str | None = None
    tls_skip_verify: bool = False


@dataclass(frozen=True)
class ClientFlags:
    """Concurrency, per-request timeout (seconds) and Nylas request rate (per second).

    None keeps the value from the environment (`GRANTCTL_PARALLELISM`, `GRANTCTL_NYLAS_*`)
    or the client's default.
    """

    parallelism: int | None = None
    timeout_s: float | None = None
    rate_limit: float | None = None


@dataclass(frozen=True)
class PlanFlags:
    """Flags that shape a plan; `allow_deletes` None keeps the manifest's policy."""

    replace: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    allow_deletes: int | None = None
    retry_quarantined: bool = False


@dataclass(frozen=True)
class RunSettings:
    """Everything a plan, apply or audit run needs beyond the manifest path."""

    vault: VaultFlags = VaultFlags()
    client: ClientFlags = ClientFlags()
    plan: PlanFlags = PlanFlags()
    lock_timeout_s: float = 0.0
