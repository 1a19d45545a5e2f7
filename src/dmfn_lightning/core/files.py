"""Writing files safely: atomic replacement with the usual permissions, and writable-folder checks before work.

Every file the library writes (checkpoints, generator files, PNGs, manifests, cached demo photos) goes through
:func:`atomic_write`: the bytes go to a temporary file in the target's folder, are flushed to disk and renamed over
the target, so a crash or a full disk mid-write leaves the previous file intact and a reader never sees half a
file. The temporary file is created with mode 0600; it is given the mode a plain ``open()`` would have given it
(``0666 & ~umask``) before the rename, so shared run folders stay readable to the group.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dmfn_lightning.core.errors import OutputPathError

__all__ = ["atomic_write", "atomic_write_bytes", "check_output_folder", "current_umask", "probe_writable"]


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``; returns ``path``.

    Creates the parent folders. On any error the temporary file is removed and the old ``path`` (if any) is left
    as it was; the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of a bytes object."""
    return atomic_write(path, lambda f: f.write(data))


def probe_writable(folder: str | os.PathLike) -> None:
    """Create and remove a file in ``folder``; raises the ``OSError`` when that fails.

    ``os.access`` is not enough: it says yes to root on a read-only mount, and to anyone on some network file
    systems; writing a file is the real test.
    """
    fd, probe = tempfile.mkstemp(prefix=".dmfn_write_test_", dir=folder)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_output_folder(folder: str | os.PathLike, option: str = "--output") -> Path:
    """Check, before any work, that ``folder`` is (or can be created as) a writable folder; returns it.

    Raises :class:`OutputPathError` with a one-line reason when ``folder`` (or one of its parents) is an existing
    file, or when the folder, or the nearest existing parent it would be created in, is not writable. Nothing is
    created.
    """
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} is an existing file; expected a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} cannot be created: {str(existing)!r} is a file, not a folder")
    where = option if existing == path else f"{option} {str(path)!r}: its parent"
    try:
        probe_writable(existing)
    except OSError as err:
        raise OutputPathError(f"{where} {str(existing)!r} is not writable ({err.strerror or err})") from err
    return path
