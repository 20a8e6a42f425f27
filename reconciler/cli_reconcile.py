"""`grantctl reconcile`: plan and apply in a loop, as a controller instead of a pipeline.

The command parses its flags, builds one round from `reconciler.reconcile_round`, installs
SIGTERM and SIGINT handlers that set the loop's stop event, and hands over to
`reconciler.reconcile.run_reconcile_loop`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import click

from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    MANIFEST_ARGUMENT,
    METRICS_INCLUDE_EMAILS_OPTION,
    client_flags,
    client_options,
    lock_timeout_option,
    vault_flags,
    vault_options,
)
from reconciler.commands.outputs import check_output_paths
from reconciler.logging_setup import LOGGER_NAME
from reconciler.metrics import ReconcileCounters, write_metrics_file
from reconciler.reconcile import LOG as LOOP_LOG
from reconciler.reconcile import parse_interval, parse_jitter, run_reconcile_loop
from reconciler.reconcile_round import make_round
from reconciler.signals import stop_on_signals
from reconciler.workflow_settings import RunSettings

LOG = logging.getLogger(__name__)


def _metrics_writer(
    path: str | None, include_emails: bool
) -> Callable[[ReconcileCounters], None] | None:
    if path is None:
        return None
    return functools.partial(write_metrics_file, path, include_emails=include_emails)


def _show_round_summaries() -> None:
    # A controller that prints nothing between rounds looks hung, so the one summary line
    # per round is shown at the default level too. `--log-level error` still hides it.
    if logging.getLogger(LOGGER_NAME).getEffectiveLevel() < logging.ERROR:
        LOOP_LOG.setLevel(logging.INFO)


@click.command("reconcile")
@LOG_LEVEL_OPTION
@MANIFEST_ARGUMENT
@click.option(
    "--interval",
    default="1h",
    show_default=True,
    help="Time between rounds: seconds (90) or a duration (30m, 1h, 1h30m).",
)
@click.option(
    "--jitter",
    default="10%",
    show_default=True,
    help="Random spread of each wait, as a percentage (10%) or fraction (0.1) of the interval.",
)
@click.option(
    "--once",
    is_flag=True,
    default=False,
    help="Run one round and exit with its code (0 done, 3 partial, 1 error); for cron jobs.",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Rewrite this Prometheus text file after every round (node_exporter's textfile "
    "collector reads *.prom files).",
)
@METRICS_INCLUDE_EMAILS_OPTION
@lock_timeout_option(
    "Seconds to wait for the state lock held by another run; a round that cannot "
    "take it is retried with backoff."
)
@client_options
@vault_options
def reconcile_command(
    *,
    manifest: str,
    interval: str,
    jitter: str,
    once: bool,
    metrics_file: str | None,
    metrics_include_emails: bool,
    lock_timeout_s: float,
    **params: Any,
) -> int:
    """Plan and apply MANIFEST every --interval until SIGTERM or SIGINT.

    Each round re-reads MANIFEST, takes the state lock, plans, and applies without asking.
    Accounts with a plan error are left out and the others are applied. Vault or Nylas
    outages are retried with backoff. Exit 0 when stopped by a signal; with --once, the
    round's exit code.
    """
    check_output_paths({"--metrics-file": metrics_file}, manifest_path=manifest)
    interval_s = parse_interval(interval)
    jitter_fraction = parse_jitter(jitter)
    settings = RunSettings(
        vault=vault_flags(params), client=client_flags(params), lock_timeout_s=lock_timeout_s
    )
    _show_round_summaries()

    stop = threading.Event()
    with stop_on_signals(stop, logger=LOG, finishing="the round in progress"):
        return run_reconcile_loop(
            make_round(manifest, settings, stop=stop),
            interval_s=interval_s,
            jitter_fraction=jitter_fraction,
            once=once,
            stop=stop,
            on_round=_metrics_writer(metrics_file, metrics_include_emails),
        )


# The name the CLI registers.
reconcile = reconcile_command
