"""Prometheus metrics files for the node_exporter textfile collector.

`grantctl audit --metrics-file` and `grantctl reconcile --metrics-file` end here. The input is
a small summary (`AuditSummary`, `ReconcileCounters`) rather than the audit report or the plan,
so this module depends on nothing but the model's vocabulary. The file is written in the
Prometheus text exposition format by `prometheus_client` and replaced atomically, so the
collector never reads a half-written file. A metrics file never contains a secret, and contains
email addresses only when the caller passes `include_emails=True`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from reconciler.errors import ReconcilerError
from reconciler.model import EMPTY_MAPPING, Action

# Every account health status an audit can report. `grantctl_accounts` carries one sample per
# status, zero included, so that a status which empties out drops to 0 instead of vanishing.
HEALTH_STATUSES: tuple[str, ...] = (
    "healthy",
    "invalid",
    "missing",
    "rotation_pending",
    "scope_drift",
    "email_drift",
    "quarantined",
    "change_pending",
    "error",
)
# Actions that change something at apply; `no-op` is never counted as applied.
APPLIED_ACTIONS: tuple[str, ...] = tuple(a.value for a in Action if a is not Action.NOOP)
# node_exporter's textfile collector reads only `*.prom` files (as the docstring of
# prometheus_client's `write_to_textfile` also states), so the temporary file written beside
# the target ends in `.tmp` and is never collected half-written.
TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o644  # the collector usually runs as another user


def _status_value(status: object) -> str:
    # Accept a plain string or any str-valued enum member (e.g. the audit's own status enum).
    value = getattr(status, "value", status)
    return str(value)


@dataclass(frozen=True)
class AccountHealth:
    """One account's health as an audit saw it; `status` is one of `HEALTH_STATUSES`."""

    name: str
    provider: str
    email: str
    status: str

    def __post_init__(self) -> None:
        status = _status_value(self.status)
        if status not in HEALTH_STATUSES:
            valid = ", ".join(HEALTH_STATUSES)
            raise ValueError(
                f"account {self.name!r} has unknown health status {status!r}; valid: {valid}"
            )
        object.__setattr__(self, "status", status)

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


@dataclass(frozen=True)
class AuditSummary:
    """The results of one audit that the metrics file reports.

    `grants_by_provider` counts every grant of the application, managed or not, by provider.
    `finished_at` is the Unix time (seconds) the audit ended; `duration_s` how long it ran.
    """

    accounts: tuple[AccountHealth, ...]
    unmanaged_grants: int
    grants_by_provider: Mapping[str, int]
    finished_at: float
    duration_s: float

    def count(self, status: str) -> int:
        """Return how many accounts have `status`."""
        return sum(1 for account in self.accounts if account.status == status)


@dataclass(frozen=True)
class ReconcileCounters:
    """Counters of a running `grantctl reconcile`, since the process started.

    `last_success_at` is the Unix time of the last round that finished without an error, None
    before the first. `changes_applied` maps an action value (`connect`, `delete`, ...) to the
    number of changes done. `audit`, when set, adds the health of the last round's accounts.
    """

    rounds_total: int = 0
    failed_rounds_total: int = 0
    last_success_at: float | None = None
    changes_applied: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)
    audit: AuditSummary | None = None


def _audit_families(summary: AuditSummary, *, include_emails: bool) -> Iterator[Metric]:
    accounts = GaugeMetricFamily(
        "grantctl_accounts", "Managed accounts by health status.", labels=["status"]
    )
    for status in HEALTH_STATUSES:
        accounts.add_metric([status], summary.count(status))
    yield accounts

    yield GaugeMetricFamily(
        "grantctl_unmanaged_grants",
        "Grants that match no manifest account and no inventory entry.",
        value=summary.unmanaged_grants,
    )

    grants = GaugeMetricFamily(
        "grantctl_grants", "Grants of the Nylas application by provider.", labels=["provider"]
    )
    for provider, count in sorted(summary.grants_by_provider.items()):
        grants.add_metric([provider], count)
    yield grants

    yield GaugeMetricFamily(
        "grantctl_last_audit_timestamp_seconds",
        "Unix time the last audit finished.",
        value=summary.finished_at,
    )
    yield GaugeMetricFamily(
        "grantctl_audit_duration_seconds",
        "How long the last audit ran, in seconds.",
        value=summary.duration_s,
    )
    yield _account_healthy_family(summary, include_emails=include_emails)


