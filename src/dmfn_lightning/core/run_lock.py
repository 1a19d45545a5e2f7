"""One training per run folder at a time: a lock that a live run holds and a dead run's leftovers do not.

The same command started twice (a requeued SLURM job while the first still runs, a second terminal) would resume
from the other's unfinished checkpoint and overwrite its ``last.ckpt`` and ``generator.pt``. ``<run dir>/.lock``
is locked with ``fcntl.lockf`` (a POSIX record lock, which NFS supports through its lock manager): the kernel
releases it when the holding process ends, however it ends (SIGKILL, the OOM killer; a lost node once the NFS lock
manager notices), so the file left behind never blocks a rerun. The holder writes its host, pid and start time into
the file, so that a refusal names them.

Under DDP only the launching process takes the lock (:func:`takes_run_lock`): the other ranks (started by it, by
``srun`` or by ``torchrun``) are part of the same training and must not refuse themselves.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from dmfn_lightning.core.errors import OutputPathError, RunFolderBusyError

__all__ = ["LOCK_NAME", "RunLock", "holder_of", "takes_run_lock"]

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

# Set by the launchers that start one process per rank: torchrun/torchelastic (RANK, GROUP_RANK), SLURM's srun
# (SLURM_PROCID), Lightning's own subprocess launcher (LOCAL_RANK in the children it starts) and the launcher of
# every node of a multi-node run (NODE_RANK). Rank 0 of each is, or is started by, the process that holds the lock.
_RANK_VARIABLES = ("RANK", "GROUP_RANK", "NODE_RANK", "SLURM_PROCID", "LOCAL_RANK")

# Lock files this process holds (POSIX record locks are per process: a second lockf here would succeed).
_HELD: set[Path] = set()


def takes_run_lock(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is the one that locks the run folder: not a DDP rank other than the first."""
    env = os.environ if env is None else env
    return all(env.get(name, "0").strip() in ("", "0") for name in _RANK_VARIABLES)


def holder_of(run_dir: str | os.PathLike) -> dict | None:
    """What the holder of ``run_dir``'s lock wrote about itself (``pid``, ``host``, ``since``), if it could be read.

    The file is not removed when a run ends: its content then names the last holder, which says nothing about
    whether the folder is busy; only the lock does.
    """
    try:
        info = json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


class RunLock:
    """``with RunLock(run_dir): ...``: hold ``<run_dir>/.lock`` or raise :class:`RunFolderBusyError`.

    ``key`` is the option that chose the folder (``hydra.run.dir``, ``hydra.sweep.dir``), named in the refusal.
    """

    def __init__(self, run_dir: str | os.PathLike, key: str = "hydra.run.dir") -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.key = key
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        path = self.path.resolve()
        if path in _HELD:
            raise RunFolderBusyError(self._busy_message({"pid": os.getpid(), "host": socket.gethostname()}))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise OutputPathError(f"cannot create {self.path} ({reason}); choose a writable {self.key}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise RunFolderBusyError(self._busy_message(holder_of(self.run_dir))) from None
            # No lock manager (an NFS mount with nolock, some FUSE file systems): train unguarded, and say so.
            log.warning(
                f"cannot lock {self.path} ({exc.strerror or exc}): a second training started in this folder "
                "would not be refused"
            )
            return self
        self._fd = fd
        _HELD.add(path)
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "command": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return self

    def _busy_message(self, holder: dict | None) -> str:
        if holder and holder.get("pid"):
            who = f"pid {holder['pid']} on host {holder.get('host', '?')}"
            if holder.get("since"):
                who += f" since {holder['since']}"
        else:
            who = "another process (it has not written its name yet)"
        return f"{self.run_dir} is being trained by {who}; wait for it or choose another {self.key}"

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD.discard(self.path.resolve())
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
