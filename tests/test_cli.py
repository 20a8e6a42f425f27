"""The command line's error boundary, exit codes and output streams, through CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import SUBCOMMANDS, subcommand
from reconciler.commands import plan as plan_commands
from reconciler.errors import ConfigError, StalePlanError
from reconciler.secrets import Secret
from tests.support.cli import VALID_MANIFEST, invoke


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A valid one-account manifest."""
    path = tmp_path / "grants.yaml"
    path.write_text(VALID_MANIFEST, encoding="utf-8")
    return path


def test_version_exits_zero() -> None:
    """`--version` prints the version on stdout and exits 0."""
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert "grantctl" in result.stdout


def test_help_lists_every_exit_code() -> None:
    """The README's exit codes, 130 for an interrupted run included, are in `--help`."""
    result = invoke(["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for code in ("0 success", "1 error", "2 changes present", "3 apply", "130 interrupted"):
        assert code in text


def test_unknown_command_exits_one() -> None:
    """A usage error exits 1, not click's 2, which means "changes present"."""
    result = invoke(["no-such-command"])
    assert result.exit_code == 1
    assert "No such command" in result.stderr
    assert result.stdout == ""


def test_bad_flag_exits_one(manifest: Path) -> None:
    """An unknown flag is a usage error: exit 1, message on stderr."""
    result = invoke(["plan", str(manifest), "--no-such-flag"])
    assert result.exit_code == 1
    assert "no-such-flag" in result.stderr


def test_bad_flag_value_exits_one(manifest: Path) -> None:
    """A flag value outside its range is a usage error too."""
    result = invoke(["plan", str(manifest), "--parallelism", "0"])
    assert result.exit_code == 1
    assert "--parallelism" in result.stderr


def test_missing_manifest_exits_one(tmp_path: Path) -> None:
    """A manifest path that does not exist is reported by click and exits 1."""
    result = invoke(["validate", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_validate_valid_manifest(manifest: Path) -> None:
    """validate prints a one-line summary on stdout and exits 0."""
    result = invoke(["validate", str(manifest)])
    assert result.exit_code == 0, result.stderr
    assert "is valid: 1 account" in result.stdout
    assert result.stderr == ""


def test_validate_invalid_manifest(tmp_path: Path) -> None:
    """An invalid manifest prints every diagnostic on stderr and exits 1."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\naccounts:\n  - name: x\n", encoding="utf-8")
    result = invoke(["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: manifest is invalid")
    assert result.stdout == ""


def test_reconciler_error_uses_its_exit_code(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ReconcilerError prints its message and next step, and exits with its code."""

    def fail(*args: object, **kwargs: object) -> None:
        raise StalePlanError("the plan is stale", hint="plan again")

    monkeypatch.setattr(plan_commands, "run_plan", fail)
    result = invoke(["plan", str(manifest)])
    assert result.exit_code == 1
    assert "Error: the plan is stale" in result.stderr
    assert "next step: plan again" in result.stderr


def test_error_message_is_redacted(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret value that leaked into an error message is masked on stderr."""
    leaked = Secret("leaked-refresh-token-value")

    def fail(*args: object, **kwargs: object) -> None:
        raise ConfigError(f"bad value {leaked.reveal()}")

    monkeypatch.setattr(plan_commands, "run_plan", fail)
    result = invoke(["plan", str(manifest)])
    assert result.exit_code == 1
    assert "leaked-refresh-token-value" not in result.stderr
    assert "[REDACTED]" in result.stderr


def test_internal_error_hides_message(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception names its type, asks for a report, and hides its message."""

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr(plan_commands, "run_plan", fail)
    result = invoke(["plan", str(manifest)])
    assert result.exit_code == 1
    assert "internal error (builtins.RuntimeError)" in result.stderr
    assert "--log-level debug" in result.stderr
    assert "secret-looking detail" not in result.stderr
    assert "Traceback" not in result.stderr


def test_internal_error_traceback_at_debug(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --log-level debug the traceback is logged on stderr, with secrets masked."""
    leaked = Secret("token-in-a-traceback")

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom {leaked.reveal()}")

    monkeypatch.setattr(plan_commands, "run_plan", fail)
    result = invoke(["--log-level", "debug", "plan", str(manifest)])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "token-in-a-traceback" not in result.stderr


def test_missing_vault_addr_is_config_error(manifest: Path) -> None:
    """Without VAULT_ADDR, plan fails with a message naming the variable."""
    result = invoke(["plan", str(manifest)], env={"VAULT_ADDR": "", "BAO_ADDR": ""})
    assert result.exit_code == 1
    assert "VAULT_ADDR" in result.stderr


def test_plan_flags_with_plan_file_rejected(tmp_path: Path) -> None:
    """Plan-shaping flags cannot be combined with a saved plan."""
    plan_file = tmp_path / "plan.json"
    plan_file.write_text("{}", encoding="utf-8")
    result = invoke(["apply", str(plan_file), "--target", "x*"])
    assert result.exit_code == 1
    assert "cannot be used with a plan file" in result.stderr


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_command_accepts_log_level(name: str) -> None:
    """`grantctl COMMAND --log-level info` parses for every subcommand."""
    command = subcommand(name)
    assert command is not None
    options = {option for parameter in command.params for option in parameter.opts}

    assert "--log-level" in options


def test_reconcile_log_level_parses(manifest: Path) -> None:
    result = invoke(["reconcile", str(manifest), "--log-level", "info", "--interval", "x"])

    assert "No such option" not in result.stderr
    assert "invalid interval 'x'" in result.stderr


def test_bad_log_level_env_named(manifest: Path) -> None:
    result = invoke(["validate", str(manifest)], env={"GRANTCTL_LOG_LEVEL": "verbose"})

    assert result.exit_code == 1
    assert "GRANTCTL_LOG_LEVEL is 'verbose'" in result.stderr
    assert "--log-level" not in result.stderr


def test_bad_log_level_flag_named(manifest: Path) -> None:
    result = invoke(["--log-level", "verbose", "validate", str(manifest)])

    assert result.exit_code == 1
    assert "Invalid value for '--log-level'" in result.stderr
