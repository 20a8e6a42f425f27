"""One end-to-end scenario at one size: grantctl against the sequential baseline and the bound.

Per size, on fresh servers: plan on an empty estate, the Vault lower bound, the baseline's
plan loop, the first apply (a connect for every account), a no-change plan and an audit.
At the apply size the baseline's apply loop also runs, on a fresh emulator so that it starts
from the same empty estate as grantctl's apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks import dataset
from benchmarks.floor import list_pages, nylas_bound_s
from benchmarks.measure import Measurement, run_child
from benchmarks.servers import EmulatorSettings, running_emulator, running_openbao
from reconciler.demo_fixture import DemoOpenBao

Results = dict[str, object]


@dataclass(frozen=True)
class Scenario:
    """The settings of every end-to-end size in a run."""

    latency_ms: float
    emulator_rate_limit: int
    client_rate_limit: float
    client_burst: int
    apply_rate: float
    parallelism: int
    apply_size: int
    # How many times each read-only step runs; the fastest run counts.
    repeats: int = 1


@dataclass(frozen=True)
class _Site:
    """The files and server addresses of one size."""

    directory: Path
    manifest: Path
    env: dict[str, str]
    vault_addr: str
    vault_token: str


def run_size(count: int, scenario: Scenario, directory: Path) -> Results:
    """Run every end-to-end measurement for `count` accounts and return the figures."""
    directory.mkdir(parents=True, exist_ok=True)
    accounts = dataset.generate_accounts(count)
    manifest = dataset.write_manifest(accounts, directory)
    settings = EmulatorSettings(scenario.latency_ms, scenario.emulator_rate_limit)
    fixture = dataset.write_fixture(accounts, directory, scenario.emulator_rate_limit)
    with running_openbao(directory / "openbao") as openbao:
        dataset.seed_vault(openbao.client(), accounts)
        results: Results = {"accounts": count}
        with running_emulator(fixture, settings, directory / "emulator.log") as url:
            site = _site(directory, manifest, url, openbao)
            results |= _grantctl_and_baseline(site, accounts, scenario)
        if count == scenario.apply_size:
            with running_emulator(fixture, settings, directory / "emulator-2.log") as url:
                site = _site(directory, manifest, url, openbao)
                results["baseline_apply"] = _baseline(site, accounts, "apply").as_dict()
    results["bounds"] = _nylas_bounds(count, scenario)
    return results


def _site(directory: Path, manifest: Path, url: str, openbao: DemoOpenBao) -> _Site:
    env = {
        "NYLAS_API_KEY": dataset.API_KEY,
        "GRANTCTL_NYLAS_API_URI": url,
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "NO_COLOR": "1",
    }
    return _Site(directory, manifest, env, openbao.addr, openbao.root_token)


def _grantctl_and_baseline(
    site: _Site, accounts: list[dataset.BenchAccount], scenario: Scenario
) -> Results:
    results: Results = {}
    common = ["--parallelism", str(scenario.parallelism)]
    # Read-only steps alternate with the bound they are compared with, so that a change in the
    # machine's speed during the run affects both alike, and the fastest run of each counts.
    plans, floors = [], []
    for _ in range(scenario.repeats):
        plans.append(_grantctl(site, "plan-empty", ["plan", str(site.manifest), *common]))
        floors.append(_vault_floor(site, accounts, scenario.parallelism).as_dict())
    results["plan_empty"] = fastest_run(plans, "wall_s")
    results["vault_floor"] = fastest_run(floors, "read_s")
    results["baseline_plan"] = _baseline(site, accounts, "plan").as_dict()
    apply_flags = ["--rate-limit", str(scenario.apply_rate), *common]
    events = site.directory / "apply-events.jsonl"
    apply = _grantctl(
        site,
        "apply",
        ["apply", str(site.manifest), "--auto-approve", "--events", str(events), *apply_flags],
    )
    apply["outcomes"] = _count_outcomes(events)
    results["apply"] = apply
    plan_argv = ["plan", str(site.manifest), "--detailed-exitcode", *common]
    audit_argv = ["audit", str(site.manifest), *common]
    # The bound is measured again here, so that the no-change plan and the audit are compared
    # with a bound from the same stretch of the run, not one from before the long apply.
    plans, audits, floors = [], [], []
    for _ in range(scenario.repeats):
        plans.append(_grantctl(site, "plan-no-change", plan_argv))
        floors.append(_vault_floor(site, accounts, scenario.parallelism).as_dict())
        audits.append(_grantctl(site, "audit", audit_argv))
    results["plan_no_change"] = fastest_run(plans, "wall_s")
    results["vault_floor_no_change"] = fastest_run(floors, "read_s")
    results["audit"] = fastest_run(audits, "wall_s")
    return results


def fastest_run(runs: list[dict[str, object]], key: str) -> dict[str, object]:
    """Return the run with the smallest `key`, with every run's `key` under `runs_<key>`."""
    fastest = min(runs, key=lambda run: float(run[key]))  # type: ignore[arg-type]  # a number
    return {**fastest, f"runs_{key}": [run[key] for run in runs]}


def _grantctl(site: _Site, label: str, argv: list[str]) -> dict[str, object]:
    output = site.directory / f"{label}.out"
    measurement = run_child("cli", {"argv": argv, "output": str(output)}, site.env)
    return measurement.as_dict()


def _vault_floor(
    site: _Site, accounts: list[dataset.BenchAccount], parallelism: int
) -> Measurement:
    paths_file = site.directory / "paths.json"
    paths_file.write_text(json.dumps([account.secret_path for account in accounts]))
    arguments = {
        "paths_file": str(paths_file),
        "vault_addr": site.vault_addr,
        "vault_token": site.vault_token,
        "mount": dataset.MOUNT,
        "parallelism": parallelism,
    }
    return run_child("vault_floor", arguments, {})


def _baseline(site: _Site, accounts: list[dataset.BenchAccount], kind: str) -> Measurement:
    accounts_file = site.directory / "baseline-accounts.json"
    rows = [[account.email, account.provider, account.secret_path] for account in accounts]
    accounts_file.write_text(json.dumps(rows))
    target = {
        "vault_addr": site.vault_addr,
        "vault_token": site.vault_token,
        "mount": dataset.MOUNT,
        "nylas_url": site.env["GRANTCTL_NYLAS_API_URI"],
        "api_key": dataset.API_KEY,
    }
    arguments = {"target": target, "accounts_file": str(accounts_file), "kind": kind}
    return run_child("baseline", arguments, {})


def _count_outcomes(events: Path) -> dict[str, object]:
    """Return the outcome counts of the `apply_end` event in an `--events` file."""
    if not events.exists():
        return {}
    for line in reversed(events.read_text().splitlines()):
        event = json.loads(line) if line.strip() else {}
        if event.get("event") == "apply_end":
            return {key: event.get(key) for key in ("done", "failed", "not_attempted")}
    return {}


def _nylas_bounds(count: int, scenario: Scenario) -> Results:
    latency_s = scenario.latency_ms / 1000
    rate, burst = scenario.client_rate_limit, scenario.client_burst
    return {
        "list_pages_empty": list_pages(0),
        "list_pages_full": list_pages(count),
        "nylas_empty_s": nylas_bound_s(0, latency_s, rate, burst),
        "nylas_full_s": nylas_bound_s(count, latency_s, rate, burst),
        "apply_s": count / scenario.apply_rate,
    }
