"""Bad input: flags, files and environment variables that grantctl must reject cleanly.

Every case must exit 1 with exactly one `Error:` message on stderr that names the value or
file at fault and says what to do next, print no traceback, and change no grant. The runs go
through click's CliRunner in-process against a real OpenBao and the emulator, so a case that
slips past validation reaches real servers instead of a mock.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.planfile import FORMAT_VERSION, document_checksum
from tests.support.cli import Scenario
from tests.support.openbao import OpenBaoServer

# Words an error's next step starts with, or the click usage line that points at --help.
NEXT_STEP_MARKERS = ("next step:", "Try 'grantctl")


@pytest.fixture
def world(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """One Microsoft account with its secret in OpenBao; local state; nothing applied."""
    scenario = Scenario(openbao, emulator_factory({"api_keys": ["nyk_bad_input"]}), tmp_path)
    scenario.add_account("leyah")
    scenario.write_manifest()
    return scenario


def assert_rejected(completed: Any, *named: str) -> None:
    """Exit 1, one error naming every string of `named`, a next step and no traceback."""
    stderr = completed.stderr
    assert completed.returncode == 1, f"exit {completed.returncode}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert stderr.count("Error:") == 1, stderr
    for value in named:
        assert value in stderr, f"{value!r} not named in:\n{stderr}"
    assert any(marker in stderr for marker in NEXT_STEP_MARKERS), f"no next step in:\n{stderr}"


FLAG_CASES = {
    "unknown format": (["plan", "grants.yaml", "--format", "yaml"], ["--format", "yaml"]),
    "audit format": (["audit", "grants.yaml", "--format", "xml"], ["--format", "xml"]),
    "parallelism word": (["plan", "grants.yaml", "--parallelism", "abc"], ["--parallelism"]),
    "parallelism zero": (["plan", "grants.yaml", "--parallelism", "0"], ["--parallelism"]),
    "timeout zero": (["apply", "grants.yaml", "--timeout", "0"], ["--timeout"]),
    "negative deletes": (["plan", "grants.yaml", "--allow-deletes", "-1"], ["--allow-deletes"]),
    "vault auth": (["plan", "grants.yaml", "--vault-auth", "ldap"], ["--vault-auth", "ldap"]),
    "log level": (["--log-level", "loud", "plan", "grants.yaml"], ["--log-level", "loud"]),
    "unknown flag": (["plan", "grants.yaml", "--dry-run"], ["--dry-run"]),
    "apply json only": (["apply", "grants.yaml", "--format", "markdown"], ["markdown"]),
    "missing manifest": (["plan", "absent.yaml"], ["absent.yaml"]),
    "manifest directory": (["validate", "."], ["'.'", "directory"]),
    "fmt missing": (["fmt", "--check", "absent.yaml"], ["absent.yaml"]),
    "apply missing": (["apply", "absent.json"], ["absent.json"]),
    "unlock missing": (["force-unlock", "some-id", "absent.yaml"], ["absent.yaml"]),
}


@pytest.mark.parametrize("case", FLAG_CASES, ids=list(FLAG_CASES))
def test_bad_flag_rejected(world: Scenario, case: str) -> None:
    """A flag value click cannot accept, or a path that does not exist."""
    arguments, named = FLAG_CASES[case]
    assert_rejected(world.grantctl(*arguments), *named)
    assert world.emulator.grants() == []


def test_plan_flags_with_plan_file(world: Scenario) -> None:
    """--target with a plan file conflicts: the file already fixes the changes."""
    assert world.grantctl("plan", "grants.yaml", "--out", "plan.json").returncode == 0
    completed = world.grantctl("apply", "plan.json", "--target", "leyah")
    assert_rejected(completed, "--target", "plan file")
    assert world.emulator.grants() == []


ENVIRONMENT_CASES = {
    "api uri not url": ({"GRANTCTL_NYLAS_API_URI": "notaurl"}, ["GRANTCTL_NYLAS_API_URI"]),
    "api uri ftp": ({"GRANTCTL_NYLAS_API_URI": "ftp://127.0.0.1/"}, ["ftp://127.0.0.1/"]),
    "parallelism word": ({"GRANTCTL_PARALLELISM": "abc"}, ["GRANTCTL_PARALLELISM", "abc"]),
    "parallelism zero": ({"GRANTCTL_PARALLELISM": "0"}, ["GRANTCTL_PARALLELISM", "'0'"]),
    "vault auth": ({"GRANTCTL_VAULT_AUTH": "magic"}, ["GRANTCTL_VAULT_AUTH", "magic"]),
    "nylas timeout": ({"GRANTCTL_NYLAS_TIMEOUT": "-3"}, ["GRANTCTL_NYLAS_TIMEOUT", "-3"]),
    "rate limit": ({"GRANTCTL_NYLAS_RATE_LIMIT": "fast"}, ["GRANTCTL_NYLAS_RATE_LIMIT", "fast"]),
    "vault timeout": ({"GRANTCTL_VAULT_TIMEOUT": "x"}, ["GRANTCTL_VAULT_TIMEOUT", "'x'"]),
    "vault addr": ({"VAULT_ADDR": "notaurl"}, ["VAULT_ADDR", "notaurl"]),
    "log level": ({"GRANTCTL_LOG_LEVEL": "loud"}, ["loud"]),
    "api key unset": ({"NYLAS_API_KEY": ""}, ["NYLAS_API_KEY"]),
    "prefix outside": (
        {"GRANTCTL_VAULT_ALLOWED_PREFIXES": "secret/elsewhere"},
        ["GRANTCTL_VAULT_ALLOWED_PREFIXES", "secret/elsewhere"],
    ),
}


@pytest.mark.parametrize("case", ENVIRONMENT_CASES, ids=list(ENVIRONMENT_CASES))
def test_bad_environment_rejected(world: Scenario, case: str) -> None:
    """An environment variable with a value grantctl cannot use, on plan and on apply."""
    overrides, named = ENVIRONMENT_CASES[case]
    environment = {**world.env(), **overrides}
    for arguments in (["plan", "grants.yaml"], ["apply", "grants.yaml", "--auto-approve"]):
        completed = invoke_with(world, environment, arguments)
        assert_rejected(completed, *named)
    assert world.emulator.grants() == []


def invoke_with(world: Scenario, environment: dict[str, str], arguments: list[str]) -> Any:
    """Run grantctl in-process in the world's directory with exactly `environment`."""
    from tests.support.cli import invoke_isolated

    return invoke_isolated(arguments, env=environment, cwd=world.workdir)


