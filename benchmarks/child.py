"""One measured task, run in a fresh interpreter by `benchmarks.measure.run_child`.

Usage: python -m benchmarks.child TASK ARGS_JSON. Prints one JSON line: wall_s, cpu_s,
peak_rss_mib and task-specific figures. grantctl tasks run the real command line in this
process, so import time and every layer a user pays for are inside the measurement.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Figures = dict[str, Any]
PLANNER_RUNS = 3


def _run_grantctl(argv: list[str], output: Path) -> Figures:
    from reconciler.cli import grantctl

    # grantctl's own output goes to a file, so that this process's stdout carries only the
    # figures. Rendering the output is still inside the measurement.
    with output.open("w") as stream, contextlib.redirect_stdout(stream):
        try:
            grantctl.main(args=argv, prog_name="grantctl")
        except SystemExit as exit_:
            return {"exit_code": exit_.code}
    return {"exit_code": 0}


def _task_cli(args: Figures) -> Figures:
    return _run_grantctl(list(args["argv"]), Path(args["output"]))


def _task_planner(args: Figures) -> Figures:
    from benchmarks.planner_inputs import build_inputs
    from reconciler.planner import PlanOptions, make_plan

    manifest, inventory, secrets, grants = build_inputs(int(args["accounts"]))
    # The fastest of a few runs, as timeit reports: a slower run measures other processes.
    walls, cpus, changes = [], [], 0
    for _ in range(PLANNER_RUNS):
        started = time.perf_counter()
        cpu_started = time.process_time()
        plan = make_plan(manifest, inventory, secrets, grants, PlanOptions())
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        changes = len(plan.changes)
        # Freed before the next run, so that peak RSS is that of one plan.
        del plan
    return {
        "planner_s": min(walls),
        "planner_cpu_s": min(cpus),
        # The first run is what a command gets: it plans once, in fresh memory, while later
        # runs here reuse the memory the previous plan freed.
        "planner_first_cpu_s": cpus[0],
        "planner_runs": PLANNER_RUNS,
        "changes": changes,
    }


def _task_vault_floor(args: Figures) -> Figures:
    from benchmarks.floor import read_metadata_raw

    paths = json.loads(Path(args["paths_file"]).read_text())
    started = time.perf_counter()
    found = read_metadata_raw(
        args["vault_addr"], args["vault_token"], args["mount"], paths, int(args["parallelism"])
    )
    return {"read_s": time.perf_counter() - started, "found": found}


def _task_baseline(args: Figures) -> Figures:
    from benchmarks.baseline import BaselineTarget, baseline_apply, baseline_plan

    target = BaselineTarget(**args["target"])
    accounts = [tuple(row) for row in json.loads(Path(args["accounts_file"]).read_text())]
    loop = baseline_plan if args["kind"] == "plan" else baseline_apply
    return {"result": loop(target, accounts)}


TASKS: dict[str, Callable[[Figures], Figures]] = {
    "cli": _task_cli,
    "planner": _task_planner,
    "baseline": _task_baseline,
    "vault_floor": _task_vault_floor,
}


def main() -> None:
    task, raw_args = sys.argv[1], json.loads(sys.argv[2])
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    figures = TASKS[task](raw_args)
    figures["wall_s"] = time.perf_counter() - wall_started
    figures["cpu_s"] = time.process_time() - cpu_started
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write("\n" + json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
