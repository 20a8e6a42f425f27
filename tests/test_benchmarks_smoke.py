"""The benchmark runner at its smoke size: it must keep working, however fast grantctl is.

No timing is asserted here: the figures depend on the machine. The recorded figures live in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.markdown import _planner as markdown_planner

pytestmark = pytest.mark.slow


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    """A --smoke run writes results.json and RESULTS.md with every step and target."""
    out = tmp_path / "out"

    assert main(["--smoke", "--out", str(out)]) == 0

    results = json.loads((out / "results.json").read_text())
    size = results["sizes"]["200"]
    assert size["plan_empty"]["exit_code"] == 0
    assert size["apply"]["exit_code"] == 0
    assert size["apply"]["outcomes"] == {"done": 200, "failed": 0, "not_attempted": 0}
    assert size["plan_no_change"]["exit_code"] == 0, "a second plan after apply has changes"
    assert size["audit"]["exit_code"] == 0, "audit after apply reports drift"
    assert size["vault_floor"]["found"] == 200
    assert size["vault_floor_no_change"]["found"] == 200
    assert size["baseline_plan"]["result"] == 200, "the baseline found grants before apply"
    assert size["baseline_apply"]["result"] == 200
    planner = results["planner"]["2000"]
    assert planner["changes"] == 2000
    assert planner["planner_first_cpu_s"] >= planner["planner_cpu_s"], "a first run beat the min"
    assert {target["name"] for target in results["targets"]} >= {
        "first apply, 200 accounts at 45 requests/s",
        "audit, 200 accounts, vs no-change plan",
    }
    page = (out / "RESULTS.md").read_text()
    assert "## Targets" in page
    assert "python -m benchmarks --smoke" in page


def test_planner_section_compares_first_runs() -> None:
    """The planner section shows each size's first run and their growth, apart from targets."""
    run = {"planner_s": 0.08, "planner_cpu_s": 0.08, "peak_rss_mib": 60.0}
    planner = {
        "10000": {**run, "planner_first_cpu_s": 0.09},
        "100000": {**run, "planner_cpu_s": 0.9, "planner_first_cpu_s": 0.96},
    }

    page = "\n".join(markdown_planner({"planner": planner}))

    assert "| 10,000 | 0.080 | 0.080 | 8.0 | 9.0 | 60 |" in page
    assert "| 100,000 | 0.080 | 0.900 | 9.0 | 9.6 | 60 |" in page
    assert "took 10.67 times as long as 10,000" in page