def saved_plan(world: Scenario) -> dict[str, Any]:
    """Save a plan to plan.json and return its document."""
    completed = world.grantctl("plan", "grants.yaml", "--out", "plan.json")
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads((world.workdir / "plan.json").read_text())
    return document


def write_plan(world: Scenario, document: dict[str, Any], *, reseal: bool) -> None:
    """Write `document` as plan.json, with a recomputed checksum when `reseal`."""
    if reseal:
        document["checksum"] = document_checksum(document)
    (world.workdir / "plan.json").write_text(json.dumps(document), encoding="utf-8")


def test_truncated_plan_file(world: Scenario) -> None:
    """A plan file cut in half is reported as a damaged plan, not parsed as a manifest."""
    saved_plan(world)
    path = world.workdir / "plan.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    assert_rejected(world.grantctl("apply", "plan.json"), "plan.json", "truncated")
    assert world.emulator.grants() == []


def test_truncated_plan_other_name(world: Scenario) -> None:
    """A truncated plan without the .json suffix is still recognised as a plan file."""
    saved_plan(world)
    text = (world.workdir / "plan.json").read_text(encoding="utf-8")
    (world.workdir / "reviewed.plan").write_text(text[:200], encoding="utf-8")
    assert_rejected(world.grantctl("apply", "reviewed.plan"), "reviewed.plan", "truncated")


def test_tampered_plan_file(world: Scenario) -> None:
    """A change edited by hand fails the checksum."""
    document = saved_plan(world)
    document["changes"][0]["email"] = "attacker@example.com"
    write_plan(world, document, reseal=False)
    assert_rejected(world.grantctl("apply", "plan.json"), "plan.json", "modified")
    assert world.emulator.grants() == []


def test_resealed_tampered_plan(world: Scenario) -> None:
    """An edit with a recomputed checksum still fails: the plan's inputs moved."""
    document = saved_plan(world)
    document["manifest"]["digest"] = "sha256:" + "0" * 64
    write_plan(world, document, reseal=True)
    assert_rejected(world.grantctl("apply", "plan.json"), "stale")
    assert world.emulator.grants() == []


def test_resealed_plan_deleting_unmanaged_grant(world: Scenario) -> None:
    """A reviewed connect edited into a delete of a grant grantctl does not manage, with a
    recomputed checksum, is rejected and deletes nothing."""
    victim = world.emulator.add_grant(provider="google", email="victim@example.com")
    document = saved_plan(world)
    change = document["changes"][0]
    change.update(action="delete", reason="removed_from_manifest", grant_id=victim["id"])
    write_plan(world, document, reseal=True)

    assert_rejected(world.grantctl("apply", "plan.json"), "does not match", "'leyah'")
    assert [grant["id"] for grant in world.emulator.grants()] == [victim["id"]]


