"""The benchmark runner at its smoke size: it must keep working, however fast grantctl is.

No timing is asserted here: the figures depend on the machine. The recorded figures live in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main

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
    assert results["planner"]["2000"]["changes"] == 2000
    assert {target["name"] for target in results["targets"]} >= {
        "first apply, 200 accounts at 45 requests/s",
        "audit, 200 accounts, vs no-change plan",
    }
    page = (out / "RESULTS.md").read_text()
    assert "## Targets" in page
    assert "python -m benchmarks --smoke" in page
