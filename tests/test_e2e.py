"""End to end: `grantctl` as a subprocess against a real OpenBao and the Nylas emulator."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.state import LocalStateBackend
from tests.support.cli import Scenario, invoke_isolated
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow


@pytest.fixture
def scenario(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """A world with two Microsoft accounts and one IMAP account, manifest written."""
    world = Scenario(openbao, emulator_factory({"api_keys": ["nyk_e2e_key"]}), tmp_path)
    world.add_account("leyah")
    world.add_account("ceo")
    world.add_account("support", provider="imap", scopes=[])
    world.write_manifest()
    return world


def apply_all(scenario: Scenario) -> None:
    """Apply the manifest with --auto-approve and require success."""
    completed = scenario.grantctl("apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 0, completed.stdout + completed.stderr


def apply_all_subprocess(scenario: Scenario) -> None:
    """Apply the manifest with --auto-approve in a subprocess and require success."""
    completed = scenario.subprocess("apply", "grants.yaml", "--auto-approve")
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_first_apply_connects_all(scenario: Scenario) -> None:
    """The first plan connects every account; apply creates one grant each."""
    assert scenario.planned() == {
        "ceo": ("connect", "not_connected"),
        "leyah": ("connect", "not_connected"),
        "support": ("connect", "not_connected"),
    }
    apply_all_subprocess(scenario)
    assert scenario.grant_emails() == {
        "leyah@example.com",
        "ceo@example.com",
        "support@example.com",
    }


def test_detailed_exitcode_before_and_after(scenario: Scenario) -> None:
    """plan --detailed-exitcode exits 2 with changes and 0 once in sync."""
    before = scenario.grantctl("plan", "grants.yaml", "--detailed-exitcode")
    assert before.returncode == 2, before.stderr
    apply_all(scenario)
    after = scenario.grantctl("plan", "grants.yaml", "--detailed-exitcode")
    assert after.returncode == 0, after.stderr
    assert scenario.planned() == {}


def test_plan_imports_no_heavy_library(scenario: Scenario) -> None:
    """A plan that meets no error leaves hvac, jsonschema, deepdiff and the executor unloaded."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", "plan", "grants.yaml"],
        env=scenario.env(),
        cwd=scenario.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "reconciler.planner" in imported  # the listing covers the whole run
    heavy = {"hvac", "requests", "jsonschema", "deepdiff", "reconciler.executor"}
    assert heavy.isdisjoint(imported), heavy & imported


def test_plan_without_detailed_exitcode_exits_zero(scenario: Scenario) -> None:
    """Without --detailed-exitcode a plan with changes still exits 0."""
    completed = scenario.grantctl("plan", "grants.yaml")
    assert completed.returncode == 0, completed.stderr
    assert "leyah" in completed.stdout


def test_rotation_reconnects_same_grant(scenario: Scenario) -> None:
    """A new Vault version plans reconnect/secret_rotated and keeps the grant id."""
    apply_all(scenario)
    before = {grant["email"]: grant["id"] for grant in scenario.emulator.grants()}
    scenario.rotate("leyah")
    assert scenario.planned() == {"leyah": ("reconnect", "secret_rotated")}
    apply_all(scenario)
    after = {grant["email"]: grant["id"] for grant in scenario.emulator.grants()}
    assert after == before
    assert scenario.planned() == {}


def test_expiry_reconnects(scenario: Scenario) -> None:
    """An invalid grant plans reconnect/grant_invalid, and apply makes it valid."""
    apply_all(scenario)
    scenario.emulator.expire_grant(email="support@example.com")
    assert scenario.planned() == {"support": ("reconnect", "grant_invalid")}
    apply_all(scenario)
    statuses = {grant["email"]: grant["grant_status"] for grant in scenario.emulator.grants()}
    assert statuses["support@example.com"] == "valid"


def test_ensure_absent_deletes(scenario: Scenario) -> None:
    """`ensure: absent` on a managed account plans a delete that revokes the grant."""
    apply_all(scenario)
    scenario.accounts[1]["ensure"] = "absent"
    scenario.write_manifest()
    assert scenario.planned() == {"ceo": ("delete", "ensure_absent")}
    apply_all(scenario)
    assert "ceo@example.com" not in scenario.grant_emails()


def test_removed_account_deletes(scenario: Scenario) -> None:
    """An account dropped from the manifest but still in the inventory is deleted."""
    apply_all(scenario)
    scenario.accounts = [item for item in scenario.accounts if item["name"] != "ceo"]
    scenario.write_manifest()
    assert scenario.planned() == {"ceo": ("delete", "removed_from_manifest")}
    apply_all(scenario)
    assert "ceo@example.com" not in scenario.grant_emails()