def _account_healthy_family(summary: AuditSummary, *, include_emails: bool) -> Metric:
    labels = ["account", "provider", "email"] if include_emails else ["account", "provider"]
    family = GaugeMetricFamily(
        "grantctl_account_healthy", "1 when the account is healthy, else 0.", labels=labels
    )
    for account in sorted(summary.accounts, key=lambda a: a.name):
        values = [account.name, account.provider]
        if include_emails:
            values.append(account.email)
        family.add_metric(values, 1 if account.healthy else 0)
    return family


def _reconcile_families(counters: ReconcileCounters) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "grantctl_reconcile_rounds",
        "Reconcile rounds run since the process started.",
        value=counters.rounds_total,
    )
    yield CounterMetricFamily(
        "grantctl_reconcile_failed_rounds",
        "Reconcile rounds since the process started that did not end with exit code 0.",
        value=counters.failed_rounds_total,
    )
    # 0 before the first success, so `time() - metric > threshold` alerts fire at once.
    yield GaugeMetricFamily(
        "grantctl_last_reconcile_success_timestamp_seconds",
        "Unix time the last reconcile round without an error finished; 0 before the first.",
        value=counters.last_success_at or 0.0,
    )
    applied = CounterMetricFamily(
        "grantctl_changes_applied",
        "Changes applied by reconcile rounds since the process started, by action.",
        labels=["action"],
    )
    for action in APPLIED_ACTIONS:
        applied.add_metric([action], counters.changes_applied.get(action, 0))
    yield applied


class _SnapshotCollector:
    """A one-shot collector yielding the families of one summary."""

    def __init__(self, source: AuditSummary | ReconcileCounters, include_emails: bool) -> None:
        self._source = source
        self._include_emails = include_emails

    def collect(self) -> Iterator[Metric]:
        source = self._source
        if isinstance(source, ReconcileCounters):
            yield from _reconcile_families(source)
            if source.audit is not None:
                yield from _audit_families(source.audit, include_emails=self._include_emails)
        else:
            yield from _audit_families(source, include_emails=self._include_emails)


def render_metrics(
    source: AuditSummary | ReconcileCounters, *, include_emails: bool = False
) -> bytes:
    """Render `source` in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(source, include_emails))
    data: bytes = generate_latest(registry)
    return data


def write_metrics_file(
    path: str | os.PathLike[str],
    source: AuditSummary | ReconcileCounters,
    *,
    include_emails: bool = False,
) -> None:
    """Write `source` to `path` as a Prometheus text file, replacing any old file atomically.

    The data goes to a temporary file in the same directory, is flushed and fsynced, then
    renamed over `path`. On any failure the temporary file is removed and the old file is
    left as it was. Raises `ReconcilerError` naming the path when the write fails.
    """
    target = Path(path)
    data = render_metrics(source, include_emails=include_emails)
    try:
        _replace_atomically(target, data)
    except OSError as exc:
        raise ReconcilerError(
            f"could not write the metrics file {str(target)!r}: {exc.strerror or exc}",
            hint="check that the directory exists and is writable by this user",
        ) from exc


def _replace_atomically(target: Path, data: bytes) -> None:
    directory = target.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=directory)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp_path.chmod(FILE_MODE)
        temp_path.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable across a crash. Not every platform or file system can open a
    # directory for fsync, and the file is already in place, so a failure here is ignored.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
