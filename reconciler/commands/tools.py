"""`grantctl force-unlock`, `grantctl emulator` and `grantctl demo`."""

from __future__ import annotations

from typing import Any

import click

from reconciler.commands.options import (
    LOG_LEVEL_OPTION,
    MANIFEST_ARGUMENT,
    emit,
    vault_flags,
    vault_login_options,
)
from reconciler.demo import run_demo
from reconciler.emulator import DEFAULT_HOST, DEFAULT_PORT, EmulatorServer, FaultSettings, serve
from reconciler.errors import EXIT_OK
from reconciler.workflow import force_unlock


@click.command("force-unlock")
@LOG_LEVEL_OPTION
@click.argument("lock_id")
@MANIFEST_ARGUMENT
@vault_login_options
def force_unlock_command(*, lock_id: str, manifest: str, **params: Any) -> int:
    """Remove the state lock LOCK_ID of MANIFEST's state backend.

    Use it only when the run that holds the lock is known to be dead. The lock's id is in
    the error message of the run that could not take it.
    """
    previous = force_unlock(manifest, lock_id, vault_flags(params))
    if previous is None:
        emit("The state was not locked.")
    else:
        emit(f"Removed lock {previous.id} ({previous.operation} by {previous.who}).")
    return EXIT_OK


@click.command("emulator")
@LOG_LEVEL_OPTION
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    default=False,
    help="Allow a --host other than loopback, such as 0.0.0.0 inside a container.",
)
@click.option(
    "--fixture",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    default=None,
    help="YAML file of API keys, identities and grants that exist at start.",
)
@click.option(
    "--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Delay added to every request."
)
@click.option(
    "--jitter-ms", type=click.FloatRange(min=0), default=0.0, help="Random extra delay, up to this."
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Fraction of requests that get an --error-status response.",
)
@click.option("--error-status", type=click.IntRange(500, 599), default=503, show_default=True)
@click.option(
    "--burst-429",
    type=click.IntRange(min=0),
    default=0,
    help="Respond 429 to this many requests before serving normally.",
)
@click.option(
    "--retry-after",
    default="1",
    show_default=True,
    help="Retry-After of 429 responses, in seconds.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Fraction of requests whose connection is closed without a response.",
)
@click.option(
    "--drop-after-processing",
    is_flag=True,
    default=False,
    help="Drop connections after the request took effect (an unknown outcome).",
)
@click.option(
    "--html-error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Fraction of requests that get an HTML error page, as some proxies return.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Requests per second per endpoint group [default: the fixture's, else 50; 0: off].",
)
def emulator_command(
    *, host: str, port: int, allow_remote: bool, fixture: str | None, **faults: Any
) -> int:
    """Serve a local Nylas v3 API emulator until interrupted (tests and offline demos)."""
    retry_after = faults.pop("retry_after")
    faults["retry_after"] = float(retry_after) if _is_number(retry_after) else retry_after
    serve(
        host,
        port,
        fixture,
        FaultSettings(**faults),
        allow_remote=allow_remote,
        on_ready=_announce,
    )
    return EXIT_OK


@click.command("demo")
@LOG_LEVEL_OPTION
def demo_command() -> int:
    """Walk through plan, apply, rotation, expiry and audit against local servers."""
    return run_demo()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _announce(server: EmulatorServer) -> None:
    click.echo(f"Nylas emulator listening on {server.url}", err=True)
    click.echo(
        f"Point grantctl at it with GRANTCTL_NYLAS_API_URI={server.url}; stop it with Ctrl-C.",
        err=True,
    )
