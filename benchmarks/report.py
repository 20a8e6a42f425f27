"""Targets checked against a run's figures, and the RESULTS.md page written from them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Results = Mapping[str, Any]

PLANNER_US_LIMIT = 50.0
PLANNER_GROWTH_LIMIT = 11.0
PLAN_RSS_LIMIT_MIB = 200.0
PLANNER_RSS_LIMIT_MIB = 1024.0
BASELINE_SPEEDUP = 20.0
BOUND_FACTOR = 1.5
APPLY_FACTOR = 1.15
AUDIT_FACTOR = 1.2


@dataclass(frozen=True)
class Target:
    """One target: what it requires, the measured figure, the ratio that decides it."""

    name: str
    requirement: str
    figure: str
    ratio: float | None
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "requirement": self.requirement,
            "figure": self.figure,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "passed": self.passed,
        }


def plan_bound_s(size: Results, phase: str) -> float:
    """Return the lower bound of a plan: the slower of listing grants and reading metadata."""
    bounds = size["bounds"]
    if phase == "plan_empty":
        nylas, floor = bounds["nylas_empty_s"], size["vault_floor"]
    else:
        nylas, floor = bounds["nylas_full_s"], size["vault_floor_no_change"]
    return max(float(nylas), float(floor["read_s"]))


def evaluate(results: Results) -> list[Target]:
    """Check every target that the run's sizes allow; sizes not run are skipped."""
    targets: list[Target] = []
    for check in (_plan_targets, _planner_targets, _apply_targets, _audit_targets):
        targets.extend(check(results))
    return targets


def _largest(results: Results) -> tuple[str, Results] | None:
    sizes = results.get("sizes", {})
    if not sizes:
        return None
    key = max(sizes, key=int)
    return key, sizes[key]


def _plan_targets(results: Results) -> Iterator[Target]:
    largest = _largest(results)
    if largest is None:
        return
    key, size = largest
    plan = size["plan_empty"]
    speedup = size["baseline_plan"]["wall_s"] / plan["wall_s"]
    yield Target(
        f"plan, {int(key):,} accounts, vs baseline",
        f">= {BASELINE_SPEEDUP:.0f}x faster than the sequential baseline",
        f"{plan['wall_s']:.2f} s vs {size['baseline_plan']['wall_s']:.2f} s",
        speedup,
        speedup >= BASELINE_SPEEDUP,
    )
    for phase in ("plan_empty", "plan_no_change"):
        wall, bound = size[phase]["wall_s"], plan_bound_s(size, phase)
        yield Target(
            f"{phase.replace('_', ' ')}, {int(key):,} accounts, vs lower bound",
            f"<= {BOUND_FACTOR}x the lower bound",
            f"{wall:.2f} s vs bound {bound:.2f} s",
            wall / bound,
            wall <= BOUND_FACTOR * bound,
        )
        rss = size[phase]["peak_rss_mib"]
        yield Target(
            f"{phase.replace('_', ' ')}, {int(key):,} accounts, peak RSS",
            f"< {PLAN_RSS_LIMIT_MIB:.0f} MiB",
            f"{rss:.0f} MiB",
            rss / PLAN_RSS_LIMIT_MIB,
            rss < PLAN_RSS_LIMIT_MIB,
        )


def _planner_targets(results: Results) -> Iterator[Target]:
    planner = results.get("planner", {})
    for key, run in sorted(planner.items(), key=lambda item: int(item[0])):
        per_account = run["planner_cpu_s"] / int(key) * 1e6
        yield Target(
            f"pure planner, {int(key):,} accounts, CPU time per account",
            f"< {PLANNER_US_LIMIT:.0f} us",
            f"{per_account:.1f} us (wall {run['planner_s'] / int(key) * 1e6:.1f} us)",
            per_account / PLANNER_US_LIMIT,
            per_account < PLANNER_US_LIMIT,
        )
    if "10000" in planner and "100000" in planner:
        growth = planner["100000"]["planner_cpu_s"] / planner["10000"]["planner_cpu_s"]
        yield Target(
            "pure planner, 100,000 vs 10,000 accounts",
            f"<= {PLANNER_GROWTH_LIMIT:.0f}x the 10,000-account CPU time",
            f"{growth:.2f}x",
            growth / PLANNER_GROWTH_LIMIT,
            growth <= PLANNER_GROWTH_LIMIT,
        )
    if "100000" in planner:
        rss = planner["100000"]["peak_rss_mib"]
        yield Target(
            "pure planner, 100,000 accounts, peak RSS",
            f"< {PLANNER_RSS_LIMIT_MIB:.0f} MiB",
            f"{rss:.0f} MiB",
            rss / PLANNER_RSS_LIMIT_MIB,
            rss < PLANNER_RSS_LIMIT_MIB,
        )


def _apply_targets(results: Results) -> Iterator[Target]:
    scenario = results["scenario"]
    size = results.get("sizes", {}).get(str(scenario["apply_size"]))
    if size is None:
        return
    count, rate = int(scenario["apply_size"]), float(scenario["apply_rate"])
    limit = APPLY_FACTOR * count / rate
    wall = size["apply"]["wall_s"]
    outcomes = size["apply"].get("outcomes", {})
    failed = outcomes.get("failed")
    done = outcomes.get("done")
    yield Target(
        f"first apply, {count:,} accounts at {rate:g} requests/s",
        f"<= {APPLY_FACTOR} x {count:,}/{rate:g} s = {limit:.1f} s, zero failed",
        f"{wall:.2f} s, {done} done, {failed} failed",
        wall / limit,
        wall <= limit and failed == 0 and done == count,
    )


def _audit_targets(results: Results) -> Iterator[Target]:
    largest = _largest(results)
    if largest is None:
        return
    key, size = largest
    audit, plan = size["audit"]["wall_s"], size["plan_no_change"]["wall_s"]
    yield Target(
        f"audit, {int(key):,} accounts, vs no-change plan",
        f"<= {AUDIT_FACTOR}x the plan time",
        f"{audit:.2f} s vs plan {plan:.2f} s",
        audit / plan,
        audit <= AUDIT_FACTOR * plan,
    )