def test_saved_plan_forgets_removed_account(scenario: Scenario) -> None:
    """A saved plan that forgets a removed account whose secret still exists applies."""
    apply_all(scenario)
    scenario.accounts = [item for item in scenario.accounts if item["name"] != "ceo"]
    scenario.removed = [{"name": "ceo", "destroy": False}]
    scenario.write_manifest()
    planned = scenario.grantctl("plan", "grants.yaml", "--out", "plan.json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    applied = scenario.grantctl("apply", "plan.json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "ceo@example.com" in scenario.grant_emails()
    assert scenario.planned() == {}


def test_existing_grant_is_adopted(scenario: Scenario) -> None:
    """A matching grant that exists before the first apply is adopted, not re-created."""
    existing = scenario.emulator.add_grant(
        provider="microsoft",
        email="ceo@example.com",
        scopes=["Mail.Read", "User.Read", "offline_access"],
    )
    planned = scenario.planned()
    assert planned["ceo"][0] == "adopt"
    apply_all(scenario)
    ids = {grant["email"]: grant["id"] for grant in scenario.emulator.grants()}
    assert ids["ceo@example.com"] == existing["id"]


def test_adopted_grant_reconnects_after_rotation(scenario: Scenario) -> None:
    """The adopt records the secret's version, so a rotation after it is planned and sent."""
    scenario.emulator.add_grant(
        provider="microsoft",
        email="ceo@example.com",
        scopes=["Mail.Read", "User.Read", "offline_access"],
    )
    apply_all(scenario)
    assert scenario.planned() == {}

    scenario.rotate("ceo")

    assert scenario.planned()["ceo"] == ("reconnect", "secret_rotated")


def test_grant_of_other_inventory_not_adopted(scenario: Scenario, tmp_path: Path) -> None:
    """A second manifest with its own state cannot adopt a grant the first one connected."""
    apply_all(scenario)
    owner = scenario.emulator.grants()[0]["state"]
    assert isinstance(owner, str) and owner.startswith("grantctl:"), owner
    other = Scenario(
        scenario.openbao,
        scenario.emulator,
        tmp_path / "other",
        prefix=scenario.prefix,
        accounts=[dict(item) for item in scenario.accounts if item["name"] == "ceo"],
    )
    other.workdir.mkdir()
    other.write_manifest()

    planned = other.grantctl("plan", "grants.yaml", "--format", "json")
    assert planned.returncode == 1, planned.stdout + planned.stderr
    errors = [(error["code"], error["account"]) for error in json.loads(planned.stdout)["errors"]]
    assert errors == [("owned_elsewhere", "ceo")]
    refused = other.grantctl("apply", "grants.yaml", "--auto-approve")
    assert refused.returncode == 1, refused.stdout + refused.stderr

    assert other.planned("--replace", "ceo") == {"ceo": ("reconnect", "replace_requested")}
    taken = other.grantctl("apply", "grants.yaml", "--replace", "ceo", "--auto-approve")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    ceo = next(grant for grant in scenario.emulator.grants() if grant["email"] == "ceo@example.com")
    assert ceo["state"] != owner, "the reconnect should mark the grant with the new owner"
    assert other.planned() == {}


def test_saved_plan_applies(scenario: Scenario) -> None:
    """A plan saved before any state exists applies exactly, without a prompt."""
    planned = scenario.subprocess("plan", "grants.yaml", "--out", "plan.json")
    assert planned.returncode == 0, planned.stderr
    applied = scenario.subprocess("apply", "plan.json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert len(scenario.emulator.grants()) == 3


def test_stale_plan_rejected(scenario: Scenario) -> None:
    """A saved plan made before a rotation is rejected as stale, with exit 1."""
    scenario.subprocess("plan", "grants.yaml", "--out", "plan.json")
    scenario.rotate("leyah")
    applied = scenario.subprocess("apply", "plan.json")
    assert applied.returncode == 1
    assert "stale" in applied.stderr
    assert scenario.emulator.grants() == []


def test_applied_plan_cannot_be_applied_twice(scenario: Scenario) -> None:
    """Applying the same saved plan again is rejected: the inventory moved."""
    scenario.grantctl("plan", "grants.yaml", "--out", "plan.json")
    first = scenario.grantctl("apply", "plan.json")
    assert first.returncode == 0, first.stderr
    second = scenario.grantctl("apply", "plan.json")
    assert second.returncode == 1
    assert "stale" in second.stderr


def test_saved_plan_stale_after_first_apply(scenario: Scenario) -> None:
    """A plan saved against an empty inventory is rejected once another apply filled it."""
    scenario.grantctl("plan", "grants.yaml", "--out", "plan.json")
    apply_all(scenario)
    applied = scenario.grantctl("apply", "plan.json")
    assert applied.returncode == 1
    assert "made against an empty inventory" in applied.stderr
    assert len(scenario.emulator.grants()) == 3


def test_state_beside_manifest_from_elsewhere(scenario: Scenario) -> None:
    """A relative local state path is resolved against the manifest's directory, not the cwd."""
    elsewhere = scenario.workdir / "elsewhere"
    elsewhere.mkdir()
    manifest = Path("..") / scenario.manifest.name
    planned = invoke_isolated(["plan", str(manifest)], env=scenario.env(), cwd=elsewhere)
    assert planned.returncode == 0, planned.stderr
    applied = invoke_isolated(
        ["apply", str(manifest), "--auto-approve"], env=scenario.env(), cwd=elsewhere
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (scenario.workdir / "state.json").is_file()
    assert list(elsewhere.iterdir()) == []


def test_apply_without_terminal_needs_auto_approve(scenario: Scenario) -> None:
    """apply on a non-terminal without --auto-approve exits 1 and says what to pass."""
    completed = scenario.subprocess("apply", "grants.yaml")
    assert completed.returncode == 1
    assert "--auto-approve" in completed.stderr
    assert scenario.emulator.grants() == []


def test_audit_healthy_then_drift(scenario: Scenario) -> None:
    """audit exits 0 when in sync and 2 with the expired account marked invalid."""
    apply_all(scenario)
    healthy = scenario.grantctl("audit", "grants.yaml")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    scenario.emulator.expire_grant(email="leyah@example.com")
    drift = scenario.grantctl("audit", "grants.yaml", "--format", "json")
    assert drift.returncode == 2, drift.stderr
    health = {item["account"]: item["health"] for item in json.loads(drift.stdout)["accounts"]}
    assert health == {"ceo": "healthy", "leyah": "invalid", "support": "healthy"}


def test_audit_reports_unmanaged_grant(scenario: Scenario) -> None:
    """A grant that matches no account is reported as unmanaged drift, not deleted."""
    apply_all(scenario)
    scenario.emulator.add_grant(provider="google", email="stranger@example.com")
    completed = scenario.grantctl("audit", "grants.yaml", "--format", "json")
    assert completed.returncode == 2
    unmanaged = json.loads(completed.stdout)["unmanaged"]
    assert [item["email"] for item in unmanaged] == ["stranger@example.com"]


def test_missing_secret_is_plan_error(scenario: Scenario) -> None:
    """An account whose secret is missing makes the plan fail with exit 1."""
    scenario.accounts.append({"name": "ghost", "email": "ghost@example.com", "secret": "ghost"})
    scenario.write_manifest()
    completed = scenario.grantctl("plan", "grants.yaml", "--detailed-exitcode")
    assert completed.returncode == 1
    assert "ghost" in completed.stdout + completed.stderr


def test_apply_events_file(scenario: Scenario) -> None:
    """--events writes one JSON object per line, one finish event per change, and every
    line's time is ISO 8601 UTC with a Z suffix."""
    completed = scenario.grantctl(
        "apply", "grants.yaml", "--auto-approve", "--events", "events.jsonl"
    )
    assert completed.returncode == 0, completed.stderr
    lines = (scenario.workdir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    finished = sorted(event["account"] for event in events if event["event"] == "finish")
    assert finished == ["ceo", "leyah", "support"]
    kinds = {event["event"] for event in events}
    assert {"plan", "apply_start", "apply_end", "start", "finish"} <= kinds
    iso = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
    assert [event for event in events if not iso.fullmatch(str(event["time"]))] == []


def test_apply_json_output(scenario: Scenario) -> None:
    """apply --format json prints one document holding the plan and the result."""
    completed = scenario.grantctl("apply", "grants.yaml", "--auto-approve", "--format", "json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert set(document) == {"plan", "result"}


def test_secrets_never_printed(scenario: Scenario) -> None:
    """No credential value appears in any output of plan, apply or audit."""
    outputs = [
        scenario.subprocess("plan", "grants.yaml", "--format", "json"),
        scenario.subprocess("apply", "grants.yaml", "--auto-approve", "--log-level", "debug"),
        scenario.subprocess("audit", "grants.yaml", "--log-level", "debug"),
    ]
    text = "".join(item.stdout + item.stderr for item in outputs)
    for data in scenario.credentials.values():
        for key in ("refresh_token", "imap_password"):
            if key in data:
                assert data[key] not in text


def test_bad_flag_exits_one(scenario: Scenario) -> None:
    """A usage error in a real process exits 1 with click's message on stderr."""
    completed = scenario.subprocess("plan", "grants.yaml", "--parallelism", "many")
    assert completed.returncode == 1
    assert "--parallelism" in completed.stderr
    assert completed.stdout == ""


def test_log_level_after_command(scenario: Scenario) -> None:
    """--log-level is accepted after the command name too."""
    completed = scenario.grantctl("plan", "grants.yaml", "--log-level", "info")
    assert completed.returncode == 0, completed.stderr
    assert "grantctl: INFO:" in completed.stderr


def test_sigterm_stops_apply_and_releases_lock(scenario: Scenario) -> None:
    """SIGTERM mid-apply records finished changes, releases the lock and exits 130."""
    for index in range(5):
        scenario.add_account(f"extra-{index}")
    scenario.write_manifest()
    scenario.emulator.set_faults(latency_ms=700)
    events = scenario.workdir / "events.jsonl"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "reconciler", "apply", "grants.yaml", "--auto-approve"),
            *("--parallelism", "1", "--events", str(events)),
        ],
        cwd=scenario.workdir,
        env=scenario.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and '"finish"' not in _read(events):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    scenario.emulator.set_faults(latency_ms=0)
    assert len(scenario.emulator.grants()) < 8
    apply_all(scenario)
    assert len(scenario.emulator.grants()) == 8


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_plan_with_exit_130(scenario: Scenario, signum: int) -> None:
    """A signal during a plan's grant listing prints "interrupted" and exits 130 at once."""
    scenario.emulator.set_faults(latency_ms=5000)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "plan", "grants.yaml"],
        cwd=scenario.workdir,
        env=scenario.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)  # past start-up and the Vault reads, into the slow listing
    signalled = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    elapsed = time.monotonic() - signalled

    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    assert "next step: run the command again" in stderr
    assert elapsed < 2.0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def test_plan_markdown_format(scenario: Scenario) -> None:
    """plan --format markdown prints a markdown summary naming each account."""
    completed = scenario.grantctl("plan", "grants.yaml", "--format", "markdown")
    assert completed.returncode == 0, completed.stderr
    assert "leyah" in completed.stdout
    assert "|" in completed.stdout


def test_apply_without_changes(scenario: Scenario) -> None:
    """apply with nothing to do exits 0 without asking for approval."""
    apply_all(scenario)
    completed = scenario.grantctl("apply", "grants.yaml")
    assert completed.returncode == 0, completed.stderr


def test_force_unlock_unlocked_state(scenario: Scenario) -> None:
    """force-unlock on a state nobody locked exits 1 and says so."""
    completed = scenario.grantctl("force-unlock", "no-such-lock", "grants.yaml")
    assert completed.returncode == 1
    assert "not locked" in completed.stderr


def test_force_unlock_breaks_held_lock(scenario: Scenario) -> None:
    """A lock left by a dead run blocks apply until force-unlock removes it by id."""
    state = LocalStateBackend(scenario.workdir / "state.json")
    with state.lock("apply") as held:
        blocked = scenario.grantctl("apply", "grants.yaml", "--auto-approve")
        assert blocked.returncode == 1
        assert held.id in blocked.stderr
        assert f"`grantctl force-unlock {held.id} MANIFEST`" in blocked.stderr
        assert "--lock-timeout" in blocked.stderr
        unlocked = scenario.grantctl("force-unlock", held.id, "grants.yaml")
        assert unlocked.returncode == 0, unlocked.stderr
        assert held.id in unlocked.stdout
        assert unlocked.stderr.count(held.id) == 1, unlocked.stderr
        assert f"lock {held.id} was held by" in unlocked.stderr
    apply_all(scenario)


def test_plan_output_is_deterministic(scenario: Scenario) -> None:
    """Two plans of an unchanged world print the same text and the same JSON but the time."""
    first_text = scenario.grantctl("plan", "grants.yaml").stdout
    second_text = scenario.grantctl("plan", "grants.yaml").stdout
    assert first_text == second_text

    first = scenario.plan_json()
    second = scenario.plan_json()
    first.pop("created_at")
    second.pop("created_at")
    first.pop("checksum")
    second.pop("checksum")
    assert first == second
    assert first["plan_id"] == second["plan_id"]
