"""`grantctl demo`: a guided walk through an account's life with plan, apply and audit.

The demo adopts grants made by hand, connects the other mailboxes, reconnects after a
rotation and an expiry, then retires two mailboxes: one grant deleted, one kept.

Everything runs on this machine: a throwaway OpenBao dev server replaces Vault and the
in-process emulator replaces the Nylas API, both on loopback. Each step runs the real
`grantctl` command line in a subprocess, prints what it shows, and checks that it did what
the step expects; the demo exits 1 at the first surprise, saying what it expected and saw.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.demo_fixture import DemoOpenBao, fake_credentials, identity_for
from reconciler.emulator import EmulatorServer
from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, ConfigError
from reconciler.manifest import load_manifest
from reconciler.model import Account, Ensure, Manifest, Provider

EXAMPLE_MANIFEST = "examples/grants.yaml"
# Variables of the user's own environment that would point grantctl elsewhere.
_FOREIGN_PREFIXES = ("VAULT_", "BAO_", "NYLAS_", "GRANTCTL_")


@dataclass
class DemoWorld:
    """The running servers and the paths of one demo run."""

    workdir: Path
    manifest_path: Path
    manifest: Manifest
    openbao: DemoOpenBao
    emulator: EmulatorServer
    api_key: str

    def environment(self) -> dict[str, str]:
        """Return the environment that points `grantctl` at the demo's servers."""
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith(_FOREIGN_PREFIXES)
        }
        environment.update(
            VAULT_ADDR=self.openbao.addr,
            VAULT_TOKEN=self.openbao.root_token,
            NYLAS_API_KEY=self.api_key,
            GRANTCTL_NYLAS_API_URI=self.emulator.url,
            NO_COLOR="1",
        )
        return environment

    def grantctl(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run `grantctl ARGUMENTS` against the demo's servers and echo what it printed."""
        click.secho(f"  $ grantctl {' '.join(arguments)}", bold=True)
        completed = subprocess.run(
            [sys.executable, "-m", "reconciler", *arguments],
            capture_output=True,
            text=True,
            env=self.environment(),
            cwd=self.workdir,
            timeout=120,
            check=False,
        )
        for line in (completed.stdout + completed.stderr).rstrip().splitlines():
            click.echo(f"    {line}")
        click.echo(f"  (exit code {completed.returncode})")
        return completed


def present_accounts(manifest: Manifest) -> list[Account]:
    """Return the accounts that must hold a grant."""
    return [account for account in manifest.accounts if account.ensure is Ensure.PRESENT]


def find_example_manifest() -> Path:
    """Return the example manifest of the source checkout grantctl runs from."""
    checkout = Path(__file__).resolve().parent.parent / EXAMPLE_MANIFEST
    if not checkout.is_file():
        raise ConfigError(
            f"the demo needs {EXAMPLE_MANIFEST}, which is not next to this installation",
            hint="run the demo from a source checkout: `make demo`",
        )
    return checkout


class DemoExpectationError(Exception):
    """A step did not do what the demo expected; the message names the step and both results."""

    def __init__(self, what: str, expected: str, seen: str) -> None:
        super().__init__(f"{what}: expected {expected}, but saw {seen}")


def expect_exit(completed: subprocess.CompletedProcess[str], code: int, what: str) -> None:
    """Raise `DemoExpectationError` unless the command exited with `code`."""
    if completed.returncode != code:
        raise DemoExpectationError(what, f"exit code {code}", f"exit code {completed.returncode}")


def plan_actions(document_text: str) -> dict[str, tuple[str, str]]:
    """Return (action, reason) by account for every change of a JSON plan document."""
    try:
        document = json.loads(document_text)
    except ValueError as error:
        raise DemoExpectationError(
            "the plan", "a JSON document", f"invalid JSON ({error})"
        ) from error
    return {
        change["account"]: (change["action"], change["reason"])
        for change in document["changes"]
        if change["action"] != "no-op"
    }


def expect_actions(
    seen: Mapping[str, tuple[str, str]], expected: Mapping[str, tuple[str, str]]
) -> None:
    """Raise `DemoExpectationError` unless the plan's changes are exactly `expected`."""
    if dict(seen) != dict(expected):
        raise DemoExpectationError("the plan's changes", _describe(expected), _describe(seen))
    click.secho(f"  As expected: {_describe(seen)}.", fg="green")


def _describe(changes: Mapping[str, tuple[str, str]]) -> str:
    if not changes:
        return "no changes"
    return ", ".join(
        f"{action} {name} ({reason})" for name, (action, reason) in sorted(changes.items())
    )


def say(step: str, text: str) -> None:
    """Print a step heading and its plain-words explanation."""
    click.echo()
    click.secho(step, bold=True)
    for line in text.strip().splitlines():
        click.echo(f"  {line.strip()}")


@contextmanager
def demo_world() -> Iterator[DemoWorld]:
    """Start OpenBao and the emulator with fake mailboxes; stop both on any exit."""
    with tempfile.TemporaryDirectory(prefix="grantctl-demo-") as temporary:
        workdir = Path(temporary)
        # The manifest is written into the temporary directory, so the local state file
        # lands there too and the repository is never written to.
        manifest_path = workdir / "grants.yaml"
        example = find_example_manifest().read_text(encoding="utf-8")
        manifest_path.write_text(earlier_manifest_text(example), encoding="utf-8")
        manifest = load_manifest(str(manifest_path))
        openbao = DemoOpenBao(workdir)
        api_key = "nyk_demo_" + secrets.token_hex(16)
        emulator = EmulatorServer({"api_keys": [api_key]})
        try:
            say(
                "Starting the local servers",
                """OpenBao (an open-source Vault) plays the secret store: it will hold each
                mailbox's refresh token or password. The Nylas emulator plays the Nylas API.
                Both listen on 127.0.0.1 only and forget everything when the demo ends.""",
            )
            openbao.start()
            emulator.start()
            click.echo(f"  OpenBao at {openbao.addr}, Nylas emulator at {emulator.url}")
            yield DemoWorld(workdir, manifest_path, manifest, openbao, emulator, api_key)
        finally:
            emulator.stop()
            openbao.stop()
            click.echo("\nStopped OpenBao and the Nylas emulator.")


# The two mailboxes examples/grants.yaml retires, and the edits that undo the retirement.
RETIRED = "interns"
REMOVED = "contractor-2025"
_RETIRED_LINE = "    ensure: absent\n"
_REMOVED_ACCOUNT = f"""  - name: {REMOVED}
    email: {REMOVED}@example.com
    secret: {REMOVED}
"""


def earlier_manifest_text(example: str) -> str:
    """Return the example manifest as it stood before `interns` and `contractor-2025` left.

    Then `interns` had no `ensure: absent` yet and `contractor-2025` was an account rather
    than an entry under `removed:`, the file's last section.
    """
    if example.count(_RETIRED_LINE) != 1 or example.count("\nremoved:\n") != 1:
        raise ConfigError(
            f"{EXAMPLE_MANIFEST} no longer has exactly one `ensure: absent` account and a "
            "final `removed:` section, which the demo rewrites",
            hint="update reconciler/demo.py together with the example manifest",
        )
    without_absent = example.replace(_RETIRED_LINE, "")
    accounts = without_absent[: without_absent.index("\nremoved:\n")]
    return f"{accounts.rstrip()}\n\n{_REMOVED_ACCOUNT}"


def store_mailboxes(world: DemoWorld) -> None:
    """Write every account's fake credentials to OpenBao and teach them to the emulator.

    `interns` and `contractor-2025` also get a grant made "by hand", which step 1 adopts.
    """
    manifest = world.manifest
    say(
        "Storing the mailboxes' credentials",
        f"""The repository's manifest ({EXAMPLE_MANIFEST}) lists 8 mailboxes. The demo starts
        from an earlier version of that file, written as grants.yaml, from before two
        mailboxes were retired: there {RETIRED} is still in use (no `ensure: absent` yet),
        and {REMOVED} is still an account (not yet an entry under `removed:`). For each of
        its {len(manifest.accounts)} mailboxes the demo makes up a fake credential, stores it
        in OpenBao under {manifest.vault.mount}/{manifest.vault.path_prefix}/<name>, and tells
        the emulator which mailbox that credential opens, as Google or Microsoft would.""",
    )
    world.openbao.prepare_mount(manifest)
    for account in manifest.accounts:
        credentials = fake_credentials(account)
        world.openbao.put_secret(manifest, account.secret_path, credentials)
        world.emulator.add_identity(**identity_for(account, credentials))
        click.echo(f"  {account.name:<16} {account.provider.value:<10} {account.email}")
    click.echo(
        f"  {RETIRED} and {REMOVED} were connected by hand before the team used grantctl, so"
        "\n  Nylas already holds their two grants:"
    )
    for name in (RETIRED, REMOVED):
        account = _account(manifest, name)
        identity = identity_for(account, fake_credentials(account))
        grant = world.emulator.add_grant(
            provider=account.provider.value, email=account.email, scopes=identity["scopes"]
        )
        click.echo(f"  {name:<16} grant {grant['id']}")


def _account(manifest: Manifest, name: str) -> Account:
    account = manifest.account(name)
    if account is None:
        raise ConfigError(
            f"{EXAMPLE_MANIFEST} has no account {name!r}, which the demo retires",
            hint="update reconciler/demo.py together with the example manifest",
        )
    return account


def rotate_token(world: DemoWorld, account: Account) -> None:
    """Store a new refresh token for `account`, valid in the emulator, as a new Vault version."""
    credentials = fake_credentials(account)
    world.emulator.add_identity(**identity_for(account, credentials))
    version = world.openbao.put_secret(world.manifest, account.secret_path, credentials)
    click.echo(f"  {account.name}: new refresh token stored as version {version}")


def pick_accounts(manifest: Manifest) -> tuple[Account, Account]:
    """Pick an OAuth account to rotate and a different account to expire."""
    present = present_accounts(manifest)
    rotated = next(account for account in present if account.provider.uses_refresh_token)
    expired = next(
        (account for account in present if account.provider is Provider.IMAP),
        next(account for account in present if account is not rotated),
    )
    return rotated, expired


def run_steps(world: DemoWorld) -> None:
    """Run every step of the walk-through; raise `DemoExpectationError` at the first surprise."""
    store_mailboxes(world)
    _first_plan_and_apply(world)
    total = len(world.manifest.accounts)
    _audit(
        world,
        "Step 3: audit",
        f"Nothing changed since the apply, so all {total} accounts should be healthy.",
        EXIT_OK,
    )
    rotated, expired = pick_accounts(world.manifest)
    _rotate_and_expire(world, rotated, expired)
    _audit(
        world,
        "Step 7: audit",
        "The reconnects are done, so all accounts should be healthy again.",
        EXIT_OK,
    )
    _retire(world)
    _audit(
        world,
        "Step 10: audit",
        f"""Account {RETIRED} shows as healthy: it is marked `ensure: absent` and has no grant, as
        the manifest asks. The grant of {REMOVED} is still in Nylas, as `destroy: false`
        asked, but no account manages it any more, so audit lists it as an unmanaged grant
        and exits 2 until someone deletes it in the Nylas dashboard. The warning says that
        the `removed:` entry has done its job: grantctl no longer manages {REMOVED}, so the
        entry can be deleted from the manifest.""",
        EXIT_CHANGES,
    )


def _first_plan_and_apply(world: DemoWorld) -> None:
    accounts = world.manifest.accounts
    others = len(accounts) - 2
    say(
        "Step 1: plan",
        f"""`grantctl plan grants.yaml` compares the manifest with what Nylas holds and prints
        what apply would do, without changing anything. The {others} mailboxes without a
        grant should be connected. The two hand-made grants should be adopted: recorded in
        grantctl's inventory without any call to Nylas. `--out` saves the plan so that
        exactly this plan is applied.""",
    )
    completed = world.grantctl("plan", "grants.yaml", "--out", "plan.json", "--detailed-exitcode")
    expect_exit(completed, EXIT_CHANGES, "plan with changes")
    expected = {account.name: ("connect", "not_connected") for account in accounts}
    expected[RETIRED] = expected[REMOVED] = ("adopt", "grant_not_in_inventory")
    plan_text = (world.workdir / "plan.json").read_text(encoding="utf-8")
    expect_actions(plan_actions(plan_text), expected)

    say(
        "Step 2: apply the saved plan",
        """`grantctl apply plan.json` first checks that nothing moved since the plan was made,
        then reads each credential from OpenBao at the version the plan pinned. It sends each
        one to Nylas once (POST /v3/connect/custom), checks the grant that comes back, and
        records it in the inventory (here a local state file beside the manifest).""",
    )
    expect_exit(world.grantctl("apply", "plan.json"), EXIT_OK, "apply")
    grants = world.emulator.grants()
    if len(grants) != len(accounts):
        raise DemoExpectationError(
            "grants in the emulator", f"{len(accounts)} grants", f"{len(grants)}"
        )


def _rotate_and_expire(world: DemoWorld, rotated: Account, expired: Account) -> None:
    say(
        "Step 4: the world moves",
        f"""Two things happen that a real team meets every week. Someone rotates
        {rotated.name}'s refresh token in Vault, and {expired.name}'s grant expires at Nylas
        (a password change, a revoked consent).""",
    )
    rotate_token(world, rotated)
    world.emulator.expire_grant(email=expired.email)
    click.echo(f"  {expired.name}: grant marked invalid in the emulator")

    say(
        "Step 5: plan again",
        f"""grantctl notices both: {rotated.name} must be reconnected because Vault holds a
        newer secret than the one last sent (secret_rotated), and {expired.name} because its
        grant is invalid (grant_invalid). Every other account is in sync.""",
    )
    completed = world.grantctl("plan", "grants.yaml", "--out", "plan2.json", "--detailed-exitcode")
    expect_exit(completed, EXIT_CHANGES, "plan with changes")
    expected = {
        rotated.name: ("reconnect", "secret_rotated"),
        expired.name: ("reconnect", "grant_invalid"),
    }
    expect_actions(
        plan_actions((world.workdir / "plan2.json").read_text(encoding="utf-8")), expected
    )

    say(
        "Step 6: apply",
        """This time apply plans and applies in one go; `--auto-approve` answers the
        confirmation prompt, as a CI job would. Reconnecting keeps the same grant id, so
        nothing that refers to these mailboxes breaks.""",
    )
    expect_exit(world.grantctl("apply", "grants.yaml", "--auto-approve"), EXIT_OK, "apply")


def _retire(world: DemoWorld) -> None:
    say(
        "Step 8: retire two mailboxes",
        f"""A pull request brings grants.yaml to the repository's version of
        {EXAMPLE_MANIFEST}: {RETIRED} gets `ensure: absent`, and {REMOVED} moves from
        `accounts:` to `removed:` with `destroy: false`. The plan should delete the grant of
        {RETIRED} (revoke it in Nylas) and forget {REMOVED}: drop it from the inventory but
        leave its grant in Nylas. Forget is the action the earlier plans counted as
        "0 to forget". An account deleted from the manifest without a `removed:` entry would
        have its grant deleted instead.""",
    )
    shutil.copyfile(find_example_manifest(), world.manifest_path)
    completed = world.grantctl("plan", "grants.yaml", "--out", "plan3.json", "--detailed-exitcode")
    expect_exit(completed, EXIT_CHANGES, "plan with changes")
    expected = {
        RETIRED: ("delete", "ensure_absent"),
        REMOVED: ("forget", "removed_keep_grant"),
    }
    expect_actions(
        plan_actions((world.workdir / "plan3.json").read_text(encoding="utf-8")), expected
    )

    say("Step 9: apply the saved plan", "Apply revokes one grant and forgets the other.")
    expect_exit(world.grantctl("apply", "plan3.json"), EXIT_OK, "apply")
    emails = {str(grant["email"]) for grant in world.emulator.grants()}
    retired, removed = (_account(world.manifest, name).email for name in (RETIRED, REMOVED))
    if retired in emails or removed not in emails:
        raise DemoExpectationError(
            "grants in the emulator",
            f"no grant for {retired} and a grant for {removed}",
            f"grants for {', '.join(sorted(emails))}",
        )


def _audit(world: DemoWorld, step: str, expectation: str, exit_code: int) -> None:
    say(
        step,
        f"""`grantctl audit grants.yaml` is the read-only health check a schedule runs: exit 0
        when healthy, 2 on drift, 1 on errors.
        {expectation}""",
    )
    expect_exit(world.grantctl("audit", "grants.yaml"), exit_code, f"audit (exit {exit_code})")


def run_demo() -> int:
    """Run the walk-through; return 0 when every step did what it should, else 1."""
    click.secho(
        "grantctl demo: a walk-through on this machine; nothing leaves 127.0.0.1.", bold=True
    )
    try:
        with demo_world() as world:
            run_steps(world)
    except DemoExpectationError as failure:
        click.secho(f"\nDemo failed: {failure}", fg="red", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("\nDemo interrupted.", err=True)
        return EXIT_ERROR
    click.secho("\nDemo finished: every step did what it should.", fg="green", bold=True)
    return EXIT_OK
