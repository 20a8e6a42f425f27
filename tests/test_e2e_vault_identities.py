"""End to end: grantctl under least-privilege AppRole identities in a real OpenBao.

A plan identity may read and list secret metadata only; an apply identity may also read
secret data. The CLI must plan with the first, name the missing path and capability when
asked to apply with it, and apply with the second. A login token that expires in the middle
of a plan must be re-obtained without failing the run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer
from tests.support.cli import Scenario, run_grantctl
from tests.support.openbao import OpenBaoServer

pytestmark = pytest.mark.slow


@pytest.fixture
def scenario(
    openbao: OpenBaoServer, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Scenario:
    """Two Microsoft accounts under a unique prefix; manifest written, nothing applied."""
    world = Scenario(openbao, emulator_factory({"api_keys": ["nyk_identity_key"]}), tmp_path)
    world.add_account("leyah")
    world.add_account("ceo")
    world.write_manifest()
    return world


def approle_env(scenario: Scenario, policy_hcl: str, **role_fields: str) -> dict[str, str]:
    """Return the scenario's environment logging in with a new AppRole bound to `policy_hcl`."""
    name = scenario.openbao.unique("grantctl")
    scenario.openbao.write_policy(name, policy_hcl)
    role_id, secret_id = scenario.openbao.approle(name, [name], **role_fields)
    environment = scenario.env()
    del environment["VAULT_TOKEN"]
    environment |= {
        "GRANTCTL_VAULT_AUTH": "approle",
        "GRANTCTL_VAULT_ROLE_ID": role_id,
        "GRANTCTL_VAULT_SECRET_ID": secret_id,
    }
    return environment


def metadata_policy(prefix: str) -> str:
    return f'path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}\n'


def data_policy(prefix: str) -> str:
    data_rule = f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}\n'
    return metadata_policy(prefix) + data_rule


def run(scenario: Scenario, env: dict[str, str], *arguments: str) -> tuple[int, str, str]:
    completed = run_grantctl(*arguments, env=env, cwd=scenario.workdir)
    return completed.returncode, completed.stdout, completed.stderr


def test_metadata_identity_plans(scenario: Scenario) -> None:
    """A metadata-only identity can plan: both accounts are to be connected."""
    env = approle_env(scenario, metadata_policy(scenario.prefix))
    code, stdout, stderr = run(scenario, env, "plan", "grants.yaml", "--detailed-exitcode")
    assert code == 2, stderr
    assert "2 to connect" in stdout


def test_metadata_identity_cannot_apply(scenario: Scenario) -> None:
    """Apply with a metadata-only identity fails naming the data path and `read`."""
    env = approle_env(scenario, metadata_policy(scenario.prefix))
    code, stdout, stderr = run(scenario, env, "apply", "grants.yaml", "--auto-approve")
    assert code != 0
    output = stdout + stderr
    assert f"secret/data/{scenario.prefix}/" in output
    assert "read" in output
    assert scenario.grant_emails() == set(), "no grant may be created without the secret"


def test_apply_identity_applies(scenario: Scenario) -> None:
    """An identity that may also read secret data applies every connect."""
    env = approle_env(scenario, data_policy(scenario.prefix))
    code, _stdout, stderr = run(scenario, env, "apply", "grants.yaml", "--auto-approve")
    assert code == 0, stderr
    assert scenario.grant_emails() == {"leyah@example.com", "ceo@example.com"}


def test_token_expiring_mid_plan(scenario: Scenario) -> None:
    """A login token that expires while the plan waits on Nylas is re-obtained.

    The emulator responds more slowly than the token lasts, so the metadata read of the removed
    account (made after the grant list arrives) runs on an expired token.
    """
    root_env = scenario.env()
    assert run(scenario, root_env, "apply", "grants.yaml", "--auto-approve")[0] == 0
    scenario.accounts = [item for item in scenario.accounts if item["name"] != "ceo"]
    scenario.write_manifest()
    scenario.emulator.set_faults(latency_ms=3500)
    env = approle_env(
        scenario, metadata_policy(scenario.prefix), token_ttl="2s", token_max_ttl="2s"
    )

    code, stdout, stderr = run(
        scenario, env, "--log-level", "info", "plan", "grants.yaml", "--detailed-exitcode"
    )

    assert code == 2, stderr
    assert "1 to delete" in stdout
    assert "logging in again" in stderr, "the token never expired during the plan"
