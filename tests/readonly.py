"""A folder nobody can write to, for the output-location tests."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest


def _writable(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def unwritable_folder(tmp_path: Path) -> Path:
    """A read-only folder: a chmod 555 one, or (root ignores permission bits) a read-only system folder."""
    folder = tmp_path / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    if not _writable(folder):
        return folder
    for candidate in (Path("/sys/kernel"), Path("/sys"), Path("/proc/sys")):
        if candidate.is_dir() and not _writable(candidate):
            return candidate
    pytest.skip("no read-only folder here (running as root without a read-only file system)")
