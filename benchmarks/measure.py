"""Run one measured task in a fresh child process and read its wall time, CPU time and peak RSS.

Each task runs in its own interpreter so that its peak resident set size is its own and not
the maximum over everything the runner did before. The child prints one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    """Wall and CPU seconds and peak RSS (MiB) of one child process, plus its own figures."""

    task: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    extra: Mapping[str, object]

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            **self.extra,
        }


def run_child(task: str, args: Mapping[str, object], env: Mapping[str, str]) -> Measurement:
    """Run `python -m benchmarks.child TASK ARGS_JSON` and return what it measured."""
    command = [sys.executable, "-m", "benchmarks.child", task, json.dumps(args)]
    completed = subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"benchmark task {task!r} failed with exit code {completed.returncode}:\n"
            f"{completed.stderr[-4000:]}"
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return Measurement(
        task=task,
        wall_s=float(figures.pop("wall_s")),
        cpu_s=float(figures.pop("cpu_s")),
        peak_rss_mib=float(figures.pop("peak_rss_mib")),
        extra=figures,
    )