def test_resealed_plan_reading_other_secret(world: Scenario) -> None:
    """A connect edited to send a secret outside the manifest's prefix is rejected."""
    document = saved_plan(world)
    document["changes"][0]["vault_path"] = "prod/ceo"
    write_plan(world, document, reseal=True)

    assert_rejected(world.grantctl("apply", "plan.json"), "does not match")
    assert world.emulator.grants() == []


def test_targeted_saved_plan_applies(world: Scenario) -> None:
    """Apply plans again with the saved plan's flags, so a partial plan still matches."""
    world.add_account("bram")
    world.write_manifest()
    planned = world.grantctl("plan", "grants.yaml", "--target", "bram", "--out", "plan.json")
    assert planned.returncode == 0, planned.stderr

    applied = world.grantctl("apply", "plan.json", "--auto-approve")

    assert applied.returncode == 0, applied.stderr
    assert [grant["email"] for grant in world.emulator.grants()] == ["bram@example.com"]


def test_newer_plan_format(world: Scenario) -> None:
    """A plan written by a newer grantctl names both format versions."""
    document = saved_plan(world)
    document["format_version"] = FORMAT_VERSION + 1
    write_plan(world, document, reseal=True)
    completed = world.grantctl("apply", "plan.json")
    assert_rejected(completed, "plan.json", f"format_version {FORMAT_VERSION + 1}")
    assert world.emulator.grants() == []


def test_plan_file_not_a_plan(world: Scenario) -> None:
    """A JSON object that is not a plan lists what is missing."""
    (world.workdir / "other.json").write_text('{"hello": "world"}', encoding="utf-8")
    assert_rejected(world.grantctl("apply", "other.json"), "other.json", "format_version")


def test_plan_out_directory_missing(world: Scenario) -> None:
    """plan --out into a directory that does not exist."""
    completed = world.grantctl("plan", "grants.yaml", "--out", "no/such/dir/plan.json")
    assert_rejected(completed, "no/such/dir/plan.json")


def test_plan_out_is_directory(world: Scenario) -> None:
    """plan --out naming a directory."""
    (world.workdir / "plans").mkdir()
    assert_rejected(world.grantctl("plan", "grants.yaml", "--out", "plans"), "plans")


def test_events_directory_missing(world: Scenario) -> None:
    """apply --events into a missing directory fails before any change."""
    completed = world.grantctl(
        "apply", "grants.yaml", "--auto-approve", "--events", "no/such/events.jsonl"
    )
    assert_rejected(completed, "no/such/events.jsonl")
    assert world.emulator.grants() == []


def test_metrics_directory_missing(world: Scenario) -> None:
    """audit --metrics-file into a missing directory."""
    completed = world.grantctl("audit", "grants.yaml", "--metrics-file", "no/such/audit.prom")
    assert_rejected(completed, "no/such/audit.prom")


def deny_reads(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make opening `denied` raise PermissionError, as chmod 000 would for a non-root user.

    Tests run as root, which reads any file whatever its mode, so the denial is simulated.
    """
    real_open = builtins.open
    real_path_open = Path.open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.resolve() == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(Path, "open", guarded_path_open)


@pytest.mark.parametrize(
    "arguments",
    [
        ["validate", "grants.yaml"],
        ["fmt", "--check", "grants.yaml"],
        ["plan", "grants.yaml"],
        ["apply", "grants.yaml", "--auto-approve"],
        ["audit", "grants.yaml"],
    ],
    ids=["validate", "fmt", "plan", "apply", "audit"],
)
def test_unreadable_manifest(
    world: Scenario, monkeypatch: pytest.MonkeyPatch, arguments: list[str]
) -> None:
    """A manifest the user may not read is named, with permission in the message."""
    deny_reads(monkeypatch, world.manifest.resolve())
    assert_rejected(world.grantctl(*arguments), "grants.yaml", "ermission denied")


def test_unreadable_plan_file(world: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan file the user may not read is named."""
    saved_plan(world)
    deny_reads(monkeypatch, (world.workdir / "plan.json").resolve())
    assert_rejected(world.grantctl("apply", "plan.json"), "plan.json", "ermission denied")
    assert world.emulator.grants() == []


def test_state_file_is_directory(world: Scenario) -> None:
    """A state path that is a directory names the path."""
    (world.workdir / "state.json").mkdir()
    assert_rejected(world.grantctl("plan", "grants.yaml"), "state.json")


def test_state_file_corrupt(world: Scenario) -> None:
    """A state file that is not JSON is named, and apply changes nothing."""
    (world.workdir / "state.json").write_text("{not json", encoding="utf-8")
    completed = world.grantctl("apply", "grants.yaml", "--auto-approve")
    assert_rejected(completed, "state.json")
    assert world.emulator.grants() == []
    assert (world.workdir / "state.json").read_text(encoding="utf-8") == "{not json"
