"""Convergence property: after an apply, a plan has nothing left to do.

Hypothesis draws a world: accounts across OAuth providers, some already managed by an earlier
apply, some with grants made outside grantctl, some grants expired, some secrets rotated or
missing, some accounts marked `ensure: absent`, removed from the manifest or listed under
`removed`. The engine runs in-process on the in-memory fakes of `tests/fakes.py` (the planner,
the executor and the local state backend are the real ones), because one emulator and OpenBao
world per example would take seconds each. For every world:
- apply, then plan: no change remains, apart from the plan errors the world was built to
  cause (a missing secret);
- applying again sends no connect and no delete.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.executor import ApplyOptions, apply_plan
from reconciler.model import (
    Account,
    Action,
    Ensure,
    GrantStatus,
    Manifest,
    Plan,
    Policy,
    Provider,
    RemovedAccount,
)
from reconciler.workflow import gather_inputs, plan_from_inputs
from reconciler.workflow_settings import PlanFlags
from tests.executor_support import World, account, manifest

PROVIDERS = (Provider.MICROSOFT, Provider.GOOGLE, Provider.YAHOO, Provider.ZOOM)
NAMES = tuple(f"acct{index}" for index in range(8))
# What happens to an account between the first and the second manifest.
FATES = ("kept", "absent", "dropped", "removed_keep", "removed_destroy", "new")

account_plan = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(PROVIDERS),
        "fate": st.sampled_from(FATES),
        "rotations": st.integers(min_value=0, max_value=2),
        "expired": st.booleans(),
        "outside_grant": st.booleans(),
        "secret_missing": st.booleans(),
    }
)
worlds = st.dictionaries(st.sampled_from(NAMES), account_plan, min_size=1, max_size=6)


def build_manifest(accounts: list[Account], removed: list[RemovedAccount]) -> Manifest:
    """A manifest that allows as many deletes as there are accounts."""
    return replace(
        manifest(accounts),
        policy=Policy(max_deletes=len(NAMES)),
        removed=tuple(removed),
    )


def plan_for(world: World, target: Manifest) -> Plan:
    """Gather inputs from the fakes and the state file, and run the real planner."""
    inputs = gather_inputs(target, world.state, world.grants, world.secrets)
    return plan_from_inputs(target, inputs, PlanFlags(allow_deletes=len(NAMES)))


def apply_manifest(world: World, target: Manifest) -> Plan:
    """Plan `target`; apply the plan's changes of accounts without a plan error."""
    plan = plan_for(world, target)
    failing = {error.account for error in plan.errors}
    applicable = replace(
        plan,
        changes=tuple(change for change in plan.changes if change.account not in failing),
        errors=(),
    )
    with world.state.lock("apply"):
        apply_plan(applicable, target, world.grants, world.secrets, world.state, ApplyOptions())
    return plan


def first_and_second(
    world: World, drawn: dict[str, dict[str, object]]
) -> tuple[Manifest, Manifest, set[str]]:
    """Build the first manifest, apply it, change the world, and build the second one.

    Returns both manifests and the names whose plan errors are expected by construction.
    """
    first: list[Account] = []
    second: list[Account] = []
    removed: list[RemovedAccount] = []
    expected_errors: set[str] = set()
    for name, spec in sorted(drawn.items()):
        target = account(name, provider=spec["provider"])
        world.mailbox(target)
        fate = spec["fate"]
        if fate != "new":
            first.append(target)
        if fate in ("kept", "new"):
            second.append(target)
        elif fate == "absent":
            second.append(replace(target, ensure=Ensure.ABSENT))
        elif fate.startswith("removed"):
            removed.append(RemovedAccount(name, destroy=fate == "removed_destroy"))
    apply_manifest(world, build_manifest(first, []))

    for name, spec in sorted(drawn.items()):
        target = account(name, provider=spec["provider"])
        for rotation in range(int(spec["rotations"])):  # type: ignore[call-overload]
            world.mailbox(target, token=f"token-of-{name}-{rotation + 2}")
        grant = next(
            (item for item in world.grants.list_grants() if item.email == target.email), None
        )
        if spec["outside_grant"] and grant is None:
            grant = world.grants.add_grant(target.provider.value, target.email)
        if spec["expired"] and grant is not None:
            world.grants.grants[grant.id] = replace(grant, status=GrantStatus.INVALID)
        in_second = any(item.name == name for item in second)
        if spec["secret_missing"] and in_second and spec["fate"] != "absent":
            del world.secrets.versions[target.secret_path]
            expected_errors.add(name)
    return build_manifest(first, []), build_manifest(second, removed), expected_errors


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(drawn=worlds)
def test_apply_then_plan_is_empty(drawn: dict[str, dict[str, object]]) -> None:
    """After apply, only the expected plan errors remain, and a second apply sends nothing."""
    with tempfile.TemporaryDirectory(prefix="grantctl-convergence-") as directory:
        world = World(Path(directory))
        _, second, expected_errors = first_and_second(world, drawn)

        apply_manifest(world, second)
        after = plan_for(world, second)
        leftover = [
            (change.account, change.action.value, change.reason.value)
            for change in after.changes
            if change.action is not Action.NOOP and change.account not in expected_errors
        ]
        assert leftover == []
        assert {error.account for error in after.errors} <= expected_errors

        connects_before = len(world.grants.connects)
        deletes_before = len(world.grants.deletes)
        apply_manifest(world, second)
        assert len(world.grants.connects) == connects_before
        assert len(world.grants.deletes) == deletes_before

        emails = [grant.email.casefold() for grant in world.grants.list_grants()]
        assert len(emails) == len(set(emails)), "a mailbox holds two grants"
