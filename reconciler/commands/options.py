"""Flags shared by several commands, and their conversion to the workflow's settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from reconciler.logging_setup import LEVELS, configure_logging
from reconciler.secrets import REDACTOR
from reconciler.workflow_settings import ClientFlags, PlanFlags, VaultFlags

F = TypeVar("F", bound=Callable[..., Any])


def _set_log_level(context: click.Context, parameter: click.Parameter, value: str | None) -> None:
    del context, parameter
    if value is not None:
        configure_logging(value.lower())


LOG_LEVEL_ENVIRONMENT_VARIABLE = "GRANTCTL_LOG_LEVEL"


class LogLevelChoice(click.Choice[str]):
    """The --log-level choice, whose error names GRANTCTL_LOG_LEVEL when the value came
    from that variable and not from the flag."""

    def __init__(self) -> None:
        super().__init__(LEVELS, case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return str(super().convert(value, param, ctx))
        except click.BadParameter:
            source = ctx.get_parameter_source(param.name) if ctx and param and param.name else None
            if source is not click.core.ParameterSource.ENVIRONMENT:
                raise
            raise click.UsageError(
                f"{LOG_LEVEL_ENVIRONMENT_VARIABLE} is {value!r}, which is not a log level; "
                f"set it to one of {', '.join(LEVELS)}, or unset it",
                ctx,
            ) from None


# The group's --log-level is repeated on every command, so `grantctl plan X --log-level debug`
# works as users type it; the later option wins.
LOG_LEVEL_OPTION = click.option(
    "--log-level",
    type=LogLevelChoice(),
    default=None,
    expose_value=False,
    callback=_set_log_level,
    help="Lowest level of diagnostics written to stderr [default: warning].",
)

MANIFEST_ARGUMENT = click.argument(
    "manifest", type=click.Path(exists=True, dir_okay=False, readable=True)
)


METRICS_INCLUDE_EMAILS_OPTION = click.option(
    "--metrics-include-emails",
    is_flag=True,
    default=False,
    help="Add an email label to the per-account health metric.",
)


def lock_timeout_option(help_text: str) -> Callable[[F], F]:
    """Return the --lock-timeout option: seconds to wait for a held state lock, default 0."""
    return click.option(
        "--lock-timeout",
        "lock_timeout_s",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help=help_text,
    )


def _apply_all(function: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


_VAULT_AUTH_OPTION = click.option(
    "--vault-auth",
    type=click.Choice(["token", "approle", "kubernetes", "jwt"]),
    default=None,
    help="Vault auth method [default: GRANTCTL_VAULT_AUTH, else token].",
)
_VAULT_ROLE_OPTION = click.option(
    "--vault-role",
    default=None,
    help="Vault role for the approle, kubernetes and jwt auth methods.",
)
_TLS_SKIP_VERIFY_OPTION = click.option(
    "--tls-skip-verify",
    is_flag=True,
    default=False,
    help="Do not verify Vault's TLS certificate (test servers only).",
)


def vault_options(function: F) -> F:
    """Add the flags that choose how grantctl logs in to Vault and finds the API key."""
    return _apply_all(
        function,
        [
            _VAULT_AUTH_OPTION,
            _VAULT_ROLE_OPTION,
            click.option(
                "--api-key-vault-path",
                default=None,
                help="Read the Nylas API key from this Vault KV path (mount/path#field) "
                "instead of NYLAS_API_KEY.",
            ),
            _TLS_SKIP_VERIFY_OPTION,
        ],
    )


def vault_login_options(function: F) -> F:
    """Add only the flags that choose how grantctl logs in to Vault, for commands that read
    no API key."""
    return _apply_all(function, [_VAULT_AUTH_OPTION, _VAULT_ROLE_OPTION, _TLS_SKIP_VERIFY_OPTION])


def client_options(function: F) -> F:
    """Add the flags that bound concurrency, time and request rate."""
    return _apply_all(
        function,
        [
            click.option(
                "--parallelism",
                type=click.IntRange(1, 64),
                default=None,
                help="Maximum concurrent requests to Vault and to Nylas "
                "[default: GRANTCTL_PARALLELISM, else 10].",
            ),
            click.option(
                "--timeout",
                "timeout_s",
                type=click.FloatRange(min=0.1),
                default=None,
                help="Timeout of one HTTP request, in seconds [default: the client's].",
            ),
            click.option(
                "--rate-limit",
                type=click.FloatRange(min=0.1),
                default=None,
                help="Maximum Nylas requests per second [default: the client's].",
            ),
        ],
    )


def plan_options(function: F) -> F:
    """Add the flags that shape a plan."""
    return _apply_all(
        function,
        [
            click.option(
                "--replace",
                multiple=True,
                metavar="NAME",
                help="Reconnect this account even if it is in sync (repeatable).",
            ),
            click.option(
                "--target",
                "targets",
                multiple=True,
                metavar="GLOB",
                help="Plan only accounts whose name matches this glob (repeatable).",
            ),
            click.option(
                "--exclude",
                "excludes",
                multiple=True,
                metavar="GLOB",
                help="Leave out accounts whose name matches this glob (repeatable).",
            ),
            click.option(
                "--allow-deletes",
                type=click.IntRange(min=0),
                default=None,
                metavar="N",
                help="Allow up to N deletes, overriding the manifest's policy.max_deletes.",
            ),
            click.option(
                "--retry-quarantined",
                is_flag=True,
                default=False,
                help="Plan changes for quarantined accounts again.",
            ),
            click.option(
                "--no-color",
                is_flag=True,
                default=False,
                help="Never colour the output (NO_COLOR in the environment does the same).",
            ),
            click.option(
                "--verbose",
                is_flag=True,
                default=False,
                help="Also list accounts that are in sync.",
            ),
        ],
    )


def vault_flags(params: dict[str, Any]) -> VaultFlags:
    """Collect the Vault flags out of a command's parameters."""
    return VaultFlags(
        auth=params.pop("vault_auth"),
        role=params.pop("vault_role"),
        api_key_vault_path=params.pop("api_key_vault_path", None),
        tls_skip_verify=params.pop("tls_skip_verify"),
    )


def client_flags(params: dict[str, Any]) -> ClientFlags:
    """Collect the concurrency, timeout and rate flags out of a command's parameters."""
    return ClientFlags(
        parallelism=params.pop("parallelism"),
        timeout_s=params.pop("timeout_s"),
        rate_limit=params.pop("rate_limit"),
    )


def plan_flags(params: dict[str, Any]) -> PlanFlags:
    """Collect the plan-shaping flags out of a command's parameters."""
    return PlanFlags(
        replace=tuple(params.pop("replace")),
        targets=tuple(params.pop("targets")),
        excludes=tuple(params.pop("excludes")),
        allow_deletes=params.pop("allow_deletes"),
        retry_quarantined=params.pop("retry_quarantined"),
    )


def use_color(no_color: bool) -> bool:
    """Return True when stdout is a terminal, NO_COLOR is unset and --no-color was not given."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def emit(text: str) -> None:
    """Write a plan, result or report to stdout, masking any registered secret."""
    click.echo(REDACTOR.redact(text).rstrip("\n"))
