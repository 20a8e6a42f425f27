"""Render a run's results as the RESULTS.md page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from benchmarks.report import Target, plan_bound_s

Results = Mapping[str, Any]

_PHASES = (
    ("plan_empty", "plan, empty estate"),
    ("apply", "apply, first connect of every account"),
    ("plan_no_change", "plan, no change"),
    ("audit", "audit"),
)


def render(results: Results, targets: Sequence[Target]) -> str:
    """Return the Markdown page for `results` and the targets checked on them."""
    lines = ["# grantctl benchmark results", ""]
    lines += _summary(results)
    lines += _targets(targets)
    lines += _end_to_end(results)
    lines += _planner(results)
    lines += _machine(results)
    lines += _definitions(results)
    return "\n".join(lines) + "\n"


def _summary(results: Results) -> list[str]:
    load = results["load"]
    return [
        f"Recorded {results['finished_at']} with:",
        "",
        f"    {results['command']}",
        "",
        f"Load average (1/5/15 min) before the run: {_load(load['before'])}, after: "
        f"{_load(load['after'])}, highest 1-minute sample during it: {load['max_1min']:.2f} "
        f"on {results['machine']['cores']} cores. {results['busy_note']}",
        "",
    ]


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


def _targets(targets: Sequence[Target]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "| target | requirement | figure | ratio | result |",
        "|---|---|---|---|---|",
    ]
    for target in targets:
        ratio = "" if target.ratio is None else f"{target.ratio:.2f}"
        verdict = "pass" if target.passed else "**fail**"
        lines.append(
            f"| {target.name} | {target.requirement} | {target.figure} | {ratio} | {verdict} |"
        )
    return [*lines, ""]


def _end_to_end(results: Results) -> list[str]:
    lines = ["## End to end", ""]
    for key, size in sorted(results.get("sizes", {}).items(), key=lambda item: int(item[0])):
        lines += [f"### {int(key):,} accounts", ""]
        lines += [
            "| step | wall s | CPU s | peak RSS MiB | exit | x baseline | x lower bound |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += list(_phase_rows(size))
        lines += list(_reference_rows(size))
        lines.append("")
    return lines


def _phase_rows(size: Results) -> Iterator[str]:
    baseline = size.get("baseline_plan", {}).get("wall_s")
    apply_baseline = size.get("baseline_apply", {}).get("wall_s")
    for phase, label in _PHASES:
        figures = size[phase]
        wall = figures["wall_s"]
        if phase == "apply":
            reference, bound = apply_baseline, size["bounds"]["apply_s"]
        elif phase == "audit":
            reference, bound = None, plan_bound_s(size, "plan_no_change")
        else:
            reference, bound = baseline, plan_bound_s(size, phase)
        versus_baseline = f"{reference / wall:.1f}x faster" if reference else ""
        yield (
            f"| {label} | {wall:.2f} | {figures['cpu_s']:.2f} | {figures['peak_rss_mib']:.0f} "
            f"| {figures['exit_code']} | {versus_baseline} | {wall / bound:.2f} |"
        )


def _reference_rows(size: Results) -> Iterator[str]:
    floors = (
        ("vault_floor", "with the empty-estate plans"),
        ("vault_floor_no_change", "with the no-change plans and audits"),
    )
    for key, when in floors:
        if key in size:
            label = f"Vault lower bound: raw metadata reads, measured {when}"
            yield _measured_row(label, size[key], size[key]["read_s"])
    bounds = size["bounds"]
    yield (
        f"| Nylas lower bound: {bounds['list_pages_full']} list pages (computed) "
        f"| {bounds['nylas_full_s']:.2f} | | | | | |"
    )
    loops = (("baseline_plan", "baseline plan loop"), ("baseline_apply", "baseline apply loop"))
    for key, label in loops:
        if key in size:
            yield _measured_row(label, size[key], size[key]["wall_s"])


def _measured_row(label: str, figures: Results, seconds: float) -> str:
    """Return a table row of a measured reference: its time, CPU time and peak RSS."""
    return (
        f"| {label} | {seconds:.2f} | {figures['cpu_s']:.2f} "
        f"| {figures['peak_rss_mib']:.0f} | | | |"
    )


def _planner(results: Results) -> list[str]:
    planner = results.get("planner", {})
    if not planner:
        return []
    lines = [
        "## Pure planner (`make_plan` on in-memory inputs)",
        "",
        "| accounts | wall s | CPU s | CPU us per account | first run, CPU us per account "
        "| peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for key, run in sorted(planner.items(), key=lambda item: int(item[0])):
        per_account = run["planner_cpu_s"] / int(key) * 1e6
        first = run.get("planner_first_cpu_s")
        first_text = f"{first / int(key) * 1e6:.1f}" if first is not None else "-"
        lines.append(
            f"| {int(key):,} | {run['planner_s']:.3f} | {run['planner_cpu_s']:.3f} "
            f"| {per_account:.1f} | {first_text} | {run['peak_rss_mib']:.0f} |"
        )
    small, large = planner.get("10000", {}), planner.get("100000", {})
    if small.get("planner_first_cpu_s") and large.get("planner_first_cpu_s"):
        growth = large["planner_first_cpu_s"] / small["planner_first_cpu_s"]
        lines += [
            "",
            "The target is judged on the fastest run. Each child's first run plans in fresh "
            "memory, as a command does, while its later runs reuse the memory the previous "
            "plan freed, which helps the smaller plan more. Judged on first runs, 100,000 "
            f"accounts took {growth:.2f} times as long as 10,000; this is not a target.",
        ]
    return [*lines, ""]


def _machine(results: Results) -> list[str]:
    machine = results["machine"]
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    return [
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; RAM {machine['memory_gib']} GiB",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}; {machine['openbao']}",
        f"- Libraries: {libraries}",
        _bytecode_line(machine),
        "",
    ]


def _bytecode_line(machine: Results) -> str:
    if machine.get("bytecode_compiled"):
        return "- grantctl's modules were compiled to bytecode before the run, as installing does"
    return "- grantctl's modules could not all be compiled to bytecode before the run"


def _definitions(results: Results) -> list[str]:
    scenario = results["scenario"]
    return [
        "## How the figures are made",
        "",
        "- Every step runs in a fresh child interpreter (`benchmarks/child.py`), so peak RSS "
        "is the step's own. The clock starts before grantctl's modules are imported, so wall "
        "time includes imports, manifest loading and rendering; it leaves out the "
        "interpreter's own start and exit, about 0.1 s at 10,000 accounts.",
        f"- The emulator adds {scenario['latency_ms']:g} ms to every request and allows "
        f"{scenario['emulator_rate_limit']} requests/s per endpoint group; it runs as a "
        "separate process. OpenBao is a `bao server -dev` process on loopback. Both share the "
        "machine's cores with grantctl.",
        f"- grantctl runs with `--parallelism {scenario['parallelism']}`; plans and audits use "
        f"the client's default rate limit ({scenario['client_rate_limit']:g} requests/s, "
        f"burst {scenario['client_burst']}); applies use "
        f"`--rate-limit {scenario['apply_rate']:g}`.",
        "- Baseline: `benchmarks/baseline.py`, the loop a user would write with hvac and httpx: "
        "per account one metadata read and one `GET /v3/grants?email=` (plan), or one secret "
        "read and one `POST /v3/connect/custom` (apply), one request at a time.",
        "- Lower bound of a plan: the larger of (a) Nylas: N // 200 + 1 list pages in sequence, "
        "each taking at least the emulator latency, and no faster than the client's token "
        "bucket allows (computed); and (b) Vault: the time the smallest concurrent reader "
        "(`benchmarks/floor.py`: raw `http.client`, keep-alive, the same parallelism and thread "
        "fan-out as grantctl) takes for the "
        "N metadata reads, measured in the same run against the same server. It leaves out "
        "imports, manifest parsing and planning, which grantctl's figure includes.",
        "- Lower bound of the first apply: N connects at the apply's rate limit (N / rate).",
        f"- Plans, audits and the Vault lower bound run {results['scenario']['repeats']} times "
        "each, a plan alternating with the bound it is compared with, and the fastest run "
        "counts, as `timeit` does, because the shared machine's speed varied by as much as 60% "
        "within minutes. The bound is measured twice: with the empty-estate plans, and again "
        "after the apply with the no-change plans and audits, which are compared with that "
        "second figure. `results.json` lists every run. The baselines and the apply run once.",
        "- Pure planner targets are judged on CPU time, because other processes shared the two "
        "cores; wall time is shown next to it. Each size plans the same inputs three times in "
        f"one process, in {results['scenario']['repeats']} child processes that alternate "
        "between the sizes, and the fastest run counts, as `timeit` does.",
        "",
    ]
