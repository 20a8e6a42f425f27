"""The `grantctl` command line: global flags, the one error boundary, and exit codes.

Commands live in `reconciler.commands`; they parse flags, call `reconciler.workflow`, render,
and return an exit code. Every failure reaches `GrantctlGroup.main`, which prints it on stderr
and picks the exit code: Terraform's, so 2 never means a usage error here.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from reconciler import __version__
from reconciler.commands.options import LOG_LEVEL_ENVIRONMENT_VARIABLE, LogLevelChoice
from reconciler.errors import EXIT_ERROR, EXIT_OK, InterruptedRunError, ReconcilerError
from reconciler.logging_setup import LOGGER_NAME, configure_logging
from reconciler.secrets import REDACTOR
from reconciler.signals import sigterm_interrupts

logger = logging.getLogger(LOGGER_NAME)

# The cyclic garbage collector runs after every 700 new container objects by default. A
# 10,000-account plan creates millions of dicts, tuples and dataclasses that form no cycles.
# The default ran about 850 collections there, 0.3 s of a 7 s plan on the 2-core benchmark
# machine, and each one paused the Vault reader threads. Collecting every 20,000 new objects
# runs far fewer collections, and the plan's peak memory stayed at 80 MiB.
GC_FIRST_GENERATION_THRESHOLD = 20_000


def _echo_error(text: str) -> None:
    click.echo(f"Error: {REDACTOR.redact(text)}", err=True)


def run_guarded(invoke: Callable[[], object]) -> int:
    """Run `invoke` and turn its outcome into a process exit code.

    `ReconcilerError` prints its message and next step. Click usage errors print click's
    message and exit 1. Anything else is a bug, reported by type only, because its message
    could contain a value read from Vault. The traceback is logged at debug level.
    """
    try:
        result = invoke()
    except ReconcilerError as error:
        _echo_error(str(error))
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return EXIT_ERROR
    except (click.Abort, KeyboardInterrupt):
        _echo_error(
            "interrupted\n  next step: run the command again; after an apply, run plan "
            "first to see what it left undone"
        )
        return InterruptedRunError.exit_code
    except Exception as error:  # the boundary: every bug ends here
        logger.debug("unexpected %s", type(error).__name__, exc_info=True)
        _echo_error(
            f"internal error ({type(error).__module__}.{type(error).__name__}).\n"
            "  This is a bug in grantctl: re-run with `--log-level debug` to see the "
            "traceback, and report it with that output."
        )
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_OK


# Each subcommand by name: its module and attribute. A module is imported only when its
# command runs or help lists it, so that `plan` does not pay about 0.13 s for importing the
# emulator, the demo and the reconcile loop.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("reconciler.commands.manifest", "validate_command"),
    "fmt": ("reconciler.commands.manifest", "fmt_command"),
    "plan": ("reconciler.commands.plan", "plan_command"),
    "apply": ("reconciler.commands.apply", "apply_command"),
    "audit": ("reconciler.commands.audit", "audit_command"),
    "force-unlock": ("reconciler.commands.tools", "force_unlock_command"),
    "emulator": ("reconciler.commands.tools", "emulator_command"),
    "demo": ("reconciler.commands.tools", "demo_command"),
    "reconcile": ("reconciler.cli_reconcile", "reconcile_command"),
}


class GrantctlGroup(click.Group):
    """The `grantctl` group, whose `main` is the one error boundary of the program."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return every subcommand name, sorted as click's own help sorts them."""
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the subcommand `cmd_name`, importing its module on first use."""
        if cmd_name in SUBCOMMANDS and cmd_name not in self.commands:
            module_name, attribute = SUBCOMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> NoReturn:
        """Run the command line and exit with the code `run_guarded` picks.

        `standalone_mode` is ignored: click must raise its errors here so that usage
        errors exit 1 instead of click's 2, which Terraform reserves for "changes present".
        """

        _, *older_generations = gc.get_threshold()
        gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, *older_generations)

        def invoke() -> object:
            return super(GrantctlGroup, self).main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )

        with sigterm_interrupts():
            code = run_guarded(invoke)
        sys.exit(code)


@click.group(cls=GrantctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=LogLevelChoice(),
    default="warning",
    show_default=True,
    envvar=LOG_LEVEL_ENVIRONMENT_VARIABLE,
    help="Lowest level of diagnostics written to stderr.",
)
@click.version_option(__version__, "--version", prog_name="grantctl")
def grantctl(log_level: str) -> None:
    """Keep a Nylas application's grants equal to a YAML manifest.

    Plans and results go to stdout, diagnostics to stderr. Exit codes: 0 success and no
    changes, 1 error, 2 changes present (plan --detailed-exitcode) or drift (audit),
    3 apply finished partially, 130 interrupted (Ctrl-C or SIGTERM; reconcile stops
    cleanly and exits 0).
    """
    configure_logging(log_level.lower())


def subcommand(name: str) -> click.Command | None:
    """Return the subcommand called `name`, or None; for tests and documentation checks."""
    return grantctl.get_command(click.Context(grantctl), name)


def main() -> NoReturn:
    """Run `grantctl` with the process arguments; the console script's entry point."""
    grantctl.main(prog_name="grantctl")
