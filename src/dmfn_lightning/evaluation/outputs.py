"""Where an evaluation writes: every output file name kept inside its folder, and one evaluation's files swapped in
together so that two evaluations' outputs never mix (:class:`StagedOutputs`).

An evaluation's outputs are :data:`OUTPUT_NAMES`: ``images/`` (``save_images=true``), ``per_image.csv``,
``table1.md`` and ``summary.json``. They are written into a hidden staging folder inside the output folder
(``.dmfn_eval_partial.<host>.<pid>.<random>``) and moved into place only when the evaluation has finished
(:meth:`StagedOutputs.commit`): the previous evaluation's files are moved away first, ``summary.json`` first of all,
and the new ``summary.json`` comes in last, so a ``summary.json`` always describes the files beside it, and the
previous evaluation's files are replaced as a whole (its ``images/`` too, even when the new run saves none). A run
that fails or is interrupted leaves the previous complete results as they were; its staging folder is removed, or,
after a kill, by the next evaluation into that folder on the same machine.

Files of those names that are not an evaluation's results (no ``summary.json`` written by one beside them) are the
user's: :meth:`StagedOutputs.check` refuses such a folder before any work instead of replacing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import TracebackType

from dmfn_lightning.core.errors import OutputPathError

__all__ = [
    "OUTPUT_NAMES",
    "PARTIAL_PREFIX",
    "StagedOutputs",
    "check_plain_name",
    "is_inside",
    "plain_name_problem",
    "relative_path_problem",
]

# What an evaluation writes into its output folder; summary.json last (commit order).
OUTPUT_NAMES = ("images", "per_image.csv", "table1.md", "summary.json")
PARTIAL_PREFIX = ".dmfn_eval_partial."
# Keys every summary.json of an evaluation (evaluate, manifest score) has.
_SUMMARY_KEYS = frozenset({"n_images", "metrics", "protocol"})
_MAX_NAME_BYTES = 250  # file systems take 255 bytes per name; ".png" is added


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name inside one folder (``None`` when it can): empty, ``.`` or ``..``, a path
    separator (``/`` or ``\\``), a control character, or too long for a file name."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder"
    if "/" in name or "\\" in name:
        return "contains a path separator ('/' or '\\')"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    if len(name.encode("utf-8", errors="surrogatepass")) > _MAX_NAME_BYTES:
        return f"is longer than {_MAX_NAME_BYTES} bytes, too long for a file name"
    return None


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a relative path that stays inside its folder (``None`` when it is): absolute, a drive,
    a ``..`` part, or a control character."""
    if not path:
        return "is empty"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive:
        return "is absolute"
    if ".." in path.replace("\\", "/").split("/"):
        return "has a '..' part that leaves the folder"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains a control character"
    return None


def is_inside(path: str | os.PathLike, folder: str | os.PathLike, resolve: bool = True) -> bool:
    """True when ``path`` is ``folder`` or below it. ``resolve``: symbolic links followed (where the files really
    are); else by the names alone (``..`` parts collapsed), for paths that a file names below a folder."""
    if resolve:
        target, base = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    else:
        target = Path(os.path.normpath(Path(path).expanduser().absolute()))
        base = Path(os.path.normpath(Path(folder).expanduser().absolute()))
    return target == base or base in target.parents


def check_plain_name(name: str, folder: Path, what: str) -> None:
    """Raise :class:`OutputPathError` (one line) unless ``name`` is a plain file name for a file in ``folder``;
    ``what`` names the value (``"image name"``)."""
    problem = plain_name_problem(name)
    if problem is not None:
        raise OutputPathError(
            f"{what} {name!r} {problem}: it would not be a file inside {folder}, and nothing is written outside an "
            "output folder"
        )


def _holds_results(folder: Path) -> bool:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.keys() >= _SUMMARY_KEYS


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is someone else's
        return True
    return True


class StagedOutputs:
    """One evaluation's outputs, written into a staging folder inside ``folder`` and swapped in by :meth:`commit`.

    ``check()`` before any work; then ``with outputs:`` around the work, writing into :attr:`staging`, ending with
    ``commit()``. Leaving the ``with`` block without committing (an error, an interruption) removes the staging
    folder and changes nothing else. ``option`` names the setting in messages (``output_dir``, ``--out``).
    """

    def __init__(self, folder: str | os.PathLike, option: str = "output_dir") -> None:
        self.folder = Path(folder).expanduser()
        self.option = option
        self._staging: Path | None = None

    @property
    def staging(self) -> Path:
        if self._staging is None:
            raise RuntimeError("StagedOutputs.staging is only available inside its with block")
        return self._staging

    def check(self) -> None:
        """Refuse (:class:`OutputPathError`, one line) a folder holding files of :data:`OUTPUT_NAMES` that are not a
        previous evaluation's results: they would be replaced."""
        present = [name for name in OUTPUT_NAMES if _exists(self.folder / name)]
        if present and not _holds_results(self.folder):
            raise OutputPathError(
                f"{self.option}={str(self.folder)!r} already holds {', '.join(present)}, which are not an "
                f"evaluation's results (no summary.json of one): an evaluation would replace them; choose another "
                f"{self.option} or move them away"
            )

    def _remove_stale(self) -> None:
        """Staging folders of killed evaluations on this machine (their process is gone)."""
        if os.name != "posix":  # os.kill(pid, 0) only asks on POSIX
            return
        host = socket.gethostname()
        for path in self.folder.glob(f"{PARTIAL_PREFIX}*"):
            owner, _, pid = path.name[len(PARTIAL_PREFIX) :].rpartition(".")[0].rpartition(".")
            if owner == host and pid.isdigit() and not _process_alive(int(pid)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> StagedOutputs:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        prefix = f"{PARTIAL_PREFIX}{socket.gethostname()}.{os.getpid()}."
        self._staging = Path(tempfile.mkdtemp(prefix=prefix, dir=self.folder))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def commit(self) -> None:
        """Replace the previous evaluation's files in :attr:`folder` by the staged ones.

        The previous files go first (``summary.json`` first of all) into a folder inside the staging folder, removed
        with it; the staged ones come in with ``summary.json`` last. Every move is a rename within one file system.
        """
        previous = Path(tempfile.mkdtemp(prefix=".previous.", dir=self.staging))
        for name in ("summary.json", *(n for n in OUTPUT_NAMES if n != "summary.json")):
            if _exists(self.folder / name):
                os.replace(self.folder / name, previous / name)
        for name in OUTPUT_NAMES:
            if _exists(self.staging / name):
                os.replace(self.staging / name, self.folder / name)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.staging)
