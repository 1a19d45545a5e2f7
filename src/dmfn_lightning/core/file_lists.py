"""File lists: text files naming one image path per line, and ``pkg:<name>`` for the lists shipped in the package.

Data splits, irregular mask folders, evaluation protocols and manifests all name files this way, so the reading
rules (comments, blank lines, paths relative to the list or a root, missing files named) live here once.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from hydra.utils import to_absolute_path

from dmfn_lightning.core.errors import DataError

__all__ = ["PACKAGE_PREFIX", "absolute_path", "read_file_list", "resolve_list_path"]

# A list or manifest named "pkg:<name>" is the file of that name shipped inside the package.
PACKAGE_PREFIX = "pkg:"


def resolve_list_path(path: str | os.PathLike) -> Path:
    """A list file path; ``pkg:<name>`` names a list shipped in ``dmfn_lightning/data/lists/``."""
    text = str(path)
    if text.startswith(PACKAGE_PREFIX):
        name = text[len(PACKAGE_PREFIX) :]
        resource = resources.files("dmfn_lightning").joinpath("data", "lists", name)
        if not resource.is_file():
            shipped = sorted(p.name for p in resources.files("dmfn_lightning").joinpath("data", "lists").iterdir())
            raise DataError(f"{text}: no such packaged file list (shipped: {', '.join(shipped)})")
        return Path(str(resource))
    return Path(text).expanduser()


def absolute_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the directory the command was started in (Hydra may have changed it)."""
    try:  # follows Hydra's original working directory when Hydra changed it
        return Path(to_absolute_path(str(Path(path).expanduser())))
    except Exception:  # pragma: no cover - Hydra not usable here
        return Path(path).expanduser().resolve()


def read_file_list(list_path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Paths named by a text file: one per line, ``#`` comments and blank lines ignored, relative paths resolved
    against ``root`` (default: the list's folder). Raises :class:`DataError` naming missing files."""
    path = resolve_list_path(list_path)
    if not path.is_file():
        raise DataError(f"{path}: file list does not exist")
    base = Path(root).expanduser() if root is not None else path.parent
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        entries.append(entry if entry.is_absolute() else base / entry)
    if not entries:
        raise DataError(f"{path}: file list is empty")
    missing = [p for p in entries if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{path}: {len(missing)} of {len(entries)} listed files do not exist (resolved against {base}): "
            f"{shown}{more}"
        )
    return entries
