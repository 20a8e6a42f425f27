"""`grantctl audit` end to end, against a real OpenBao and the Nylas emulator.

After a first apply the world drifts three ways: one grant expires in the emulator, one
account's secret gets a new Vault version, and a grant appears that no account manages.
The audit must report each one, in every output and in the metrics file, and it must run
while another process holds the state lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.emulator import EmulatorServer
from reconciler.render.audit import audit_schema
from reconciler.state import LocalStateBackend
from tests.support.cli import Scenario
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow

EXPECTED_HEALTH = {
    "ceo": "rotation_pending",
    "leyah": "invalid",
    "support": "healthy",
}
# Holds the local state lock until its stdin closes, as an apply in another process would.
HOLD_LOCK_SCRIPT = """
import sys
from pathlib import Path
from reconciler.state import LocalStateBackend

with LocalStateBackend(Path(sys.argv[1])).lock("apply") as held:
    print(held.id, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def drifted(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """A world applied once, then drifted: leyah expired, ceo rotated, one stranger grant."""
    world = Scenario(openbao, emulator_factory({"api_keys": ["nyk_audit_key"]}), tmp_path)
    world.add_account("leyah")
    world.add_account("ceo")
    world.add_account("support", provider="imap", scopes=[])
    world.write_manifest()
    applied = world.grantctl("apply", "grants.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    world.emulator.expire_grant(email="leyah@example.com")
    world.rotate("ceo")
    world.emulator.add_grant(provider="google", email="stranger@example.com")
    return world


def metric_samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of a Prometheus text file by (name, sorted labels)."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_audit_reports_each_drift(drifted: Scenario) -> None:
    """Text, the JSON file and the metrics file of one run each show all three drifts."""
    completed = drifted.grantctl(
        "audit",
        "grants.yaml",
        "--json-out",
        "audit.json",
        "--metrics-file",
        "audit.prom",
        "--metrics-include-emails",
    )

    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert any(line.startswith("  ceo      rotation pending  Vault secret") for line in lines)
    assert any(line.startswith("  leyah    invalid           Grant") for line in lines)
    assert "  support  healthy" in lines
    assert any("google  stranger@example.com" in line for line in lines)
    assert lines[-1] == (
        "Audit: 1 of 3 accounts healthy, 1 invalid, 1 rotation pending, 1 unmanaged grant."
    )

    document = json.loads((drifted.workdir / "audit.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(audit_schema()).validate(document)
    health = {item["account"]: item["health"] for item in document["accounts"]}
    assert health == EXPECTED_HEALTH
    assert [item["email"] for item in document["unmanaged"]] == ["stranger@example.com"]
    assert document["status"] == "drift"

    samples = metric_samples(drifted.workdir / "audit.prom")
    for status, count in {"healthy": 1, "invalid": 1, "rotation_pending": 1, "missing": 0}.items():
        assert samples[("grantctl_accounts", (("status", status),))] == count, status
    assert samples[("grantctl_unmanaged_grants", ())] == 1
    assert samples[("grantctl_grants", (("provider", "google"),))] == 1
    leyah = (("account", "leyah"), ("email", "leyah@example.com"), ("provider", "microsoft"))
    assert samples[("grantctl_account_healthy", leyah)] == 0


def test_json_and_markdown_formats(drifted: Scenario) -> None:
    """--format json prints the same health; --format markdown prints a table row each."""
    as_json = drifted.grantctl("audit", "grants.yaml", "--format", "json")
    as_markdown = drifted.grantctl("audit", "grants.yaml", "--format", "markdown")

    assert as_json.returncode == 2, as_json.stderr
    health = {item["account"]: item["health"] for item in json.loads(as_json.stdout)["accounts"]}
    assert health == EXPECTED_HEALTH
    assert as_markdown.returncode == 2, as_markdown.stderr
    assert "| `leyah` | invalid |" in as_markdown.stdout
    assert "| `ceo` | rotation pending |" in as_markdown.stdout


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [("invalid", 2), ("unmanaged", 2), ("email_drift", 0), ("email_drift,scope_drift", 0)],
)
def test_fail_on_selects_drift(drifted: Scenario, fail_on: str, code: int) -> None:
    """Only the statuses named by --fail-on make the audit exit 2."""
    completed = drifted.grantctl("audit", "grants.yaml", "--fail-on", fail_on)

    assert completed.returncode == code, completed.stdout + completed.stderr
    assert "leyah    invalid" in completed.stdout


@pytest.fixture
def lock_holder(drifted: Scenario) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding the scenario's state lock, and the lock's id."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_SCRIPT, str(drifted.workdir / "state.json")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert holder.stdout is not None
    lock_id = holder.stdout.readline().strip()
    try:
        yield holder, lock_id
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_audit_ignores_held_lock(
    drifted: Scenario, lock_holder: tuple[subprocess.Popen[str], str]
) -> None:
    """An audit runs while another process holds the lock, and leaves that lock alone."""
    holder, lock_id = lock_holder
    assert lock_id, "the holder printed no lock id"

    completed = drifted.subprocess("audit", "grants.yaml", "--format", "json")

    assert completed.returncode == 2, completed.stderr
    assert "lock" not in completed.stderr.lower()
    assert holder.poll() is None, "the holder exited early"
    current = LocalStateBackend(drifted.workdir / "state.json").current_lock()
    assert current is not None
    assert current.id == lock_id


def test_audit_records_no_lock(drifted: Scenario) -> None:
    """Without another process, an audit leaves no lock record behind it."""
    state = LocalStateBackend(drifted.workdir / "state.json")

    completed = drifted.grantctl("audit", "grants.yaml")

    assert completed.returncode == 2, completed.stderr
    assert state.current_lock() is None
    assert not state.lock_record_path.exists()
