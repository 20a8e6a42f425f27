"""Run the benchmarks: `python -m benchmarks [--smoke] [--sizes 1000,10000] ...`.

Writes every figure to OUT/results.json and the human page to RESULTS.md (by default
`benchmarks/RESULTS.md`, or OUT/RESULTS.md with --smoke so a smoke run never replaces the
recorded page). Every server the run needs is started here, on loopback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

from benchmarks import e2e, machine, markdown, report
from benchmarks.measure import run_child
from reconciler.nylas.settings import ClientSettings

HERE = Path(__file__).resolve().parent


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; --smoke replaces the sizes with small ones."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=[1000, 10000], help="end-to-end sizes")
    parser.add_argument("--planner-sizes", type=_sizes, default=[10000, 100000])
    parser.add_argument("--apply-size", type=int, default=1000, help="size of the apply target")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="emulator latency")
    parser.add_argument("--rate-limit", type=int, default=50, help="emulator requests/s")
    parser.add_argument("--apply-rate", type=float, default=45.0, help="apply --rate-limit")
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of each read-only step; the fastest counts"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out", help="results directory")
    parser.add_argument("--results-md", type=Path, default=None, help="where RESULTS.md goes")
    parser.add_argument("--smoke", action="store_true", help="200 accounts, 2 ms latency")
    arguments = parser.parse_args(argv)
    if arguments.smoke:
        arguments.sizes, arguments.planner_sizes, arguments.apply_size = [200], [2000], 200
        arguments.latency_ms = 2.0
        arguments.repeats = 1
    if arguments.results_md is None:
        directory = arguments.out if arguments.smoke else HERE
        arguments.results_md = directory / "RESULTS.md"
    return arguments


class LoadSampler:
    """Sample the 1-minute load average every few seconds in a background thread."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self.samples.append(machine.load_average()[0])
            self._stop.wait(interval_s)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _scenario(arguments: argparse.Namespace) -> e2e.Scenario:
    defaults = ClientSettings()
    return e2e.Scenario(
        latency_ms=arguments.latency_ms,
        emulator_rate_limit=arguments.rate_limit,
        client_rate_limit=defaults.rate_limit_per_s,
        client_burst=defaults.rate_burst,
        apply_rate=arguments.apply_rate,
        parallelism=arguments.parallelism,
        apply_size=arguments.apply_size,
        repeats=arguments.repeats,
    )


def _run_planner(sizes: Sequence[int], repeats: int) -> dict[str, object]:
    # The sizes alternate, one child each, so that a slow spell of the machine does not hit
    # only one of the two figures whose ratio is a target. The fastest child of a size counts.
    runs: dict[int, list[dict[str, object]]] = {count: [] for count in sizes}
    for _ in range(repeats):
        for count in sizes:
            print(f"planner: {count} accounts", file=sys.stderr)
            runs[count].append(run_child("planner", {"accounts": count}, {}).as_dict())
    results: dict[str, object] = {}
    for count, measured in runs.items():
        fastest = e2e.fastest_run(measured, "planner_cpu_s")
        # The fastest first run may come from another child than the fastest run.
        first_runs = [cast(float, run["planner_first_cpu_s"]) for run in measured]
        fastest["planner_first_cpu_s"] = min(first_runs)
        results[str(count)] = fastest
    return results


def _run_sizes(arguments: argparse.Namespace, scenario: e2e.Scenario) -> dict[str, object]:
    results: dict[str, object] = {}
    for count in arguments.sizes:
        print(f"end to end: {count} accounts", file=sys.stderr)
        results[str(count)] = e2e.run_size(count, scenario, arguments.out / f"size-{count}")
        # Kept as each size finishes, so a failure later in a long run loses nothing.
        partial = arguments.out / "partial-sizes.json"
        partial.write_text(json.dumps(results, indent=2) + "\n")
    return results


# The load alone cannot tell the run's own processes from other work.
LOAD_NOTE = (
    "The run's own processes (the measured command or baseline, OpenBao, the emulator "
    "and their threads) reach a 1-minute load of about 4 on their own, so the load does "
    "not show whether other work shared the cores."
)


def run(arguments: argparse.Namespace, command: str) -> dict[str, object]:
    """Run every measurement and return the results document."""
    scenario = _scenario(arguments)
    arguments.out.mkdir(parents=True, exist_ok=True)
    bytecode = machine.compile_bytecode()
    before = machine.load_average()
    with LoadSampler() as sampler:
        planner = _run_planner(arguments.planner_sizes, arguments.repeats)
        sizes = _run_sizes(arguments, scenario)
    load: dict[str, object] = {
        "before": before,
        "after": machine.load_average(),
        "max_1min": max([*sampler.samples, before[0]]),
    }
    description = machine.describe_machine()
    description["bytecode_compiled"] = bytecode
    return {
        "command": command,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": description,
        "load": load,
        "busy_note": LOAD_NOTE,
        "scenario": asdict(scenario),
        "planner": planner,
        "sizes": sizes,
    }


def _exit_on_signal(number: int, frame: object) -> None:
    del frame
    sys.exit(128 + number)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write results.json and RESULTS.md; return 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = parse_arguments(argv)
    command = shlex.join(["python", "-m", "benchmarks", *argv])
    results = run(arguments, command)
    targets = report.evaluate(results)
    results["targets"] = [target.as_dict() for target in targets]
    (arguments.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    arguments.results_md.write_text(markdown.render(results, targets))
    for target in targets:
        verdict = "pass" if target.passed else "FAIL"
        print(f"{verdict}  {target.name}: {target.figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so the servers and the running step are stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sys.exit(main())
