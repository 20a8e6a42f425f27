"""Facts about the machine and software a run used, recorded next to its figures."""

from __future__ import annotations

import compileall
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import reconciler
from reconciler.demo_fixture import find_bao

LIBRARIES = ("httpx", "hvac", "requests", "PyYAML", "jsonschema", "click", "nylas-grant-reconciler")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _bao_version() -> str:
    completed = subprocess.run(
        [find_bao(), "version"], capture_output=True, text=True, check=False, timeout=30
    )
    return completed.stdout.strip() or completed.stderr.strip()


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def compile_bytecode() -> bool:
    """Compile grantctl's modules to bytecode, as installing a wheel does, and report success.

    An editable install runs grantctl from its source tree, and with PYTHONDONTWRITEBYTECODE
    set (as on the benchmark machine) every child interpreter would compile each module
    again: about 0.2 s per command that an installed grantctl never pays.
    """
    return compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)


def load_average() -> tuple[float, float, float]:
    """Return the 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def describe_machine() -> dict[str, object]:
    """Return the CPU, core count, memory and software versions of this machine."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "openbao": _bao_version(),
        "libraries": _versions(),
    }
