"""Where a file came from: the library version and the git commit of the source tree that wrote it."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["git_commit", "library_version"]


def library_version() -> str | None:
    """The installed ``dmfn_lightning`` version; ``None`` when the package runs uninstalled (from a source tree,
    where :func:`git_commit` says which code it is)."""
    try:
        return metadata.version("dmfn_lightning")
    except metadata.PackageNotFoundError:
        return None


@cache
def git_commit() -> str | None:
    """The commit of the git checkout this package runs from, with ``+dirty`` when it has uncommitted changes;
    ``None`` for an installed wheel or when git is not available."""
    source = Path(__file__).resolve().parents[1]  # the package folder: its own changes make it dirty
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if head and dirty else (head or None)
