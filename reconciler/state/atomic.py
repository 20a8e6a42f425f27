"""Crash-safe file replacement for the local state backend.

A reader of the target path sees either the old bytes or the new bytes, never a mix: the new
bytes go to a temporary file in the same directory, are flushed to disk, and are renamed over
the target; the directory is then flushed so the rename itself survives a power loss.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Indirections so tests can simulate a full disk or a failing device without touching the
# process-wide `os` functions.
_fsync = os.fsync
_replace = os.replace


def write_atomic(path: Path, data: bytes) -> None:
    """Replace the contents of `path` with `data`, leaving the old file intact on any error.

    Raises the `OSError` of the failing step; the temporary file is removed first.
    """
    descriptor, temporary_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            _fsync(handle.fileno())
        _replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries to disk, where the platform allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows cannot open directories; its rename is already durable enough.
    try:
        _fsync(descriptor)
    except OSError:
        pass  # Some filesystems (e.g. certain network mounts) reject fsync on a directory.
    finally:
        os.close(descriptor)
